"""The Gemini teacher: one multimodal generateContent request per video, structured JSON output, temperature 0.

Written around the real ``google-genai`` client: retries with exponential backoff + full jitter on 429/5xx/
timeouts (honouring Retry-After), a client-side limiter (requests/s and tokens/min), a concurrency bound, a
content-addressed cache keyed by (video, frames digest, model, prompt hash) so nothing is paid twice, cost
from usageMetadata with a price table, a budget stop, and a Batch API mode at half price.
The API key comes from a secret file or GEMINI_API_KEY / GOOGLE_API_KEY and is redacted from every message.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from silverset.components.common.digest import sha256_json
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import AttributeSpec
from silverset.components.runtime.handler import BudgetExhausted, ItemResult, ModelHandler, WorkItem
from silverset.components.runtime.inputs import sample_indices

from .zero_shot import label_row

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
TOKENS_PER_IMAGE = 258  # Gemini bills an image <= 384 px per side as 258 tokens
BATCH_DISCOUNT = 0.5
TERMINAL_BATCH_STATES = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


class ModelPrice(BaseModel):
    """USD per million tokens; output includes thinking tokens, as Google bills them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


# Paid-tier list prices (prompts <= 200k tokens), USD per million tokens.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gemini-2.5-pro": ModelPrice(input_per_mtok=1.25, output_per_mtok=10.0),
    "gemini-2.5-flash": ModelPrice(input_per_mtok=0.30, output_per_mtok=2.50),
    "gemini-2.5-flash-lite": ModelPrice(input_per_mtok=0.10, output_per_mtok=0.40),
}


class GeminiOptions(BaseModel):
    """Gemini teacher settings. ``model`` None = the spec's ``teacher.gemini_model``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    mode: Literal["online", "batch"] = "online"
    base_url: str | None = None  # None: google-genai's default, or GOOGLE_GEMINI_BASE_URL
    api_key_file: str | None = None  # a mounted secret; else GEMINI_API_KEY / GOOGLE_API_KEY
    rps: float = Field(2.0, gt=0, description="client-side requests per second")
    tokens_per_min: int = Field(2_000_000, gt=0)
    concurrency: int = Field(8, ge=1, le=256)
    max_usd: float | None = Field(None, ge=0)
    max_attempts: int = Field(6, ge=1, le=20)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(120.0, gt=0)
    batch_poll_s: float = Field(10.0, ge=0)
    estimated_output_tokens: int = Field(1000, ge=1, description="for budget checks before the first answer")
    cache_dir: str | None = None
    prices: dict[str, ModelPrice] = Field(default_factory=lambda: dict(DEFAULT_PRICES))


def resolve_api_key(api_key_file: str | None) -> str:
    """The API key from the secret file, else GEMINI_API_KEY, else GOOGLE_API_KEY. Never printed."""
    if api_key_file:
        try:
            key = Path(api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SilversetInputError(f"--api-key-file '{api_key_file}'", f"cannot be read: {exc.strerror}") from None
        if not key:
            raise SilversetInputError(f"--api-key-file '{api_key_file}'", "is empty")
        return key
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        if os.environ.get(name, "").strip():
            return os.environ[name].strip()
    raise SilversetInputError("Gemini API key", "set GEMINI_API_KEY or GOOGLE_API_KEY, or pass --api-key-file")


class RateLimiter:
    """Token buckets for requests/s and tokens/min, shared by all worker threads."""

    def __init__(self, rps: float, tokens_per_min: int, *, clock=time.monotonic, sleep=time.sleep):
        self.rps, self.tpm = rps, tokens_per_min
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_request = clock()
        self._tokens = float(tokens_per_min)
        self._tokens_at = clock()

    def acquire(self, tokens: int = 0) -> None:
        """Block until one request (estimated ``tokens`` tokens) may start."""
        while True:
            with self._lock:
                now = self.clock()
                self._tokens = min(self.tpm, self._tokens + (now - self._tokens_at) * self.tpm / 60.0)
                self._tokens_at = now
                wait = max(self._next_request - now, 0.0)
                need = min(tokens, self.tpm)
                if self._tokens < need:
                    wait = max(wait, (need - self._tokens) * 60.0 / self.tpm)
                if wait <= 0:
                    self._next_request = max(self._next_request, now) + 1.0 / self.rps
                    self._tokens -= need
                    return
            self.sleep(min(wait, 1.0))


class LabelCache:
    """Content-addressed answers: ``<dir>/<hh>/<sha256>.json``, written atomically, one per paid answer."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def put(self, key: str, value: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(value), encoding="utf-8")
        os.replace(tmp, path)


class _Budget:
    def __init__(self, max_usd: float | None, first_estimate: float):
        self.max_usd = max_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.estimate = first_estimate
        self.answers = 0
        self._lock = threading.Lock()

    def reserve(self) -> bool:
        with self._lock:
            if self.max_usd is not None and self.spent + self.reserved + self.estimate > self.max_usd:
                return False
            self.reserved += self.estimate
            return True

    def settle(self, cost: float, paid: bool) -> None:
        with self._lock:
            self.reserved = max(self.reserved - self.estimate, 0.0)
            self.spent += cost
            if paid:
                self.answers += 1
                # running mean of real answers replaces the pre-flight guess
                self.estimate += (cost - self.estimate) / self.answers


class Verdict(BaseModel):
    """The JSON the model must return (enforced by the response schema and checked again here)."""

    model_config = ConfigDict(extra="forbid")

    label: str
    probability: float = Field(ge=0.0, le=1.0)
    rationale: str = Field(max_length=4000)


class _ItemFailed(Exception):
    def __init__(self, error_type: str, message: str, *, cost: float = 0.0, paid: bool = False):
        super().__init__(message)
        self.error_type, self.message, self.cost, self.paid = error_type, message, cost, paid


def response_schema(spec: AttributeSpec) -> dict[str, Any]:
    return {
        "type": "OBJECT",
        "properties": {
            "label": {"type": "STRING", "enum": list(spec.classes)},
            "probability": {"type": "NUMBER", "description": f"probability that the video is {spec.classes[1]}"},
            "rationale": {"type": "STRING", "description": "one or two sentences citing what is seen"},
        },
        "required": ["label", "probability", "rationale"],
        "propertyOrdering": ["label", "probability", "rationale"],
    }


def prompt_text(spec: AttributeSpec, *, video_id: str, title: str, description: str, n_frames: int) -> str:
    classes = " or ".join(repr(c) for c in spec.classes)
    return (
        f"You are labelling videos for the attribute '{spec.title}' ({spec.key}).\n\n"
        f"Definition:\n{spec.definition}\n\n"
        f"The {n_frames} images above are frames sampled evenly from the video, in order.\n"
        f"video_id: {video_id}\ntitle: {title or '(none)'}\ndescription: {description or '(none)'}\n\n"
        f"Answer with JSON: label ({classes}), probability that the label is {spec.classes[1]!r} (0 to 1), "
        "and a short rationale citing what you see."
    )


class GeminiHandler(ModelHandler):
    """One request per video through google-genai; batches fan out over ``concurrency`` threads."""

    stage = "annotate"

    def __init__(self, spec: AttributeSpec, options: GeminiOptions, *, frames_per_request: int = 8,
                 batch_size: int | None = None, sleep=time.sleep):
        if options.model is None:
            options = options.model_copy(update={"model": spec.teacher.gemini_model})
        if options.model not in options.prices:
            raise SilversetInputError("--model", f"no price for {options.model!r} in the price table; "
                                      f"known: {', '.join(sorted(options.prices))}")
        self.spec, self.options = spec, options
        self.frames_per_request = frames_per_request
        self.batch_size = batch_size or max(4 * options.concurrency, 16)
        self.price = options.prices[options.model]
        self.cache = LabelCache(options.cache_dir or Path.cwd() / ".teacher-cache")
        self.limiter = RateLimiter(options.rps, options.tokens_per_min)
        est_in = TOKENS_PER_IMAGE * frames_per_request + 600
        self.budget = _Budget(options.max_usd, self.cost(est_in, options.estimated_output_tokens))
        self.sleep = sleep
        self._key: str | None = None

    @property
    def model_id(self) -> str:
        return f"gemini:{self.options.model}{':batch' if self.options.mode == 'batch' else ''}"

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        usd = (input_tokens * self.price.input_per_mtok + output_tokens * self.price.output_per_mtok) / 1e6
        return usd * (BATCH_DISCOUNT if self.options.mode == "batch" else 1.0)

    def redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text

    def load_model(self):
        from google import genai
        from google.genai import types

        self._key = resolve_api_key(self.options.api_key_file)
        http = types.HttpOptions(base_url=self.options.base_url, timeout=int(self.options.timeout_s * 1000))
        return genai.Client(api_key=self._key, http_options=http)

    def cache_key(self, item: WorkItem) -> str:
        frames = item.payload.frames
        return sha256_json({"video_id": item.key, "frames": frames.digest if frames else None,
                            "model": self.options.model, "prompt_hash": self.spec.prompt_hash,
                            "frames_per_request": self.frames_per_request})

    def request(self, item: WorkItem) -> tuple[list, Any, int]:
        """(contents, config, estimated input tokens) of one video's generateContent request."""
        from google.genai import types

        frames = item.payload.frames
        picks = sample_indices(len(frames.jpegs), self.frames_per_request) if frames else []
        parts = [types.Part.from_bytes(data=frames.jpegs[i], mime_type="image/jpeg") for i in picks]
        text = prompt_text(self.spec, video_id=item.key, title=item.payload.title, description=item.payload.description,
                           n_frames=len(picks))
        parts.append(types.Part.from_text(text=text))
        config = types.GenerateContentConfig(temperature=0.0, candidate_count=1, response_mime_type="application/json",
                                             response_schema=response_schema(self.spec))
        return [types.Content(role="user", parts=parts)], config, TOKENS_PER_IMAGE * len(picks) + len(text) // 4

    def parse(self, response) -> tuple[dict, float]:
        """A GenerateContentResponse -> (cache record, cost in USD); raises _ItemFailed with the reason."""
        usage = response.usage_metadata
        in_tok = (usage.prompt_token_count or 0) if usage else 0
        out_tok = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        cost = self.cost(in_tok, out_tok)
        if not response.candidates:
            feedback = response.prompt_feedback
            reason = feedback.block_reason if feedback and feedback.block_reason else "no reason given"
            raise _ItemFailed("no_candidate", f"response has no candidate (prompt feedback: {reason})", cost=cost, paid=True)
        candidate = response.candidates[0]
        finish = str(candidate.finish_reason.value if hasattr(candidate.finish_reason, "value") else candidate.finish_reason)
        if finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION"):
            raise _ItemFailed("blocked", f"generation blocked (finishReason {finish})", cost=cost, paid=True)
        text = "".join(p.text or "" for p in (candidate.content.parts if candidate.content and candidate.content.parts else []))
        try:
            verdict = Verdict.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as exc:
            raise _ItemFailed("bad_response", f"answer does not match the response schema: {str(exc)[:300]}",
                              cost=cost, paid=True) from None
        if verdict.label not in self.spec.classes:
            raise _ItemFailed("bad_response", f"label {verdict.label!r} is not one of {list(self.spec.classes)}",
                              cost=cost, paid=True)
        record = {"label": self.spec.classes.index(verdict.label), "probability": verdict.probability,
                  "rationale": verdict.rationale, "input_tokens": in_tok, "output_tokens": out_tok, "cost_usd": cost}
        return record, cost

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = random.uniform(0, min(self.options.backoff_max_s, self.options.backoff_initial_s * 2**attempt))
        return max(backoff, retry_after or 0.0)

    def call(self, client, item: WorkItem) -> ItemResult:
        """One video, online: retries until an answer, a permanent error, or ``max_attempts``."""
        from google.genai import errors as genai_errors

        contents, config, est_tokens = self.request(item)
        requests = 0
        last = "no attempt made"
        for attempt in range(self.options.max_attempts):
            self.limiter.acquire(est_tokens)
            requests += 1
            try:
                response = client.models.generate_content(model=self.options.model, contents=contents, config=config)
            except genai_errors.APIError as exc:
                last = f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}".strip()
                if exc.code not in RETRYABLE_STATUS:
                    return ItemResult(key=item.key, error_type=f"http_{exc.code}", message=self.redact(last), requests=requests)
                self.sleep(self._retry_delay(attempt, _retry_after(exc)))
                continue
            except _transport_errors() as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.sleep(self._retry_delay(attempt, None))
                continue
            try:
                record, cost = self.parse(response)
            except _ItemFailed as failed:
                self.budget.settle(failed.cost, failed.paid)
                return ItemResult(key=item.key, error_type=failed.error_type, message=self.redact(failed.message),
                                  cost_usd=failed.cost, requests=requests)
            self.cache.put(self.cache_key(item), record)  # before anything else: a crash now must not re-pay
            self.budget.settle(cost, True)
            return self._result(item, record, cost=cost, requests=requests)
        self.budget.settle(0.0, False)
        return ItemResult(key=item.key, error_type="retries_exhausted",
                          message=self.redact(f"gave up after {requests} attempts; last: {last}"), requests=requests)

    def _result(self, item: WorkItem, record: dict, *, cost: float = 0.0, requests: int = 0, cached: bool = False) -> ItemResult:
        row = label_row(self.spec, item.key, float(record["probability"]), self.model_id, record["rationale"],
                        label=int(record["label"]))
        return ItemResult(key=item.key, row=row, cost_usd=cost, requests=requests, cached=cached)

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        results: list[ItemResult] = []
        misses: list[WorkItem] = []
        for item in batch:
            record = self.cache.get(self.cache_key(item))
            if record is not None:
                results.append(self._result(item, record, cached=True))
            else:
                misses.append(item)
        admitted = []
        for item in misses:
            if not self.budget.reserve():
                break
            admitted.append(item)
        if self.options.mode == "batch":
            results += self._run_batch_job(model, admitted)
        elif admitted:
            with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(admitted))) as pool:
                results += list(pool.map(lambda it: self.call(model, it), admitted))
        if len(admitted) < len(misses):
            raise BudgetExhausted(partial=results, message=(
                f"stopped at the budget: spent ${self.budget.spent:.4f} of --max-usd {self.options.max_usd}; "
                f"{len(misses) - len(admitted)} video(s) of this batch left unlabelled; rerun with a higher "
                "--max-usd to resume"))
        return results

    def _run_batch_job(self, client, items: list[WorkItem]) -> list[ItemResult]:
        """Submit ``items`` as one Batch API job (inlined requests, half price) and poll it to completion."""
        if not items:
            return []
        from google.genai import types

        inlined, by_key = [], {}
        for item in items:
            contents, config, _ = self.request(item)
            inlined.append(types.InlinedRequest(contents=contents, config=config, metadata={"key": item.key}))
            by_key[item.key] = item
        job = client.batches.create(model=self.options.model, src=inlined,
                                    config=types.CreateBatchJobConfig(display_name=f"silverset-{self.spec.key}"))
        while job.state is None or job.state.value not in TERMINAL_BATCH_STATES:
            self.sleep(self.options.batch_poll_s)
            job = client.batches.get(name=job.name)
        if job.state.value != "JOB_STATE_SUCCEEDED":
            for _ in items:
                self.budget.settle(0.0, False)
            reason = self.redact(str(job.error.message if job.error else job.state.value))
            return [ItemResult(key=i.key, error_type="batch_failed", message=f"batch {job.name}: {reason}", requests=1)
                    for i in items]
        results, seen = [], set()
        responses = job.dest.inlined_responses if job.dest and job.dest.inlined_responses else []
        for index, answer in enumerate(responses):
            key = (answer.metadata or {}).get("key") or (items[index].key if index < len(items) else None)
            if key not in by_key or key in seen:
                continue
            seen.add(key)
            if answer.error is not None or answer.response is None:
                self.budget.settle(0.0, False)
                results.append(ItemResult(key=key, error_type="batch_item_failed",
                                          message=self.redact(str(answer.error)), requests=1))
                continue
            try:
                record, cost = self.parse(answer.response)
            except _ItemFailed as failed:
                self.budget.settle(failed.cost, failed.paid)
                results.append(ItemResult(key=key, error_type=failed.error_type, message=self.redact(failed.message),
                                          cost_usd=failed.cost, requests=1))
                continue
            self.cache.put(self.cache_key(by_key[key]), record)
            self.budget.settle(cost, True)
            results.append(self._result(by_key[key], record, cost=cost, requests=1))
        for item in items:
            if item.key not in seen:
                self.budget.settle(0.0, False)
                results.append(ItemResult(key=item.key, error_type="batch_item_missing",
                                          message=f"batch {job.name} returned no answer for this video", requests=1))
        return results


def _retry_after(exc) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form), if the error response carries one."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Timeouts and connection failures of whichever httpx google-genai uses (httpx2 in 3.x, httpx before)."""
    found: list[type[BaseException]] = [TimeoutError, ConnectionError]
    for name in ("httpx2", "httpx"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        found += [module.TimeoutException, module.TransportError]
    return tuple(found)
