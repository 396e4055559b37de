"""A loopback fake of the KFP API server (v2beta1 REST), enough for ``kfp.Client`` to submit and schedule.

Speaks: GET /apis/v2beta1/healthz; experiments create/list (with a display_name filter)/get; pipelines
upload (multipart) and list; runs create/list/get; recurringruns create/list (by experiment and with a
display_name filter)/get/delete. Stored objects are kept in memory and returned in the same JSON shape the
real server uses, so the real client deserializes them. A run's ``run_details.task_details`` can be set by a
test (``set_task_states``) as the real backend fills it from the run's Argo workflow.
"""

from __future__ import annotations

import cgi
import io
import json
import threading
import uuid
from datetime import datetime, timezone
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import yaml

from tests.fakes.loopback import JsonHandler

PREFIX = "/apis/v2beta1"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeKfpApiServer:
    """``with FakeKfpApiServer() as kfp: kfp.Client(host=kfp.host)``; inspect ``kfp.runs`` etc. afterwards."""

    def __init__(self) -> None:
        self.experiments: dict[str, dict] = {}
        self.pipelines: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self._server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "FakeKfpApiServer":
        fake = self

        class Handler(JsonHandler):
            def do_GET(self):  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("GET", url.path))
                self._send(*fake.get(url.path.removeprefix(PREFIX), parse_qs(url.query)))

            def do_POST(self):  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("POST", url.path))
                path = url.path.removeprefix(PREFIX)
                if path == "/pipelines/upload":
                    form = cgi.FieldStorage(fp=self.rfile, headers=self.headers, environ={"REQUEST_METHOD": "POST"})
                    self._send(*fake.upload(form["uploadfile"].file.read(), parse_qs(url.query)))
                    return
                self._send(*fake.post(path, self._body()))

            def do_DELETE(self):  # noqa: N802
                url = urlparse(self.path)
                fake.requests.append(("DELETE", url.path))
                self._send(*fake.delete(url.path.removeprefix(PREFIX)))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    def set_task_states(self, run_id: str, state: str, tasks: dict[str, str]) -> None:
        """Finish a run as the backend would report it: its state and each task's (display name -> state)."""
        self.runs[run_id]["state"] = state
        self.runs[run_id]["run_details"] = {
            "task_details": [
                {"run_id": run_id, "task_id": str(uuid.uuid4()), "display_name": name, "state": task_state}
                for name, task_state in tasks.items()
            ]
        }

    # --- protocol -------------------------------------------------------------------------------
    @staticmethod
    def _filtered(items: list[dict], query: dict) -> list[dict]:
        if "filter" not in query:
            return items
        for p in json.loads(query["filter"][0]).get("predicates", []):
            if p.get("operation") not in ("EQUALS", 1):
                raise ValueError(f"the fake supports only EQUALS filters, got {p.get('operation')}")
            items = [i for i in items if i.get(p["key"]) == p.get("stringValue", p.get("string_value"))]
        return items

    @staticmethod
    def _not_found(what: str) -> tuple[int, dict]:
        return 404, {"error": f"{what} not found", "code": 5, "message": f"{what} not found"}

    @staticmethod
    def _bad(message: str) -> tuple[int, dict]:
        return 400, {"error": message, "code": 3, "message": message}

    def get(self, path: str, query: dict) -> tuple[int, dict]:
        if path == "/healthz":
            return 200, {"multi_user": False}
        if path == "/experiments":
            items = self._filtered(list(self.experiments.values()), query)
            return 200, {"experiments": items, "total_size": len(items)}
        if path.startswith("/experiments/"):
            exp = self.experiments.get(path.split("/")[2])
            return (200, exp) if exp else self._not_found("experiment")
        if path == "/pipelines":
            return 200, {"pipelines": list(self.pipelines.values()), "total_size": len(self.pipelines)}
        if path == "/runs":
            items = list(self.runs.values())
            if "experiment_id" in query:
                items = [r for r in items if r["experiment_id"] == query["experiment_id"][0]]
            size = int(query.get("page_size", ["10"])[0])
            return 200, {"runs": items[:size], "total_size": len(items)}
        if path.startswith("/runs/"):
            run = self.runs.get(path.split("/")[2])
            return (200, run) if run else self._not_found("run")
        if path == "/recurringruns":
            items = self._filtered(list(self.recurring_runs.values()), query)
            if "experiment_id" in query:
                items = [j for j in items if j.get("experiment_id") == query["experiment_id"][0]]
            return 200, {"recurringRuns": items, "recurring_runs": items, "total_size": len(items)}
        if path.startswith("/recurringruns/"):
            job = self.recurring_runs.get(path.split("/")[2])
            return (200, job) if job else self._not_found("recurring run")
        return self._not_found(path)

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        if path == "/experiments":
            if not body.get("display_name"):
                return self._bad("experiment display_name is required")
            exp = {
                "experiment_id": str(uuid.uuid4()),
                "display_name": body["display_name"],
                "description": body.get("description") or "",
                "created_at": _now(),
                "namespace": body.get("namespace") or "",
                "storage_state": "AVAILABLE",
            }
            self.experiments[exp["experiment_id"]] = exp
            return 200, exp
        if path == "/runs":
            problem = self._check_job(body)
            if problem:
                return self._bad(problem)
            run = dict(body, run_id=str(uuid.uuid4()), created_at=_now(), state="PENDING", storage_state="AVAILABLE")
            self.runs[run["run_id"]] = run
            return 200, run
        if path == "/recurringruns":
            problem = self._check_job(body)
            trigger = body.get("trigger") or {}
            if not problem and not (trigger.get("cron_schedule") or trigger.get("periodic_schedule")):
                problem = "recurring run needs a trigger (cron_schedule or periodic_schedule)"
            if problem:
                return self._bad(problem)
            job = dict(
                body,
                recurring_run_id=str(uuid.uuid4()),
                created_at=_now(),
                updated_at=_now(),
                status="ENABLED" if body.get("mode", "ENABLE") == "ENABLE" else "DISABLED",
                max_concurrency=str(body.get("max_concurrency") or "1"),
            )
            self.recurring_runs[job["recurring_run_id"]] = job
            return 200, job
        return self._not_found(path)

    def delete(self, path: str) -> tuple[int, dict]:
        if path.startswith("/recurringruns/"):
            job = self.recurring_runs.pop(path.split("/")[2], None)
            return (200, {}) if job else self._not_found("recurring run")
        return self._not_found(path)

    def _check_job(self, body: dict) -> str | None:
        if body.get("experiment_id") and body["experiment_id"] not in self.experiments:
            return f"experiment {body['experiment_id']} does not exist"
        if not body.get("display_name"):
            return "display_name is required"
        spec = body.get("pipeline_spec")
        if not spec and not body.get("pipeline_version_reference"):
            return "either pipeline_spec or pipeline_version_reference is required"
        if spec and "pipeline_spec" in spec:  # a spec with platform config: {pipeline_spec, platform_spec}
            spec = spec["pipeline_spec"]
        if spec and not (spec.get("root") and spec.get("components") and spec.get("pipelineInfo")):
            return "pipeline_spec is not a compiled KFP v2 PipelineSpec"
        declared = set(((spec or {}).get("root", {}).get("inputDefinitions", {}) or {}).get("parameters", {}))
        given = set(((body.get("runtime_config") or {}).get("parameters") or {}))
        unknown = given - declared
        if spec and unknown:
            return f"unknown pipeline parameter(s): {sorted(unknown)}"
        return None

    def upload(self, data: bytes, query: dict) -> tuple[int, dict]:
        try:
            docs = list(yaml.safe_load_all(io.BytesIO(data)))
        except yaml.YAMLError as exc:
            return self._bad(f"not a pipeline package: {exc}")
        if not docs or "pipelineInfo" not in docs[0]:
            return self._bad("not a compiled KFP v2 pipeline")
        name = query.get("name", [docs[0]["pipelineInfo"]["name"]])[0]
        pipe = {"pipeline_id": str(uuid.uuid4()), "display_name": name, "created_at": _now()}
        self.pipelines[pipe["pipeline_id"]] = pipe
        return 200, pipe
