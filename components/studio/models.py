"""SQLAlchemy tables of the studio database: attributes, labels (one per labeler), audit, adjudications, score history.

The same tables work on SQLite (one studio process) and PostgreSQL (a shared studio, several processes), tested on
both: every timestamp is stored and read back as an aware UTC datetime whatever the server's TimeZone; video ids
have no length limit on either backend (PostgreSQL enforces VARCHAR lengths, SQLite does not); concurrent label
edits are settled by a compare-and-set on ``revision`` plus the unique constraints, which needs nothing stronger
than PostgreSQL's default READ COMMITTED isolation.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from silverset.components.common.errors import SilversetInputError

LABEL_VALUES = ("positive", "negative", "skip")
SCHEMA_LOCK_KEY = 0x5111E75E7  # PostgreSQL advisory lock held while creating the tables


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator):
    """An aware UTC datetime on every backend: PostgreSQL ``timestamptz`` (read back in the session's TimeZone,
    converted here), SQLite text without a zone (written as UTC, read back as UTC). Naive values are taken as UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001 - SQLAlchemy
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}


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
    video_id: Mapped[str] = mapped_column(String)
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
    video_id: Mapped[str] = mapped_column(String)
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
    video_id: Mapped[str] = mapped_column(String)
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


def _refuse_nul(mapper, _connection, target) -> None:  # noqa: ANN001 - SQLAlchemy mapper event
    """PostgreSQL text cannot hold U+0000 (SQLite can): refuse it on every backend, as bad input, before the write."""
    for attribute in mapper.column_attrs:
        value = getattr(target, attribute.key, None)
        if isinstance(value, str) and "\x00" in value:
            raise SilversetInputError(
                f"{mapper.local_table.name}.{attribute.key}",
                "contains a NUL character (U+0000), which a database text column cannot hold",
            )


for _event in ("before_insert", "before_update"):
    event.listen(Base, _event, _refuse_nul, propagate=True)


def shown_url(url: str) -> str:
    """The database URL as it may be printed or logged: its password as ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a SQLAlchemy URL)"


def make_engine(url: str) -> Engine:
    """Engine for a SQLite file (default) or any SQLAlchemy URL (e.g. postgresql+psycopg://...); creates tables.

    A URL that does not parse, names a driver that is not installed, or names a server that cannot be reached
    raises SilversetInputError naming the URL (its password hidden).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SilversetInputError(
            "studio database URL",
            "not a SQLAlchemy URL (sqlite:///path/studio.db or postgresql+psycopg://user:password@host:port/database)",
        ) from None
    shown = f"studio database '{shown_url(url)}'"
    kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True  # a shared server restarts under a long-running studio
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as exc:
        raise SilversetInputError(
            shown,
            f"no driver for it is installed ({exc}); PostgreSQL needs postgresql+psycopg:// with the psycopg package",
        ) from None
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001 - DB-API objects
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    try:
        with engine.begin() as connection:
            if parsed.get_backend_name() == "postgresql":
                # Studio replicas starting together on a fresh database would race to CREATE the same tables.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
            Base.metadata.create_all(connection)
    except OperationalError as exc:
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        raise SilversetInputError(shown, f"cannot open it: {reason}") from None
    return engine
