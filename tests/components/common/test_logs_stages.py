"""Each long-running stage's log: INFO start/end with counts, skipped items as a WARNING with count, reason and
first ids (they are in the errors table), DEBUG per item; no secret in any record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import av
import numpy as np
import pytest

from silverset.components.common import tables


@pytest.fixture
def stage_log(caplog):
    caplog.set_level(logging.DEBUG, logger="silverset")
    return caplog


def _at(caplog, level: int, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name == name]


def _video(path: Path, frames: int = 6) -> Path:
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=10, options={"preset": "ultrafast", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(frames):
            image = np.full((32, 32, 3), 20 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_frames_logs_its_counts_and_the_videos_it_dropped(tmp_path, stage_log):
    from silverset.components.frames import pipeline
    from silverset.components.frames.extract import FrameOptions

    rows = [
        {"video_id": "good", "uri": str(_video(tmp_path / "good.mp4"))},
        {"video_id": "gone1", "uri": str(tmp_path / "gone1.mp4")},
        {"video_id": "gone2", "uri": str(tmp_path / "gone2.mp4")},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = pipeline.run(
        manifest_uri=str(manifest), out_dir=str(tmp_path / "frames"), options=FrameOptions(frames_per_video=2, size=32)
    )
    name = "silverset.components.frames.pipeline"
    assert _at(stage_log, logging.WARNING, name) == [
        "frames [shard 0/1]: 2 of 3 videos written to the errors table (missing_file 2); first: gone1, gone2"
    ]
    assert {e["key"] for e in tables.read_errors(tmp_path / "frames").to_pylist()} == {"gone1", "gone2"}
    infos = _at(stage_log, logging.INFO, name)
    assert infos[0].startswith("frames [shard 0/1]: 3 videos, 2 frames each")
    assert infos[-1] == f"frames [shard 0/1]: 1 videos, 2 frames, 2 errors in {summary.seconds:.1f} s"
    assert sorted(_at(stage_log, logging.DEBUG, name)) == [
        "gone1: no frames (missing_file)",
        "gone2: no frames (missing_file)",
        "good: 2 frames",
    ]


def test_embed_logs_videos_without_frames_and_its_end_counts(tmp_path, stage_log):
    from silverset.components.embed import embed
    from tests.helpers import factories

    videos = {f"v{i}": factories.VIDEO_KINDS[i % 5] for i in range(6)}
    frames = factories.write_frames(tmp_path / "frames", {k: videos[k] for k in ["v0", "v1", "v2", "v3"]}, n=3)
    manifest = factories.write_manifest(tmp_path / "manifest.csv", videos)
    summary = embed.run(
        frames_uri=str(frames),
        manifest_uri=str(manifest),
        out_dir=str(tmp_path / "emb"),
        options=embed.EmbedOptions(embedder="visual", with_text=False),
    )
    name = "silverset.components.embed.embed"
    assert _at(stage_log, logging.WARNING, name) == [
        "embed [shard 0/1]: 2 video(s) skipped before the embedder and written to the errors table (no_frames 2); "
        "first: v4, v5"
    ]
    assert {e["key"] for e in tables.read_errors(tmp_path / "emb").to_pylist()} == {"v4", "v5"}
    end = _at(stage_log, logging.INFO, name)[-1]
    assert end.startswith(
        f"embed [shard 0/1]: 4 embedded, 2 errors {{'no_frames': 2}}, 0 resumed, 0 remaining in "
        f"{summary.stats.seconds:.1f} s"
    )


def test_distill_logs_unlabelled_embeddings_training_and_the_result(tmp_path, stage_log):
    import pyarrow.parquet as pq

    from silverset.components.distill import train
    from silverset.components.distill.student import StudentOptions
    from tests.helpers import factories

    data = factories.write_synthetic(tmp_path, n=120)
    labels = pq.read_table(data["labels"])
    pq.write_table(labels.slice(3), data["labels"])  # the first 3 videos lose their teacher label
    result = train.run(
        embeddings=data["embeddings"],
        labels=data["labels"],
        attribute_spec=factories.SPEC,
        out_dir=str(tmp_path / "model"),
        options=StudentOptions(max_epochs=30),
        measure_latency=False,
    )
    name = "silverset.components.distill.train"
    assert _at(stage_log, logging.WARNING, name) == [
        f"distill {result.attribute}: 3 of 120 embeddings left out of training and written to the errors table "
        "(no_teacher_label 3); first: v00000, v00001, v00002"
    ]
    assert sorted(tables.read_errors(tmp_path / "model").column("key").to_pylist()) == ["v00000", "v00001", "v00002"]
    infos = _at(stage_log, logging.INFO, name)
    assert infos[0].startswith(f"distill {result.attribute}: training a mlp student on 117 videos (16 dims")
    assert f"held-out F1 vs teacher {result.held_out_f1_vs_teacher:.3f}" in infos[-1]
    assert result.model_digest in infos[-1]
    epochs = [m for m in _at(stage_log, logging.DEBUG, name) if m.startswith("epoch ")]
    assert 1 <= len(epochs) <= 30


def test_index_build_logs_dropped_scores_its_vocabulary_and_the_version(tmp_path, stage_log):
    from silverset.components.index import build
    from tests.helpers.indexes import clustered, tiny_index_spec, write_inputs

    spec = tiny_index_spec(tmp_path)
    probabilities = np.linspace(0, 1, 300)
    scores, embeddings, ids = write_inputs(tmp_path, clustered(300, 16), probabilities, missing_embedding=2)
    summary = build.run(
        scores=str(scores), embeddings=str(embeddings), attribute_spec=str(spec), out_dir=str(tmp_path / "ix")
    )
    name = "silverset.components.index.build"
    (warning,) = _at(stage_log, logging.WARNING, name)
    assert (
        warning.startswith("index red_dominant")
        and "2 scored video(s) left out of the index and written to the errors table" in warning
        and warning.endswith(f"first: {ids[0]}, {ids[1]}")
    )
    start, end = _at(stage_log, logging.INFO, name)
    assert f": {summary.vocabulary} of 298 scored videos in the vocabulary (16 dims), brute_force" in start
    assert f"version {summary.version}, {summary.vocabulary} vectors, brute_force, recall@" in end
    assert int((probabilities[2:].astype(np.float32) >= 0.5).sum()) == summary.vocabulary


def test_deploy_logs_refusals_the_pointer_move_and_a_failed_rollout_without_secrets(tmp_path, stage_log):
    import json
    import shutil

    from silverset.components.approval.model import GateResult
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.approval.store import SqliteApprovalStore
    from silverset.components.common.errors import GateFailed
    from silverset.components.common.spec import example_specs_dir, load_spec
    from silverset.components.deploy import deploy
    from tests.helpers.indexes import DIGEST, build_tiny_index, tiny_index_spec

    built = build_tiny_index(tmp_path / "built", tiny_index_spec(tmp_path))
    index = tmp_path / "index"
    shutil.copytree(built[0], index)
    version = built[3].version
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"passed": True, "reasons": [], "metrics": {}, "candidate_digest": DIGEST}))
    store = tmp_path / "approvals.db"
    service = ApprovalService(SqliteApprovalStore(store))
    service.submit(
        gate=GateResult.model_validate_json(gate.read_text()),
        spec=load_spec(example_specs_dir() / "red_dominant.yaml"),
        submitter="ci",
    )
    args = dict(
        index_dir=str(index), gate_result=str(gate), approval_store=str(store), serve_root=str(tmp_path / "serve")
    )
    with pytest.raises(GateFailed):
        deploy.run(**args)
    (refusal,) = _at(stage_log, logging.ERROR, "silverset.components.deploy.deploy")
    assert refusal.startswith("deploy red_dominant refused: candidate sha256:abababab") and "no approval" in refusal

    service.approve(DIGEST, user="alice@silverset.dev", reason="ok")
    deploy.run(**args)
    local = "silverset.components.deploy.local"
    assert _at(stage_log, logging.INFO, local)[-1] == (
        f"red_dominant: CURRENT is now {version} under {tmp_path / 'serve'} (was None)"
    )
    deploy.run(**args)
    assert _at(stage_log, logging.INFO, local)[-1].endswith(
        "is already live under " + str(tmp_path / "serve") + "; nothing to do"
    )

    shutil.rmtree(tmp_path / "serve")
    with pytest.raises(GateFailed):  # nothing listens on port 9: the rollout never shows up, the pointer goes back
        deploy.run(
            **args,
            options=deploy.DeployOptions(
                server_url="http://ops:pa55word@127.0.0.1:9", timeout_s=0.5, server_token="BEARER-SECRET-42"
            ),
        )
    warnings = _at(stage_log, logging.WARNING, local)
    assert len(warnings) == 1 and warnings[0].startswith("red_dominant: poll 1 of http://127.0.0.1:9 failed (")
    (rolled_back,) = _at(stage_log, logging.ERROR, local)
    assert (
        rolled_back == f"red_dominant: http://127.0.0.1:9 did not serve {version} within 0.5 s; CURRENT rolled back "
        "to None"
    )
    for secret in ("pa55word", "BEARER-SECRET-42"):
        assert secret not in stage_log.text and not any(secret in r.getMessage() for r in stage_log.records)


def test_notify_logs_webhook_retries_with_attempt_status_and_wait_but_never_the_hook_path(stage_log):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from silverset.components.notify import webhook

    answers = [503, 429, 204]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(answers.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/services/T0/B0/HOOK-SECRET-77"
    try:
        result = webhook.run(
            run_id="r1", status="SUCCEEDED", webhook_url=url, options=webhook.NotifyOptions(attempts=4, backoff_s=0.01)
        )
    finally:
        server.shutdown()
    assert result.webhook_status == 204 and result.attempts == 3
    name = "silverset.components.notify.webhook"
    where = f"http://127.0.0.1:{server.server_port}/..."
    assert _at(stage_log, logging.WARNING, name) == [
        f"webhook {where}: HTTP 503 on attempt 1/4; retrying in 0.01 s",
        f"webhook {where}: HTTP 429 on attempt 2/4; retrying in 0.02 s",
    ]
    assert f"webhook {where} answered HTTP 204 on attempt 3" in _at(stage_log, logging.INFO, name)
    assert "HOOK-SECRET-77" not in stage_log.text


def test_notify_logs_a_webhook_that_never_answers_as_given_up(stage_log):
    from silverset.components.notify import webhook

    result = webhook.run(
        run_id="r2",
        status="FAILED",
        webhook_url="http://127.0.0.1:9/x/TOKEN-9",
        options=webhook.NotifyOptions(attempts=2, backoff_s=0.01),
    )
    assert result.webhook_status is None and result.attempts == 2
    warnings = _at(stage_log, logging.WARNING, "silverset.components.notify.webhook")
    assert [w.split(": ", 1)[1].split(";")[0] for w in warnings] == [
        "ConnectError on attempt 1/2",
        "ConnectError on attempt 2/2",
    ]
    assert "gave up" in warnings[-1] and "TOKEN-9" not in stage_log.text


def test_incremental_plan_logs_its_diff_and_the_videos_it_cannot_plan(tmp_path, stage_log):
    from silverset.components.common.spec import example_specs_dir
    from silverset.components.incremental import plan

    for name in ("a", "b"):
        (tmp_path / f"{name}.mp4").write_bytes(name.encode() * 100)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,uri,title\n" + "".join(f"{v},{tmp_path / v}.mp4,t {v}\n" for v in ("a", "b", "gone")))
    summary = plan.run(
        manifest_uri=str(manifest),
        attribute_spec=str(example_specs_dir() / "red_dominant.yaml"),
        state_dir=str(tmp_path / "state"),
        out_dir=str(tmp_path / "plan"),
    )
    name = "silverset.components.incremental.plan"
    assert _at(stage_log, logging.WARNING, name) == [
        "plan: 1 of 3 manifest videos cannot be planned (unreadable_video 1; a written plan lists them in its "
        "errors.parquet); first: gone"
    ]
    assert tables.read_errors(tmp_path / "plan").column("key").to_pylist() == ["gone"]
    (end,) = _at(stage_log, logging.INFO, name)
    assert summary.todo == 2 and ": 3 videos: 2 to do (2 new, 0 changed, relabel all), 0 unchanged" in end
    assert "1 errors; teacher sample 2" in end


def test_a_teacher_budget_that_leaves_videos_for_later_is_a_warning(stage_log):
    import pyarrow as pa

    from silverset.components.incremental.sample import TeacherBudget, choose_sample

    manifest = pa.table({"video_id": [f"v{i}" for i in range(8)], "uri": [f"file:///v{i}.mp4" for i in range(8)]})
    chosen, choice = choose_sample(manifest, TeacherBudget(videos=3))
    (warning,) = _at(stage_log, logging.WARNING, "silverset.components.incremental.sample")
    left = [v for v in manifest.column("video_id").to_pylist() if v not in set(chosen.column("video_id").to_pylist())]
    assert warning.startswith("teacher budget (3 videos, $0.0000): 3 of 8 due videos chosen by ")
    assert "; 5 left for a later run (not errors), first: " in warning
    assert set(warning.split("first: ")[1].split(", ")) == set(left)
    choose_sample(manifest, TeacherBudget())  # no cap: every video is chosen, nothing to warn about
    assert len(_at(stage_log, logging.WARNING, "silverset.components.incremental.sample")) == 1


def test_abtest_analysis_logs_dropped_users_and_its_result(tmp_path, stage_log):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from silverset.components.abtest import analyze, simulate
    from silverset.components.abtest.promotion import simulate_logs

    logs = simulate_logs(out_dir=tmp_path / "logs", options=simulate.SimulationOptions(users=3000, seed=1))
    outcomes = pq.read_table(logs["outcomes"])
    orphans = outcomes.slice(0, 2).set_column(0, "user_id", pa.array(["ghost-1", "ghost-2"]))
    pq.write_table(pa.concat_tables([outcomes, orphans]), logs["outcomes"])
    summary = analyze.run(
        exposures=logs["exposures"],
        outcomes=logs["outcomes"],
        covariates=logs["covariates"],
        out_dir=tmp_path / "analysis",
        options=analyze.AnalysisOptions(bootstrap_samples=0),
    )
    name = "silverset.components.abtest.analyze"
    assert _at(stage_log, logging.WARNING, name)[0] == (
        "abtest: 2 user row(s) left out of the analysis and written to the errors table (not_exposed 2); "
        "first: ghost-1, ghost-2"
    )
    assert sorted(tables.read_errors(tmp_path / "analysis").column("key").to_pylist()) == ["ghost-1", "ghost-2"]
    infos = _at(stage_log, logging.INFO, name)
    assert infos[0].startswith("abtest: 3000 exposed users, metrics ")
    assert infos[-1].startswith(f"abtest: {summary.users_analysed} of 3002 users analysed, 2 errors, SRM p ")
    assert ("checks passed" if summary.passed else "checks failed") in infos[-1]
