"""Contracts between stages: one pydantic model, one file name and one read/write pair per JSON file a stage
writes for another stage to read.

| file | model | writer | readers |
|---|---|---|---|
| ``gate.json`` (``GATE_FILE``) | GateResult | evaluate.gate | approval.wait, deploy, notify, pipelines |
| ``metadata.json`` (``MODEL_METADATA_FILE``) | ModelMetadata | distill.train, studio export | score, evaluate.gate |
| ``manifest.json`` (``INDEX_MANIFEST_FILE``) | IndexManifest | index.build | index.pointer/loaded/server, deploy |
| ``run_summary.json`` (``RUN_SUMMARY_FILE``) | RunSummary | notify.webhook | pipelines, studio |
| ``plan.json`` (``PLAN_FILE``) | PlanSummary or LockedOut | incremental.plan | notify, pipelines |
| ``approval/decision.json`` (``APPROVAL_DECISION_FILE``) | ApprovalDecision | approval | notify.stop, notify.webhook |
| ``deploy/deploy.json`` (``DEPLOY_RECORD_FILE``) | DeployRecord | deploy | notify.webhook |
| ``stats/shard-<tag>.json`` (``SHARD_STATS_DIR``) | ShardStats | runtime.runner | evaluate.gate, notify, benchmarks |
| ``completed.json`` (``COMPLETED_FILE``) | CompletedPromotion | incremental.plan (commit) | incremental.plan, studio |

Not here: files a stage writes for itself only (incremental's state meta, the teacher's batch-job and response
cache files and checkpoint card, the runner's error parts); the CPU records, which have their own pair in
common.cpu_stats; and typed files whose models nest one stage's own types, read through that stage's model
(evaluate's disagreements.json and compare.json, abtest's result.json).

Readers stay backward compatible: a field added later has a default, and models a reader must not break on
allow extra keys. ``read_*`` raise SilversetInputError naming the file and the problem (missing, not JSON,
wrong shape); ``write_*`` take a local path or any fsspec URI. This module imports no stage package, so every
stage may import it (the model's digest needs torch, imported only when it is computed).
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import fsspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer

from silverset.components.common.digest import sha256_bytes, sha256_file, sha256_json
from silverset.components.common.errors import SilversetInputError

GATE_FILE = "gate.json"
MODEL_METADATA_FILE = "metadata.json"
INDEX_MANIFEST_FILE = "manifest.json"
RUN_SUMMARY_FILE = "run_summary.json"
PLAN_FILE = "plan.json"
APPROVAL_DECISION_FILE = "decision.json"  # in {run_dir}/approval
DEPLOY_RECORD_FILE = "deploy.json"  # in {run_dir}/deploy
SHARD_STATS_DIR = "stats"  # {stage out_dir}/stats/shard-<shard tag>.json
COMPLETED_FILE = "completed.json"  # in the pipeline state folder
TORCHSCRIPT_FILE = "model.pt"
ONNX_FILE = "model.onnx"
# $ per vCPU-hour that prices measured CPU-seconds (local/zero-shot teacher, student): AWS EC2 on-demand
# m7g.large, Linux, us-east-1, $0.0816/h for 2 vCPUs (June 2026 list price). Pass your own rate.
DEFAULT_COST_PER_CORE_HOUR_USD = 0.0408


# ---------------------------------------------------------------- file IO shared by every contract


def _join(folder: str | Path, name: str) -> str:
    return f"{str(folder).rstrip('/')}/{name}"


def _read_object(uri: str | Path, *, what: str) -> dict[str, Any]:
    """The JSON object at ``uri``; SilversetInputError naming ``what`` when missing or not a JSON object."""
    fs, path = fsspec.core.url_to_fs(str(uri))
    if not fs.exists(path):
        raise SilversetInputError(f"{what} '{uri}'", "file not found")
    try:
        with fs.open(path, "r") as f:
            value = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SilversetInputError(f"{what} '{uri}'", f"is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SilversetInputError(f"{what} '{uri}'", f"is a JSON {type(value).__name__}, expected an object")
    return value


def _validate(model: type[BaseModel], value: dict[str, Any], *, uri: str | Path, what: str) -> Any:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:5])
        raise SilversetInputError(f"{what} '{uri}'", f"is not a {model.__name__}: {problems}") from None


def _write_model(uri: str | Path, model: BaseModel) -> str:
    """``model`` as indented JSON with sorted keys at ``uri`` (parent folders created); returns ``uri``."""
    fs, path = fsspec.core.url_to_fs(str(uri))
    parent = fs._parent(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(json.dumps(model.model_dump(mode="json"), indent=2, sort_keys=True))
    return str(uri)


def _file_in(path: str | Path, name: str) -> str:
    """``path`` itself, or ``path/name`` when ``path`` is a folder."""
    fs, local = fsspec.core.url_to_fs(str(path))
    return _join(path, name) if fs.isdir(local) else str(path)


# ---------------------------------------------------------------- gate.json


class GateResult(BaseModel):
    """The evaluate stage's gate.json: the typed "blessing" the pipeline's ``dsl.If``, approval and deploy read.

    ``candidate_digest`` is None when the gate could not tie the predictions to one model (a teacher gate);
    approval refuses such a gate. Fields added after approvals were first recorded (``gate``, ``threshold``,
    ``golden_version``, ``best_f1_threshold_on_golden``) are left out of the dump when never set, so a stored
    approval request re-serializes to the bytes (and the request hash) it was recorded with.
    """

    model_config = ConfigDict(extra="allow")

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    metrics: dict = Field(default_factory=dict)
    candidate_digest: str | None = None
    attribute: str | None = None
    attribute_version: int | None = None
    spec_content_hash: str | None = None  # the attribute spec the gate ran with
    gate: str | None = None  # "teacher" | "student"
    threshold: float | None = None  # the decision threshold the candidate was judged at
    golden_version: int | None = None  # the spec version the golden labels were given for
    best_f1_threshold_on_golden: dict | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_late_fields(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for name in _GATE_LATE_FIELDS:
            if name not in self.model_fields_set and data.get(name) is None:
                data.pop(name, None)
        return data


_GATE_LATE_FIELDS = ("gate", "threshold", "golden_version", "best_f1_threshold_on_golden")


def read_gate(path: str | Path) -> GateResult:
    """gate.json (the file, or the folder holding it; path or fsspec URI)."""
    uri = _file_in(path, GATE_FILE)
    return _validate(GateResult, _read_object(uri, what="gate"), uri=uri, what="gate")


def write_gate(out_dir: str | Path, gate: GateResult) -> str:
    """``out_dir/gate.json``; returns its path."""
    return _write_model(_join(out_dir, GATE_FILE), gate)


# ---------------------------------------------------------------- metadata.json (a distilled model)


class ModelMetadata(BaseModel):
    """MODELDIR's metadata.json: what the student is for, its decision threshold and its digest.

    ``model_digest`` (see ``model_digest``) covers the weights, the ONNX graph and every field that changes the
    model's decisions; scoring and the student gate recompute it before trusting the folder.
    """

    model_config = ConfigDict(extra="allow")

    attribute: str
    attribute_version: int
    embedder_id: str
    dimension: int = Field(ge=1)
    threshold: float
    model_digest: str = ""  # filled in last, over the files and the fields above
    prompt_hash: str = ""
    threshold_rule: str = ""
    training_data_digest: str = ""
    training_metrics: dict = Field(default_factory=dict)
    calibration: dict = Field(default_factory=dict)
    options: dict = Field(default_factory=dict)
    files: dict = Field(default_factory=lambda: {"torchscript": TORCHSCRIPT_FILE, "onnx": ONNX_FILE})
    onnx_io: dict = Field(default_factory=dict)
    latency_s_per_item: float | None = None  # median ONNX seconds per item on one CPU thread; None = not measured


def weights_digest(torchscript_path: str | Path) -> str:
    """sha256 of the TorchScript model's tensors (names, shapes, bytes) in state_dict order.

    TorchScript archives carry a random serialization id, so the file bytes are not reproducible; the tensors are.
    """
    import torch

    module = torch.jit.load(str(torchscript_path), map_location="cpu")
    parts = []
    for name, tensor in module.state_dict().items():
        array = tensor.detach().cpu().contiguous().numpy()
        parts.append(f"{name}:{array.dtype}:{list(array.shape)}:{sha256_bytes(array.tobytes())}")
    return sha256_bytes("\n".join(parts).encode("utf-8"))


def model_digest(model_dir: str | Path, metadata: ModelMetadata | dict[str, Any]) -> str:
    """The candidate's identity: weights, ONNX graph, and every field that changes its decisions."""
    fields = metadata.model_dump(mode="json") if isinstance(metadata, BaseModel) else metadata
    model_dir = Path(model_dir)
    return sha256_json(
        {
            "weights": weights_digest(model_dir / TORCHSCRIPT_FILE),
            "onnx": sha256_file(model_dir / ONNX_FILE),
            "attribute": fields["attribute"],
            "attribute_version": fields["attribute_version"],
            "embedder_id": fields["embedder_id"],
            "dimension": fields["dimension"],
            "threshold": fields["threshold"],
        }
    )


def read_model_metadata(model_dir: str | Path, *, verify: bool = True) -> ModelMetadata:
    """MODELDIR's metadata.json (a local folder); with ``verify`` the digest is recomputed and must match."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_METADATA_FILE
    if not path.is_file():
        raise SilversetInputError(
            f"model '{model_dir}'", f"has no {MODEL_METADATA_FILE} (not a distilled model directory)"
        )
    metadata = _validate(ModelMetadata, _read_object(path, what="model metadata"), uri=path, what="model metadata")
    if verify:
        actual = model_digest(model_dir, metadata)
        if actual != metadata.model_digest:
            recorded = metadata.model_digest or None
            raise SilversetInputError(
                f"model '{model_dir}'", f"digest mismatch: files give {actual}, metadata says {recorded}"
            )
    return metadata


def write_model_metadata(model_dir: str | Path, metadata: ModelMetadata) -> str:
    """``model_dir/metadata.json``; returns its path."""
    return _write_model(_join(model_dir, MODEL_METADATA_FILE), metadata)


# ---------------------------------------------------------------- manifest.json (an index version)


class IndexManifest(BaseModel):
    """An index version's manifest.json: its version, what it was built from, and how to serve it.

    ``digest`` is sha256 over the folder's files except manifest.json and errors.parquet; servers refuse a
    folder whose files do not match it.
    """

    model_config = ConfigDict(extra="allow")

    format_version: int
    version: str
    attribute: str
    attribute_version: int | None = None
    spec_hash: str = ""
    model_digest: str
    digest: str
    count: int = Field(ge=0)  # vocabulary vectors
    history_count: int = 0
    dimensions: int = Field(ge=1)
    vocabulary_rule: dict = Field(default_factory=dict)
    serving: dict = Field(default_factory=dict)
    parameters: dict = Field(default_factory=dict)
    build: dict = Field(default_factory=dict)


def read_index_manifest(index_dir: str | Path) -> IndexManifest:
    """``index_dir/manifest.json`` (path or fsspec URI)."""
    uri = _join(index_dir, INDEX_MANIFEST_FILE)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        raise SilversetInputError(f"index '{index_dir}'", f"has no {INDEX_MANIFEST_FILE}")
    return _validate(IndexManifest, _read_object(uri, what="index manifest"), uri=uri, what="index manifest")


def write_index_manifest(index_dir: str | Path, manifest: IndexManifest) -> str:
    """``index_dir/manifest.json``; returns its path."""
    return _write_model(_join(index_dir, INDEX_MANIFEST_FILE), manifest)


# ---------------------------------------------------------------- run_summary.json


class RunSummary(BaseModel):
    """What the end-of-run webhook receives and ``run_summary.json`` holds."""

    model_config = ConfigDict(frozen=True, extra="allow")

    text: str
    pipeline: str = "attribute-promotion"
    run_id: str
    status: str  # SUCCEEDED, FAILED, CANCELED (KFP's PipelineTaskFinalStatus.state)
    outcome: str = "failed"  # one of notify.webhook.OUTCOMES: what happened to the promotion
    reasons: list[str] = []  # why the promotion stopped (gate reasons, approval reason, deploy error, lock holder)
    error_message: str = ""
    attribute_spec: str = ""
    workdir: str = ""
    run_dir: str = ""
    plan: dict = {}  # plan.json: counts (videos, todo, new, changed, unchanged, removed, errors), digest, teacher
    stages: dict[str, dict] = {}  # stage folder -> its summary.json, where the stage wrote one
    gates: dict[str, dict] = {}  # teacher_gate / student_gate -> {passed, reasons}, for the gates that ran
    annotate: dict = {}  # bulk teacher shards summed: items, processed, resumed, outputs, errors, requests, cost_usd
    golden_annotate: dict = {}  # the same for the teacher gate's golden-set labelling
    approval: dict = {}  # ApprovalDecision's decision, decided_by, reason, candidate_digest
    deploy: dict = {}  # the DeployRecord (status, version, previous, changed, error, ...); "failed" = not live
    index_version: str = ""  # the index this run built ("" when it stopped before the index)
    costs: dict = {}  # costs.run_costs: teacher calls/spend, student items scored/CPU-seconds, $ per 1,000 videos


def read_run_summary(path: str | Path) -> RunSummary:
    """run_summary.json (the file, or the folder holding it; path or fsspec URI)."""
    uri = _file_in(path, RUN_SUMMARY_FILE)
    return _validate(RunSummary, _read_object(uri, what="run summary"), uri=uri, what="run summary")


def write_run_summary(uri: str | Path, summary: RunSummary) -> str:
    """``summary`` at ``uri`` (the file's own path: runs write one per plan folder and the latest in the workdir)."""
    return _write_model(uri, summary)


# ---------------------------------------------------------------- plan.json


class PlanSummary(BaseModel):
    """Counts of one plan; ``todo`` videos go through frames/embed/teacher, ``unchanged`` are carried."""

    model_config = ConfigDict(frozen=True)

    videos: int  # manifest rows read (inputs)
    todo: int  # new + changed (+ everything when relabel_all)
    new: int
    changed: int
    unchanged: int
    removed: int  # in the state, no longer in the manifest
    errors: int
    relabel_all: bool
    up_to_date: bool  # the last completed run covered exactly these videos with this prompt: nothing to do
    corpus_digest: str
    todo_manifest: str
    out_dir: str
    golden: int = 0  # golden-set videos of this manifest (teacher gate input; framed every run)
    run_dir: str = ""  # where this run's stages write ({workdir}/runs/{digest}); "" when up_to_date
    teacher_identity: str = ""  # teacher_identity.teacher_identity of the run's teacher (in the digest)
    run_id: str = ""
    plan_dir: str = ""  # plan_dir_of(workdir, run_id): this run's own record
    locked_out: bool = False  # always False here; a lock-out writes LockedOut instead
    teacher_manifest: str = ""  # the videos the teacher labels this run (the budgeted sample, or every todo video)
    teacher_sample: dict = {}  # sample.SampleChoice: budget, candidates, chosen, priority order
    carried_unlabelled: int = 0  # unchanged videos carried with an embedding but no teacher label
    embedder_identity: str = ""  # embedder_identity.embedder_identity of the run's embedder ("" = not checked)
    reembed: int = 0  # unchanged videos whose carried embedding came from another embedder: embedded again
    embed_manifest: str = ""  # the videos the embed step embeds (todo + reembed)
    cost_per_core_hour_usd: float = DEFAULT_COST_PER_CORE_HOUR_USD  # prices the measured CPU-seconds in the summary


class LockedOut(BaseModel):
    """plan.json of a run that found the state locked by another: it did nothing, and its clean-up touches nothing."""

    model_config = ConfigDict(frozen=True)

    locked_out: bool = True
    run_id: str
    holder: str  # the run that holds the lock
    since: str  # when the holder took it (UTC)
    message: str


def read_plan(path: str | Path) -> PlanSummary | LockedOut:
    """plan.json (the file, or the folder holding it; path or fsspec URI): a PlanSummary, or LockedOut."""
    uri = _file_in(path, PLAN_FILE)
    value = _read_object(uri, what="plan")
    return _validate(LockedOut if value.get("locked_out") else PlanSummary, value, uri=uri, what="plan")


def write_plan(uri: str | Path, plan: PlanSummary | LockedOut) -> str:
    """``plan`` at ``uri`` (the file's own path: a plan is written to the run's plan folder and its out folder)."""
    return _write_model(uri, plan)


# ---------------------------------------------------------------- approval/decision.json


class ApprovalState(str, Enum):
    """The state of an approval request (approval.model.State), and so of the approval step's decision."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"  # nobody decided before expires_at: not approved, for everyone, for good


class ApprovalDecision(BaseModel):
    """What the approval step decided (its own output, recorded in ``{run_dir}/approval/decision.json`` for the run
    summary and the stop step; never written to the approvers-only audit).

    ``decision`` is ``approved``, ``rejected`` or ``expired``; a failed gate is ``rejected`` by ``gate``.
    ``candidate_digest`` is None for a gate that named no candidate. Records written before the digest and the
    attribute were recorded read with their defaults.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    decision: ApprovalState
    candidate_digest: str | None = None
    attribute: str = ""
    attribute_version: int | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str | None = None
    expires_at: datetime | None = None

    @field_validator("decision")
    @classmethod
    def _decided(cls, value: ApprovalState) -> ApprovalState:
        if value is ApprovalState.pending:
            raise ValueError("a decision is approved, rejected or expired, not pending")
        return value


def read_approval_decision(path: str | Path) -> ApprovalDecision:
    """decision.json (the file, or the approval folder holding it; path or fsspec URI)."""
    uri = _file_in(path, APPROVAL_DECISION_FILE)
    value = _read_object(uri, what="approval decision")
    return _validate(ApprovalDecision, value, uri=uri, what="approval decision")


def write_approval_decision(out_dir: str | Path, decision: ApprovalDecision) -> str:
    """``out_dir/decision.json`` (``out_dir`` is ``{run_dir}/approval``); returns its path."""
    return _write_model(_join(out_dir, APPROVAL_DECISION_FILE), decision)


# ---------------------------------------------------------------- deploy/deploy.json


class DeployRecord(BaseModel):
    """The deploy step's record in ``{run_dir}/deploy/deploy.json``: ``deployed`` with what deploy.DeploySummary
    said, or ``failed`` with the error (the rollback left the previous version live)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    status: Literal["deployed", "failed"]
    target: str = ""
    error: str = ""  # "failed": the exception, "Type: message"
    attribute: str = ""
    version: str = ""  # the version made live ("" when it failed)
    changed: bool = False  # False when the version was already live
    previous: str | None = None  # the version live before
    verified: bool = False
    canary: bool = False
    published: str = ""


def read_deploy_record(path: str | Path) -> DeployRecord:
    """deploy.json (the file, or the deploy folder holding it; path or fsspec URI)."""
    uri = _file_in(path, DEPLOY_RECORD_FILE)
    return _validate(DeployRecord, _read_object(uri, what="deploy record"), uri=uri, what="deploy record")


def write_deploy_record(out_dir: str | Path, record: DeployRecord) -> str:
    """``out_dir/deploy.json`` (``out_dir`` is ``{run_dir}/deploy``); returns its path."""
    return _write_model(_join(out_dir, DEPLOY_RECORD_FILE), record)


# ---------------------------------------------------------------- stats/shard-<tag>.json (runtime.runner)


class ShardStats(BaseModel):
    """What one shard run of runtime.runner did; written to ``stats/shard-<tag>.json`` and returned to the caller.

    Mutable: the runner counts into it as batches finish. Files written before a field existed read with its
    default (``"timed_items" in stats.model_fields_set`` tells a file that recorded the timing apart).
    """

    model_config = ConfigDict(extra="allow")

    shard: str = ""  # str(Shard), e.g. "0/2"
    model_id: str = ""
    items: int = 0  # items this shard owns
    resumed: int = 0  # of those, already done by an earlier run
    processed: int = 0  # done in this run
    outputs: int = 0  # output rows in this run
    errors: int = 0  # error rows in this run
    remaining: int = 0  # owned items neither output nor error (budget stop / max_items)
    seconds: float = 0.0
    items_per_s: float = 0.0
    cost_usd: float = 0.0
    requests: int = 0
    cache_hits: int = 0
    # The teacher's measured cost per item over every run of this shard (items it really ran, cache hits
    # excluded, and the seconds they took): a resumed run that had nothing left to do keeps the measurement.
    timed_items: int = 0
    timed_seconds: float = 0.0
    stopped: str | None = None  # None, "budget" or "max_items"
    message: str = ""
    error_types: dict[str, int] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the stats file (what the embed/annotate steps return as their output)."""
        return self.model_dump(mode="json")


def shard_stats_uri(out_dir: str | Path, tag: str) -> str:
    """``out_dir/stats/shard-<tag>.json`` (``tag`` is Shard.tag, e.g. ``00000-of-00002``)."""
    return _join(out_dir, f"{SHARD_STATS_DIR}/shard-{tag}.json")


def read_shard_stats(uri: str | Path) -> ShardStats:
    """One ``stats/shard-<tag>.json`` (path or fsspec URI)."""
    return _validate(ShardStats, _read_object(uri, what="shard stats"), uri=uri, what="shard stats")


def read_stage_stats(out_dir: str | Path) -> list[ShardStats]:
    """Every shard's stats under ``out_dir/stats`` in shard order ([] when the stage wrote none)."""
    fs, path = fsspec.core.url_to_fs(_join(out_dir, SHARD_STATS_DIR))
    if not fs.exists(path):
        return []
    names = sorted(str(p).rsplit("/", 1)[-1] for p in fs.glob(f"{path.rstrip('/')}/shard-*.json"))
    return [read_shard_stats(_join(out_dir, f"{SHARD_STATS_DIR}/{name}")) for name in names]


def write_shard_stats(out_dir: str | Path, stats: ShardStats, *, tag: str) -> str:
    """``out_dir/stats/shard-<tag>.json``; returns its path."""
    return _write_model(shard_stats_uri(out_dir, tag), stats)


# ---------------------------------------------------------------- completed.json (the pipeline state)


class CompletedPromotion(BaseModel):
    """``{state_dir}/completed.json``: the corpus whose promotion went live last (written after the deploy by
    incremental.plan.commit_promotion). The next plan over the same corpus is up to date; the studio opens that
    run's folder (``runs/{corpus_digest[:16]}``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    corpus_digest: str = Field(min_length=1)
    run_id: str = ""


def read_completed(state_dir: str | Path) -> CompletedPromotion | None:
    """``state_dir/completed.json`` (path or fsspec URI); None when no promotion went live yet."""
    uri = _join(state_dir, COMPLETED_FILE)
    fs, path = fsspec.core.url_to_fs(uri)
    if not fs.exists(path):
        return None
    return _validate(CompletedPromotion, _read_object(uri, what="promotion record"), uri=uri, what="promotion record")


def write_completed(state_dir: str | Path, record: CompletedPromotion) -> str:
    """``state_dir/completed.json``; returns its path."""
    return _write_model(_join(state_dir, COMPLETED_FILE), record)
