"""Teacher components: python_func over two shards and the merge check; one kfp.local run on a tiny input.

The kfp.local run uses the Gemini teacher against the loopback fake (key and base URL from the environment,
as a mounted secret and GOOGLE_GEMINI_BASE_URL would give them), so the subprocess needs no MiniLM or torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from silverset.components.common import tables
from silverset.components.teacher import component
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-component-SECRET-42"


def test_shards_then_merge_cover_every_video(corpus):
    out = str(corpus["tmp"] / "labels")
    totals = 0
    for i in range(2):
        stats = json.loads(
            component.annotate_shard.python_func(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri="",
                out_dir=out,
                shard_index=i,
                shard_count=2,
            )
        )
        assert stats["shard"] == f"{i}/2" and stats["model_id"].startswith("zero-shot-text-only-weak:")
        totals += stats["outputs"] + stats["errors"]
    assert totals == len(corpus["videos"])
    assert component.merge_labels.python_func(manifest_uri=corpus["manifest"], out_dir=out) == len(corpus["videos"])


def test_merge_fails_when_a_video_is_missing(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = str(corpus["tmp"] / "half")
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        component.annotate_shard.python_func(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=out,
            shard_index=0,
            shard_count=2,
            teacher_backend="gemini",
        )
    with pytest.raises(RuntimeError, match="not exactly-once: missing"):
        component.merge_labels.python_func(manifest_uri=corpus["manifest"], out_dir=out)


def test_budget_flag_reaches_the_teacher(corpus, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        stats = json.loads(
            component.annotate_shard.python_func(
                attribute_spec=corpus["spec"],
                manifest_uri=corpus["manifest"],
                frames_uri=corpus["frames"],
                out_dir=str(corpus["tmp"] / "budget"),
                teacher_backend="gemini",
                max_usd=0.0,
            )
        )
    assert stats["stopped"] == "budget" and stats["outputs"] == 0 and stats["cost_usd"] == 0.0


def test_the_run_parameters_reach_the_teacher_and_the_run_budget_is_split_by_each_shards_videos(corpus, monkeypatch):
    # The step's teacher parameters carry the run parameters' names: teacher_model picks the Gemini model,
    # teacher_budget_usd is the whole run's hard stop, each shard stopping at budget x (its videos / all videos).
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    common = dict(
        attribute_spec=corpus["spec"],
        manifest_uri=corpus["manifest"],
        frames_uri=corpus["frames"],
        teacher_backend="gemini",
        teacher_model="gemini-3.6-flash",
        gemini_rps=100.0,
    )
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        full = json.loads(component.annotate_shard.python_func(out_dir=str(corpus["tmp"] / "full"), **common))
        budget = full["cost_usd"] / 2  # half of what labelling every video costs
        shards = [
            json.loads(
                component.annotate_shard.python_func(
                    out_dir=str(corpus["tmp"] / "half"),
                    shard_index=i,
                    shard_count=2,
                    teacher_budget_usd=budget,
                    **common,
                )
            )
            for i in range(2)
        ]
    n = len(corpus["videos"])
    assert full["model_id"] == "gemini:gemini-3.6-flash" and full["outputs"] == n and full["stopped"] is None
    assert sum(s["items"] for s in shards) == n
    for s in shards:
        assert s["model_id"] == "gemini:gemini-3.6-flash" and s["stopped"] == "budget", s
        assert s["cost_usd"] <= budget * s["items"] / n + 1e-12, s
    assert sum(s["cost_usd"] for s in shards) <= budget and sum(s["outputs"] for s in shards) < n


def test_kfp_local_run(corpus, tmp_path, monkeypatch):
    from kfp import local

    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    out = tmp_path / "labels"
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.url)
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
        task = component.annotate_shard(
            attribute_spec=corpus["spec"],
            manifest_uri=corpus["manifest"],
            frames_uri=corpus["frames"],
            out_dir=str(out),
            teacher_backend="gemini",
        )
        fake = server.fake
    stats = json.loads(task.output)
    assert stats["outputs"] == len(corpus["videos"]) and stats["errors"] == 0
    assert sum(fake.paid.values()) == len(corpus["videos"])
    assert {r["video_id"] for r in tables.read_table(out).to_pylist()} == set(corpus["videos"])
    # the key travelled in the request header only: not in outputs, stats or the local pipeline root
    for path in list(Path(tmp_path).rglob("*")):
        if path.is_file() and path.suffix in (".json", ".parquet", ".txt", ".log", ""):
            assert KEY.encode() not in path.read_bytes(), path
