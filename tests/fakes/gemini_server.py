"""A loopback fake of the Gemini REST API (v1beta generateContent and the Batch API), with fault injection.

It speaks today's wire shapes so tests drive the real ``google-genai`` client into what the service does:
candidates / finishReason (SAFETY, IMAGE_SAFETY, PROHIBITED_CONTENT, MAX_TOKENS) / promptFeedback /
usageMetadata with thoughtsTokenCount; google.rpc error bodies: 429 RESOURCE_EXHAUSTED with QuotaFailure,
Help and RetryInfo (``"retryDelay": "22s"``) in ``details`` and no Retry-After header, 404 NOT_FOUND for
a model it does not serve (retired or unknown), 503 UNAVAILABLE "The model is overloaded", 400
INVALID_ARGUMENT; a per-key quota (token bucket) shared by every client of the key; and batch
Operations with inlinedResponses keyed by metadata.
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

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
MESSAGES = {
    400: "Request contains an invalid argument.",
    429: "You exceeded your current quota, please check your plan and billing details. For more information on "
    "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
}
# Models the fake serves, as the service did when it was last checked (2026-11-30): the 2.5 Pro/Flash models
# are retired and answer 404 like any unknown model.
SERVED_MODELS = frozenset(
    {
        "gemini-3.8-flash",
        "gemini-3.7-flash",
        "gemini-3.6-flash",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.1-flash-lite",
        "gemini-3.1-pro-preview",
        "gemini-2.5-flash-lite",
    }
)
# finishReason of each content-policy fault kind
SAFETY_FINISH = {"safety": "SAFETY", "image_safety": "IMAGE_SAFETY", "prohibited": "PROHIBITED_CONTENT"}


def duration(seconds: float) -> str:
    """A protobuf Duration in its JSON form, as google.rpc.RetryInfo carries it: "22s", "0.250s"."""
    return f"{seconds:.0f}s" if float(seconds).is_integer() else f"{seconds:.3f}s"


@dataclass
class FakeGemini:
    """State and behaviour of the fake. Faults per video are scripted by attempt: e.g. ``{"v1": ["429", "ok"]}``.

    Fault kinds: "429" (RetryInfo ``retry_delay_s``), "500", "503", "400", "slow" (sleeps ``slow_s`` first),
    "malformed" (text that is not JSON), "safety" / "image_safety" / "prohibited" (that finishReason),
    "prompt_blocked" (no candidate, promptFeedback.blockReason PROHIBITED_CONTENT), "empty" (no candidate,
    blockReason OTHER), "max_tokens" (a cut answer, finishReason MAX_TOKENS), "ok".
    """

    api_key: str = "test-key"
    latency_s: float = 0.0
    slow_s: float = 5.0
    retry_delay_s: float = 0.05  # RetryInfo.retryDelay of an injected 429
    retry_after_header: bool = False  # also send Retry-After (no Gemini endpoint does; for the header fallback)
    models: frozenset = SERVED_MODELS
    faults: dict[str, list[str]] = field(default_factory=dict)
    fault_rate: float = 0.0  # random 429/500/503 on any request, seeded
    seed: int = 0
    rate_limit_rps: float | None = None  # the key's quota: a token bucket refilled at this rate
    rate_limit_burst: float | None = None  # bucket size (default: one second of quota)
    truth: dict[str, int] = field(default_factory=dict)
    batch_polls: int = 2
    batch_fail: int = 0  # the next N batch jobs created end BATCH_STATE_FAILED
    paid: Counter = field(default_factory=Counter)  # video_id -> answers billed (200 with a candidate or a block)
    attempts: Counter = field(default_factory=Counter)  # video_id -> requests received
    rate_limited: int = 0  # requests refused by the key's quota (a subset of the 429s)
    batches_created: int = 0
    api_keys_seen: set = field(default_factory=set)
    log: list = field(default_factory=list)  # (time, video_id, status)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._batches: dict[str, dict] = {}
        self._bucket = float(self.rate_limit_burst or self.rate_limit_rps or 0)
        self._bucket_at = time.monotonic()

    def _quota_wait(self) -> float:
        """0 if the key's quota admits one more request now (and takes it), else the seconds until it would."""
        if not self.rate_limit_rps:
            return 0.0
        size = float(self.rate_limit_burst or self.rate_limit_rps)
        now = time.monotonic()
        self._bucket = min(size, self._bucket + (now - self._bucket_at) * self.rate_limit_rps)
        self._bucket_at = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return 0.0
        return (1.0 - self._bucket) / self.rate_limit_rps

    def _fault(self, video_id: str) -> tuple[str, float]:
        """(kind, retry delay) of the next request for ``video_id``."""
        with self._lock:
            n = self.attempts[video_id]
            self.attempts[video_id] += 1
            wait = self._quota_wait()
            if wait > 0:
                self.rate_limited += 1
                return "429", round(max(wait, 0.001), 3)
            script = self.faults.get(video_id, [])
            if n < len(script):
                return script[n], self.retry_delay_s
            if self.fault_rate and self._rng.random() < self.fault_rate:
                return self._rng.choice(["429", "500", "503"]), self.retry_delay_s
            return "ok", 0.0

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
        usage = {
            "promptTokenCount": 258 * images + 200,
            "candidatesTokenCount": 40,
            "thoughtsTokenCount": 100,
            "totalTokenCount": 258 * images + 340,
        }
        if kind in ("empty", "prompt_blocked"):
            reason = "OTHER" if kind == "empty" else "PROHIBITED_CONTENT"
            return {
                "promptFeedback": {"blockReason": reason},
                "usageMetadata": {**usage, "candidatesTokenCount": 0, "thoughtsTokenCount": 0},
            }
        if kind in SAFETY_FINISH:
            return {
                "candidates": [
                    {
                        "finishReason": SAFETY_FINISH[kind],
                        "index": 0,
                        "safetyRatings": [
                            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}
                        ],
                    }
                ],
                "usageMetadata": usage,
            }
        label = self.label_of(video_id)
        classes = (
            request.get("generationConfig", {})
            .get("responseSchema", {})
            .get("properties", {})
            .get("label", {})
            .get("enum", ["negative", "positive"])
        )
        text = json.dumps(
            {"label": classes[label], "probability": 0.9 if label else 0.1, "rationale": f"fake verdict for {video_id}"}
        )
        finish = "STOP"
        if kind == "malformed":
            text = '{"label": "positive", "probab'
        if kind == "max_tokens":
            text, finish = text[: len(text) // 2], "MAX_TOKENS"
        return {
            "candidates": [
                {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": finish, "index": 0}
            ],
            "usageMetadata": usage,
            "modelVersion": "fake",
        }


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

        def _error(self, status: int, message: str, headers: dict | None = None, details: list | None = None) -> None:
            body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
            if details:
                body["error"]["details"] = details
            self._send(status, body, headers)

        def _quota_error(self, model: str, delay_s: float) -> None:
            """429 as the Gemini API sends it: RetryInfo in the details, no Retry-After header."""
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"location": "global", "model": model},
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": duration(delay_s)},
            ]
            headers = {"Retry-After": f"{delay_s:g}"} if fake.retry_after_header else None
            self._error(429, f"{MESSAGES[429]} Please retry in {delay_s:.6f}s.", headers, details)

        def _unknown_model(self, model: str, method: str) -> None:
            self._error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
                "Call ListModels to see the list of available models and their supported methods.",
            )

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
            model = match.group(1)
            if model not in fake.models:
                return self._unknown_model(model, match.group(2))
            if match.group(2) == "batchGenerateContent":
                return self._create_batch(model, body)
            video_id = _video_id(body)
            kind, delay_s = fake._fault(video_id)
            if fake.latency_s:
                time.sleep(fake.latency_s)
            if kind == "slow":
                time.sleep(fake.slow_s)
                kind = "ok"
            if kind in ("400", "429", "500", "503"):
                status = int(kind)
                with fake._lock:
                    fake.log.append((time.monotonic(), video_id, status))
                if status == 429:
                    return self._quota_error(model, delay_s)
                return self._error(status, MESSAGES[status])
            response = fake.answer(body, video_id, kind)
            with fake._lock:
                fake.paid[video_id] += 1
                fake.log.append((time.monotonic(), video_id, 200))
            self._send(200, response)

        def _create_batch(self, model: str, body: dict) -> None:
            requests = body["batch"]["inputConfig"]["requests"]["requests"]
            with fake._lock:
                name = f"batches/fake{len(fake._batches) + 1}"
                failed = fake.batch_fail > 0
                fake.batch_fail -= int(failed)
                fake.batches_created += 1
                fake._batches[name] = {"model": model, "requests": requests, "polls": 0, "failed": failed}
            self._send(200, self._operation(name))

        def _operation(self, name: str) -> dict:
            job = fake._batches[name]
            done = job["polls"] >= fake.batch_polls
            state = (
                ("BATCH_STATE_FAILED" if job["failed"] else "BATCH_STATE_SUCCEEDED") if done else "BATCH_STATE_RUNNING"
            )
            meta = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
                "name": name,
                "model": f"models/{job['model']}",
                "displayName": "silverset",
                "state": state,
            }
            if done and job["failed"]:
                return {
                    "name": name,
                    "metadata": meta,
                    "done": True,
                    "error": {"code": 13, "message": "Batch job failed."},
                }
            if done:
                if "responses" not in job:
                    answers = []
                    for r in job["requests"]:
                        video_id = _video_id(r["request"])
                        with fake._lock:
                            fake.attempts[video_id] += 1
                            fake.paid[video_id] += 1
                        answers.append(
                            {"response": fake.answer(r["request"], video_id, "ok"), "metadata": r.get("metadata")}
                        )
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
