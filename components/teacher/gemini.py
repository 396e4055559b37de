"""The Gemini teacher: one multimodal generateContent request per video, structured JSON output.

Written around the real ``google-genai`` client and the API's real error shapes: retries on 429/5xx/timeouts
wait what the server asks (``google.rpc.RetryInfo.retryDelay`` in the error details, else Retry-After, else
exponential backoff with full jitter); a 404 (retired or unknown model) or a refused key stops the run at
once, naming the model; a client-side limiter holds the key's requests/s and tokens/min for the whole run
(split across its shards); every paid answer is cached with its outcome, keyed by (video, frames, title,
model, prompt hash), so nothing is paid twice; cost comes from ``usage_metadata`` and a dated price table;
a budget stop; and a Batch API mode whose jobs are recorded before polling, so a rerun never resubmits.
Current Gemini models ignore a custom temperature, so none is sent: repeatability comes from the cache.
The API key comes from a secret file or GEMINI_API_KEY / GOOGLE_API_KEY and is redacted from every message.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
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

from .batch_jobs import BatchJobRecord, BatchLedger
from .prices import ModelPrice, PriceTable, load_price_table
from .zero_shot import label_row

_LOGGER = logging.getLogger(__name__)

RETRYABLE_STATUS = (408, 429, 500, 502, 503, 504)
TOKENS_PER_IMAGE = 258  # Gemini bills an image <= 384 px per side as 258 tokens (pre-flight estimate only)
PROMPT_TOKENS_ESTIMATE = 600  # the prompt's text tokens, pre-flight


def preflight_input_tokens(frames_per_request: int) -> int:
    """Input tokens one request is estimated at before any answer reports the real count (budgets start here)."""
    return TOKENS_PER_IMAGE * frames_per_request + PROMPT_TOKENS_ESTIMATE


TERMINAL_BATCH_STATES = (
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)
# Finish reasons (candidate) and block reasons (prompt feedback) that mean a content policy stopped the answer.
SAFETY_REASONS = frozenset(
    {
        "SAFETY",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)
# Verdicts a rerun keeps. Every other error (retries exhausted, a failed batch job, a truncated or malformed
# answer) is tried again by a rerun; a paid answer among them is replayed from the cache, never paid twice.
TERMINAL_ERRORS = frozenset({"safety_blocked", "invalid_request", "no_frames"})


class GeminiOptions(BaseModel):
    """Gemini teacher settings. ``model`` None = the spec's ``teacher.model``.

    ``rps`` and ``tokens_per_min`` are the API key's quota for the whole run: a run of n shards gives each
    shard 1/n of it, so all shards together never exceed it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str | None = None
    mode: Literal["online", "batch"] = "online"
    base_url: str | None = None  # None: google-genai's default, or GOOGLE_GEMINI_BASE_URL
    api_key_file: str | None = None  # a mounted secret; else GEMINI_API_KEY / GOOGLE_API_KEY
    price_table: str | None = None  # None: the shipped components/teacher/prices.yaml
    rps: float = Field(2.0, gt=0, description="requests per second of the key, for all shards together")
    tokens_per_min: int = Field(2_000_000, gt=0, description="tokens per minute of the key, all shards together")
    concurrency: int = Field(8, ge=1, le=256)
    max_usd: float | None = Field(None, ge=0)
    max_attempts: int = Field(6, ge=1, le=20)
    backoff_initial_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    max_server_delay_s: float = Field(300.0, ge=0, description="longest retryDelay / Retry-After honoured")
    timeout_s: float = Field(120.0, gt=0)
    batch_poll_s: float = Field(10.0, ge=0)
    batch_job_size: int = Field(500, ge=1, le=50_000, description="videos per Batch API job")
    estimated_output_tokens: int = Field(1000, ge=1, description="for budget checks before the first answer")
    cache_dir: str | None = None


class ModelUnavailable(SilversetInputError):
    """The API refused the model or the key for every request (404, 401/403, FAILED_PRECONDITION): stop the run."""


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
    """Token buckets for requests/s and tokens/min, shared by all worker threads, plus a server-ordered hold."""

    def __init__(self, rps: float, tokens_per_min: float, *, clock=time.monotonic, sleep=time.sleep):
        self.rps, self.tpm = rps, tokens_per_min
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next_request = clock()
        self._tokens = float(tokens_per_min)
        self._tokens_at = clock()

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds`` (the server's retryDelay on a quota 429 applies to the whole key)."""
        with self._lock:
            self._next_request = max(self._next_request, self.clock() + seconds)

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
    """Content-addressed paid answers with their outcome: ``<dir>/<hh>/<sha256>.json``, written atomically."""

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
    """Reservations before a request, settled exactly once per admitted video with what it really cost."""

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


# The prompt's wording. Its version is spec.PROMPT_TEMPLATE_VERSION (part of the prompt hash): bump it with any edit.
PROMPT_TEMPLATE = (
    "You are labelling videos for the attribute '{title}' ({key}).\n\n"
    "Definition:\n{definition}\n\n"
    "The {n_frames} images above are frames sampled evenly from the video, in order.\n"
    "video_id: {video_id}\ntitle: {video_title}\ndescription: {video_description}\n\n"
    "Answer with JSON: label ({classes}), probability that the label is {positive} (0 to 1), "
    "and a short rationale citing what you see."
)


def prompt_text(spec: AttributeSpec, *, video_id: str, title: str, description: str, n_frames: int) -> str:
    return PROMPT_TEMPLATE.format(
        title=spec.title,
        key=spec.key,
        definition=spec.definition,
        n_frames=n_frames,
        video_id=video_id,
        video_title=title or "(none)",
        video_description=description or "(none)",
        classes=" or ".join(repr(c) for c in spec.classes),
        positive=repr(spec.classes[1]),
    )


def server_retry_delay(exc) -> float | None:
    """Seconds the server asks to wait: ``google.rpc.RetryInfo.retryDelay`` in the error details, else Retry-After.

    google-genai's ``APIError.details`` is the whole error body, ``{"error": {..., "details": [...]}}``;
    a retryDelay is a protobuf Duration in JSON form (``"22s"``, ``"0.250s"``).
    """
    body = getattr(exc, "details", None)
    error = body.get("error", body) if isinstance(body, dict) else None
    for detail in (error.get("details") or []) if isinstance(error, dict) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)s\s*", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP-date Retry-After: fall back to backoff


class GeminiHandler(ModelHandler):
    """One request per video through google-genai; batches fan out over ``concurrency`` threads."""

    stage = "annotate"

    def __init__(
        self,
        spec: AttributeSpec,
        options: GeminiOptions,
        *,
        frames_per_request: int = 8,
        batch_size: int | None = None,
        shard_count: int = 1,
        price_table: PriceTable | None = None,
        sleep=time.sleep,
    ):
        if options.model is None:
            options = options.model_copy(update={"model": spec.teacher.model})
        table = price_table or load_price_table(options.price_table)
        self.spec, self.options = spec, options
        self.price: ModelPrice = table.price(options.model, source=f"price table of {table.checked}")
        self.batch_discount = table.batch_discount
        self.frames_per_request = frames_per_request
        self.batch_size = batch_size or max(4 * options.concurrency, 16)
        cache_root = Path(options.cache_dir or Path.cwd() / ".teacher-cache")
        self.cache = LabelCache(cache_root)
        self.ledger = BatchLedger(cache_root / "batch-jobs")
        # the key's quota is the run's; each of the run's shards takes its share
        self.limiter = RateLimiter(options.rps / shard_count, options.tokens_per_min / shard_count)
        est_in = preflight_input_tokens(frames_per_request)
        self.budget = _Budget(options.max_usd, self.cost(est_in, options.estimated_output_tokens))
        self.sleep = sleep
        self._key: str | None = None
        self._fatal: ModelUnavailable | None = None

    @property
    def model_id(self) -> str:
        return f"gemini:{self.options.model}{':batch' if self.options.mode == 'batch' else ''}"

    def batch_elements_kwargs(self) -> dict[str, int]:
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def is_final(self, error_type: str) -> bool:
        return error_type in TERMINAL_ERRORS

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        usd = (input_tokens * self.price.input_per_mtok + output_tokens * self.price.output_per_mtok) / 1e6
        return usd * (self.batch_discount if self.options.mode == "batch" else 1.0)

    def redact(self, text: str) -> str:
        return text.replace(self._key, "[redacted]") if self._key else text

    def load_model(self):
        from google import genai
        from google.genai import types

        self._key = resolve_api_key(self.options.api_key_file)
        http = types.HttpOptions(base_url=self.options.base_url, timeout=int(self.options.timeout_s * 1000))
        _LOGGER.info(
            "gemini teacher: model %s, %s mode, %.3g requests/s and %d tokens/min for this shard, budget %s",
            self.options.model,
            self.options.mode,
            self.limiter.rps,
            self.limiter.tpm,
            "none" if self.options.max_usd is None else f"${self.options.max_usd:.4f}",
        )
        return genai.Client(api_key=self._key, http_options=http)

    def cache_key(self, item: WorkItem) -> str:
        frames = item.payload.frames
        return sha256_json(
            {
                "video_id": item.key,
                "frames": frames.digest if frames else None,
                "title": item.payload.title,
                "description": item.payload.description,
                "model": self.options.model,
                "prompt_hash": self.spec.prompt_hash,
                "frames_per_request": self.frames_per_request,
            }
        )

    def request(self, item: WorkItem) -> tuple[list, Any, int]:
        """(contents, config, estimated input tokens) of one video's generateContent request."""
        from google.genai import types

        frames = item.payload.frames
        picks = sample_indices(len(frames.jpegs), self.frames_per_request) if frames else []
        parts = [types.Part.from_bytes(data=frames.jpegs[i], mime_type="image/jpeg") for i in picks]
        text = prompt_text(
            self.spec,
            video_id=item.key,
            title=item.payload.title,
            description=item.payload.description,
            n_frames=len(picks),
        )
        parts.append(types.Part.from_text(text=text))
        config = types.GenerateContentConfig(
            candidate_count=1, response_mime_type="application/json", response_schema=response_schema(self.spec)
        )
        return [types.Content(role="user", parts=parts)], config, TOKENS_PER_IMAGE * len(picks) + len(text) // 4

    def outcome(self, response) -> dict:
        """A GenerateContentResponse -> the record cached for it: a label, or the error it amounts to, and its cost."""
        usage = response.usage_metadata
        in_tok = (usage.prompt_token_count or 0) if usage else 0
        out_tok = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        paid = {"input_tokens": in_tok, "output_tokens": out_tok, "cost_usd": self.cost(in_tok, out_tok)}
        if not response.candidates:
            feedback = response.prompt_feedback
            reason = _name(feedback.block_reason) if feedback and feedback.block_reason else None
            if reason in SAFETY_REASONS:
                return {"outcome": "safety_blocked", "message": f"prompt blocked (blockReason {reason})", **paid}
            return {"outcome": "no_candidate", "message": f"response has no candidate (blockReason {reason})", **paid}
        candidate = response.candidates[0]
        finish = _name(candidate.finish_reason)
        if finish in SAFETY_REASONS:
            return {"outcome": "safety_blocked", "message": f"answer blocked (finishReason {finish})", **paid}
        if finish == "MAX_TOKENS":
            return {
                "outcome": "truncated",
                "message": "answer cut at the output token limit (finishReason MAX_TOKENS)",
                **paid,
            }
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        text = "".join(p.text or "" for p in parts if not getattr(p, "thought", False))
        try:
            verdict = Verdict.model_validate(json.loads(text))
        except (json.JSONDecodeError, ValidationError) as exc:
            return {
                "outcome": "bad_response",
                "message": f"answer (finishReason {finish}) does not match the response schema: {str(exc)[:300]}",
                **paid,
            }
        if verdict.label not in self.spec.classes:
            return {
                "outcome": "bad_response",
                "message": f"label {verdict.label!r} is not one of {list(self.spec.classes)}",
                **paid,
            }
        return {
            "outcome": "label",
            "label": self.spec.classes.index(verdict.label),
            "probability": verdict.probability,
            "rationale": verdict.rationale,
            **paid,
        }

    def _from_record(self, item: WorkItem, record: dict, *, requests: int = 0, cached: bool = False) -> ItemResult:
        cost = 0.0 if cached else float(record.get("cost_usd", 0.0))
        outcome = record.get("outcome", "label")  # records written before outcomes were cached are all labels
        if outcome != "label":
            return ItemResult(
                key=item.key,
                error_type=outcome,
                message=self.redact(record.get("message", "")),
                cost_usd=cost,
                requests=requests,
                cached=cached,
            )
        row = label_row(
            self.spec,
            item.key,
            float(record["probability"]),
            self.model_id,
            record["rationale"],
            label=int(record["label"]),
        )
        return ItemResult(key=item.key, row=row, cost_usd=cost, requests=requests, cached=cached)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.options.backoff_max_s, self.options.backoff_initial_s * 2**attempt))

    def _refused(self, exc) -> ModelUnavailable:
        """The run-stopping error for a 404 / 401 / 403 / FAILED_PRECONDITION answer."""
        detail = self.redact(f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}".strip())
        if exc.code == 404:
            return ModelUnavailable(
                f"Gemini model '{self.options.model}'",
                f"not served by the API ({detail}); it is retired or unknown: set teacher.model "
                "or --model to a current model (https://ai.google.dev/gemini-api/docs/models)",
            )
        return ModelUnavailable("Gemini API key", f"refused for model '{self.options.model}' ({detail})")

    def call(self, client, item: WorkItem) -> ItemResult:
        """One video, online: retries until an answer, a permanent error, or ``max_attempts``."""
        from google.genai import errors as genai_errors

        contents, config, est_tokens = self.request(item)
        requests = 0
        last = "no attempt made"
        for attempt in range(self.options.max_attempts):
            if self._fatal is not None:
                return ItemResult(key=item.key, error_type="not_attempted", message=str(self._fatal), requests=requests)
            self.limiter.acquire(est_tokens)
            requests += 1
            try:
                response = client.models.generate_content(model=self.options.model, contents=contents, config=config)
            except genai_errors.APIError as exc:
                last = f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}".strip()
                if exc.code in (401, 403, 404) or exc.status == "FAILED_PRECONDITION":
                    if self._fatal is None:
                        self._fatal = self._refused(exc)
                        _LOGGER.error("%s: HTTP %s stops the run: %s", item.key, exc.code, self._fatal.problem)
                    raise self._fatal from None
                if exc.code not in RETRYABLE_STATUS:
                    kind = "invalid_request" if exc.code == 400 else f"http_{exc.code}"
                    _LOGGER.warning(
                        "%s: HTTP %s on attempt %d, not retried (%s)", item.key, exc.code, attempt + 1, kind
                    )
                    return ItemResult(key=item.key, error_type=kind, message=self.redact(last), requests=requests)
                asked = server_retry_delay(exc)
                if asked is not None:
                    asked = min(asked, self.options.max_server_delay_s)
                    if exc.code == 429:
                        self.limiter.hold(asked)  # the quota is the key's: nobody on this shard sends until then
                wait = asked if asked is not None else self._backoff(attempt)
                _LOGGER.warning(
                    "%s: HTTP %s on attempt %d/%d; retrying in %.3g s (%s)",
                    item.key,
                    exc.code,
                    attempt + 1,
                    self.options.max_attempts,
                    wait,
                    "server's retryDelay" if asked is not None else "backoff",
                )
                self.sleep(wait)
                continue
            except _transport_errors() as exc:
                last = f"{type(exc).__name__}: {exc}"
                wait = self._backoff(attempt)
                _LOGGER.warning(
                    "%s: %s on attempt %d/%d; retrying in %.3g s (backoff)",
                    item.key,
                    type(exc).__name__,
                    attempt + 1,
                    self.options.max_attempts,
                    wait,
                )
                self.sleep(wait)
                continue
            record = self.outcome(response)
            self.cache.put(self.cache_key(item), record)  # before anything else: a crash now must not re-pay
            _LOGGER.debug(
                "%s: %s after %d request(s), $%.6f",
                item.key,
                record.get("outcome", "label"),
                requests,
                float(record.get("cost_usd", 0.0)),
            )
            return self._from_record(item, record, requests=requests)
        _LOGGER.warning(
            "%s: gave up after %d attempts (last: %s); recorded as retries_exhausted in the errors table, "
            "a rerun tries again",
            item.key,
            requests,
            self.redact(last),
        )
        return ItemResult(
            key=item.key,
            error_type="retries_exhausted",
            message=self.redact(f"gave up after {requests} attempts; last: {last}"),
            requests=requests,
        )

    def _settled_call(self, client, item: WorkItem) -> ItemResult:
        """``call`` with the item's budget reservation settled exactly once, whatever happens."""
        cost = 0.0
        try:
            result = self.call(client, item)
            cost = result.cost_usd
            return result
        finally:
            self.budget.settle(cost, cost > 0)

    def run_inference(self, batch: Sequence[WorkItem], model) -> list[ItemResult]:
        results: list[ItemResult] = []
        misses: list[WorkItem] = []
        for item in batch:
            record = self.cache.get(self.cache_key(item))
            if record is not None:
                results.append(self._from_record(item, record, cached=True))
            else:
                misses.append(item)
        admitted = []
        for item in misses:
            if not self.budget.reserve():
                break
            admitted.append(item)
        if self.options.mode == "batch":
            results += self._run_batch_jobs(model, admitted)
        elif admitted:
            with ThreadPoolExecutor(max_workers=min(self.options.concurrency, len(admitted))) as pool:
                futures = [pool.submit(self._settled_call, model, it) for it in admitted]
            if self._fatal is not None:
                raise self._fatal  # answers received before it are cached: a rerun replays them for free
            results += [future.result() for future in futures]
        if len(admitted) < len(misses):
            _LOGGER.warning(
                "budget stop: spent $%.4f of --max-usd %s; %d video(s) of this batch left unlabelled "
                "(not in the errors table: a rerun with a higher --max-usd labels them), first: %s",
                self.budget.spent,
                self.options.max_usd,
                len(misses) - len(admitted),
                ", ".join(it.key for it in misses[len(admitted) :][:5]),
            )
            raise BudgetExhausted(
                partial=results,
                message=(
                    f"stopped at the budget: spent ${self.budget.spent:.4f} of --max-usd {self.options.max_usd}; "
                    f"{len(misses) - len(admitted)} video(s) of this batch left unlabelled; rerun with a higher "
                    "--max-usd to resume"
                ),
            )
        return results

    def _run_batch_jobs(self, client, items: list[WorkItem]) -> list[ItemResult]:
        """Label ``items`` through Batch API jobs (half price): resume recorded jobs, submit the rest, poll all."""
        if not items:
            return []
        by_key = {it.key: it for it in items}
        results: dict[str, ItemResult] = {}
        try:
            jobs = [rec for rec in self.ledger.jobs(self.options.model) if rec.cache_keys.keys() & by_key.keys()]
            covered = {k for rec in jobs for k in rec.cache_keys}
            fresh = [it for it in items if it.key not in covered]
            for lo in range(0, len(fresh), self.options.batch_job_size):
                chunk = fresh[lo : lo + self.options.batch_job_size]
                record = self._submit(client, chunk, results)
                if record is not None:
                    jobs.append(record)
            for record, job in self._poll(client, jobs):
                self._collect(record, job, by_key, results)
        finally:
            for item in items:
                result = results.get(item.key)
                cost = result.cost_usd if result is not None else 0.0
                self.budget.settle(cost, cost > 0)
        for item in items:
            if item.key not in results:
                results[item.key] = ItemResult(
                    key=item.key,
                    error_type="batch_item_missing",
                    requests=1,
                    message="the batch job returned no answer for this video",
                )
        return [results[it.key] for it in items]

    def _submit(self, client, chunk: list[WorkItem], results: dict[str, ItemResult]) -> BatchJobRecord | None:
        """Create one job and record it before anything else; a transient refusal leaves the videos for a rerun."""
        from google.genai import errors as genai_errors
        from google.genai import types

        inlined = []
        for item in chunk:
            contents, config, _ = self.request(item)
            inlined.append(types.InlinedRequest(contents=contents, config=config, metadata={"key": item.key}))
        try:
            job = client.batches.create(
                model=self.options.model,
                src=inlined,
                config=types.CreateBatchJobConfig(display_name=f"silverset-{self.spec.key}"),
            )
        except genai_errors.APIError as exc:
            if exc.code in (401, 403, 404) or exc.status == "FAILED_PRECONDITION":
                raise self._refused(exc) from None
            message = self.redact(f"batch job not created: HTTP {exc.code} {exc.status or ''}: {exc.message or ''}")
            _LOGGER.warning(
                "batch job for %d videos not created (HTTP %s); they go to the errors table as "
                "batch_failed and a rerun submits them again",
                len(chunk),
                exc.code,
            )
            for item in chunk:
                results[item.key] = ItemResult(key=item.key, error_type="batch_failed", message=message, requests=1)
            return None
        _LOGGER.info("batch job %s submitted for %d videos", job.name, len(chunk))
        return self.ledger.record(job.name, self.options.model, {it.key: self.cache_key(it) for it in chunk})

    def _poll(self, client, jobs: list[BatchJobRecord]):
        """Poll every job until it ends; yields (record, finished job). Transient poll errors just wait."""
        from google.genai import errors as genai_errors

        waiting = list(jobs)
        while waiting:
            still = []
            for record in waiting:
                try:
                    job = client.batches.get(name=record.name)
                except genai_errors.APIError as exc:
                    if exc.code in RETRYABLE_STATUS:
                        _LOGGER.warning(
                            "batch job %s: poll answered HTTP %s; polling again in %.3g s",
                            record.name,
                            exc.code,
                            self.options.batch_poll_s,
                        )
                        still.append(record)
                        continue
                    if exc.code == 404:  # the job is gone (expired from the service): submit its videos again
                        _LOGGER.warning(
                            "batch job %s is gone (HTTP 404); a rerun submits its %d videos again",
                            record.name,
                            len(record.cache_keys),
                        )
                        self.ledger.forget(record.name)
                        continue
                    raise self._refused(exc) from None
                if job.state is not None and job.state.value in TERMINAL_BATCH_STATES:
                    yield record, job
                else:
                    still.append(record)
            waiting = still
            if waiting:
                self.sleep(self.options.batch_poll_s)

    def _collect(
        self, record: BatchJobRecord, job, by_key: dict[str, WorkItem], results: dict[str, ItemResult]
    ) -> None:
        """Cache every answer of a finished job (all its videos, asked for now or not); fill ``results``."""
        state = job.state.value
        responses = job.dest.inlined_responses if job.dest and job.dest.inlined_responses else []
        if state not in ("JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED") or not responses:
            reason = self.redact(str(job.error.message if job.error else state))
            _LOGGER.warning(
                "batch job %s ended %s: %d video(s) go to the errors table as batch_failed (%s)",
                job.name,
                state,
                len(record.cache_keys.keys() & by_key.keys()),
                reason,
            )
            for key in record.cache_keys.keys() & by_key.keys():
                results[key] = ItemResult(
                    key=key, error_type="batch_failed", message=f"batch {job.name}: {reason}", requests=1
                )
            self.ledger.forget(record.name)
            return
        for answer in responses:
            key = (answer.metadata or {}).get("key")
            if key not in record.cache_keys:
                continue
            if answer.error is not None or answer.response is None:
                if key in by_key:
                    results[key] = ItemResult(
                        key=key, error_type="batch_item_failed", requests=1, message=self.redact(str(answer.error))
                    )
                continue
            cached = self.cache.get(record.cache_keys[key])
            fresh = cached is None
            if fresh:
                cached = self.outcome(answer.response)
                self.cache.put(record.cache_keys[key], cached)
            if key in by_key:
                results[key] = self._from_record(by_key[key], cached, requests=1, cached=not fresh)
        self.ledger.forget(record.name)


def _name(value) -> str | None:
    """The string of an SDK enum (or a plain string the SDK did not recognise)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


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
