"""The Gemini teacher's logs, driven through the real google-genai client into the loopback fake: every retry
is a WARNING with its attempt, status and wait; a refused key is an ERROR; the API key is in no record."""

from __future__ import annotations

import logging

import pytest

from silverset.components.common import tables
from silverset.components.teacher import annotate
from silverset.components.teacher.gemini import GeminiOptions, ModelUnavailable
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-test-LOGGED-NEVER-9876543210"
GEMINI = "silverset.components.teacher.gemini"


def _options(server, **gemini) -> annotate.AnnotateOptions:
    settings = (
        dict(
            model="gemini-3.8-flash",
            base_url=server.url,
            rps=200,
            concurrency=2,
            backoff_initial_s=0.01,
            backoff_max_s=0.02,
            timeout_s=2,
        )
        | gemini
    )
    return annotate.AnnotateOptions(teacher="gemini", gemini=GeminiOptions(**settings))


def _records_of(caplog, key: str, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == GEMINI and r.levelno == level and r.getMessage().startswith(key)]


def _no_secret(caplog, secret: str) -> None:
    for record in caplog.records:
        assert secret not in record.getMessage(), record.getMessage()
        assert secret not in repr(record.args), record.msg
    assert secret not in caplog.text


def test_429_then_200_and_503_retries_are_warnings_with_attempt_status_and_wait(corpus, monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    ids = sorted(corpus["videos"])
    quota, unavailable, hopeless = ids[0], ids[1], ids[2]
    faults = {quota: ["429", "ok"], unavailable: ["503", "503", "ok"], hopeless: ["503"] * 5}
    caplog.set_level(logging.DEBUG, logger="silverset")
    with GeminiServer(FakeGemini(api_key=KEY, faults=faults, retry_delay_s=0.25)) as server:
        out = corpus["tmp"] / "labels"
        summary = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=_options(server, max_attempts=3),
        )
        assert server.fake.attempts[quota] == 2 and server.fake.attempts[unavailable] == 3
    assert summary.stats.outputs == len(ids) - 1

    (quota_retry,) = _records_of(caplog, quota, logging.WARNING)
    assert quota_retry.getMessage() == (
        f"{quota}: HTTP 429 on attempt 1/3; retrying in 0.25 s (server's retryDelay)"
    )  # the RetryInfo the fake sent, honoured
    retries = [r.getMessage() for r in _records_of(caplog, unavailable, logging.WARNING)]
    assert [m.split(";")[0] for m in retries] == [
        f"{unavailable}: HTTP 503 on attempt 1/3",
        f"{unavailable}: HTTP 503 on attempt 2/3",
    ]
    assert all(m.endswith("(backoff)") and "retrying in" in m for m in retries)
    gave_up = _records_of(caplog, hopeless, logging.WARNING)[-1].getMessage()
    assert "gave up after 3 attempts" in gave_up and "errors table" in gave_up
    assert {e["key"]: e["error_type"] for e in tables.read_errors(out).to_pylist()} == {hopeless: "retries_exhausted"}
    # a labelled video logs at DEBUG, never above
    assert [r.levelname for r in caplog.records if r.name == GEMINI and r.getMessage().startswith(ids[5])] == ["DEBUG"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    _no_secret(caplog, KEY)


def test_a_refused_key_is_one_error_naming_the_model_and_not_the_key(corpus, monkeypatch, caplog):
    wrong = "sk-test-WRONG-KEY-1122334455"
    monkeypatch.setenv("GEMINI_API_KEY", wrong)
    caplog.set_level(logging.DEBUG, logger="silverset")
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        with pytest.raises(ModelUnavailable):
            annotate.run(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri=corpus["frames"],
                out_dir=str(corpus["tmp"] / "labels"),
                options=_options(server),
            )
        assert server.fake.api_keys_seen == {wrong}  # the key did reach the server, in its header
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "HTTP 403 stops the run" in errors[0] and "gemini-3.8-flash" in errors[0]
    _no_secret(caplog, wrong)
    _no_secret(caplog, KEY)
