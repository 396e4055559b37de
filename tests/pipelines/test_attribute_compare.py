"""`silverset attribute compare A.yaml B.yaml --golden G`: exit codes, the zero-shot teacher for real, and the Gemini
teacher (loopback fake) asked nothing again when its answers are cached."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import numpy as np
import pyarrow as pa
from PIL import Image

from silverset.components.common import schemas, tables
from silverset.components.common.golden import golden_rows
from silverset.components.common.spec import example_specs_dir
from tests.fakes.gemini_server import FakeGemini, GeminiServer

KEY = "sk-test-compare-0123456789"
TITLES = [
    "How to make pasta carbonara at home",
    "Easy chocolate cake recipe step by step",
    "Chef shows how to fry rice",
    "Baking sourdough bread for beginners",
    "Cooking a Sunday roast dinner",
    "Making homemade pizza dough",
    "Highlights of the football match",
    "Formula one race in Monaco",
    "Cat plays with a toy mouse",
    "City skyline timelapse at night",
    "Stock market news today",
    "Sunset over the ocean",
]


def _spec(path, *, title, definition, version, name="cooking", backend="zero-shot", classes=None):
    text = (example_specs_dir() / "red_dominant.yaml").read_text()
    text = text.replace("name: red_dominant", f"name: {name}").replace("version: 1", f"version: {version}")
    text = text.replace("title: Red is the dominant colour", f"title: {title}")
    text = text.replace("backend: zero-shot", f"backend: {backend}")
    text = re.sub(r"definition: \|\n(  .*\n)+", f"definition: |\n  {definition}\n", text)
    if classes:
        text += f"classes: [{', '.join(classes)}]\n"
    path.write_text(text)
    return str(path)


def _inputs(tmp_path):
    ids = [f"g{i:02d}" for i in range(len(TITLES))]
    resolved = {v: int(i < 6) for i, v in enumerate(ids)}
    at = {v: dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc) for v in ids}
    tables.write_table(
        golden_rows(
            attribute="cooking",
            version=1,
            classes=("negative", "positive"),
            votes={v: {"alice": x} for v, x in resolved.items()},
            resolved=resolved,
            how={v: "single" for v in ids},
            labeled_at=at,
        ),
        tmp_path / "golden.parquet",
    )
    tables.write_table(
        pa.table({"video_id": ids, "uri": [f"file:///v/{v}.mp4" for v in ids], "title": TITLES}),
        tmp_path / "manifest.parquet",
    )
    rows = []
    for i, vid in enumerate(ids):
        for t in range(2):
            buffer = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), (20 * i, 100, 30 * t), np.uint8)).save(buffer, format="JPEG")
            rows.append(
                {
                    "video_id": vid,
                    "frame_index": t,
                    "timestamp_s": t * 0.5,
                    "width": 32,
                    "height": 32,
                    "jpeg": buffer.getvalue(),
                }
            )
    tables.write_table(pa.Table.from_pylist(rows, schema=schemas.FRAMES), tmp_path / "frames" / "part.parquet")
    return str(tmp_path / "golden.parquet"), str(tmp_path / "manifest.parquet"), str(tmp_path / "frames")


def test_zero_shot_compare_prints_the_difference_and_writes_the_report(cli, tmp_path):
    golden, manifest, _ = _inputs(tmp_path)
    poor = _spec(
        tmp_path / "a.yaml",
        title="A motor race",
        version=1,
        definition="Label a video POSITIVE when it shows cars racing on a track.",
    )
    good = _spec(
        tmp_path / "b.yaml",
        title="A cooking tutorial",
        version=2,
        definition="Label a video POSITIVE when someone shows how to cook or bake food in a kitchen.",
    )
    out = tmp_path / "cmp"
    result = cli("attribute", "compare", poor, good, "--golden", golden, "--manifest", manifest, "--out", str(out))
    assert result.code == 0, result.err
    report = json.loads((out / "compare.json").read_text())
    assert report["b"]["f1"]["value"] > report["a"]["f1"]["value"]
    assert report["f1_difference"]["verdict"] == "B better"
    assert "Bbetter" in result.flat_out and f"{report['f1_difference']['value']:.3f}" in result.out
    assert (out / "compare.html").exists()


def test_refusals_exit_2_and_leave_no_folder(cli, tmp_path):
    golden, manifest, _ = _inputs(tmp_path)
    a = _spec(tmp_path / "a.yaml", title="Cooking", version=1, definition="Label a video POSITIVE when food is cooked.")
    other = _spec(
        tmp_path / "o.yaml",
        title="Cooking",
        version=2,
        name="baking",
        definition="Label a video POSITIVE when food is cooked.",
    )
    classes = _spec(
        tmp_path / "c.yaml",
        title="Cooking",
        version=2,
        classes=("absent", "present"),
        definition="Label a video POSITIVE when food is cooked.",
    )
    for b, problem in ((other, "isattribute'baking'"), (classes, "onlywhentheclassesareunchanged")):
        result = cli(
            "attribute", "compare", a, b, "--golden", golden, "--manifest", manifest, "--out", str(tmp_path / "cmp")
        )
        assert result.code == 2 and problem in result.flat_err
        assert not (tmp_path / "cmp").exists()
    result = cli("attribute", "compare", a, a, "--golden", golden, "--teacher-backend", "oracle")
    assert result.code == 2 and "unknownteacher'oracle'" in result.flat_err


def test_gemini_answers_are_cached_so_a_rerun_asks_nothing(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", KEY)
    golden, manifest, frames = _inputs(tmp_path)
    a = _spec(
        tmp_path / "a.yaml",
        title="Cooking",
        version=1,
        backend="gemini",
        definition="Label a video POSITIVE when food is cooked on screen.",
    )
    b = _spec(
        tmp_path / "b.yaml",
        title="A cooking tutorial",
        version=2,
        backend="gemini",
        definition="Label a video POSITIVE when someone shows how to cook or bake food in a kitchen.",
    )
    truth = {f"g{i:02d}": int(i < 6) for i in range(len(TITLES))}
    truth["g00"], truth["g07"] = 0, 1  # the fake teacher misses a positive and calls a negative positive, under both
    with GeminiServer(FakeGemini(api_key=KEY, truth=truth)) as server:

        def compare(out, *extra):
            result = cli(
                "attribute",
                "compare",
                a,
                b,
                "--golden",
                golden,
                "--manifest",
                manifest,
                "--frames",
                frames,
                "--out",
                str(out),
                "--base-url",
                server.url,
                "--model",
                "gemini-3.8-flash",
                "--rps",
                "500",
                *extra,
            )
            assert result.code == 0, result.err
            return json.loads((out / "compare.json").read_text())

        first = compare(tmp_path / "one")
        n = len(TITLES)
        assert sum(server.fake.attempts.values()) == 2 * n  # each video once per definition (two prompts)
        assert (first["a"]["teacher_requests"], first["b"]["teacher_requests"]) == (n, n)
        assert first["a"]["teacher_id"] == first["b"]["teacher_id"] == "gemini:gemini-3.8-flash"
        assert first["a"]["f1"]["value"] == first["b"]["f1"]["value"] == 10 / 12  # tp 5, fp 1, fn 1
        assert first["flipped"] == [] and first["f1_difference"]["verdict"] == "no significant difference"

        again = compare(tmp_path / "one")  # same folder: labels resumed
        fresh = compare(tmp_path / "two", "--cache", str(tmp_path / "one" / ".teacher-cache"))  # new folder, old cache
        assert sum(server.fake.attempts.values()) == 2 * n  # not one new request
        assert (again["a"]["resumed"], again["b"]["resumed"]) == (n, n)
        assert (fresh["a"]["teacher_requests"], fresh["a"]["cache_hits"]) == (0, n)
        assert (fresh["b"]["teacher_requests"], fresh["b"]["cache_hits"]) == (0, n)
        assert fresh["a"]["f1"] == first["a"]["f1"] and fresh["b"]["f1"] == first["b"]["f1"]
