"""SQLAlchemy tables of the studio database: attributes, labels (one per labeler), audit, adjudications, score history."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

LABEL_VALUES = ("positive", "negative", "skip")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class AttributeRow(Base):
    """An attribute being annotated: its spec (as given) and the bandit that picks its feeds."""

    __tablename__ = "attributes"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    spec_yaml: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    bandit_state: Mapped[str] = mapped_column(Text)  # bandits.BanditState as JSON
    bandit_revision: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def key(self) -> str:
        return f"{self.name}@v{self.version}"


class LabelRow(Base):
    """The current label one labeler gave one video; ``revision`` guards against lost concurrent edits."""

    __tablename__ = "labels"
    __table_args__ = (UniqueConstraint("attribute_id", "video_id", "labeler"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), index=True)
    video_id: Mapped[str] = mapped_column(String(256))
    labeler: Mapped[str] = mapped_column(String(128))
    value: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRow(Base):
    """Every change to a label or an adjudication, append-only."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), index=True)
    video_id: Mapped[str] = mapped_column(String(256))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))  # label | adjudicate | import
    old_value: Mapped[str | None] = mapped_column(String(16), nullable=True)
    new_value: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AdjudicationRow(Base):
    """A decision that settles a disagreement between labelers for one video; overrides the majority."""

    __tablename__ = "adjudications"
    __table_args__ = (UniqueConstraint("attribute_id", "video_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), index=True)
    video_id: Mapped[str] = mapped_column(String(256))
    value: Mapped[str] = mapped_column(String(16))
    adjudicator: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ScoreRow(Base):
    """Model quality and data diversity after a retrain, kept as a history for the UI."""

    __tablename__ = "scores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attribute_id: Mapped[int] = mapped_column(ForeignKey("attributes.id"), index=True)
    n_positive: Mapped[int] = mapped_column(Integer)
    n_negative: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float | None] = mapped_column(nullable=True)
    diversity: Mapped[float] = mapped_column()
    at: Mapped[datetime] = mapped_column(default=utcnow)


def make_engine(url: str) -> Engine:
    """Engine for a SQLite file (default) or any SQLAlchemy URL (e.g. postgresql+psycopg://...); creates tables."""
    kwargs: dict = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001 - DB-API objects
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
    Base.metadata.create_all(engine)
    return engine
