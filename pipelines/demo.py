"""`silverset demo`: the whole attribute-promotion pipeline through kfp.local on a synthetic corpus, then a
sample query against the served index and a simulated A/B analysis, in one work folder.

Steps: corpus synth -> demo golden set (from the corpus's known truth, labelled ``synthetic-truth``) ->
``run_local`` of the compiled pipeline (frames, embed shards, teacher gate, annotate shards, merge, distill,
student gate, approval with the demo-only auto-approve, score, restricted vocabulary + index, deploy to
``workdir/serve``) -> the local index server answers a user history of positives -> simulated A/B analysis.
The teacher is a local checkpoint: a small frames CNN (``components/teacher/frames_cnn.py``) trained once, and
cached in ``workdir/teacher``, on its OWN synthetic corpus (another seed, other frame sizes, JPEG frames, no
hard cases) with that corpus's truth; it never reads the demo corpus's truth. The demo corpus has hard cases
(``DEMO_HARD_CASE_SHARE``: dark crimson scenes, red logo blocks and brief red flashes on non-red scenes), so
the teacher makes real mistakes: on the 200-video demo (seed 0; measured 2026-11-30) its gate reads F1 0.952
[0.889, 1.000] against the golden set (80 videos from the corpus's truth), and the student trained on its labels
F1 0.918 [0.833, 0.982], retention 0.964. The embedded zero-shot teacher is then put through the same teacher
gate on the same golden set, for comparison (it fails: F1 0.604 [0.435, 0.754]). A second demo over
the same folder finds the corpus unchanged: the pipeline does nothing (zero teacher calls) and the
summary reports the run that made the live index.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from silverset.pipelines.local_progress import TaskEvent

DEMO_SPEC = "red_dominant.yaml"
DEMO_HARD_CASE_SHARE = 0.25  # share of videos with a hard case per attribute (see components/corpus/synth.py)
PIPELINE_STAGE = "attribute-promotion pipeline (kfp.local)"
# Library progress bars and chatter the demo turns off, in its own process and in every kfp.local task (they
# inherit the environment): tqdm (sentence-transformers' encode bars), Hugging Face Hub and transformers
# ("Loading weights" bars). A value the user set is kept.
QUIET_LIBRARIES = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Within the block, no library progress bars (``QUIET_LIBRARIES``), here and in the subprocesses started.

    The variables are read when the libraries are imported (tqdm, huggingface_hub, transformers): the demo
    imports them inside this block. huggingface_hub or transformers already imported have their bars switched off
    through their own calls too, for the rest of the process; the variables are removed again on leaving.
    """
    added = {name: value for name, value in QUIET_LIBRARIES.items() if name not in os.environ}
    os.environ.update(added)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextlib.contextmanager
def _stage(emit: Callable[[TaskEvent], None], name: str) -> Iterator[dict]:
    """Emit ``name``'s start, run the block, emit its end with seconds and what the block put in the yielded dict
    (``count``, ``unit``, ``note``); an exception ends it with status FAILURE and propagates."""
    emit(TaskEvent(task=name, phase="start"))
    result: dict = {}
    started, status = time.perf_counter(), "FAILURE"
    try:
        yield result
        status = "SUCCESS"
    finally:
        emit(
            TaskEvent(
                task=name,
                phase="end",
                seconds=time.perf_counter() - started,
                status=status,
                count=result.get("count"),
                unit=result.get("unit", ""),
                note=result.get("note", ""),
            )
        )


def _gate_summary(gate_dir: Path) -> dict:
    """passed, reasons and headline metrics (with CIs) of one gate.json; {} when the gate never ran."""
    from silverset.components.common.artifacts import GATE_FILE, read_gate

    if not (gate_dir / GATE_FILE).exists():
        return {}
    gate = read_gate(gate_dir)
    return {
        "kind": gate.gate,
        "passed": gate.passed,
        "reasons": gate.reasons,
        "metrics": {k: v for k, v in gate.metrics.items() if k != "slices"},
        "candidate_digest": gate.candidate_digest,
        "report": str(gate_dir / "report.html"),
    }


def _approval_record(store: Path, digest: str | None) -> dict:
    """The approval request for ``digest`` with its state as the audit chain says, and its audit trail."""
    if not digest or not store.exists():
        return {}
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.approval.store import open_store

    approvals = ApprovalService(open_store(f"sqlite:///{store}"))
    if approvals.store.load(digest) is None:
        return {}
    request = approvals.get(digest)
    return {
        "state": request.state.value,
        "decided_by": request.decided_by,
        "reason": request.reason,
        "decided_at": str(request.decided_at),
        "store": str(store),
        "audit": [
            {"action": e.action.value, "actor": e.actor, "at": str(e.at), "reason": e.reason}
            for e in approvals.audit(digest)
        ],
    }


def zero_shot_on_golden(*, spec_path: Path, manifest: str, golden: str, out: Path) -> dict:
    """Label the golden-set videos with the embedded zero-shot teacher and put it through the teacher gate.

    The demo promotes with a pixel-scoring checkpoint; this shows, on the same golden set, what the
    embedded default teacher (MiniLM over title/description) scores and whether the gate would let it
    label in bulk. Writes ``out/labels`` and ``out/gate``; returns the gate summary plus the teacher id.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from silverset.components.common import tables
    from silverset.components.common.golden import golden_video_ids
    from silverset.components.common.manifest import read_manifest
    from silverset.components.evaluate.gate import check_teacher
    from silverset.components.teacher.annotate import AnnotateOptions
    from silverset.components.teacher.annotate import run as annotate

    golden_ids = pa.array(golden_video_ids(str(golden)), pa.string())
    videos, _ = read_manifest(manifest)
    golden_manifest = out / "golden_manifest.parquet"
    tables.write_table(videos.filter(pc.is_in(videos.column("video_id"), golden_ids)), golden_manifest)
    labels = annotate(
        attribute_spec=str(spec_path),
        manifest_uri=str(golden_manifest),
        out_dir=str(out / "labels"),
        options=AnnotateOptions(teacher="zero-shot"),
    )
    check_teacher(
        attribute_spec=str(spec_path), golden_set=golden, predictions=str(out / "labels"), out_dir=str(out / "gate")
    )
    return {"teacher_id": labels.teacher_id, **_gate_summary(out / "gate")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_query(*, serve_root: Path, attribute: str, history: list[str], k: int = 10) -> dict:
    """Start the index server on a loopback port over ``serve_root``, POST one history search (the history's
    own videos excluded from the answer), stop it.

    Returns {"url", "request", "response"}; the response has results [{video_id, score}], index_version,
    triggered and affinity.
    """
    import httpx
    import uvicorn

    from silverset.components.index.server import ServerOptions, create_app

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(serve_root, ServerOptions(), poll=True), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        request = {"history": history, "k": k, "exclude": history}
        response = httpx.post(f"{url}/v1/attributes/{attribute}/search", json=request, timeout=30)
        response.raise_for_status()
        return {"url": f"{url}/v1/attributes/{attribute}/search", "request": request, "response": response.json()}
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def run_demo(
    *,
    workdir: str | Path = "demo-workdir",
    videos: int = 200,
    seed: int = 0,
    duration_s: float = 3.0,
    width: int = 320,
    height: int = 240,
    frames_per_video: int = 8,
    frame_size: int = 224,
    shards: int = 2,
    golden_share: float = 0.4,
    ab_users: int = 4_000,
    teacher: str = "local",
    teacher_budget_share: float = 0.5,
    hard_case_share: float = DEMO_HARD_CASE_SHARE,
    on_video: Callable[[str], None] | None = None,
    on_event: Callable[[TaskEvent], None] | None = None,
) -> dict:
    """Run the demo under ``workdir``; returns a summary dict (see ``print_summary`` in the CLI).

    ``teacher``: "local" (default) labels with the frames CNN teacher trained into ``workdir/teacher`` (once;
    reused by later demos); "zero-shot" uses the embedded text-only teacher, which the teacher gate may reject.
    ``teacher_budget_share``: the bulk teacher labels at most this share of the corpus (at least 10 videos; the
    golden set is labelled for the gate besides); the student scores every video. 0: the teacher labels all.

    ``workdir/corpus``: videos, manifest, truth; ``workdir/golden.parquet``; ``workdir/pipeline``: the
    pipeline's run folders, state, approvals.db, serve/ and run_summary.json; ``workdir/abtest``: the
    experiment and the closed loop (the index server runs it with an exposure log, ``ab_users`` simulated users
    search it, the analysis reads the server's log). ``on_video`` is called per synthesized video; ``on_event``
    as each demo stage, and each task of its pipeline (``within`` = ``PIPELINE_STAGE``), starts and ends, with
    its seconds and count. Library progress bars are off throughout (``quiet_libraries``).
    """
    with quiet_libraries():
        return _run_demo(
            workdir=workdir,
            videos=videos,
            seed=seed,
            duration_s=duration_s,
            width=width,
            height=height,
            frames_per_video=frames_per_video,
            frame_size=frame_size,
            shards=shards,
            golden_share=golden_share,
            ab_users=ab_users,
            teacher=teacher,
            teacher_budget_share=teacher_budget_share,
            hard_case_share=hard_case_share,
            on_video=on_video,
            emit=on_event or (lambda _: None),
        )


def _run_demo(
    *,
    workdir: str | Path,
    videos: int,
    seed: int,
    duration_s: float,
    width: int,
    height: int,
    frames_per_video: int,
    frame_size: int,
    shards: int,
    golden_share: float,
    ab_users: int,
    teacher: str,
    teacher_budget_share: float,
    hard_case_share: float,
    on_video: Callable[[str], None] | None,
    emit: Callable[[TaskEvent], None],
) -> dict:
    from silverset.components.abtest.experiment import create_experiment
    from silverset.components.common import schemas, tables
    from silverset.components.common.artifacts import (
        INDEX_MANIFEST_FILE,
        RUN_SUMMARY_FILE,
        PlanSummary,
        read_index_manifest,
        read_run_summary,
    )
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.corpus.synth import SynthOptions
    from silverset.components.corpus.synth import run as synth
    from silverset.components.incremental.plan import run_dir_of
    from silverset.components.index import pointer
    from silverset.components.teacher.frames_cnn import teacher_card, teacher_checkpoint
    from silverset.pipelines.attribute_promotion import PlatformOptions
    from silverset.pipelines.closed_loop import run_closed_loop
    from silverset.pipelines.distill_flow import golden_from_truth
    from silverset.pipelines.local_run import run_local

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path = example_specs_dir() / DEMO_SPEC
    spec = load_spec(spec_path)

    with _stage(emit, "corpus synth") as done:
        corpus = synth(
            out_dir=workdir / "corpus",
            options=SynthOptions(
                videos=videos,
                seed=seed,
                duration_s=duration_s,
                width=width,
                height=height,
                hard_case_share=hard_case_share,
            ),
            on_video=on_video,
        )
        done.update(count=corpus.videos, unit="videos", note=f"{corpus.errors} errors" if corpus.errors else "")
    with _stage(emit, "golden set (from the corpus's truth)") as done:
        golden = golden_from_truth(
            truth=corpus.truth_uri,
            attribute_spec=str(spec_path),
            out=str(workdir / "golden.parquet"),
            share=golden_share,
            seed=seed,
        )
        done.update(count=golden.items, unit="videos", note=f"{golden.positives} positive")
    checkpoint: Path | None = None
    if teacher == "local":  # trained once, kept across demos: same file, same teacher id
        with _stage(emit, "demo teacher: frames CNN on its own synthetic corpus") as done:
            cached = (workdir / "teacher").exists() and any((workdir / "teacher").glob("*/card.json"))
            checkpoint = teacher_checkpoint(workdir / "teacher", spec.name)
            done.update(note="reused from the workdir" if cached else "trained (cached for later demos)")

    pipeline_dir = workdir / "pipeline"
    budget = max(10, round(videos * teacher_budget_share)) if teacher_budget_share > 0 else 0
    with _stage(emit, PIPELINE_STAGE) as done:
        run = run_local(
            attribute_spec=spec_path,
            manifest_uri=corpus.manifest_uri,
            workdir=pipeline_dir,
            golden_set=golden.golden_set,
            options=PlatformOptions(shards=shards),
            params={
                "frames_per_video": frames_per_video,
                "frame_size": frame_size,
                "teacher_backend": teacher,
                "teacher_checkpoint": str(checkpoint or ""),
                "auto_approve_as": spec.approvers[0],
                "submitter": "silverset-demo",
                "teacher_budget_videos": budget,
            },
            on_task=lambda event: emit(replace(event, within=PIPELINE_STAGE)),
        )
        outcome = run.summary.outcome if run.summary is not None and run.status != "SUCCEEDED" else ""
        log = f"; kfp.local task log {run.log.relative_to(workdir)}" if run.log is not None else ""
        done.update(count=run.tasks, unit="tasks", note=f"{run.status}" + (f" ({outcome})" if outcome else "") + log)
    if not isinstance(run.plan, PlanSummary):
        raise RuntimeError(f"the pipeline run wrote no plan to follow ({run.status}: {run.error or run.plan})")
    run_dir = Path(run.plan.run_dir or run_dir_of(str(pipeline_dir), run.plan.corpus_digest))
    teacher_gate = _gate_summary(run_dir / "teacher_gate")
    student_gate = _gate_summary(run_dir / "student_gate")
    approval = _approval_record(pipeline_dir / "approvals.db", student_gate.get("candidate_digest"))
    index_dir = run_dir / "index"
    index_manifest = read_index_manifest(index_dir) if (index_dir / INDEX_MANIFEST_FILE).exists() else None
    serve_root = pipeline_dir / "serve"
    live = pointer.read_pointer(serve_root, spec.name)

    query: dict = {}
    if live:
        with _stage(emit, "sample query (local index server)") as done:
            truth = tables.read_table(corpus.truth_uri, schemas.TRUTH)
            positives = sorted(
                v
                for v, a, label in zip(
                    truth.column("video_id").to_pylist(),
                    truth.column("attribute").to_pylist(),
                    truth.column("label").to_pylist(),
                )
                if a == spec.name and label
            )
            query = sample_query(serve_root=serve_root, attribute=spec.name, history=positives[:5])
            hits = [r["video_id"] for r in query["response"]["results"]]
            query["positives_in_results"] = sum(1 for v in hits if v in set(positives))
            done.update(count=len(hits), unit="results", note=f"{query['positives_in_results']} positive")

    zero_shot: dict = {}
    if teacher != "zero-shot":
        with _stage(emit, "embedded zero-shot teacher on the golden set (for comparison)") as done:
            zero_shot = zero_shot_on_golden(
                spec_path=spec_path, manifest=corpus.manifest_uri, golden=golden.golden_set, out=workdir / "zero_shot"
            )
            done.update(note="teacher gate " + ("passed" if zero_shot.get("passed") else "failed"))

    ab: dict = {}
    if live:
        with _stage(emit, "A/B closed loop: the index server runs the experiment, simulated users search it") as done:
            experiment_dir = workdir / "abtest" / "experiment"
            create_experiment(spec=spec, salt=f"demo-{seed}", treatment_share=0.5, out_dir=experiment_dir)
            ab = run_closed_loop(
                serve_root=serve_root,
                attribute=spec.name,
                experiment_path=experiment_dir,
                out_dir=workdir / "abtest" / "closed_loop",
                users=ab_users,
                effect=2.0,
                seed=seed,
            )
            done.update(count=ab.get("requests"), unit="searches", note=f"{ab_users} simulated users")
    run_summary = read_run_summary(pipeline_dir) if (pipeline_dir / RUN_SUMMARY_FILE).exists() else None

    return {
        "workdir": str(workdir),
        "attribute": spec.key,
        "corpus": corpus.model_dump(),
        "golden": golden.model_dump(),
        "teacher": {
            "backend": teacher,
            "checkpoint": str(checkpoint or ""),
            "card": teacher_card(checkpoint) if checkpoint else {},
        },
        "pipeline": {
            "status": run.status,
            "wall_s": round(run.wall_s, 1),
            "tasks": run.tasks,
            "plan": run.plan.model_dump(mode="json"),
            "run_dir": str(run_dir),
            "run_summary": str(pipeline_dir / "run_summary.json"),
            "teacher_budget_videos": budget,
            "costs": run_summary.costs if run_summary is not None else {},
        },
        "teacher_gate": teacher_gate,
        "student_gate": student_gate,
        "approval": approval,
        "zero_shot_teacher": zero_shot,
        "index": {
            "version": index_manifest.version if index_manifest else None,
            "vocabulary": index_manifest.count if index_manifest else None,
            "history": index_manifest.history_count if index_manifest else None,
            "recall": index_manifest.build.get("recall") if index_manifest else None,
            "live_version": live,
            "serve_root": str(serve_root),
            "index_dir": str(run_dir / "index"),
        },
        "query": query,
        "abtest": ab,
    }


def write_demo_teacher(path: str | Path) -> str:
    """Write a hand-written ``red_dominant`` pixel scorer (TorchScript, local-teacher format) to ``path``.

    NOT the demo's teacher any more: on the synthetic corpus without hard cases it computes the truth (an
    oracle), which makes it a fast, predictable checkpoint for pipeline tests and benchmarks that need a
    local teacher but measure something else. logit = 12 * (share of pixels whose red channel exceeds both
    others by 0.25 - 0.3), over frames float32 [B, 8, 3, 64, 64] in [0, 1]; the text input is ignored.
    """
    import torch

    class RedShareScorer(torch.nn.Module):
        def forward(self, frames: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
            red = frames[:, :, 0] - torch.maximum(frames[:, :, 1], frames[:, :, 2])
            share = (red > 0.25).float().mean(dim=(1, 2, 3))
            return 12.0 * (share - 0.3)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(RedShareScorer()), str(path))
    return str(path)
