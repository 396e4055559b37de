"""The studio's operations (attributes, labels, feeds, scores, bandit, golden-set export/import) over a database."""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from silverset.components.common import schemas, tables
from silverset.components.common.spec import AttributeSpec, parse_spec
from silverset.components.common.tables import ErrorRow

from . import bandits, feeds, scores
from .catalog import Catalog
from .models import LABEL_VALUES, AdjudicationRow, AttributeRow, AuditRow, LabelRow, ScoreRow, make_engine

LABEL_INDEX = {"negative": 0, "positive": 1}
STAGE = "studio"
LABELER_PATTERN = re.compile(r"^[A-Za-z0-9._@+\-]{1,128}$")
MAX_VERSION = 2**31 - 1


class NotFound(LookupError):
    """An attribute or video the request names does not exist (HTTP 404)."""


class Conflict(RuntimeError):
    """The request was made against stale state (HTTP 409); ``current`` is what the server has now."""

    def __init__(self, message: str, current: dict | None = None):
        super().__init__(message)
        self.current = current or {}


class Invalid(ValueError):
    """A request that is well-formed JSON but cannot be applied (HTTP 422)."""


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


@dataclass
class _Model:
    fingerprint: tuple
    probabilities: np.ndarray | None
    quality: float | None
    diversity: float
    n_positive: int
    n_negative: int


def resolve(values: list[str], adjudicated: str | None) -> tuple[str | None, str]:
    """One video's golden label from its labelers' values: adjudication wins, else a strict majority of
    positive/negative votes (skips do not vote). Returns (value or None, how:
    adjudicated|unanimous|majority|tie|skipped).
    """
    if adjudicated is not None:
        return adjudicated, "adjudicated"
    votes = Counter(v for v in values if v in LABEL_INDEX)
    if not votes:
        return None, "skipped"
    if len(votes) == 1:
        return next(iter(votes)), "unanimous"
    (top, top_n), (_, second_n) = votes.most_common(2)
    if top_n == second_n:
        return None, "tie"
    return top, "majority"


class Studio:
    """One corpus (a Catalog) and one database; safe to share between request threads."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        db_url: str | None = None,
        engine: Engine | None = None,
        golden_dir: str | Path | None = None,
        seed: int = 0,
        workdir: str | Path | None = None,
        models_dir: str | Path | None = None,
    ):
        """``workdir``: where pipeline runs are looked for (the teacher gate's disagreements.json);
        ``models_dir``: where exported classifiers go (default <golden_dir>/../models)."""
        self.catalog = catalog
        self.engine = engine if engine is not None else make_engine(db_url or "sqlite://")
        self.golden_dir = Path(golden_dir) if golden_dir else None
        self.workdir = Path(workdir) if workdir else None
        default_models = self.golden_dir.parent / "models" if self.golden_dir else None
        self.models_dir = Path(models_dir) if models_dir else default_models
        self._models: dict[int, _Model] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._seed = seed

    # ---- attributes -------------------------------------------------------------------------
    def create_attribute(self, *, spec_yaml: str, policy: str = "ucb") -> dict:
        """Register an attribute from its spec YAML; idempotent for the same spec, 409 for a different one."""
        if policy not in bandits.POLICIES:
            raise Invalid(f"policy '{policy}' is not one of {', '.join(bandits.POLICIES)}")
        spec = parse_spec(spec_yaml, source="request")
        with Session(self.engine) as session:
            existing = session.scalar(
                select(AttributeRow).where(AttributeRow.name == spec.name, AttributeRow.version == spec.version)
            )
            if existing is not None:
                if existing.content_hash != spec.content_hash:
                    raise Conflict(
                        f"attribute {spec.key} already exists with a different spec; bump its version",
                        {"key": existing.key, "content_hash": existing.content_hash},
                    )
                return self._attribute_dict(existing)
            state = bandits.BanditState(policy=policy, arms=list(bandits.ARMS))
            row = AttributeRow(
                name=spec.name,
                version=spec.version,
                title=spec.title,
                spec_yaml=spec_yaml,
                content_hash=spec.content_hash,
                bandit_state=state.model_dump_json(),
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"attribute {spec.key} was created concurrently; retry") from None
            return {**self._attribute_dict(row), **self._carry_labels(session, row, spec)}

    def _carry_labels(self, session: Session, row: AttributeRow, spec: AttributeSpec) -> dict:
        """A new version whose classes equal those of the newest other version of the same attribute starts with
        that version's labels and adjudications (source ``carried:vN``, one audit row): a spec edit that keeps
        the classes keeps the golden set usable. Other classes start empty."""
        others = session.scalars(
            select(AttributeRow)
            .where(AttributeRow.name == spec.name, AttributeRow.id != row.id)
            .order_by(AttributeRow.version.desc())
        ).all()
        source = next((o for o in others if parse_spec(o.spec_yaml, source=o.key).classes == spec.classes), None)
        if source is None:
            return {"carried_from": None, "carried_labels": 0}
        now = datetime.now(timezone.utc)
        labels = session.scalars(select(LabelRow).where(LabelRow.attribute_id == source.id).order_by(LabelRow.id)).all()
        for label in labels:
            session.add(
                LabelRow(
                    attribute_id=row.id,
                    video_id=label.video_id,
                    labeler=label.labeler,
                    value=label.value,
                    source=f"carried:v{source.version}"[:32],
                    revision=1,
                    updated_at=label.updated_at,
                )
            )
        for adj in session.scalars(select(AdjudicationRow).where(AdjudicationRow.attribute_id == source.id)):
            session.add(
                AdjudicationRow(
                    attribute_id=row.id, video_id=adj.video_id, value=adj.value, adjudicator=adj.adjudicator, at=adj.at
                )
            )
        session.add(
            AuditRow(
                attribute_id=row.id,
                video_id="*",
                actor="studio",
                action="carry",
                old_value=None,
                new_value=f"{len(labels)} rows"[:16],
                source=f"carried:v{source.version}"[:32],
                at=now,
            )
        )
        session.commit()
        return {"carried_from": source.version, "carried_labels": len(labels)}

    def list_attributes(self) -> list[dict]:
        with Session(self.engine) as session:
            return [
                self._attribute_dict(r)
                for r in session.scalars(select(AttributeRow).order_by(AttributeRow.name, AttributeRow.version))
            ]

    def _attribute(self, session: Session, key: str) -> AttributeRow:
        name, sep, version = key.partition("@v")
        if not sep or not version.isascii() or not version.isdigit():
            raise NotFound(f"attribute '{key}' is not of the form name@vN")
        if len(version) > 10 or int(version) > MAX_VERSION:
            raise NotFound(f"attribute '{key}': version {version} is beyond the largest version ({MAX_VERSION})")
        if "\x00" in name:  # no name holds one, and PostgreSQL refuses it even in a WHERE clause
            raise NotFound(f"unknown attribute '{key}'")
        row = session.scalar(
            select(AttributeRow).where(AttributeRow.name == name, AttributeRow.version == int(version))
        )
        if row is None:
            raise NotFound(f"unknown attribute '{key}'")
        return row

    def spec(self, key: str) -> AttributeSpec:
        with Session(self.engine) as session:
            return parse_spec(self._attribute(session, key).spec_yaml, source=key)

    def _attribute_dict(self, row: AttributeRow) -> dict:
        state = bandits.BanditState.model_validate_json(row.bandit_state)
        return {
            "key": row.key,
            "name": row.name,
            "version": row.version,
            "title": row.title,
            "policy": state.policy,
            "content_hash": row.content_hash,
        }

    def set_policy(self, key: str, policy: str) -> dict:
        if policy not in bandits.POLICIES:
            raise Invalid(f"policy '{policy}' is not one of {', '.join(bandits.POLICIES)}")
        with self._lock, Session(self.engine) as session:
            row = self._attribute(session, key)
            state = bandits.current(bandits.BanditState.model_validate_json(row.bandit_state))
            state.policy = policy
            row.bandit_state = state.model_dump_json()
            row.bandit_revision += 1
            session.commit()
            return self._attribute_dict(row)

    # ---- labels -----------------------------------------------------------------------------
    def _require_video(self, video_id: str) -> int:
        row = self.catalog.row_of.get(video_id)
        if row is None:
            raise NotFound(f"unknown video '{video_id}'")
        return row

    def set_label(
        self,
        key: str,
        *,
        video_id: str,
        value: str,
        labeler: str,
        source: str = "manual",
        expected_revision: int | None = None,
    ) -> dict:
        """Store ``labeler``'s label for a video (positive | negative | skip) and audit the change.

        ``expected_revision``: the revision the client last saw (0 = "no label yet"); a mismatch raises
        Conflict carrying the current label, so a concurrent edit is never silently overwritten.
        None applies the label unconditionally (the audit still keeps the previous value).
        """
        if value not in LABEL_VALUES:
            raise Invalid(f"label '{value}' is not one of {', '.join(LABEL_VALUES)}")
        if not LABELER_PATTERN.match(labeler):
            raise Invalid(f"labeler {labeler[:140]!r} is not a user name (1-128 letters, digits and ._@+-)")
        self._require_video(video_id)
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            current = session.scalar(
                select(LabelRow).where(
                    LabelRow.attribute_id == attribute.id, LabelRow.video_id == video_id, LabelRow.labeler == labeler
                )
            )
            have = current.revision if current is not None else 0
            if expected_revision is not None and expected_revision != have:
                raise Conflict(
                    f"label of '{video_id}' by '{labeler}' is at revision {have}, not {expected_revision}; "
                    "reload and retry",
                    self._label_dict(current) if current else {"video_id": video_id, "revision": 0},
                )
            now = datetime.now(timezone.utc)
            old_value = current.value if current is not None else None
            if current is None:
                current = LabelRow(
                    attribute_id=attribute.id,
                    video_id=video_id,
                    labeler=labeler,
                    value=value,
                    source=source,
                    revision=1,
                    updated_at=now,
                )
                session.add(current)
            else:
                # Compare-and-set on the revision: a writer in another process that got here first wins,
                # this one gets a 409 instead of overwriting it.
                result = session.execute(
                    update(LabelRow)
                    .where(LabelRow.id == current.id, LabelRow.revision == have)
                    .values(value=value, source=source, revision=have + 1, updated_at=now)
                )
                if result.rowcount != 1:
                    session.rollback()
                    raise Conflict(f"label of '{video_id}' by '{labeler}' changed concurrently; reload and retry")
            session.add(
                AuditRow(
                    attribute_id=attribute.id,
                    video_id=video_id,
                    actor=labeler,
                    action="label",
                    old_value=old_value,
                    new_value=value,
                    source=source,
                    at=now,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(
                    f"label of '{video_id}' by '{labeler}' was created concurrently; reload and retry"
                ) from None
            current = session.scalar(
                select(LabelRow).where(
                    LabelRow.attribute_id == attribute.id, LabelRow.video_id == video_id, LabelRow.labeler == labeler
                )
            )
            return self._label_dict(current)

    @staticmethod
    def _label_dict(row: LabelRow) -> dict:
        return {
            "video_id": row.video_id,
            "labeler": row.labeler,
            "label": row.value,
            "source": row.source,
            "revision": row.revision,
            "updated_at": _aware(row.updated_at).isoformat(),
        }

    def labels(self, key: str) -> list[dict]:
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            rows = session.scalars(select(LabelRow).where(LabelRow.attribute_id == attribute.id).order_by(LabelRow.id))
            return [self._label_dict(r) for r in rows]

    def audit(self, key: str) -> list[dict]:
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            rows = session.scalars(select(AuditRow).where(AuditRow.attribute_id == attribute.id).order_by(AuditRow.id))
            return [
                {
                    "video_id": r.video_id,
                    "actor": r.actor,
                    "action": r.action,
                    "old": r.old_value,
                    "new": r.new_value,
                    "source": r.source,
                    "at": _aware(r.at).isoformat(),
                }
                for r in rows
            ]

    def adjudicate(self, key: str, *, video_id: str, value: str, adjudicator: str) -> dict:
        """Settle a video's label (positive | negative); overrides the labelers' majority."""
        if value not in LABEL_INDEX:
            raise Invalid(f"an adjudication is 'positive' or 'negative', not '{value}'")
        if not LABELER_PATTERN.match(adjudicator):
            raise Invalid(f"adjudicator {adjudicator[:140]!r} is not a user name (1-128 letters, digits and ._@+-)")
        self._require_video(video_id)
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            row = session.scalar(
                select(AdjudicationRow).where(
                    AdjudicationRow.attribute_id == attribute.id, AdjudicationRow.video_id == video_id
                )
            )
            old = row.value if row else None
            now = datetime.now(timezone.utc)
            if row is None:
                session.add(
                    AdjudicationRow(
                        attribute_id=attribute.id, video_id=video_id, value=value, adjudicator=adjudicator, at=now
                    )
                )
            else:
                # Compare-and-set on the revision, as for labels: a concurrent adjudication is refused, never lost.
                unchanged = update(AdjudicationRow).where(
                    AdjudicationRow.id == row.id, AdjudicationRow.revision == row.revision
                )
                result = session.execute(
                    unchanged.values(value=value, adjudicator=adjudicator, at=now, revision=row.revision + 1)
                )
                if result.rowcount != 1:
                    session.rollback()
                    raise Conflict(f"the adjudication of '{video_id}' changed concurrently; reload and retry")
            session.add(
                AuditRow(
                    attribute_id=attribute.id,
                    video_id=video_id,
                    actor=adjudicator,
                    action="adjudicate",
                    old_value=old,
                    new_value=value,
                    source="adjudication",
                    at=now,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                raise Conflict(f"'{video_id}' was adjudicated concurrently; reload and retry") from None
        return {"video_id": video_id, "label": value, "adjudicator": adjudicator}

    def golden_labels(self, key: str) -> tuple[list[dict], list[dict]]:
        """(resolved golden rows, unresolved disagreements). Each video's labels across labelers resolve by
        adjudication, else majority; ties are disagreements awaiting adjudication; skip-only videos are left out."""
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            by_video: dict[str, list[LabelRow]] = {}
            for r in session.scalars(
                select(LabelRow).where(LabelRow.attribute_id == attribute.id).order_by(LabelRow.id)
            ):
                by_video.setdefault(r.video_id, []).append(r)
            adjudicated = {
                r.video_id: r
                for r in session.scalars(select(AdjudicationRow).where(AdjudicationRow.attribute_id == attribute.id))
            }
            resolved, disputed = [], []
            for video_id in sorted(set(by_video) | set(adjudicated)):
                rows = by_video.get(video_id, [])
                adj = adjudicated.get(video_id)
                value, how = resolve([r.value for r in rows], adj.value if adj else None)
                votes = {r.labeler: r.value for r in rows}
                if how == "skipped":
                    continue
                if value is None:
                    disputed.append({"video_id": video_id, "votes": votes})
                    continue
                if adj is not None:
                    labeler, at = adj.adjudicator, adj.at
                else:
                    agreeing = [r for r in rows if r.value == value]
                    labeler = ",".join(sorted(r.labeler for r in agreeing))
                    at = max(r.updated_at for r in agreeing)
                resolved.append(
                    {
                        "video_id": video_id,
                        "label": value,
                        "how": how,
                        "labeler": labeler,
                        "labeled_at": _aware(at),
                        "votes": votes,
                        "disagreement": len({v for v in votes.values() if v in LABEL_INDEX}) > 1,
                    }
                )
            return resolved, disputed

    # ---- model, scores, feeds -----------------------------------------------------------------
    def _training_set(self, key: str) -> tuple[np.ndarray, np.ndarray, tuple]:
        resolved, _ = self.golden_labels(key)
        rows = np.array(
            [self.catalog.row_of[r["video_id"]] for r in resolved if r["video_id"] in self.catalog.row_of],
            dtype=np.int64,
        )
        labels = np.array(
            [LABEL_INDEX[r["label"]] for r in resolved if r["video_id"] in self.catalog.row_of], dtype=np.int64
        )
        fingerprint = (tuple(rows.tolist()), tuple(labels.tolist()))
        return rows, labels, fingerprint

    def model(self, key: str) -> _Model:
        """Retrain (logistic regression, quality CV, diversity) when the resolved labels changed; cached otherwise."""
        rows, labels, fingerprint = self._training_set(key)
        with Session(self.engine) as session:
            attribute_id = self._attribute(session, key).id
        with self._lock:
            cached = self._models.get(attribute_id)
            if cached is not None and cached.fingerprint == fingerprint:
                return cached
            n_pos, n_neg = int((labels == 1).sum()), int((labels == 0).sum())
            diversity = scores.data_diversity(self.catalog.clusters[rows], labels) if len(rows) else 0.0
            probabilities, quality = None, None
            if feeds.ready(labels):
                probabilities = feeds.train(self.catalog.embeddings, rows, labels, seed=self._seed).probabilities
                quality = scores.model_quality(self.catalog.embeddings[rows], labels, seed=self._seed)
            model = _Model(fingerprint, probabilities, quality, diversity, n_pos, n_neg)
            self._models[attribute_id] = model
            if cached is None or (cached.n_positive, cached.n_negative) != (n_pos, n_neg) or cached.quality != quality:
                with Session(self.engine) as session:
                    session.add(
                        ScoreRow(
                            attribute_id=attribute_id,
                            n_positive=n_pos,
                            n_negative=n_neg,
                            quality=quality,
                            diversity=diversity,
                        )
                    )
                    session.commit()
            return model

    def state(self, key: str) -> dict:
        """Counts, live scores and their history, the bandit's memory and arms, whether feeds are open, and the
        stop rule (``stop``: both scores >= 0.8 or 1,000 labels, see ``scores.stop_rule``)."""
        model = self.model(key)
        _, disputed = self.golden_labels(key)
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            score_rows = session.scalars(
                select(ScoreRow).where(ScoreRow.attribute_id == attribute.id).order_by(ScoreRow.id)
            )
            history = [
                {"n": r.n_positive + r.n_negative, "quality": r.quality, "diversity": r.diversity} for r in score_rows
            ]
            bandit = bandits.current(bandits.BanditState.model_validate_json(attribute.bandit_state))
            info = self._attribute_dict(attribute)
        return {
            **info,
            "positives": model.n_positive,
            "negatives": model.n_negative,
            "feeds_ready": model.probabilities is not None,
            "needed_per_class": feeds.MIN_PER_CLASS,
            "quality": model.quality,
            "diversity": model.diversity,
            "history": history,
            "disagreements": len(disputed),
            "bandit": bandit.model_dump(),
            "arms": self._available_arms(),
            "stop": self._stop(model),
            "corpus_size": len(self.catalog),
        }

    @staticmethod
    def _stop(model: _Model) -> dict:
        return scores.stop_rule(
            quality=model.quality, diversity=model.diversity, labels=model.n_positive + model.n_negative
        )

    def _available_arms(self) -> list[str]:
        """The bandit's arms this studio can serve: ``zero_shot`` needs a text tower (not --no-text-search)."""
        return [arm for arm in bandits.ARMS if arm != "zero_shot" or self.catalog.text_encoder is not None]

    def zero_shot_query(self, key: str) -> str:
        """The text the ``zero_shot`` arm embeds with the studio's text tower (MiniLM, or CLIP with --clip-model)."""
        spec = self.spec(key)
        return feeds.zero_shot_query(title=spec.title, definition=spec.definition)

    def _arm_batch(self, key: str, arm: str, model: _Model, *, limit: int, exclude: np.ndarray) -> list[dict]:
        """Cards of one arm's next batch; each carries ``source`` (the feed, ``random`` or ``zero_shot``) and
        P(positive), zero-shot cards also their similarity to the attribute's text."""
        if model.probabilities is None:
            raise Conflict(f"feeds open after {feeds.MIN_PER_CLASS} positives and {feeds.MIN_PER_CLASS} negatives")
        rng = np.random.default_rng([self._seed, len(model.fingerprint[0])])
        if arm == "va_loop":
            rows, sources = feeds.va_loop_rows(model.probabilities, exclude, limit=limit, rng=rng)
            picked = [(int(r), source, {}) for r, source in zip(rows, sources)]
        elif arm == "random":
            picked = [(int(r), "random", {}) for r in feeds.random_rows(exclude, limit=limit, rng=rng)]
        elif arm == "zero_shot":
            hits = self.catalog.search(self.zero_shot_query(key), limit=limit, exclude=exclude)
            picked = [(r, "zero_shot", {"similarity": s}) for r, s in hits]
        else:
            raise Invalid(f"arm '{arm}' is not one of {', '.join(bandits.ARMS)}")
        return [
            {**self.catalog.card(r), "source": source, "probability": float(model.probabilities[r]), **extra}
            for r, source, extra in picked
        ]

    def _labelled_mask(self, key: str, labeler: str | None = None) -> np.ndarray:
        """bool [n]: videos already labelled (by anyone, including skips), so feeds do not show them again."""
        mask = np.zeros(len(self.catalog), dtype=bool)
        for label in self.labels(key):
            row = self.catalog.row_of.get(label["video_id"])
            if row is not None:
                mask[row] = True
        return mask

    def feeds(self, key: str, *, limit: int = bandits.BATCH_SIZE) -> dict:
        """The four feeds (cards with P(positive)), or ``ready: False`` until 10 positives and 10 negatives."""
        model = self.model(key)
        if model.probabilities is None:
            return {"ready": False, "feeds": {}}
        exclude = self._labelled_mask(key)
        rng = np.random.default_rng([self._seed, len(model.fingerprint[0])])
        out = {}
        for feed in feeds.FEEDS:
            rows = feeds.feed_rows(feed, model.probabilities, exclude, limit=limit, rng=rng)
            out[feed] = [{**self.catalog.card(int(r)), "probability": float(model.probabilities[r])} for r in rows]
        return {"ready": True, "feeds": out}

    def next_batch(self, key: str, *, limit: int = bandits.BATCH_SIZE) -> dict:
        """Let the attribute's bandit pick a source (arm: va_loop, random, zero_shot) and serve its next batch of
        ``limit`` (d = 25) unlabelled videos; ``va_loop`` interleaves the four feeds.

        The previous pull's reward (change in model quality since it was served) is settled first. The answer
        carries ``arm`` (also as ``feed``, for older clients), the cards (each with its ``source``) and ``stop``.
        """
        model = self.model(key)
        if model.probabilities is None:
            raise Conflict(
                f"feeds open after {feeds.MIN_PER_CLASS} positives and {feeds.MIN_PER_CLASS} negatives; "
                f"have {model.n_positive} and {model.n_negative}"
            )
        with self._lock, Session(self.engine) as session:
            attribute = self._attribute(session, key)
            state = bandits.current(bandits.BanditState.model_validate_json(attribute.bandit_state))
            state = bandits.settle(state, quality_after=model.quality)
            arm = bandits.choose(state, self._rng, available=self._available_arms())
            state = bandits.record_pull(state, arm, quality_before=model.quality)
            revision = attribute.bandit_revision
            result = session.execute(
                update(AttributeRow)
                .where(AttributeRow.id == attribute.id, AttributeRow.bandit_revision == revision)
                .values(bandit_state=state.model_dump_json(), bandit_revision=revision + 1)
            )
            if result.rowcount != 1:
                session.rollback()
                raise Conflict("the bandit was updated concurrently; retry")
            session.commit()
        batch = self._arm_batch(key, arm, model, limit=limit, exclude=self._labelled_mask(key))
        return {
            "arm": arm,
            "feed": arm,
            "policy": state.policy,
            "videos": batch,
            "bandit": state.model_dump(),
            "stop": self._stop(model),
        }

    def search(self, key: str, *, query: str, limit: int = 24) -> list[dict]:
        """Text-to-video search over not-yet-labelled videos; cards carry the similarity and any model probability."""
        if not query.strip():
            raise Invalid("search query is empty")
        model = self.model(key)
        hits = self.catalog.search(query, limit=limit, exclude=self._labelled_mask(key))
        return [
            {
                **self.catalog.card(r),
                "similarity": s,
                "probability": None if model.probabilities is None else float(model.probabilities[r]),
            }
            for r, s in hits
        ]

    # ---- golden set ---------------------------------------------------------------------------
    def golden_table(self, key: str) -> tuple[pa.Table, list[ErrorRow]]:
        """The golden set as a schemas.GOLDEN v2 table (one row per video and rater, each with the rater's own vote
        and the video's resolved label), plus one error row per unresolved disagreement and per video settled by
        an adjudicator with no rater's vote (a v2 row is a rater's vote; the contract gives the adjudicator none)."""
        from silverset.components.common.golden import golden_rows

        spec = self.spec(key)
        resolved, disputed = self.golden_labels(key)
        votes = {
            r["video_id"]: {name: LABEL_INDEX[v] for name, v in r["votes"].items() if v in LABEL_INDEX}
            for r in resolved
        }
        voteless = [r for r in resolved if not votes[r["video_id"]]]
        kept = [r for r in resolved if votes[r["video_id"]]]
        table = golden_rows(
            attribute=spec.name,
            version=spec.version,
            classes=spec.classes,
            votes={r["video_id"]: votes[r["video_id"]] for r in kept},
            resolved={r["video_id"]: LABEL_INDEX[r["label"]] for r in kept},
            how={
                r["video_id"]: "single" if r["how"] == "unanimous" and len(votes[r["video_id"]]) == 1 else r["how"]
                for r in kept
            },
            labeled_at={r["video_id"]: r["labeled_at"] for r in kept},
        )
        errors = [
            ErrorRow(
                key=d["video_id"],
                stage=STAGE,
                error_type="unresolved_disagreement",
                message=f"labelers disagree with no majority ({d['votes']}); adjudicate to include it",
            )
            for d in disputed
        ]
        errors += [
            ErrorRow(
                key=r["video_id"],
                stage=STAGE,
                error_type="no_rater_vote",
                message=f"adjudicated {r['label']} by {r['labeler']} but no rater voted on it; label it to include it",
            )
            for r in voteless
        ]
        return table, errors

    def record_set_action(self, key: str, *, actor: str, action: str, rows: int, via: str) -> None:
        """One audit row for a whole golden-set action (export, import) by ``actor`` through ``via`` (api, cli)."""
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            session.add(
                AuditRow(
                    attribute_id=attribute.id,
                    video_id="*",
                    actor=actor,
                    action=action,
                    old_value=None,
                    new_value=f"{rows} rows"[:16],
                    source=via[:32],
                    at=datetime.now(timezone.utc),
                )
            )
            session.commit()

    def export_golden(
        self, key: str, *, out_dir: str | Path | None = None, actor: str | None = None, via: str = "api"
    ) -> dict:
        """Write ``golden.parquet`` (GOLDEN v2) and ``errors.parquet`` to ``out_dir``
        (default <golden_dir>/<name>/v<version>).

        Labelled videos (not skip-only) == videos in golden.parquet + error rows. With ``actor``, the export is audited.
        ``rows`` counts videos (the file has one row per video and rater: ``rater_rows``).
        """
        spec = self.spec(key)
        if out_dir is None:
            if self.golden_dir is None:
                raise Invalid("no export folder: pass out_dir or start the studio with a workdir")
            out_dir = self.golden_dir / spec.name / f"v{spec.version}"
        table, errors = self.golden_table(key)
        out_dir = Path(out_dir)
        tables.write_table(table, out_dir / "golden.parquet", schemas.GOLDEN, name="golden set")
        tables.write_errors(out_dir, errors)
        by_video = dict(zip(table.column("video_id").to_pylist(), table.column("label").to_pylist()))
        positives = sum(by_video.values())
        if actor is not None:
            self.record_set_action(key, actor=actor, action="export", rows=len(by_video), via=via)
        return {
            "path": str(out_dir / "golden.parquet"),
            "rows": len(by_video),
            "rater_rows": table.num_rows,
            "raters": sorted(set(table.column("labeler").to_pylist())),
            "positives": positives,
            "negatives": len(by_video) - positives,
            "errors": len(errors),
        }

    def export_folder(self, relative: str) -> Path:
        """The folder an API export may write: ``relative`` resolved inside the golden folder, never outside it.

        Absolute paths, ``..`` parts and symlinks that lead out are refused (Invalid), so a request cannot write
        over the pipeline's files or anything else on the machine.
        """
        return self._folder_inside(self.golden_dir, relative, what="golden")

    @staticmethod
    def _folder_inside(root: Path | None, relative: str, *, what: str) -> Path:
        if root is None:
            raise Invalid(f"this studio has no {what} folder to export into")
        parts = Path(relative).parts
        if (
            not relative.strip()
            or Path(relative).is_absolute()
            or "\\" in relative
            or ".." in parts
            or "\x00" in relative
        ):
            raise Invalid(
                f"out_dir '{relative[:200]}' must be a relative folder inside the studio's {what} folder, without '..'"
            )
        root = root.resolve()
        target = (root / relative).resolve()
        if not target.is_relative_to(root):
            raise Invalid(f"out_dir '{relative[:200]}' leads outside the studio's {what} folder")
        return target

    def import_golden(self, key: str, *, path: str | Path, actor: str, via: str = "cli") -> dict:
        """Load a golden-set Parquet file (GOLDEN v2, or a v1 file without rater_label/how/classes); see
        ``import_golden_rows``."""
        from silverset.components.common.golden import read_golden_table

        table = read_golden_table(str(path))  # a v1 file: each comma-listed labeler votes the row's label
        return self.import_golden_rows(key, rows=table.to_pylist(), actor=actor, via=via)

    def _classes_of(self, name: str, version: int, row_classes: str | None) -> tuple[str, ...] | None:
        """The classes a golden row was labelled with: its own ``classes`` field, else the studio's spec of that
        version (a v1 file), else None (unknown)."""
        if row_classes:
            return tuple(c.strip() for c in row_classes.split(","))
        try:
            return tuple(self.spec(f"{name}@v{version}").classes)
        except NotFound:
            return None

    def import_golden_rows(self, key: str, *, rows: list[dict], actor: str, via: str = "api") -> dict:
        """Apply golden-set rows (schemas.GOLDEN fields) for this attribute as labels by their recorded raters.

        A v2 row (``rater_label`` set) is its rater's own vote; a v1 row agreed by several labelers (``"alice,bob"``)
        becomes one vote each for the row's label. A video whose file says ``how == "adjudicated"`` is adjudicated to
        its resolved label by ``actor`` (who imports it), so the import resolves it as the file did. Rows of another
        version of the attribute are applied when their classes equal this version's (the golden set carries across
        versions), refused otherwise. Rows for another attribute, unknown videos, labels other than 0/1 or labeler
        names that are not user names are not applied and are counted in ``skipped`` with the reason; rows equal to
        the current label change nothing (import is idempotent).
        """
        spec = self.spec(key)
        applied, unchanged, adjudicated, skipped = 0, 0, 0, []
        current = {(r["video_id"], r["labeler"]): r["label"] for r in self.labels(key)}
        current_adjudications = self._adjudications(key)
        classes_ok: dict[tuple[int, str | None], str | None] = {}  # (version, classes) -> refusal reason or None
        carried: set[int] = set()
        for row in rows:
            if row["attribute"] != spec.name:
                where = f"{row['attribute']}@v{row['attribute_version']}"
                skipped.append({"video_id": row["video_id"], "reason": f"row is for {where}, not {spec.name}"})
                continue
            row_classes = row.get("classes")
            check = (row["attribute_version"], row_classes)
            if check not in classes_ok:
                theirs = self._classes_of(spec.name, row["attribute_version"], row_classes)
                if theirs is None:
                    classes_ok[check] = (
                        f"row is for {spec.name}@v{row['attribute_version']} and names no classes "
                        "(a v1 file) of a version this studio does not know; cannot tell it means "
                        f"the same as {spec.key}"
                    )
                elif theirs != tuple(spec.classes):
                    classes_ok[check] = (
                        f"row is for {spec.name}@v{row['attribute_version']} with classes "
                        f"({','.join(theirs)}), {spec.key} has ({','.join(spec.classes)})"
                    )
                else:
                    classes_ok[check] = None
            if classes_ok[check] is not None:
                skipped.append({"video_id": row["video_id"], "reason": classes_ok[check]})
                continue
            if row["video_id"] not in self.catalog.row_of:
                skipped.append({"video_id": row["video_id"], "reason": "video not in this corpus"})
                continue
            v2 = row.get("rater_label") is not None
            vote = row["rater_label"] if v2 else row["label"]
            if vote not in (0, 1) or row["label"] not in (0, 1):
                bad_label = vote if vote not in (0, 1) else row["label"]
                skipped.append({"video_id": row["video_id"], "reason": f"label {bad_label} is not 0 or 1"})
                continue
            listed = row["labeler"] or actor
            labelers = [listed] if v2 else [name.strip() for name in listed.split(",")]
            bad = [name for name in labelers if not LABELER_PATTERN.match(name)]
            if bad:
                skipped.append({"video_id": row["video_id"], "reason": f"labeler {bad[0][:140]!r} is not a user name"})
                continue
            if row["attribute_version"] != spec.version:
                carried.add(row["attribute_version"])
            value = "positive" if vote == 1 else "negative"
            for labeler in labelers:
                if current.get((row["video_id"], labeler)) == value:
                    unchanged += 1
                    continue
                self.set_label(
                    key, video_id=row["video_id"], value=value, labeler=labeler, source=f"import:{actor}"[:32]
                )
                current[(row["video_id"], labeler)] = value
                applied += 1
            resolved = "positive" if row["label"] == 1 else "negative"
            if row.get("how") == "adjudicated" and current_adjudications.get(row["video_id"]) != resolved:
                self.adjudicate(key, video_id=row["video_id"], value=resolved, adjudicator=actor)
                current_adjudications[row["video_id"]] = resolved
                adjudicated += 1
        self.record_set_action(key, actor=actor, action="import", rows=applied, via=via)
        return {
            "rows": len(rows),
            "applied": applied,
            "unchanged": unchanged,
            "adjudicated": adjudicated,
            "carried_from": sorted(carried),
            "skipped": skipped,
        }

    def _adjudications(self, key: str) -> dict[str, str]:
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            rows = session.scalars(select(AdjudicationRow).where(AdjudicationRow.attribute_id == attribute.id))
            return {r.video_id: r.value for r in rows}

    # ---- review, teacher disagreements, classifier export -----------------------------------------
    def review(self, key: str) -> list[dict]:
        """Every labelled (or adjudicated) video of the attribute, one entry each: its card, each labeler's label
        (value, source, revision, when), the adjudication, the resolved label and how, and the latest change."""
        with Session(self.engine) as session:
            attribute = self._attribute(session, key)
            by_video: dict[str, list[LabelRow]] = {}
            mine = select(LabelRow).where(LabelRow.attribute_id == attribute.id).order_by(LabelRow.id)
            for r in session.scalars(mine):
                by_video.setdefault(r.video_id, []).append(r)
            adjudications = session.scalars(select(AdjudicationRow).where(AdjudicationRow.attribute_id == attribute.id))
            adjudicated = {r.video_id: r for r in adjudications}
        out = []
        for video_id in sorted(set(by_video) | set(adjudicated)):
            rows, adj = by_video.get(video_id, []), adjudicated.get(video_id)
            value, how = resolve([r.value for r in rows], adj.value if adj else None)
            times = [_aware(r.updated_at) for r in rows] + ([_aware(adj.at)] if adj else [])
            row = self.catalog.row_of.get(video_id)
            card = (
                self.catalog.card(row)
                if row is not None
                else {"video_id": video_id, "title": video_id, "description": "", "uri": "", "frames": []}
            )
            adjudication = (
                None
                if adj is None
                else {"label": adj.value, "adjudicator": adj.adjudicator, "at": _aware(adj.at).isoformat()}
            )
            out.append(
                {
                    **card,
                    "labels": [self._label_dict(r) for r in rows],
                    "adjudication": adjudication,
                    "resolved": value,
                    "how": how,
                    "updated_at": max(times).isoformat(),
                }
            )
        return out

    def teacher_disagreements(self, key: str) -> dict:
        """The newest teacher gate's ``disagreements.json`` for this attribute found under the studio's workdir: every
        golden item where the teacher and the resolved label differ, each with the studio's thumbnails, most
        confident teacher first (confidence = |p - 0.5|, in [0, 0.5]). ``found`` is False when no run has written
        one."""
        from .catalog import find_teacher_disagreements

        spec = self.spec(key)
        if self.workdir is None:
            return {
                "found": False,
                "items": [],
                "message": "this studio was started without a workdir to look for pipeline runs in",
            }
        found = find_teacher_disagreements(self.workdir, attribute=spec.name, version=spec.version)
        if found is None:
            return {
                "found": False,
                "items": [],
                "message": f"no teacher gate under the workdir has written disagreements.json for {spec.name}",
            }
        path, report = found
        items = []
        for item in report.items:
            row = self.catalog.row_of.get(item.video_id)
            frames = self.catalog.card(row)["frames"] if row is not None else []
            items.append(
                {**item.model_dump(), "frames": frames, "in_corpus": row is not None, "confidence": item.confidence}
            )
        items.sort(key=lambda i: (-i["confidence"], i["video_id"]))
        return {
            "found": True,
            "path": str(path),
            "attribute": report.attribute,
            "attribute_version": report.attribute_version,
            "same_version": report.attribute_version == spec.version,
            "items": items,
        }

    def export_folder_for_models(self, relative: str) -> Path:
        """The folder an API model export may write: ``relative`` inside the studio's models folder, never outside."""
        return self._folder_inside(self.models_dir, relative, what="models")

    def export_model(
        self,
        key: str,
        *,
        out_dir: str | Path | None = None,
        actor: str | None = None,
        via: str = "api",
        measure_latency: bool = True,
        overwrite: bool = False,
    ) -> dict:
        """Write the studio's current classifier (trained on the resolved golden labels) as a student candidate
        MODELDIR in the distill stage's format (default <models_dir>/<name>/v<version>), so ``silverset score`` and
        the student gate read it like a distilled student. Needs the feeds' bar (10 positives, 10 negatives)."""
        from .student_export import write_candidate

        spec = self.spec(key)
        rows, labels, _ = self._training_set(key)
        if not feeds.ready(labels):
            raise Conflict(
                f"the classifier trains after {feeds.MIN_PER_CLASS} positives and {feeds.MIN_PER_CLASS} "
                f"negatives; have {int((labels == 1).sum())} and {int((labels == 0).sum())}"
            )
        if out_dir is None:
            if self.models_dir is None:
                raise Invalid("no model folder: pass out_dir or start the studio with a workdir")
            out_dir = self.models_dir / spec.name / f"v{spec.version}"
        model = self.model(key)
        _, disputed = self.golden_labels(key)
        errors = [
            ErrorRow(
                key=d["video_id"],
                stage=STAGE,
                error_type="unresolved_disagreement",
                message=f"labelers disagree with no majority ({d['votes']}); not trained on",
            )
            for d in disputed
        ]
        info = {
            "attribute_key": spec.key,
            "quality": model.quality,
            "diversity": model.diversity,
            "corpus_size": len(self.catalog),
            "exported_by": actor,
            "exported_at": datetime.now(timezone.utc).isoformat(),
        }
        summary = write_candidate(
            spec=spec,
            embedder_id=self.catalog.embedder_id,
            video_ids=[self.catalog.video_ids[r] for r in rows],
            vectors=self.catalog.embeddings[rows],
            labels=labels,
            out=out_dir,
            seed=self._seed,
            studio_info=info,
            errors=errors,
            measure_latency=measure_latency,
            overwrite=overwrite,
        )
        if actor is not None:
            self.record_set_action(key, actor=actor, action="export-model", rows=int(len(labels)), via=via)
        return summary
