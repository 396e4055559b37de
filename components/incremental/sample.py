"""The teacher's budgeted sample: which of a run's due videos the (expensive) teacher labels.

The student scores every video of the corpus; the teacher only labels a sample of the videos due this run
(new or changed), capped by a number of videos and/or a USD amount, chosen by a priority: new videos first
(when the caller says which are new), then manifest columns in the given order, largest first (rows
without a numeric value last), then a stable hash of ``video_id``. The same manifest in any row order gives
the same sample. ``choose_sample`` is the one selection used by the pipeline's plan and by
``silverset annotate --budget-videos/--budget-usd/--priority``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec

_LOGGER = logging.getLogger(__name__)

DEFAULT_PRIORITY = "new,priority,views"
NEW = "new"  # the priority term for "videos not in the state come first"
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class TeacherBudget(BaseModel):
    """A run's teacher budget; 0 in a field means no cap of that kind. Both set: the smaller sample wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    videos: int = Field(0, ge=0)
    usd: float = Field(0.0, ge=0, allow_inf_nan=False)
    priority: str = DEFAULT_PRIORITY

    @property
    def capped(self) -> bool:
        return self.videos > 0 or self.usd > 0


class SampleChoice(BaseModel):
    """What the sample choice did (written into plan.json as ``teacher_sample``)."""

    model_config = ConfigDict(frozen=True)

    budget_videos: int  # 0 = no cap in videos
    budget_usd: float  # 0 = no cap in USD
    usd_per_video: float | None  # the estimate the USD cap was divided by (None: no USD cap)
    cap: int | None  # videos the budget allows (None: no cap: every candidate)
    priority: list[str]  # the order applied (columns absent from the manifest are dropped)
    ignored_priority: list[str] = []  # priority columns the manifest does not have
    candidates: int  # videos the sample was chosen from
    excluded: int = 0  # videos left out before choosing (e.g. golden-set videos, labelled by the gate anyway)
    chosen: int
    first: list[str] = []  # the first chosen video_ids, in priority order (at most 10)


def parse_priority(text: str) -> list[str]:
    """``"new,priority,views"`` -> ``["new", "priority", "views"]``; bad or repeated terms are named."""
    terms = [t.strip() for t in str(text).split(",") if t.strip()]
    for term in terms:
        if not _COLUMN.match(term):
            raise SilversetInputError("teacher_priority", f"{term!r} is not a column name (letters, digits, _ . -)")
    if len(set(terms)) != len(terms):
        raise SilversetInputError("teacher_priority", f"{text!r} names a term twice")
    return terms


def gemini_usd_per_video(
    spec: AttributeSpec,
    *,
    model: str | None = None,
    price_table: str | None = None,
    output_tokens: int = 1000,
    batch: bool = False,
) -> float:
    """The Gemini teacher's estimated USD per video from the price table (the same pre-flight estimate
    GeminiHandler starts its budget with; the real spend comes from the tokens each answer reports)."""
    from silverset.components.teacher.gemini import preflight_input_tokens
    from silverset.components.teacher.prices import load_price_table

    table = load_price_table(price_table)
    price = table.price(model or spec.teacher.model, source=f"price table of {table.checked}")
    input_tokens = preflight_input_tokens(spec.teacher.frames_per_request)
    usd = (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1e6
    return usd * (table.batch_discount if batch else 1.0)


def _hash_key(video_id: str) -> str:
    return hashlib.sha256(video_id.encode("utf-8")).hexdigest()


def _numbers(column: pa.ChunkedArray) -> list[float | None]:
    """A priority column as floats; a value that is not a finite number (CSV text, null) is None: sorted last."""
    out: list[float | None] = []
    for value in column.to_pylist():
        try:
            number = float(value) if value is not None and not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        out.append(number if number is not None and math.isfinite(number) else None)
    return out


def priority_order(manifest: pa.Table, priority: list[str], *, new_ids: set[str] | None = None) -> list[int]:
    """Row indices of ``manifest`` in priority order (independent of the manifest's own row order)."""
    ids = manifest.column("video_id").to_pylist()
    keys: list[list] = [[] for _ in ids]
    for term in priority:
        if term == NEW:
            if new_ids is not None:
                for i, vid in enumerate(ids):
                    keys[i].append(0 if vid in new_ids else 1)
            continue
        if term not in manifest.column_names:
            continue
        for i, number in enumerate(_numbers(manifest.column(term))):
            keys[i].extend((1, 0.0) if number is None else (0, -number))
    for i, vid in enumerate(ids):
        keys[i].extend((_hash_key(vid), vid))
    return sorted(range(len(ids)), key=lambda i: keys[i])


def choose_sample(
    manifest: pa.Table,
    budget: TeacherBudget,
    *,
    new_ids: set[str] | None = None,
    exclude: set[str] = frozenset(),
    usd_per_video: float | None = None,
) -> tuple[pa.Table, SampleChoice]:
    """The manifest rows the teacher labels under ``budget``, in priority order, and a record of the choice.

    ``new_ids``: the videos that are new this run (the ``new`` priority term; None = unknown, term skipped).
    ``exclude``: videos never chosen (counted in ``excluded``). ``usd_per_video``: the teacher's estimated
    cost per video, needed when ``budget.usd`` is set. Without any cap every candidate is chosen.
    """
    priority = parse_priority(budget.priority)
    if budget.usd > 0 and not (usd_per_video and usd_per_video > 0):
        raise SilversetInputError(
            "teacher_budget_usd",
            "needs a teacher priced per video (the Gemini teacher, from "
            "its price table); cap the local and zero-shot teachers with teacher_budget_videos",
        )
    ids = manifest.column("video_id").to_pylist()
    keep = pa.array([v not in exclude for v in ids], pa.bool_())
    candidates = manifest.filter(keep) if exclude else manifest
    caps = []
    if budget.videos > 0:
        caps.append(budget.videos)
    if budget.usd > 0:
        caps.append(int(math.floor(budget.usd / usd_per_video + 1e-9)))
    cap = min(caps) if caps else None
    order = priority_order(candidates, priority, new_ids=new_ids)
    chosen_idx = order if cap is None else order[:cap]
    chosen = candidates.take(pa.array(chosen_idx, pa.int64())) if chosen_idx else candidates.slice(0, 0)
    applied = [t for t in priority if (t == NEW and new_ids is not None) or t in manifest.column_names]
    choice = SampleChoice(
        budget_videos=budget.videos,
        budget_usd=budget.usd,
        usd_per_video=usd_per_video if budget.usd > 0 else None,
        cap=cap,
        priority=applied,
        ignored_priority=[t for t in priority if t not in applied],
        candidates=candidates.num_rows,
        excluded=manifest.num_rows - candidates.num_rows,
        chosen=chosen.num_rows,
        first=chosen.column("video_id").to_pylist()[:10],
    )
    if cap is not None and cap < candidates.num_rows:
        left = [candidates.column("video_id")[i].as_py() for i in order[cap : cap + 5]]
        _LOGGER.warning(
            "teacher budget (%d videos, $%.4f): %d of %d due videos chosen by %s; %d left for a later run "
            "(not errors), first: %s",
            budget.videos,
            budget.usd,
            chosen.num_rows,
            candidates.num_rows,
            ", ".join(applied) or "stable hash",
            candidates.num_rows - chosen.num_rows,
            ", ".join(left),
        )
    return chosen, choice


def teacher_budget(
    *,
    videos: int = 0,
    usd: float = 0.0,
    priority: str = DEFAULT_PRIORITY,
    names: tuple[str, str, str] = ("teacher_budget_videos", "teacher_budget_usd", "teacher_priority"),
) -> TeacherBudget:
    """A TeacherBudget from loose values; a bad one is a SilversetInputError naming it (``names``: the caller's
    parameter names, e.g. the CLI's ``--budget-videos``)."""
    if not isinstance(videos, int) or isinstance(videos, bool) or videos < 0:
        raise SilversetInputError(names[0], f"must be a whole number >= 0 (0 = no cap), got {videos!r}")
    if not isinstance(usd, (int, float)) or isinstance(usd, bool) or not math.isfinite(usd) or usd < 0:
        raise SilversetInputError(names[1], f"must be a finite number >= 0 (0 = no cap), got {usd!r}")
    try:
        parse_priority(priority)
    except SilversetInputError as exc:
        raise SilversetInputError(names[2], exc.problem) from None
    return TeacherBudget(videos=videos, usd=float(usd), priority=priority)


def annotate_sample(
    *,
    attribute_spec: str,
    manifest_uri: str,
    out_dir: str,
    budget: TeacherBudget,
    teacher: str | None = None,
    model: str | None = None,
    price_table: str | None = None,
    batch: bool = False,
    shard=None,
    max_usd: float | None = None,
) -> tuple[str, SampleChoice | None, float | None]:
    """``silverset annotate``'s budget: (manifest to label, the choice or None, the Gemini hard stop).

    Without a cap: the manifest itself, None, ``max_usd``. With one: the chosen rows (every ``shard`` worker,
    a common.sharding.Shard, chooses the same ones) in ``out_dir/.sample/teacher-manifest-<shard tag>.parquet``;
    a USD cap needs the Gemini teacher and, unless ``max_usd`` is given, the shard's share of it
    (``teacher.prices.shard_share_usd``) is its hard stop.
    """
    if not budget.capped:
        return manifest_uri, None, max_usd
    from silverset.components.common import tables
    from silverset.components.common.manifest import read_manifest
    from silverset.components.common.spec import load_spec

    spec = load_spec(attribute_spec)
    usd_per_video = None
    if budget.usd > 0:
        if (teacher or spec.teacher.backend) != "gemini":
            raise SilversetInputError(
                "--budget-usd",
                "needs the gemini teacher (priced per token); cap the local "
                "and zero-shot teachers with --budget-videos",
            )
        usd_per_video = gemini_usd_per_video(spec, model=model, price_table=price_table, batch=batch)
    rows, _ = read_manifest(manifest_uri, stage="annotate")
    chosen, choice = choose_sample(rows, budget, usd_per_video=usd_per_video)
    from silverset.components.common.sharding import Shard
    from silverset.components.teacher import prices

    shard = shard or Shard()
    path = "/".join([str(out_dir).rstrip("/"), ".sample", f"teacher-manifest-{shard.tag}.parquet"])
    tables.write_table(chosen, path)
    hard_stop = max_usd if max_usd is not None or budget.usd <= 0 else prices.shard_share_usd(path, shard, budget.usd)
    return path, choice, hard_stop
