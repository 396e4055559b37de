"""The annotate stage's logs: a budget stop and skipped videos are WARNINGs that count them, name the first ids
and say where they went; the stage's end is one line with its counts."""

from __future__ import annotations

import csv
import logging

from silverset.components.common import tables
from silverset.components.teacher import annotate
from silverset.components.teacher.gemini import GeminiOptions
from silverset.components.teacher.prices import load_price_table
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-test-ANNOTATE-LOG-5555"
ANNOTATE = "silverset.components.teacher.annotate"


def _options(server, **gemini) -> annotate.AnnotateOptions:
    settings = dict(model="gemini-3.8-flash", base_url=server.url, rps=200, concurrency=2, timeout_s=2) | gemini
    return annotate.AnnotateOptions(teacher="gemini", batch_size=4, gemini=GeminiOptions(**settings))


def _messages(caplog, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("silverset")]


def test_budget_stop_is_a_warning_with_spend_and_what_is_left(corpus, monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    caplog.set_level(logging.INFO, logger="silverset")
    price = load_price_table().price("gemini-3.8-flash")
    answer = ((4 * 258 + 200) * price.input_per_mtok + 140 * price.output_per_mtok) / 1e6  # one fake answer
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        out = corpus["tmp"] / "labels"
        summary = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=_options(server, max_usd=5.1 * answer, estimated_output_tokens=140),
        )
    stats = summary.stats
    assert stats.stopped == "budget" and 0 < stats.outputs < len(corpus["videos"])
    warnings = _messages(caplog, logging.WARNING)
    stop = [m for m in warnings if m.startswith("budget stop")]
    assert len(stop) == 1 and f"--max-usd {5.1 * answer}" in stop[0]
    left_in_batch = int(stop[0].split("; ")[1].split(" video")[0])
    assert 0 < left_in_batch <= stats.remaining
    done = {r["video_id"] for r in tables.read_table(out).to_pylist()}
    first_left = stop[0].split("first: ")[1].split(", ")
    assert first_left and not set(first_left) & done  # the ids it names are the ones left unlabelled
    end = [m for m in warnings if m.startswith("annotate ")]
    assert end == [
        f"annotate {summary.attribute} [shard {stats.shard}]: {stats.outputs} labelled, 0 errors {{}}, "
        f"0 resumed, {stats.remaining} remaining (stopped: budget); ${stats.cost_usd:.4f}, "
        f"{stats.requests} requests, 0 cache hits in {stats.seconds:.1f} s"
    ]
    assert KEY not in caplog.text


def test_skipped_videos_are_counted_named_and_in_the_errors_table(corpus, monkeypatch, caplog):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    caplog.set_level(logging.INFO, logger="silverset")
    manifest = corpus["tmp"] / "manifest-extra.csv"
    with open(corpus["manifest"], newline="") as src:
        rows = list(csv.DictReader(src))
    extra = [dict(rows[0], video_id=f"noframes{i}", uri=f"file:///nowhere/noframes{i}.mp4") for i in range(7)]
    with open(manifest, "w", newline="") as dst:
        writer = csv.DictWriter(dst, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + extra)
    ids = sorted(corpus["videos"])
    with GeminiServer(FakeGemini(api_key=KEY, faults={ids[3]: ["safety"], ids[4]: ["400"]})) as server:
        out = corpus["tmp"] / "labels"
        summary = annotate.run(
            attribute_spec=corpus["spec"],
            manifest_uri=str(manifest),
            frames_uri=corpus["frames"],
            out_dir=str(out),
            options=_options(server),
        )
    errors = {e["key"]: e["error_type"] for e in tables.read_errors(out).to_pylist()}
    assert errors == {
        **{e["video_id"]: "no_frames" for e in extra},
        ids[3]: "safety_blocked",
        ids[4]: "invalid_request",
    }
    warnings = _messages(caplog, logging.WARNING)
    skipped = [m for m in warnings if "skipped before the teacher" in m]
    assert skipped == [
        f"annotate {summary.attribute} [shard 0/1]: 7 video(s) skipped before the teacher and written "
        "to the errors table (no_frames 7); first: noframes0, noframes1, noframes2, noframes3, noframes4"
    ]
    teacher_errors = [m for m in warnings if "item(s) written to the errors table" in m]
    named = {k for m in teacher_errors for k in m.split("first: ")[1].split(", ")}
    assert named == {ids[3], ids[4]}
    assert sum(int(m.split(": ")[1].split(" item")[0]) for m in teacher_errors) == 2
    assert any("invalid_request" in m for m in teacher_errors) and any("safety_blocked" in m for m in teacher_errors)
    (end,) = [m for m in _messages(caplog, logging.INFO) if m.startswith("annotate ") and "labelled" in m]
    assert f"{len(ids) - 2} labelled, 9 errors" in end and "(stopped: no)" in end
    assert KEY not in caplog.text
