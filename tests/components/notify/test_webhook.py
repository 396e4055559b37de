"""The exit handler's webhook: a person gets the run's outcome, failures included; cleanup frees the state."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from silverset.components.incremental import plan as incremental_plan
from silverset.components.incremental import state
from silverset.components.notify import webhook


@pytest.fixture()
def receiver():
    """A loopback webhook endpoint; answers 503 to the first ``fail_first`` posts."""
    received: list[dict] = []
    config = {"fail_first": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if config["fail_first"] > 0:
                config["fail_first"] -= 1
                self.send_response(503)
                self.end_headers()
                return
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received, config
    server.shutdown()


def test_failed_run_is_posted_with_its_error_and_releases_the_lock(tmp_path, receiver):
    url, received, config = receiver
    config["fail_first"] = 2  # the webhook is flaky: two 503s, then it answers
    state_dir = str(tmp_path / "state")
    state.acquire_lock(state_dir, run_id="run-7")
    (tmp_path / "work" / "._staging-frames-abc").mkdir(parents=True)
    result = webhook.run(run_id="run-7", status="FAILED", error_message="teacher gate: f1 0.41 < 0.6",
                         webhook_url=url, workdir=str(tmp_path / "work"), state_dir=state_dir, backoff_s=0.01)
    assert result.webhook_status == 200 and result.attempts == 3
    assert received[0]["status"] == "FAILED" and "teacher gate" in received[0]["text"]
    assert result.released_lock and result.removed_staging == 1 and not result.marked_completed
    state.acquire_lock(state_dir, run_id="run-8")  # the next scheduled run can start


def test_success_marks_the_corpus_completed(tmp_path, receiver):
    url, received, _ = receiver
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "plan.json").write_text(json.dumps({"corpus_digest": "abc", "todo": 3, "videos": 10}))
    result = webhook.run(run_id="r", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path),
                         state_dir=str(tmp_path / "state"), plan_dir=str(plan_dir))
    assert result.marked_completed
    assert json.loads((tmp_path / "state" / incremental_plan.COMPLETED_FILE).read_text())["corpus_digest"] == "abc"
    assert "3 of 10 videos" in received[0]["text"]
    assert json.loads((tmp_path / "run_summary.json").read_text())["status"] == "SUCCEEDED"


def test_unreachable_webhook_does_not_raise(tmp_path):
    result = webhook.run(run_id="r", status="SUCCEEDED", webhook_url="http://127.0.0.1:9/none",
                         workdir=str(tmp_path), attempts=2, backoff_s=0.01)
    assert result.webhook_status is None and result.attempts == 2


def test_the_summary_says_which_gate_stopped_the_run_and_which_index_it_built(tmp_path, receiver):
    url, received, _ = receiver
    run_dir = tmp_path / "runs" / "abc"
    (run_dir / "teacher_gate").mkdir(parents=True)
    (run_dir / "teacher_gate" / "gate.json").write_text(json.dumps({"passed": True, "reasons": []}))
    (run_dir / "student_gate").mkdir()
    (run_dir / "student_gate" / "gate.json").write_text(json.dumps({"passed": False, "reasons": ["F1 retention 0.80 < 0.95"]}))
    plan_dir = tmp_path / "plan"
    plan_dir.mkdir()
    (plan_dir / "plan.json").write_text(json.dumps({"corpus_digest": "abc", "todo": 3, "videos": 10,
                                                    "run_dir": str(run_dir)}))
    webhook.run(run_id="r", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path), plan_dir=str(plan_dir))
    text = received[0]["text"]
    assert "teacher gate passed" in text and "student gate FAILED (F1 retention 0.80 < 0.95)" in text
    assert received[0]["gates"]["student_gate"]["passed"] is False and received[0]["index_version"] == ""

    (run_dir / "student_gate" / "gate.json").write_text(json.dumps({"passed": True, "reasons": []}))
    (run_dir / "index").mkdir()
    (run_dir / "index" / "manifest.json").write_text(json.dumps({"version": "v-123"}))
    webhook.run(run_id="r2", status="SUCCEEDED", webhook_url=url, workdir=str(tmp_path), plan_dir=str(plan_dir))
    assert received[1]["text"].endswith("student gate passed; index v-123")
