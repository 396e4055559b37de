"""A loopback fake of the Gemini REST API (v1beta generateContent and the Batch API), with fault injection.

It speaks the real wire shapes (candidates / finishReason / usageMetadata, google.rpc error bodies,
Retry-After, batch Operations with inlinedResponses) so tests drive the real ``google-genai`` client.
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from tests.fakes.loopback import JsonHandler

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass
class FakeGemini:
    """State and behaviour of the fake. Faults per video are scripted by attempt: e.g. ``{"v1": ["429", "ok"]}``.

    Fault kinds: "429", "500", "503", "slow" (sleeps ``slow_s`` first), "malformed" (text that is not JSON),
    "safety" (finishReason SAFETY), "empty" (no candidates), "ok".
    """

    api_key: str = "test-key"
    latency_s: float = 0.0
    slow_s: float = 5.0
    retry_after_s: float = 0.05
    faults: dict[str, list[str]] = field(default_factory=dict)
    fault_rate: float = 0.0  # random 429/500/503 on any request, seeded
    seed: int = 0
    rate_limit_rps: float | None = None  # server-side limit: 429 beyond it
    truth: dict[str, int] = field(default_factory=dict)
    batch_polls: int = 2
    paid: Counter = field(default_factory=Counter)  # video_id -> answers billed (200 with a candidate or a block)
    attempts: Counter = field(default_factory=Counter)  # video_id -> requests received
    rate_limited: int = 0  # requests refused by the server-side rate limit (a subset of the 429s)
    api_keys_seen: set = field(default_factory=set)
    log: list = field(default_factory=list)  # (time, video_id, status)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._batches: dict[str, dict] = {}
        self._window: list[float] = []

    def _fault(self, video_id: str) -> str:
        with self._lock:
            n = self.attempts[video_id]
            self.attempts[video_id] += 1
            script = self.faults.get(video_id, [])
            if n < len(script):
                return script[n]
            if self.rate_limit_rps:
                now = time.monotonic()
                self._window = [t for t in self._window if now - t < 1.0]
                if len(self._window) >= self.rate_limit_rps:
                    self.rate_limited += 1
                    return "429"
                self._window.append(now)
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(["429", "500", "503"])
            return "ok"

    def label_of(self, video_id: str) -> int:
        if video_id in self.truth:
            return self.truth[video_id]
        return hashlib.sha256(video_id.encode()).digest()[0] % 2

    def answer(self, request: dict, video_id: str, kind: str) -> dict:
        """A generateContent response body for ``kind`` in ok / malformed / safety / empty."""
        parts = request.get("contents", [{}])[0].get("parts", [])
        images = 0
        for p in parts:
            if "inlineData" in p:
                base64.urlsafe_b64decode(p["inlineData"]["data"])  # google-genai sends URL-safe base64
                images += 1
        usage = {"promptTokenCount": 258 * images + 200, "candidatesTokenCount": 40, "thoughtsTokenCount": 100,
                 "totalTokenCount": 258 * images + 340}
        if kind == "empty":
            return {"promptFeedback": {"blockReason": "OTHER"}, "usageMetadata": usage}
        if kind == "safety":
            return {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]}],
                "usageMetadata": usage}
        label = self.label_of(video_id)
        classes = request.get("generationConfig", {}).get("responseSchema", {}).get("properties", {}) \
            .get("label", {}).get("enum", ["negative", "positive"])
        text = json.dumps({"label": classes[label], "probability": 0.9 if label else 0.1,
                           "rationale": f"fake verdict for {video_id}"})
        if kind == "malformed":
            text = '{"label": "positive", "probab'
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP",
                                "index": 0}], "usageMetadata": usage, "modelVersion": "fake"}


def _video_id(request: dict) -> str:
    for part in request.get("contents", [{}])[0].get("parts", []):
        match = re.search(r"video_id: (\S+)", part.get("text", ""))
        if match:
            return match.group(1)
    return "<unknown>"


def _handler(fake: FakeGemini):
    class Handler(JsonHandler):
        protocol_version = "HTTP/1.1"
        content_type = "application/json; charset=UTF-8"

        def _error(self, status: int, message: str, headers: dict | None = None) -> None:
            body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
            self._send(status, body, headers)

        def _auth(self) -> bool:
            key = self.headers.get("x-goog-api-key")
            fake.api_keys_seen.add(key)
            if key != fake.api_key:
                self._error(403 if key else 401, "API key not valid. Please pass a valid API key.")
                return False
            return True

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            if not self._auth():
                return
            match = re.match(r"^/v1(?:beta|alpha)?/models/([^/:]+):(generateContent|batchGenerateContent)$", self.path)
            if not match:
                return self._error(404, f"unknown path {self.path}")
            if match.group(2) == "batchGenerateContent":
                return self._create_batch(match.group(1), body)
            video_id = _video_id(body)
            kind = fake._fault(video_id)
            if fake.latency_s:
                time.sleep(fake.latency_s)
            if kind == "slow":
                time.sleep(fake.slow_s)
                kind = "ok"
            if kind in ("429", "500", "503"):
                status = int(kind)
                with fake._lock:
                    fake.log.append((time.monotonic(), video_id, status))
                headers = {"Retry-After": f"{fake.retry_after_s:g}"} if status == 429 else None
                message = "Resource has been exhausted (e.g. check quota)." if status == 429 else "An internal error has occurred."
                return self._error(status, message, headers)
            response = fake.answer(body, video_id, kind)
            with fake._lock:
                fake.paid[video_id] += 1
                fake.log.append((time.monotonic(), video_id, 200))
            self._send(200, response)

        def _create_batch(self, model: str, body: dict) -> None:
            requests = body["batch"]["inputConfig"]["requests"]["requests"]
            with fake._lock:
                name = f"batches/fake{len(fake._batches) + 1}"
                fake._batches[name] = {"model": model, "requests": requests, "polls": 0}
            self._send(200, self._operation(name))

        def _operation(self, name: str) -> dict:
            job = fake._batches[name]
            done = job["polls"] >= fake.batch_polls
            meta = {"@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                    "name": name, "model": f"models/{job['model']}", "displayName": "silverset",
                    "state": "BATCH_STATE_SUCCEEDED" if done else "BATCH_STATE_RUNNING"}
            if done:
                if "responses" not in job:
                    answers = []
                    for r in job["requests"]:
                        video_id = _video_id(r["request"])
                        with fake._lock:
                            fake.attempts[video_id] += 1
                            fake.paid[video_id] += 1
                        answers.append({"response": fake.answer(r["request"], video_id, "ok"),
                                        "metadata": r.get("metadata")})
                    job["responses"] = answers
                meta["output"] = {"inlinedResponses": {"inlinedResponses": job["responses"]}}
            return {"name": name, "metadata": meta, "done": done}

        def do_GET(self):  # noqa: N802
            if not self._auth():
                return
            match = re.match(r"^/v1(?:beta|alpha)?/(batches/[^/?]+)", self.path)
            if not match or match.group(1) not in fake._batches:
                return self._error(404, f"unknown path {self.path}")
            fake._batches[match.group(1)]["polls"] += 1
            self._send(200, self._operation(match.group(1)))

    return Handler


class GeminiServer:
    """``with GeminiServer(FakeGemini(...)) as server: server.url``: runs the fake on a loopback port."""

    def __init__(self, fake: FakeGemini | None = None):
        self.fake = fake or FakeGemini()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.fake))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "GeminiServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
