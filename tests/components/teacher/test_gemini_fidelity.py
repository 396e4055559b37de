"""The Gemini teacher against today's API shapes: RetryInfo delays, 404 for a retired model, one quota per run,
transient failures retried on rerun without paying twice, batch jobs resumed, prices and prompt hash as data."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.error
import urllib.request

import pytest

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.common.spec import PROMPT_TEMPLATE_VERSION, load_spec
from silverset.components.runtime.handler import WorkItem
from silverset.components.runtime.inputs import load_frames
from silverset.components.runtime.runner import merge_check
from silverset.components.teacher import annotate
from silverset.components.teacher.gemini import PROMPT_TEMPLATE, GeminiHandler, GeminiOptions, ModelUnavailable
from silverset.components.teacher.prices import load_price_table
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-fidelity-SECRET-31337"
# sha256 of PROMPT_TEMPLATE for each PROMPT_TEMPLATE_VERSION: editing the template without bumping the
# version (and so the prompt hash) would reuse cached answers to a different question.
TEMPLATE_DIGESTS = {2: "c5cdf95f0fedc4037b78cec0104af98baa3919b8791c34ce4b7f7e6df5788621"}


def _options(server, **gemini) -> annotate.AnnotateOptions:
    gem = dict(
        base_url=server.url,
        rps=500,
        concurrency=4,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5,
        batch_poll_s=0.01,
    )
    gem.update(gemini)
    return annotate.AnnotateOptions(teacher="gemini", gemini=GeminiOptions(**gem))


def _run(corpus, out, options, **kw):
    return annotate.run(
        attribute_spec=corpus["spec"],
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        out_dir=str(out),
        options=options,
        **kw,
    )


def _post(url: str, body: dict, key: str = KEY):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"x-goog-api-key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def _request(video_id: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": f"video_id: {video_id}"}]}]}


def test_the_fake_refuses_what_the_real_api_refuses():
    fake = FakeGemini(api_key=KEY, retry_delay_s=22, faults={"a": ["429"], "b": ["503"]})
    with GeminiServer(fake) as server:
        status, headers, body = _post(f"{server.url}/v1beta/models/gemini-2.5-pro:generateContent", _request("x"))
        assert status == 404 and body["error"]["status"] == "NOT_FOUND"
        assert "models/gemini-2.5-pro is not found" in body["error"]["message"]
        status, headers, body = _post(f"{server.url}/v1beta/models/gemini-3.8-flash:generateContent", _request("a"))
        assert status == 429 and body["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert "Retry-After" not in headers and "retry-after" not in {h.lower() for h in headers}
        kinds = {d["@type"].rsplit(".", 1)[-1]: d for d in body["error"]["details"]}
        assert kinds["RetryInfo"]["retryDelay"] == "22s" and "QuotaFailure" in kinds
        status, _, body = _post(f"{server.url}/v1beta/models/gemini-3.8-flash:generateContent", _request("b"))
        assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
        status, _, body = _post(
            f"{server.url}/v1beta/models/gemini-3.8-flash:generateContent", _request("c"), key="bad"
        )
        assert status in (400, 401, 403) and "API key not valid" in body["error"]["message"]
        status, _, body = _post(f"{server.url}/v1beta/models/gemini-3.8-flash:generateContent", _request("c"))
        assert status == 200 and body["candidates"][0]["finishReason"] == "STOP"


def test_retry_info_delay_is_waited_and_retry_after_is_not_needed(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    victim = sorted(corpus["videos"])[0]
    fake = FakeGemini(api_key=KEY, retry_delay_s=0.8, faults={victim: ["429", "ok"]})
    with GeminiServer(fake) as server:
        # backoff alone would retry within 10 ms; the server asked for 0.8 s
        summary = _run(corpus, corpus["tmp"] / "labels", _options(server, backoff_initial_s=0.01, max_attempts=3))
    times = [t for t, vid, _ in fake.log if vid == victim]
    assert [s for _, vid, s in fake.log if vid == victim] == [429, 200]
    assert times[1] - times[0] >= 0.75
    assert summary.stats.outputs == len(corpus["videos"]) and summary.stats.errors == 0


def test_a_retired_model_stops_the_run_at_once_naming_it(corpus, monkeypatch, tmp_path):
    """A user's own price table still prices gemini-2.5-pro; the API answers 404: the run fails fast, exit 2."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    table = tmp_path / "prices.yaml"
    table.write_text(
        "checked: 2025-10-01\nmodels:\n  gemini-2.5-pro:\n"
        "    - {from: 2025-06-17, input_per_mtok: 1.25, output_per_mtok: 10.0}\n"
    )
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        with pytest.raises(ModelUnavailable, match="gemini-2.5-pro.*retired or unknown") as err:
            _run(
                corpus,
                corpus["tmp"] / "labels",
                _options(server, model="gemini-2.5-pro", price_table=str(table), concurrency=2, max_attempts=6),
            )
        requests = sum(server.fake.attempts.values())
    assert isinstance(err.value, SilversetInputError)  # the CLI's exit 2
    assert requests == 0  # the fake counts only requests to a served model: none was retried or billed
    assert not list((corpus["tmp"] / "labels").glob("part-*.parquet"))


def test_budget_reservations_are_released_by_non_retryable_outcomes(corpus, monkeypatch):
    """Regression: a non-retryable HTTP error used to return before settling, leaking its reservation until the
    run stopped with 'BudgetExhausted: spent $0.0000'."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    spec = load_spec(corpus["spec"])
    with GeminiServer(FakeGemini(api_key=KEY, faults={v: ["400"] for v in ids})) as server:
        estimate = GeminiHandler(spec, _options(server).gemini).budget.estimate
        options = _options(server, max_usd=3 * estimate, concurrency=1)
        summary = _run(corpus, corpus["tmp"] / "labels", options.model_copy(update={"batch_size": 2}))
    assert summary.stats.stopped is None and summary.stats.cost_usd == 0
    assert summary.stats.error_types == {"invalid_request": len(ids)}


def test_a_fatal_404_releases_every_reservation(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    spec = load_spec(corpus["spec"])
    videos = load_frames(corpus["frames"])
    items = [WorkItem(key=v, payload=annotate.TeacherInput(v, "", videos[v])) for v in sorted(videos)]
    with GeminiServer(FakeGemini(api_key=KEY, models=frozenset())) as server:
        handler = GeminiHandler(spec, _options(server, max_usd=1.0, cache_dir=str(corpus["tmp"] / "c")).gemini)
        with pytest.raises(ModelUnavailable):
            handler.run_inference(items, handler.load_model())
    assert handler.budget.reserved == 0 and handler.budget.spent == 0


def test_four_shards_together_stay_within_the_key_quota(corpus, monkeypatch):
    """Four concurrent shards of one run, each told the key's quota R: none of them is refused by the key's limit."""
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    rate = 8.0
    fake = FakeGemini(api_key=KEY, rate_limit_rps=rate, latency_s=0.02)
    out = corpus["tmp"] / "labels"
    with GeminiServer(fake) as server:
        options = _options(server, rps=rate, concurrency=4)
        threads = [
            threading.Thread(target=_run, args=(corpus, out, options), kwargs={"shard": Shard(i, 4)}) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert fake.rate_limited == 0
    assert merge_check(out, list(corpus["videos"])).ok and len(tables.read_table(out)) == len(corpus["videos"])
    times = sorted(t for t, _, _ in fake.log)
    # bucket of one second of quota plus R per second after it
    assert len(times) <= rate * (times[-1] - times[0]) + rate + 1


def test_transient_failures_are_retried_by_a_rerun_and_no_answer_is_paid_twice(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    faults = {ids[0]: ["safety"], ids[1]: ["malformed"]}
    fake = FakeGemini(api_key=KEY, faults=faults, fault_rate=0.8, seed=3)
    out = corpus["tmp"] / "labels"
    with GeminiServer(fake) as server:
        first = _run(corpus, out, _options(server, max_attempts=2))
        exhausted = {e["key"] for e in tables.read_errors(out).to_pylist() if e["error_type"] == "retries_exhausted"}
        assert len(exhausted) >= 3, first.stats.error_types  # the flaky server left several videos unlabelled
        fake.fault_rate = 0.0  # the server recovers
        before = sum(fake.attempts.values())
        second = _run(corpus, out, _options(server, max_attempts=2))
        rerun_requests = sum(fake.attempts.values()) - before
    assert rerun_requests == len(exhausted)  # only the transient failures went back to the server
    assert second.stats.cache_hits == 1  # the malformed paid answer was replayed from the cache, not re-paid
    assert max(fake.paid.values()) == 1
    errors = {e["key"]: e["error_type"] for e in tables.read_errors(out).to_pylist()}
    assert errors == {ids[0]: "safety_blocked", ids[1]: "bad_response"}
    assert merge_check(out, ids).ok


def test_batch_job_is_recorded_and_a_rerun_polls_it_instead_of_resubmitting(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    spec = load_spec(corpus["spec"])
    videos = load_frames(corpus["frames"])
    items = [WorkItem(key=v, payload=annotate.TeacherInput(v, "", videos[v])) for v in sorted(videos)]

    class Killed(Exception):
        pass

    def killed(_seconds):
        raise Killed  # the process dies while waiting for the jobs

    with GeminiServer(FakeGemini(api_key=KEY, batch_polls=3)) as server:
        options = _options(server, mode="batch", batch_job_size=5, cache_dir=str(corpus["tmp"] / "cache")).gemini
        first = GeminiHandler(spec, options, sleep=killed)
        with pytest.raises(Killed):
            first.run_inference(items, first.load_model())
        assert server.fake.batches_created == 3  # 12 videos in jobs of 5: three in flight at once
        second = GeminiHandler(spec, options)
        results = second.run_inference(items, second.load_model())
        fake = server.fake
    assert fake.batches_created == 3  # resumed, not resubmitted
    assert sorted(r.key for r in results if r.row is not None) == sorted(videos)
    assert max(fake.paid.values()) == 1
    assert not list((corpus["tmp"] / "cache" / "batch-jobs").glob("*.json"))  # collected jobs leave the ledger


def test_a_failed_batch_job_leaves_its_videos_for_the_rerun(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    out = corpus["tmp"] / "labels"
    with GeminiServer(FakeGemini(api_key=KEY, batch_fail=1)) as server:
        options = _options(server, mode="batch", batch_job_size=6)
        first = _run(corpus, out, options)
        assert first.stats.error_types == {"batch_failed": 6} and first.stats.outputs == 6
        second = _run(corpus, out, options)
        fake = server.fake
    assert second.stats.outputs == 6 and second.stats.resumed == 6
    assert fake.batches_created == 3 and max(fake.paid.values()) == 1
    assert merge_check(out, ids).ok and tables.read_errors(out).num_rows == 0


def test_prompt_hash_follows_the_title_and_the_template(corpus):
    spec = load_spec(corpus["spec"])
    retitled = spec.model_copy(update={"title": spec.title + " (reworded)"})
    assert retitled.prompt_hash != spec.prompt_hash
    assert TEMPLATE_DIGESTS.get(PROMPT_TEMPLATE_VERSION) == hashlib.sha256(PROMPT_TEMPLATE.encode()).hexdigest(), (
        "PROMPT_TEMPLATE changed: bump spec.PROMPT_TEMPLATE_VERSION and record the new digest here"
    )


def test_a_changed_video_title_is_asked_again(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        cache = str(corpus["tmp"] / "cache")
        _run(corpus, corpus["tmp"] / "a", _options(server, cache_dir=cache))
        manifest = corpus["tmp"] / "manifest.csv"
        lines = manifest.read_text().splitlines()
        head, first = lines[0].split(","), lines[1].split(",")
        first[head.index("title")] = "a new title"
        manifest.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
        again = _run(corpus, corpus["tmp"] / "b", _options(server, cache_dir=cache))
    assert again.stats.cache_hits == len(corpus["videos"]) - 1 and again.stats.requests == 1


def test_price_table_is_dated_and_an_unpriced_model_says_how_to_add_it(tmp_path):
    import datetime as dt

    table = load_price_table()
    launch = table.price("gemini-3.8-flash", on=dt.date(2026, 11, 30))
    later = table.price("gemini-3.8-flash", on=dt.date(2027, 1, 2))
    assert (launch.input_per_mtok, launch.output_per_mtok) == (0.75, 3.75)
    assert later.input_per_mtok > launch.input_per_mtok
    with pytest.raises(SilversetInputError, match="--price-table") as err:
        table.price("gemini-9-ultra")
    assert "gemini-9-ultra" in str(err.value)
    bad = tmp_path / "p.yaml"
    bad.write_text(
        "checked: 2026-11-30\nmodels:\n  m:\n    - {from: 2026-01-01, input_per_mtok: -1, output_per_mtok: 1}\n"
    )
    with pytest.raises(SilversetInputError, match=f"--price-table '{bad}'.*input_per_mtok"):
        load_price_table(bad)
    with pytest.raises(SilversetInputError, match="file not found"):
        load_price_table(tmp_path / "missing.yaml")


def test_old_gemini_model_key_still_loads_with_a_warning(corpus, tmp_path):
    text = open(corpus["spec"]).read().replace("model: gemini-3.8-flash", "gemini_model: gemini-3.6-flash")
    old = tmp_path / "old.yaml"
    old.write_text(text)
    with pytest.warns(FutureWarning, match="teacher.model"):
        spec = load_spec(old)
    assert spec.teacher.model == "gemini-3.6-flash"
    both = tmp_path / "both.yaml"
    both.write_text(text.replace("gemini_model: gemini-3.6-flash", "gemini_model: a, model: b"))
    with pytest.raises(SilversetInputError, match="teacher.model only"):
        load_spec(both)


def test_default_model_is_priced_and_served():
    from silverset.components.common.spec import DEFAULT_GEMINI_MODEL
    from tests.fakes.gemini_server import SERVED_MODELS

    assert load_price_table().price(DEFAULT_GEMINI_MODEL).output_per_mtok > 0
    assert DEFAULT_GEMINI_MODEL in SERVED_MODELS
