"""The Gemini teacher driven through the real google-genai client into the loopback fake server."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.sharding import Shard
from silverset.components.runtime.runner import merge_check
from silverset.components.teacher import annotate
from silverset.components.teacher.gemini import GeminiOptions, RateLimiter
from silverset.components.teacher.prices import load_price_table
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-test-SECRET-0123456789"


def _options(server, **kw) -> annotate.AnnotateOptions:
    gem = dict(
        model="gemini-3.8-flash",
        base_url=server.url,
        rps=200,
        concurrency=4,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=2,
        batch_poll_s=0.01,
    )
    gem.update(kw.pop("gemini", {}))
    return annotate.AnnotateOptions(teacher="gemini", gemini=GeminiOptions(**gem), **kw)


def _labels(out: Path):
    return tables.read_table(out).to_pylist()


def test_faults_become_retries_or_error_rows_and_nothing_is_lost(corpus, monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    faults = {
        ids[0]: ["429", "ok"],
        ids[1]: ["500", "503", "ok"],
        ids[2]: ["slow", "ok"],
        ids[3]: ["malformed"],
        ids[4]: ["safety"],
        ids[5]: ["empty"],
        ids[6]: ["429"] * 10,
        ids[7]: ["image_safety"],
        ids[8]: ["prohibited"],
        ids[9]: ["prompt_blocked"],
        ids[10]: ["max_tokens"],
        ids[11]: ["400"],
    }
    caplog.set_level(logging.DEBUG)
    with GeminiServer(FakeGemini(api_key=KEY, faults=faults, slow_s=3.0)) as server:
        out = corpus["tmp"] / "labels"
        summary = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=_options(server, gemini={"max_attempts": 4}),
        )
        fake = server.fake
    rows = _labels(out)
    errors = {e["key"]: e["error_type"] for e in tables.read_errors(out).to_pylist()}
    assert errors == {
        ids[3]: "bad_response",
        ids[4]: "safety_blocked",
        ids[5]: "no_candidate",
        ids[6]: "retries_exhausted",
        ids[7]: "safety_blocked",
        ids[8]: "safety_blocked",
        ids[9]: "safety_blocked",
        ids[10]: "truncated",
        ids[11]: "invalid_request",
    }
    assert merge_check(out, ids).ok and len(rows) + len(errors) == len(ids)
    for row in rows:
        assert row["label"] == fake.label_of(row["video_id"])
        assert row["teacher_id"] == "gemini:gemini-3.8-flash"
    assert fake.attempts[ids[0]] == 2 and fake.attempts[ids[1]] == 3 and fake.attempts[ids[6]] == 4
    assert max(fake.paid.values()) == 1  # no answer was ever paid for twice
    assert summary.stats.cost_usd > 0
    # the key reached the server in its header and nowhere else
    assert fake.api_keys_seen == {KEY}
    blobs = [p.read_bytes() for p in out.rglob("*") if p.is_file()]
    assert not any(KEY.encode() in b for b in blobs)
    assert KEY not in caplog.text


def test_rerun_pays_nothing_and_budget_stops_cleanly(corpus, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    ids = sorted(corpus["videos"])
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        out = corpus["tmp"] / "labels"
        # one answer of the fake bills 4*258+200 input and 40+100 output (thinking) tokens; allow about 5
        price = load_price_table().price("gemini-3.8-flash")
        answer = ((4 * 258 + 200) * price.input_per_mtok + 140 * price.output_per_mtok) / 1e6
        opts = _options(server, batch_size=4, gemini={"max_usd": 5.1 * answer, "estimated_output_tokens": 140})
        first = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=opts,
        )
        assert first.stats.stopped == "budget" and "--max-usd" in first.stats.message
        assert first.stats.cost_usd <= 5.1 * answer
        done = len(_labels(out))
        assert 0 < done < len(ids) and first.stats.remaining == len(ids) - done
        paid_before = sum(server.fake.paid.values())
        assert paid_before == done
        second = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=_options(server),
        )
        assert second.stats.resumed == done and second.stats.remaining == 0
        assert merge_check(out, ids).ok
        assert max(server.fake.paid.values()) == 1
        # a fresh output directory sharing the cache pays nothing at all
        third_out = corpus["tmp"] / "labels2"
        cached = _options(server, gemini={"cache_dir": str(out / ".teacher-cache")})
        third = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(third_out),
            options=cached,
        )
        assert third.stats.cache_hits == len(ids) and third.stats.cost_usd == 0
        assert sum(server.fake.paid.values()) == len(ids)


def test_shards_cover_every_item_exactly_once(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        out = corpus["tmp"] / "labels"
        for i in range(3):
            annotate.run(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri=corpus["frames"],
                out_dir=str(out),
                options=_options(server),
                shard=Shard(i, 3),
            )
        assert sum(server.fake.paid.values()) == len(ids)
    report = merge_check(out, ids)
    assert report.ok and report.outputs == len(ids)
    assert len(list((out / "stats").glob("shard-*.json"))) == 3


def test_batch_mode_polls_to_completion_at_half_price(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    with GeminiServer(FakeGemini(api_key=KEY, batch_polls=3)) as server:
        online = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(corpus["tmp"] / "online"),
            options=_options(server),
        )
        batch = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(corpus["tmp"] / "batch"),
            options=_options(server, gemini={"mode": "batch"}),
        )
    assert merge_check(corpus["tmp"] / "batch", ids).ok
    assert batch.stats.cost_usd == pytest.approx(online.stats.cost_usd / 2, rel=1e-3)
    assert {r["video_id"]: r["label"] for r in _labels(corpus["tmp"] / "online")} == {
        r["video_id"]: r["label"] for r in _labels(corpus["tmp"] / "batch")
    }


def test_key_from_secret_file_and_missing_key(corpus, monkeypatch, tmp_path):
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        with pytest.raises(SilversetInputError, match="GEMINI_API_KEY"):
            annotate.run(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri=corpus["frames"],
                out_dir=str(tmp_path / "a"),
                options=_options(server),
            )
        secret = tmp_path / "secret"
        secret.write_text(KEY + "\n")
        s = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(tmp_path / "b"),
            options=_options(server, gemini={"api_key_file": str(secret)}),
        )
        assert s.stats.outputs == len(corpus["videos"])
        # GOOGLE_GEMINI_BASE_URL (honoured by google-genai) works when no base URL is configured
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        s = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(tmp_path / "c"),
            options=_options(server, gemini={"base_url": None}),
        )
        assert s.stats.outputs == len(corpus["videos"])


def test_rate_limiter_spaces_requests():
    now = [0.0]
    limiter = RateLimiter(
        rps=4, tokens_per_min=600, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
    )
    for _ in range(9):
        limiter.acquire(tokens=10)
    assert now[0] == pytest.approx(2.0)  # 9 requests at 4/s: the 9th starts at t = 2 s
    limiter.acquire(tokens=600)  # a request bigger than the remaining token bucket waits for refill
    assert now[0] > 2.0


@pytest.mark.slow
def test_kill_9_and_resume_pays_no_answer_twice(corpus):
    ids = sorted(corpus["videos"])
    out = corpus["tmp"] / "labels"
    with GeminiServer(FakeGemini(api_key=KEY, latency_s=0.3)) as server:
        script = textwrap.dedent(f"""
            from silverset.components.teacher import annotate
            from silverset.components.teacher.gemini import GeminiOptions
            opts = annotate.AnnotateOptions(teacher="gemini", batch_size=2, gemini=GeminiOptions(
                model="gemini-3.8-flash", base_url={server.url!r}, rps=100, concurrency=2))
            annotate.run(attribute_spec={corpus["spec"]!r}, manifest_uri={corpus["manifest"]!r},
                         frames_uri={corpus["frames"]!r}, out_dir={str(out)!r}, options=opts)
        """)
        env = {**os.environ, "GEMINI_API_KEY": KEY}
        proc = subprocess.Popen([sys.executable, "-c", script], env=env)
        deadline = time.time() + 60
        while sum(server.fake.paid.values()) < 5 and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        paid_at_kill = sum(server.fake.paid.values())
        assert 0 < paid_at_kill < len(ids)
        time.sleep(0.5)  # requests in flight at the kill may still be answered (and billed)
        os.environ["GEMINI_API_KEY"] = KEY
        try:
            annotate.run(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri=corpus["frames"],
                out_dir=str(out),
                options=_options(server),
            )
        finally:
            del os.environ["GEMINI_API_KEY"]
        fake = server.fake
    assert merge_check(out, ids).ok
    # answers received before the kill were cached and never requested again; only the (at most
    # concurrency=2) requests in flight at the kill, billed by the server but never received, are paid twice
    assert sum(fake.paid.values()) - len(ids) <= 2, dict(fake.paid)
    assert len(_labels(out)) == len(ids)
