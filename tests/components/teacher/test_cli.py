"""`silverset annotate` and `silverset embed` as a user runs them: real processes, exit codes, no key in output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from silverset.components.common import tables
from silverset.components.runtime.runner import merge_check
from tests.fakes.gemini_server import FakeGemini, GeminiServer

SILVERSET = str(Path(sys.executable).with_name("silverset"))
KEY = "sk-cli-SECRET-777"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    full_env.update(env)
    return subprocess.run([SILVERSET, *args], capture_output=True, text=True, env=full_env, timeout=300)


def test_annotate_with_gemini_in_two_shards_and_no_key_in_output(corpus):
    out = corpus["tmp"] / "labels"
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        for i in range(2):
            done = _run(
                [
                    "annotate",
                    "--attribute",
                    corpus["spec"],
                    "--manifest",
                    corpus["manifest"],
                    "--frames",
                    corpus["frames"],
                    "--out",
                    str(out),
                    "--teacher",
                    "gemini",
                    "--model",
                    "gemini-3.8-flash",
                    "--shard",
                    f"{i}/2",
                    "--rps",
                    "100",
                ],
                GEMINI_API_KEY=KEY,
                GOOGLE_GEMINI_BASE_URL=server.url,
            )
            assert done.returncode == 0, done.stderr
            assert KEY not in done.stdout + done.stderr
            assert "gemini:gemini-3.8-flash" in done.stdout
    assert merge_check(out, list(corpus["videos"])).ok
    assert len(tables.read_table(out)) == len(corpus["videos"])


def test_annotate_bad_input_exits_2_naming_it(corpus):
    done = _run(
        [
            "annotate",
            "--attribute",
            corpus["spec"],
            "--manifest",
            corpus["manifest"],
            "--out",
            str(corpus["tmp"] / "x"),
            "--teacher",
            "oracle",
        ]
    )
    assert done.returncode == 2 and "--teacher" in done.stderr
    done = _run(
        [
            "annotate",
            "--attribute",
            corpus["spec"],
            "--manifest",
            corpus["manifest"],
            "--frames",
            corpus["frames"],
            "--out",
            str(corpus["tmp"] / "y"),
            "--teacher",
            "gemini",
        ]
    )
    assert done.returncode == 2 and "GEMINI_API_KEY" in done.stderr  # no key configured


def test_embed_visual_and_bad_embedder(corpus):
    out = corpus["tmp"] / "emb"
    done = _run(["embed", "--frames", corpus["frames"], "--out", str(out), "--embedder", "visual", "--batch-size", "5"])
    assert done.returncode == 0, done.stderr
    assert "visual-stats-v1[46]" in done.stdout
    assert merge_check(out, list(corpus["videos"])).ok
    done = _run(["embed", "--frames", corpus["frames"], "--out", str(out), "--embedder", "missing.onnx"])
    assert done.returncode == 2 and "--embedder" in done.stderr


def test_annotate_unpriced_or_retired_model_exits_2_naming_it(corpus, tmp_path):
    args = [
        "annotate",
        "--attribute",
        corpus["spec"],
        "--manifest",
        corpus["manifest"],
        "--frames",
        corpus["frames"],
        "--teacher",
        "gemini",
        "--out",
    ]
    done = _run([*args, str(tmp_path / "a"), "--model", "gemini-9-ultra"], GEMINI_API_KEY=KEY)
    assert done.returncode == 2 and "gemini-9-ultra" in done.stderr and "--price-table" in done.stderr
    prices = tmp_path / "old-prices.yaml"
    prices.write_text(
        "checked: 2025-10-01\nmodels:\n  gemini-2.5-pro:\n"
        "    - {from: 2025-06-17, input_per_mtok: 1.25, output_per_mtok: 10.0}\n"
    )
    with GeminiServer(FakeGemini(api_key=KEY)) as server:
        done = _run(
            [*args, str(tmp_path / "b"), "--model", "gemini-2.5-pro", "--price-table", str(prices)],
            GEMINI_API_KEY=KEY,
            GOOGLE_GEMINI_BASE_URL=server.url,
        )
    assert done.returncode == 2 and "gemini-2.5-pro" in done.stderr and "retired or unknown" in done.stderr
    assert KEY not in done.stdout + done.stderr
