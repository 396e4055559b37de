"""Plan an incremental run: which videos are new or changed (by video_id and content etag), what carries over.

A video is re-done when it is new, when its content etag changed, or when the attribute's prompt hash
(name, version, definition) or the teacher's identity differs from the state's: then every video is
re-labelled, and the old labels are not carried, so labels of two attribute versions or two teachers never
mix. ``finalize`` merges this run's new rows with the carried ones for distillation; only
``commit_promotion``, after the deploy made the promotion live, writes them to the state. A promotion
stopped anywhere before is planned again by the next run, into the same run folder (same digest), where
the teacher's resumable shards make the second pass cost zero teacher calls.

A teacher budget (``sample.TeacherBudget``) makes the teacher label only a prioritized sample of the due
videos (``teacher_manifest.parquet``; golden-set videos are left out of it, the teacher gate labels them
anyway); every due video is still framed and embedded, and the student scores every embedding. The state
then holds videos with an embedding but no teacher label: ``videos.parquet`` and ``embeddings/`` list them,
``labels/`` does not, so a later run carries them as unlabelled (``carried_unlabelled``), never as training
examples, and does not send them to the teacher again until their content changes. A video chosen for the
teacher that got no label is not committed, so the next run plans it again.

The embedder (``embedder_identity``) is part of the run's identity too, but a new embedder does not re-label:
an unchanged video whose carried embedding was made by another embedder (its rows' ``embedder_id``) is
re-framed and re-embedded (``embed_manifest.parquet``, ``reembed``) and keeps its teacher label, so the merged
embeddings, and the state after the commit, always hold one embedder's vectors.

Folders of one run: ``plan_dir_of(workdir, run_id)`` = ``{workdir}/plans/{run_key}`` holds ``plan.json``
(this run's plan, or its lock-out record: what the exit handler reads); the run folder
``{workdir}/runs/{digest[:16]}`` named in it holds every stage's output, the stage inputs under ``plan/``.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

from silverset.components.common import artifacts, schemas, tables

# plan.json's models and file name are a contract between stages (common.artifacts); re-exported here.
from silverset.components.common.artifacts import (  # noqa: F401
    DEFAULT_COST_PER_CORE_HOUR_USD,
    GATE_FILE,
    PLAN_FILE,
    LockedOut,
    PlanSummary,
    read_plan,
    write_plan,
)
from silverset.components.common.digest import sha256_json
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.manifest import read_manifest
from silverset.components.common.run_lock import StateLocked, open_run_lock
from silverset.components.common.spec import load_spec
from silverset.components.common.tables import ErrorRow

from . import state
from .embedder_identity import DEFAULT_EMBEDDER, block_names
from .sample import TeacherBudget, choose_sample, gemini_usd_per_video

_LOGGER = logging.getLogger(__name__)

STAGE = "incremental"
CARRIED_TABLES = ("labels", "embeddings")  # tables keyed by video_id that an unchanged video keeps
COMPLETED_FILE = artifacts.COMPLETED_FILE  # common.artifacts.CompletedPromotion
EMBED_MANIFEST = "embed_manifest.parquet"  # the videos the embed step embeds: todo + carried from another embedder
TEACHER_MANIFEST = "teacher_manifest.parquet"  # the due videos the teacher labels this run (all of them: no budget)
PLANS_DIR = "plans"
# What a run's gates, approval and deploy record in its run folder (read by the run summary); plan_run clears
# them when it re-plans into an existing run folder, so a summary never reads a previous attempt's outcome.
OUTCOME_RECORDS = {
    "teacher_gate": f"teacher_gate/{GATE_FILE}",
    "student_gate": f"student_gate/{GATE_FILE}",
    "approval": "approval/decision.json",
    "deploy": "deploy/deploy.json",
}


def content_etag(uri: str) -> str:
    """An etag for the video's bytes: the object store's ETag/md5 when it gives one, else sha256 of the content."""
    fs, path = fsspec.core.url_to_fs(uri)
    info = fs.info(path)
    for key in ("ETag", "etag", "md5Hash", "md5_hash"):
        if info.get(key):
            return f"{key.lower()}:{str(info[key]).strip(chr(34))}"
    import hashlib

    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()}"


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def corpus_digest(
    videos: pa.Table,
    spec_content_hash: str,
    golden_etag: str = "",
    teacher_identity: str = "",
    teacher_budget: dict | None = None,
    embedder: str = "",
) -> str:
    """Digest of (video_id, etag) pairs plus the whole spec's content hash (and the golden set's etag, the
    teacher's identity, a capped teacher budget and a non-default embedder's identity, when given): equal
    digests mean equal work.

    It names the run folder (``run_dir_of``), so every stage input path carries it and a KFP cache hit
    can only ever be for the same videos, the same bytes, the same spec, golden set and teacher.
    """
    pairs = sorted(zip(videos.column("video_id").to_pylist(), videos.column("etag").to_pylist()))
    content = {"videos": pairs, "spec": spec_content_hash}
    if golden_etag:
        content["golden"] = golden_etag
    if teacher_identity:
        content["teacher"] = teacher_identity
    if teacher_budget:
        content["teacher_budget"] = teacher_budget
    if embedder:
        content["embedder"] = embedder
    return sha256_json(content)


def _embedder_of(embedder_id: str | None) -> str:
    """A carried embedding row's embedder identity; "" (never equal to a run's) when the id cannot be read."""
    try:
        return block_names(embedder_id or "")
    except SilversetInputError:
        return ""


def golden_ids(golden_set: str, attribute: str) -> set[str]:
    """video_ids of ``golden_set`` (schemas.GOLDEN, any version) labelled for ``attribute``.

    Empty when none is given.
    """
    if not golden_set:
        return set()
    from silverset.components.common.golden import golden_video_ids

    return set(golden_video_ids(golden_set, attribute=attribute))


def run_dir_of(workdir: str, digest: str) -> str:
    """Folder of one run's stage outputs: ``{workdir}/runs/{digest[:16]}``."""
    return _join(workdir, "runs", digest[:16])


def _completed_digest(state_dir: str) -> str:
    """The corpus digest of the last promotion that went live ("" when none did)."""
    completed = artifacts.read_completed(state_dir)
    return completed.corpus_digest if completed is not None else ""


def _mark_completed(state_dir: str, *, corpus_digest: str, run_id: str) -> None:
    """Record that the promotion of ``corpus_digest`` went live: the next plan over the same corpus is up to date."""
    artifacts.write_completed(state_dir, artifacts.CompletedPromotion(corpus_digest=corpus_digest, run_id=run_id))


def run_key(run_id: str) -> str:
    """``run_id`` as one safe path segment (KFP run names pass through unchanged)."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "-", run_id).strip(".-")
    if not key:
        raise SilversetInputError("run_id", f"{run_id!r} has no letters or digits to name a plan folder")
    return key


def plan_dir_of(workdir: str, run_id: str) -> str:
    """This run's own folder: ``{workdir}/plans/{run_key(run_id)}`` (its plan.json)."""
    return _join(workdir, PLANS_DIR, run_key(run_id))


def held_plan(plan_dir: str) -> PlanSummary:
    """``plan_dir``'s plan.json as a PlanSummary; SilversetInputError when it is missing, malformed or the record
    of a run that was locked out (such a run has nothing to finalize or commit)."""
    plan = read_plan(plan_dir)
    if not isinstance(plan, PlanSummary):
        raise SilversetInputError(f"plan '{plan_dir}'", "no plan of a run that held the lock: nothing to commit")
    return plan


class PlanOptions(BaseModel):
    """The plan's tunables. ``teacher_backend`` ("" = the spec's), ``teacher_checkpoint`` and ``teacher_model``
    (Gemini; "" = the spec's) are the annotate step's: their identity is part of the run's digest
    (``teacher_temperature``: the clip-zero-shot teacher's, None = the model's scale), and so is a non-default
    ``embedder`` (the embed step's). ``budget`` caps the teacher's sample (a USD cap needs the Gemini teacher,
    priced from ``price_table``, "" = the shipped one); ``cost_per_core_hour_usd`` is recorded for the run
    summary's costs (plan_run refuses a negative or infinite one, naming it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    teacher_backend: str = ""
    teacher_checkpoint: str = ""
    teacher_model: str = ""
    teacher_temperature: float | None = None
    budget: TeacherBudget = TeacherBudget()
    price_table: str = ""
    cost_per_core_hour_usd: float = DEFAULT_COST_PER_CORE_HOUR_USD
    embedder: str = "default"


def plan_run(
    *,
    manifest_uri: str,
    attribute_spec: str,
    state_dir: str,
    workdir: str,
    run_id: str,
    golden_set: str = "",
    run_lock: str = "",
    options: PlanOptions = PlanOptions(),
    api_client=None,
) -> PlanSummary:
    """The pipeline's first step: take the run lock, then plan (``options``: the teacher, embedder and budget).

    The lock is ``run_lock`` (``kubernetes://NS``) or, when empty, the state folder; it stays held for the
    run's later steps (they renew it) until the exit handler releases it.
    Writes ``{plan_dir_of(workdir, run_id)}/plan.json`` and, unless the corpus is up to date, the stage
    inputs under ``{run_dir}/plan/``. When another run holds the lock, writes a LockedOut plan.json there
    (nothing else, anywhere) and raises StateLocked naming the holder.
    """
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.gemini import GeminiOptions

    from .teacher_identity import teacher_identity

    if not workdir:
        raise SilversetInputError("workdir", "the pipeline's plan needs a workdir for its run folders")
    own_dir = plan_dir_of(workdir, run_id)
    spec = load_spec(attribute_spec)
    from .embedder_identity import embedder_identity

    teacher_backend, teacher_model, budget = options.teacher_backend, options.teacher_model, options.budget
    cost_per_core_hour_usd, embedder = options.cost_per_core_hour_usd, options.embedder
    teacher = AnnotateOptions(
        teacher=teacher_backend or None,
        checkpoint=options.teacher_checkpoint or None,
        gemini=GeminiOptions(model=teacher_model or None),
        temperature=options.teacher_temperature,
    )
    identity = teacher_identity(spec, teacher)
    embedder_id = embedder_identity(embedder)
    if not cost_per_core_hour_usd >= 0 or cost_per_core_hour_usd == float("inf"):
        raise SilversetInputError(
            "cost_per_core_hour_usd", f"must be a finite number >= 0, got {cost_per_core_hour_usd}"
        )
    usd_per_video = None
    if budget.usd > 0 and (teacher.teacher or spec.teacher.backend) == "gemini":
        usd_per_video = gemini_usd_per_video(spec, model=teacher_model or None, price_table=options.price_table or None)
    lock = open_run_lock(run_lock or state_dir, key=state_dir, api_client=api_client)
    try:
        lock.acquire(run_id)
    except StateLocked as exc:
        _LOGGER.warning("run %s locked out: %s", run_id, exc)
        holder = exc.holder
        write_plan(
            _join(own_dir, PLAN_FILE),
            LockedOut(
                run_id=run_id,
                holder=holder.holder if holder else "",
                message=str(exc),
                since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(holder.acquired_at)) if holder else "",
            ),
        )
        raise
    summary = run(
        manifest_uri=manifest_uri,
        attribute_spec=attribute_spec,
        state_dir=state_dir,
        out_dir="",
        run_id=run_id,
        workdir=workdir,
        golden_set=golden_set,
        teacher=identity,
        budget=budget,
        usd_per_video=usd_per_video,
        cost_per_core_hour_usd=cost_per_core_hour_usd,
        embedder=embedder_id,
        embedder_in_digest=(embedder or DEFAULT_EMBEDDER) not in ("default", "visual"),
    )
    summary = summary.model_copy(update={"plan_dir": own_dir})
    write_plan(_join(own_dir, PLAN_FILE), summary)
    if summary.run_dir:
        write_plan(_join(summary.out_dir, PLAN_FILE), summary)
        for record in OUTCOME_RECORDS.values():  # a previous, stopped attempt's gate/approval/deploy outcome
            fs, path = fsspec.core.url_to_fs(_join(summary.run_dir, record))
            if fs.exists(path):
                fs.rm(path)
    return summary


def run(
    *,
    manifest_uri: str,
    attribute_spec: str,
    state_dir: str,
    out_dir: str,
    run_id: str = "",
    workdir: str = "",
    golden_set: str = "",
    teacher: str = "",
    budget: TeacherBudget = TeacherBudget(),
    usd_per_video: float | None = None,
    cost_per_core_hour_usd: float = DEFAULT_COST_PER_CORE_HOUR_USD,
    embedder: str = "",
    embedder_in_digest: bool = True,
) -> PlanSummary:
    """Diff ``manifest_uri`` against ``state_dir``; write the plan into ``out_dir`` ("" = ``{run_dir}/plan``).

    Writes ``todo_manifest.parquet`` (manifest rows to process), ``golden_manifest.parquet`` (rows of
    ``golden_set``'s videos, which the teacher gate labels every run), ``embed_manifest.parquet`` (todo rows plus
    unchanged videos whose carried embedding another embedder made), ``frames_manifest.parquet`` (those and the
    golden rows: the videos this run frames), ``teacher_manifest.parquet`` (the todo videos the teacher
    labels: ``budget``'s sample, golden-set videos left out, or every todo video when uncapped;
    ``usd_per_video`` prices a USD cap), ``videos.parquet`` (every readable
    video with its etag), ``carried/<table>/`` (state rows of unchanged videos), ``errors.parquet`` and
    ``plan.json``. videos == todo + unchanged + errors. ``teacher`` is the teacher's identity: a change
    from the state's re-labels everything. ``embedder`` is the embedder's identity (block names): carried
    embeddings of unchanged videos made by another embedder are not carried; those videos go to
    ``embed_manifest.parquet`` (todo + reembed) and the frames manifest, and keep their labels
    (``embedder_in_digest``: False for the default embedder, so its digests are those of plans made before the
    embedder was a parameter). Takes no lock (``plan_run`` does): the caller holds it.
    """
    spec = load_spec(attribute_spec)
    rows, errors = read_manifest(manifest_uri, stage=STAGE)
    inputs = rows.num_rows + len(errors)
    etags: list[str | None] = []
    for video_id, uri in zip(rows.column("video_id").to_pylist(), rows.column("uri").to_pylist()):
        try:
            etags.append(content_etag(uri))
        except (OSError, ValueError) as exc:
            etags.append(None)
            errors.append(
                ErrorRow(
                    key=video_id,
                    uri=uri,
                    stage=STAGE,
                    error_type="unreadable_video",
                    message=f"cannot read video for its etag: {type(exc).__name__}: {exc}",
                )
            )
    if errors:
        reasons = Counter(e.error_type for e in errors)
        _LOGGER.warning(
            "plan: %d of %d manifest videos cannot be planned (%s; a written plan lists them in its "
            "errors.parquet); first: %s",
            len(errors),
            inputs,
            ", ".join(f"{k} {n}" for k, n in sorted(reasons.items())),
            ", ".join(e.key for e in errors[:5]),
        )
    readable = pa.array([e is not None for e in etags])
    rows = rows.append_column("etag", pa.array(etags, pa.string())).filter(readable)
    videos = rows.select(["video_id", "uri", "etag"])

    previous = state.load(state_dir)
    relabel_all = (
        not previous.exists
        or previous.prompt_hash != spec.prompt_hash
        or (bool(teacher) and previous.teacher_identity != teacher)
    )
    old = dict(zip(previous.videos.column("video_id").to_pylist(), previous.videos.column("etag").to_pylist()))
    current_ids = videos.column("video_id").to_pylist()
    current_etags = videos.column("etag").to_pylist()
    new = [v for v in current_ids if v not in old]
    changed = [v for v, e in zip(current_ids, current_etags) if v in old and old[v] != e]
    todo_ids = set(current_ids) if relabel_all else set(new) | set(changed)
    unchanged_ids = [v for v in current_ids if v not in todo_ids]
    removed = len(set(old) - set(current_ids))

    carried_embeddings = state.load_table(state_dir, "embeddings")
    reembed_ids: set[str] = set()
    if carried_embeddings is not None:
        carried_embeddings = carried_embeddings.filter(
            pc.is_in(carried_embeddings.column("video_id"), pa.array(unchanged_ids, pa.string()))
        )
        if embedder and "embedder_id" in carried_embeddings.column_names:
            same = pa.array(
                [_embedder_of(e) == embedder for e in carried_embeddings.column("embedder_id").to_pylist()], pa.bool_()
            )
            reembed_ids = set(carried_embeddings.filter(pc.invert(same)).column("video_id").to_pylist())
            carried_embeddings = carried_embeddings.filter(same)

    golden = golden_ids(golden_set, spec.name)
    budget_key = (
        {**budget.model_dump(), "usd_per_video": round(usd_per_video, 9) if usd_per_video else None}
        if budget.capped
        else None
    )
    digest = corpus_digest(
        videos,
        spec.content_hash,
        content_etag(golden_set) if golden_set else "",
        teacher,
        budget_key,
        embedder if embedder_in_digest else "",
    )
    up_to_date = (
        not relabel_all and not todo_ids and not removed and not reembed_ids and _completed_digest(state_dir) == digest
    )
    run_dir = "" if up_to_date or not workdir else run_dir_of(workdir, digest)
    if not out_dir:
        if not run_dir:  # nothing to do: no stage reads a plan, so none is written
            _LOGGER.info(
                "plan %s: up to date (%d videos, corpus %s); nothing to do", spec.key, len(current_ids), digest[:19]
            )
            return PlanSummary(
                videos=inputs,
                todo=0,
                new=0,
                changed=0,
                unchanged=len(unchanged_ids),
                removed=0,
                errors=len(errors),
                relabel_all=False,
                up_to_date=True,
                corpus_digest=digest,
                todo_manifest="",
                out_dir="",
                run_dir="",
                teacher_identity=teacher,
                run_id=run_id,
                cost_per_core_hour_usd=cost_per_core_hour_usd,
                embedder_identity=embedder,
            )
        out_dir = _join(run_dir, "plan")

    todo_mask = pc.is_in(rows.column("video_id"), pa.array(sorted(todo_ids), pa.string()))
    todo_manifest = rows.filter(todo_mask)
    out = out_dir.rstrip("/")
    tables.write_table(todo_manifest, _join(out, "todo_manifest.parquet"))
    golden_mask = pc.is_in(rows.column("video_id"), pa.array(sorted(golden), pa.string()))
    tables.write_table(rows.filter(golden_mask), _join(out, "golden_manifest.parquet"))
    embed_mask = pc.is_in(rows.column("video_id"), pa.array(sorted(todo_ids | reembed_ids), pa.string()))
    tables.write_table(rows.filter(embed_mask), _join(out, EMBED_MANIFEST))
    tables.write_table(rows.filter(pc.or_(embed_mask, golden_mask)), _join(out, "frames_manifest.parquet"))
    sample, choice = choose_sample(
        todo_manifest, budget, new_ids=set(new), usd_per_video=usd_per_video, exclude=golden if budget.capped else set()
    )
    tables.write_table(sample, _join(out, TEACHER_MANIFEST))
    tables.write_table(videos, _join(out, "videos.parquet"), state.VIDEO_STATE, name="plan videos")
    keep = pa.array(unchanged_ids, pa.string())
    carried_labels = previous.labels.filter(pc.is_in(previous.labels.column("video_id"), keep))
    tables.write_table(carried_labels, _join(out, "carried", "labels", "part.parquet"), schemas.LABELS)
    carried_unlabelled = len(set(unchanged_ids) - set(carried_labels.column("video_id").to_pylist()))
    if carried_embeddings is not None:
        tables.write_table(carried_embeddings, _join(out, "carried", "embeddings", "part.parquet"))
    tables.write_errors(out, errors)
    summary = PlanSummary(
        videos=inputs,
        todo=len(todo_ids),
        new=len(new),
        changed=len(changed),
        unchanged=len(unchanged_ids),
        removed=removed,
        errors=len(errors),
        relabel_all=relabel_all,
        up_to_date=up_to_date,
        corpus_digest=digest,
        todo_manifest=_join(out, "todo_manifest.parquet"),
        out_dir=out,
        golden=int(pc.sum(golden_mask.cast(pa.int64())).as_py() or 0),
        run_dir=run_dir,
        teacher_identity=teacher,
        run_id=run_id,
        teacher_manifest=_join(out, TEACHER_MANIFEST),
        teacher_sample=choice.model_dump(),
        carried_unlabelled=carried_unlabelled,
        cost_per_core_hour_usd=cost_per_core_hour_usd,
        embedder_identity=embedder,
        reembed=len(reembed_ids),
        embed_manifest=_join(out, EMBED_MANIFEST),
    )
    assert summary.todo + summary.unchanged + summary.errors == summary.videos, summary
    _LOGGER.info(
        "plan %s: %d videos: %d to do (%d new, %d changed%s), %d unchanged, %d re-embedded, %d removed, "
        "%d errors; teacher sample %d; run folder %s",
        spec.key,
        summary.videos,
        summary.todo,
        summary.new,
        summary.changed,
        ", relabel all" if relabel_all else "",
        summary.unchanged,
        summary.reembed,
        removed,
        summary.errors,
        sample.num_rows,
        run_dir or out,
    )
    write_plan(_join(out, PLAN_FILE), summary)
    return summary


class FinalizeSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    labels: int  # rows in the merged labels table (carried + new)
    carried_labels: int
    new_labels: int
    embeddings: int
    labels_dir: str
    embeddings_dir: str | None
    train_labels: int = 0  # labels the student trains on (golden-set videos held out)
    unlabelled: int = 0  # embeddings without a teacher label (outside the budgeted sample): scored, never trained on


def _merge(carried_uri: str, new_uri: str | None, name: str) -> tuple[pa.Table, int, int]:
    fs, path = fsspec.core.url_to_fs(carried_uri)
    carried = tables.read_table(carried_uri) if fs.exists(path) and tables.parquet_files(carried_uri) else None
    new = None
    if new_uri:
        fs_new, path_new = fsspec.core.url_to_fs(new_uri)
        if fs_new.exists(path_new) and tables.parquet_files(new_uri):
            new = tables.read_table(new_uri)
    parts = [t for t in (carried, new) if t is not None and t.num_rows]
    if not parts:
        empty = carried if carried is not None else new
        return (empty if empty is not None else pa.table({"video_id": pa.array([], pa.string())})), 0, 0
    if new is not None and carried is not None and new.num_rows and carried.num_rows:
        # A video is never carried and new at once (the plan puts it in exactly one); keep new if it is.
        carried = carried.filter(pc.invert(pc.is_in(carried.column("video_id"), new.column("video_id"))))
        parts = [p for p in (carried, new) if p.num_rows]
    merged = pa.concat_tables(parts, promote_options="permissive") if len(parts) > 1 else parts[0]
    return merged, (carried.num_rows if carried is not None else 0), (new.num_rows if new is not None else 0)


def finalize(
    *, plan_dir: str, new_labels: str, out_dir: str, new_embeddings: str | None = None, golden_set: str = ""
) -> FinalizeSummary:
    """Merge carried + this run's labels (and embeddings) into ``out_dir``; write nothing to the state.

    Writes ``labels/``, ``embeddings/`` and the distill stage's inputs: ``train_labels/`` (labels without the
    golden-set videos, so the student gate measures the student on videos it never trained on) and
    ``golden_embeddings/``. ``commit_promotion`` commits ``labels/`` and ``embeddings/`` once they went live.
    """
    plan = held_plan(plan_dir)
    if plan.todo and "://" not in new_labels:
        # Every video of the teacher's sample is labelled or in errors.parquet exactly once, over all shards.
        from silverset.components.runtime.runner import merge_check

        report = merge_check(new_labels, _teacher_ids(plan_dir))
        if not report.ok:
            raise SilversetInputError(
                f"teacher labels '{new_labels}'",
                f"not exactly once: missing {list(report.missing)[:5]}, duplicated "
                f"{list(report.duplicated)[:5]}, unexpected {list(report.unexpected)[:5]}",
            )
    labels, n_carried, n_new = _merge(_join(plan_dir, "carried", "labels"), new_labels, "labels")
    labels = tables.conform(labels, schemas.LABELS, name="merged labels")
    versions = set(
        zip(
            labels.column("attribute").to_pylist(),
            labels.column("attribute_version").to_pylist(),
            labels.column("prompt_hash").to_pylist(),
        )
    )
    if len(versions) > 1:
        raise SilversetInputError("labels", f"carried and new labels mix attribute versions: {sorted(versions)}")
    out = out_dir.rstrip("/")
    labels_dir = _join(out, "labels")
    tables.write_table(labels, _join(labels_dir, "labels.parquet"), schemas.LABELS)
    tables.write_errors(labels_dir, [])
    embeddings_dir = None
    n_embeddings = 0
    embeddings = None
    if new_embeddings:
        embeddings, _, _ = _merge(_join(plan_dir, "carried", "embeddings"), new_embeddings, "embeddings")
        if "embedder_id" in embeddings.column_names:
            ids = set(embeddings.column("embedder_id").to_pylist())
            if len(ids) > 1:
                raise SilversetInputError(
                    f"embeddings '{new_embeddings}'", f"carried and new embeddings mix embedders: {sorted(ids)}"
                )
        embeddings_dir = _join(out, "embeddings")
        tables.write_table(embeddings, _join(embeddings_dir, "embeddings.parquet"))
        tables.write_errors(embeddings_dir, [])
        n_embeddings = embeddings.num_rows
    golden = golden_ids(golden_set, labels.column("attribute")[0].as_py() if labels.num_rows else "")
    held_out = pa.array(sorted(golden), pa.string())
    train = labels.filter(pc.invert(pc.is_in(labels.column("video_id"), held_out)))
    tables.write_table(train, _join(out, "train_labels", "labels.parquet"), schemas.LABELS)
    tables.write_errors(_join(out, "train_labels"), [])
    if embeddings is not None:
        golden_embeddings = embeddings.filter(pc.is_in(embeddings.column("video_id"), held_out))
        tables.write_table(golden_embeddings, _join(out, "golden_embeddings", "embeddings.parquet"))
        tables.write_errors(_join(out, "golden_embeddings"), [])
    unlabelled = (
        len(set(embeddings.column("video_id").to_pylist()) - set(labels.column("video_id").to_pylist()))
        if embeddings is not None and embeddings.num_rows
        else 0
    )
    _LOGGER.info(
        "finalize: %d labels (%d carried, %d new), %d embeddings, %d training labels, %d unlabelled",
        labels.num_rows,
        n_carried,
        n_new,
        n_embeddings,
        train.num_rows,
        unlabelled,
    )
    return FinalizeSummary(
        labels=labels.num_rows,
        carried_labels=n_carried,
        new_labels=n_new,
        embeddings=n_embeddings,
        labels_dir=labels_dir,
        embeddings_dir=embeddings_dir,
        train_labels=train.num_rows,
        unlabelled=unlabelled,
    )


def _teacher_ids(plan_dir: str) -> list[str]:
    """video_ids the teacher was asked to label in this plan (every todo video for a plan made before budgets)."""
    fs, path = fsspec.core.url_to_fs(_join(plan_dir, TEACHER_MANIFEST))
    name = TEACHER_MANIFEST if fs.exists(path) else "todo_manifest.parquet"
    return tables.read_table(_join(plan_dir, name)).column("video_id").to_pylist()


class CommitSummary(BaseModel):
    """What ``commit_promotion`` wrote to the state."""

    model_config = ConfigDict(frozen=True)

    videos: int  # videos whose scores went live: the state now covers exactly these
    labels: int  # of those, videos with a teacher label (the others hold an embedding only)
    embeddings: int
    corpus_digest: str
    run_id: str
    state_dir: str


def commit_promotion(*, plan_dir: str, merged_dir: str, state_dir: str, run_id: str, scores: str = "") -> CommitSummary:
    """The promotion went live: commit its merged labels (and embeddings) to the state and mark the corpus completed.

    ``plan_dir`` is the run's stage-input plan folder (``{run_dir}/plan``), ``merged_dir`` finalize's
    ``out_dir``. Committed: every video with a label or an embedding, except a video the teacher was asked
    to label that got no label (it is planned again next run); with ``scores`` (the bulk scores that went
    into the deployed index), only videos scored there too. A committed video outside the teacher's sample
    has an embedding and no label: the state records it as unlabelled, never as a training example.
    """
    plan = held_plan(plan_dir)
    labels = tables.read_table(_join(merged_dir, "labels"), schemas.LABELS, name=f"merged labels '{merged_dir}'")
    labelled = set(labels.column("video_id").to_pylist())
    embeddings = state.load_table(merged_dir, "embeddings")
    embedded = set(embeddings.column("video_id").to_pylist()) if embeddings is not None else set()
    unanswered = set(_teacher_ids(plan_dir)) - labelled if plan.todo else set()
    if unanswered:
        _LOGGER.warning(
            "commit: %d video(s) the teacher was asked to label got no label (see the labels' errors "
            "table); not committed, the next run plans them again; first: %s",
            len(unanswered),
            ", ".join(sorted(unanswered)[:5]),
        )
    live = (labelled | embedded) - unanswered
    if scores:
        live &= set(tables.read_table(scores, name=f"scores '{scores}'").column("video_id").to_pylist())
    keep = pa.array(sorted(live), pa.string())
    labels = labels.filter(pc.is_in(labels.column("video_id"), keep))
    videos = tables.read_table(_join(plan_dir, "videos.parquet"), state.VIDEO_STATE)
    videos = videos.filter(pc.is_in(videos.column("video_id"), keep))
    versions = set(
        zip(
            labels.column("attribute").to_pylist(),
            labels.column("attribute_version").to_pylist(),
            labels.column("prompt_hash").to_pylist(),
        )
    )
    if len(versions) != 1:
        raise SilversetInputError(
            f"merged labels '{merged_dir}'",
            f"expected labels of exactly one attribute version, found {sorted(versions)}",
        )
    attribute, version, prompt_hash = next(iter(versions))
    if embeddings is not None:
        embeddings = embeddings.filter(pc.is_in(embeddings.column("video_id"), keep))
        state.commit_table(state_dir, "embeddings", embeddings)
    state.commit(
        state_dir,
        videos=videos,
        labels=labels,
        attribute=attribute,
        attribute_version=int(version),
        prompt_hash=prompt_hash,
        teacher_identity=plan.teacher_identity,
    )
    _mark_completed(state_dir, corpus_digest=plan.corpus_digest, run_id=run_id)
    _LOGGER.info(
        "commit %s: %d videos, %d labels, %d embeddings to the state (corpus %s)",
        run_id,
        videos.num_rows,
        labels.num_rows,
        embeddings.num_rows if embeddings is not None else 0,
        plan.corpus_digest[:19],
    )
    return CommitSummary(
        videos=videos.num_rows,
        labels=labels.num_rows,
        embeddings=embeddings.num_rows if embeddings is not None else 0,
        corpus_digest=plan.corpus_digest,
        run_id=run_id,
        state_dir=state_dir,
    )
