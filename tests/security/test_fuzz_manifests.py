"""Fuzz suite, manifests (issue 21 item 6): generated manifest files (CSV, JSONL, Parquet) fed to the command line
never end in a traceback; they exit 0 with the readable videos embedded, or 2 with one line naming the manifest.

The command is ``silverset embed --embedder visual --no-text --manifest M --frames F --out O`` (in-process, the
console entry's own ``main``): it reads the manifest with the reader ``frames``, ``annotate`` and the pipeline's
plan share (``components/common/manifest.py``), then really embeds the manifest's videos that have frames (a
three-video frames table). Mutations: rows dropped, duplicated, or given empty, blank, unicode, path-like, very long
or duplicate ids, missing/odd uris and titles, numbers, booleans, nulls, lists and objects in text columns; columns
dropped, renamed, added or repeated; non-UTF-8 bytes in a Parquet text column; the file truncated, spliced with
junk, given a BOM, or emptied. 300 examples, deterministic (``derandomize=True``), about 30 s on one core.

What it found (2026-11-30): 5 defects in ``components/common/manifest.py``, all fixed: a list/object in a text
column, a repeated column name, non-UTF-8 bytes in a Parquet text column or in a CSV header, and a manifest whose
every row is dropped (blank ids) ended in a traceback. ``test_each_known_manifest_defect_exits_2`` keeps one case per
defect; the property now accepts no traceback at all.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import sys
import traceback

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers.factories import write_frames
from tests.helpers.fuzz import fuzz_settings

VIDEOS = {"v0": "red", "v1": "plain", "v2": "cuts"}
BASE_ROWS = [
    {"video_id": v, "uri": f"file:///videos/{v}.mp4", "title": f"clip {v}", "description": f"a {k} clip"}
    for v, k in VIDEOS.items()
]
TEXT_COLUMNS = ("video_id", "uri", "title", "description")
# Traceback messages of the defects found and fixed (see the module docstring); a regression names its defect.
KNOWN_DEFECTS = {
    "nested value in a text column": r"Unsupported cast from (struct|list)<",
    "repeated column name": r'Field "[^"]*" exists \d+ times in schema',
    "non-UTF-8 bytes in a Parquet text column": r"Invalid UTF8 payload",
    "every row dropped": r"Function 'array_take' has no kernel matching input types \(string, null\)",
    "non-UTF-8 bytes in a CSV header": r"UnicodeDecodeError: 'utf-8' codec can't decode",
}

odd_text = st.sampled_from(
    [
        "",
        "   ",
        "\t",
        "v0",
        "../../etc/passwd",
        "C:\\x",
        "a,b",
        'say "hi"',
        "line\nbreak",
        "\u202e",
        "💥",
        "x" * 300,
        "\x00",
        "null",
        "NaN",
        "0007",
    ]
) | st.text(max_size=20)
odd_value = (
    odd_text
    | st.none()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.booleans()
    | st.lists(st.integers(0, 3), max_size=2)
    | st.fixed_dictionaries({"x": st.integers(0, 3)})
)


@st.composite
def manifests(draw):
    """(file name suffix, bytes, unchanged?) for a mutated three-video manifest."""
    rows = [dict(r) for r in BASE_ROWS]
    fmt = draw(st.sampled_from(["csv", "jsonl", "parquet"]))
    unchanged = True
    for _ in range(draw(st.integers(0, 4))):
        unchanged = False
        action = draw(
            st.sampled_from(["set", "set", "set", "drop_row", "dup_row", "drop_column", "rename_column", "add_column"])
        )
        row = rows[draw(st.integers(0, len(rows) - 1))] if rows else {}
        if action == "set" and rows:
            row[draw(st.sampled_from(TEXT_COLUMNS))] = draw(odd_value)
        elif action == "drop_row" and rows:
            rows.remove(row)
        elif action == "dup_row" and rows:
            rows.append(dict(row))
        elif action in ("drop_column", "rename_column"):
            column, new = draw(st.sampled_from(TEXT_COLUMNS)), draw(st.sampled_from(["VIDEO_ID", "url", "id", " uri"]))
            for r in rows:
                value = r.pop(column, None)
                if action == "rename_column":
                    r[new] = value
        else:
            name, value = draw(st.text(min_size=1, max_size=8)), draw(odd_value)
            for r in rows:
                r[name] = value
    repeat_header = fmt == "csv" and draw(st.integers(0, 9)) == 0
    binary_id = fmt == "parquet" and draw(st.integers(0, 9)) == 0
    data = _encode(fmt, rows, repeat_header=repeat_header, binary_id=binary_id)
    if data is None:  # pyarrow cannot make a Parquet column of these mixed values: write them as text
        data = _encode(fmt, [{k: json.dumps(v) for k, v in r.items()} for r in rows])
    cut = draw(st.integers(0, 12))
    if cut == 0:
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == 1:
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.binary(max_size=16) | st.sampled_from([b"\xff\xfe", b"\x00", b'"', b"\n\n", b"{"]))
            + data[at:]
        )
    elif cut == 2:
        data = b"\xef\xbb\xbf" + data
    unchanged = unchanged and cut > 2 and not repeat_header and not binary_id
    return fmt, data, unchanged


def _encode(fmt: str, rows: list[dict], *, repeat_header: bool = False, binary_id: bool = False) -> bytes | None:
    columns = list(dict.fromkeys(itertools.chain.from_iterable(rows))) or list(TEXT_COLUMNS)
    if fmt == "jsonl":
        return "".join(json.dumps(r, allow_nan=True) + "\n" for r in rows).encode()
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns + (columns[:1] if repeat_header else []))
        for r in rows:
            values = [r.get(c) for c in columns]
            writer.writerow(["" if v is None else v for v in values + (values[:1] if repeat_header else [])])
        return out.getvalue().encode("utf-8", errors="surrogatepass")
    try:
        table = pa.Table.from_pylist(rows) if rows else pa.table({c: pa.array([], pa.string()) for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None
    if binary_id and "video_id" in table.column_names:
        ids = pa.array([b"\xff\xfe" + str(i).encode() for i in range(table.num_rows)], pa.binary())
        table = table.set_column(table.column_names.index("video_id"), "video_id", ids)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def run_cli(*args: str, capsys) -> tuple[int | str, str]:
    """(exit code, or the exception's "Type: message" when ``main`` raised one; stdout + stderr)."""
    from silverset.pipelines.cli import main

    argv = sys.argv
    sys.argv = ["silverset", *args]
    try:
        main()
        code: int | str = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # noqa: BLE001 - what the console would print as a traceback
        code = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def known_defect(message: str) -> str | None:
    return next((name for name, pattern in KNOWN_DEFECTS.items() if re.search(pattern, message)), None)


@pytest.fixture(scope="module")
def frames_table(tmp_path_factory):
    return write_frames(tmp_path_factory.mktemp("fuzz-frames"), VIDEOS, n=2)


COUNTER = itertools.count()


@fuzz_settings(300)
@given(case=manifests())
def test_embed_on_a_generated_manifest_exits_0_or_2_and_never_a_traceback(frames_table, tmp_path_factory, capsys, case):
    import pyarrow.parquet as parquet

    fmt, data, unchanged = case
    root = tmp_path_factory.getbasetemp() / "fuzz-manifests"
    root.mkdir(exist_ok=True)
    n = next(COUNTER)
    manifest, out = root / f"m{n}.{fmt}", root / f"out{n}"
    manifest.write_bytes(data)
    code, output = run_cli(
        "embed",
        "--embedder",
        "visual",
        "--no-text",
        "--manifest",
        str(manifest),
        "--frames",
        str(frames_table),
        "--out",
        str(out),
        capsys=capsys,
    )
    assert not isinstance(code, str), (code, data[:300], output[-2000:])
    assert code in (0, 2), (code, data[:300], output[-2000:])
    assert "Traceback" not in output, output[-2000:]
    if code == 2:
        assert re.match(r"\s*error: manifest '", output) and f"manifest '{manifest}'" in " ".join(output.split()), (
            output
        )
        assert not unchanged, output
        return
    embedded = [
        v
        for part in sorted(out.glob("part-*.parquet"))
        for v in parquet.read_table(part).column("video_id").to_pylist()
    ]
    assert set(embedded) <= set(VIDEOS) and len(embedded) == len(set(embedded)), (
        embedded
    )  # videos with frames, once each
    embedded = set(embedded)
    if unchanged:
        assert embedded == set(VIDEOS)


@pytest.mark.parametrize(
    "defect, fmt, data",
    [
        ("nested value in a text column", "jsonl", b'{"video_id": "v0", "uri": "u", "title": {"x": 1}}\n'),
        ("repeated column name", "csv", b"video_id,uri,video_id\nv0,u,v1\n"),
        ("non-UTF-8 bytes in a Parquet text column", "parquet", None),
        ("every row dropped", "csv", b"video_id,uri\n   ,file:///a.mp4\n"),
        ("non-UTF-8 bytes in a CSV header", "csv", b"\x80video_id,uri\nv0,u\n"),
    ],
)
def test_each_known_manifest_defect_exits_2(frames_table, tmp_path, capsys, defect, fmt, data):
    if data is None:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"video_id": pa.array([b"\xff\xfe"], pa.binary()), "uri": ["u"]}), buffer)
        data = buffer.getvalue()
    manifest = tmp_path / f"m.{fmt}"
    manifest.write_bytes(data)
    code, output = run_cli(
        "embed",
        "--embedder",
        "visual",
        "--no-text",
        "--manifest",
        str(manifest),
        "--frames",
        str(frames_table),
        "--out",
        str(tmp_path / "out"),
        capsys=capsys,
    )
    assert known_defect(str(code)) is None, f"{defect}: {code}"
    # "every row dropped" is not bad input: the rows become error rows and the command finishes
    assert code == (0 if defect == "every row dropped" else 2) and "Traceback" not in output
