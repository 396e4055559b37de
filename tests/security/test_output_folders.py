"""No command deletes a user's files: --out that is a file, the current directory, or a folder another
command (or the user) wrote exits 2 naming it; --overwrite is explicit; a failed run leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError


def flat(text: str) -> str:
    """``text`` without whitespace, as CliResult.flat_err compares (rich wraps long paths)."""
    return "".join(text.split())


# Every command that writes --out, with just enough arguments to reach the --out check (inputs need not exist:
# the check comes first, so a refused --out costs no work).
COMMANDS = {
    "frames": ["frames", "--manifest", "m.csv"],
    "corpus synth": ["corpus", "synth"],
    "distill": ["distill", "--embeddings", "e", "--labels", "l", "--attribute", "a.yaml"],
    "score": ["score", "--model", "m", "--embeddings", "e"],
    "index build": ["index", "build", "--scores", "s", "--embeddings", "e", "--attribute", "a.yaml"],
    "annotate": ["annotate", "--attribute", "a.yaml", "--manifest", "m.csv", "--teacher", "zero-shot"],
    "embed": ["embed", "--frames", "f"],
    "evaluate": ["evaluate", "--attribute", "a.yaml", "--gate", "teacher"],
}


def user_folder(path):
    path.mkdir()
    (path / "thesis.tex").write_text("years of work")
    (path / "data").mkdir()
    (path / "data" / "results.csv").write_text("1,2,3")
    return path


def untouched(path) -> bool:
    return (path / "thesis.tex").read_text() == "years of work" and (path / "data" / "results.csv").exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_user_folder_or_file_given_as_out_is_refused_and_left_alone(cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    folder = user_folder(tmp_path / "mine")
    result = cli(*COMMANDS[command], "--out", str(folder))
    assert result.code == 2 and flat(f"--out '{folder}'") in result.flat_err, result.err
    assert untouched(folder) and sorted(p.name for p in folder.iterdir()) == ["data", "thesis.tex"]

    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    result = cli(*COMMANDS[command], "--out", str(a_file))
    assert result.code == 2 and flat(f"--out '{a_file}': is a file") in result.flat_err
    assert a_file.read_text() == "keep me"

    result = cli(*COMMANDS[command], "--out", ".")
    assert result.code == 2 and "currentdirectory" in result.flat_err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "notes.txt"]  # no staging folder left


@pytest.mark.parametrize("command", ["frames", "corpus synth", "distill", "score", "index build"])
def test_a_folder_written_by_another_command_is_refused_naming_it(cli, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores-00000.parquet").write_bytes(b"PAR1")
    tables.write_output_marker(out, command="frames" if command != "frames" else "distill")
    result = cli(*COMMANDS[command], "--out", str(out))
    assert result.code == 2 and "waswrittenby`silverset" in result.flat_err and "--overwrite" in result.err
    assert (out / "scores-00000.parquet").exists()


def test_corpus_synth_replaces_its_own_output_and_a_foreign_folder_only_with_overwrite(cli, tmp_path):
    tiny = ["--videos", "1", "--duration-s", "0.5", "--size", "64x64"]
    out = tmp_path / "corpus"
    assert cli("corpus", "synth", "--out", str(out), *tiny).code == 0
    assert (out / tables.OUTPUT_MARKER).exists()
    assert cli("corpus", "synth", "--out", str(out), *tiny, "--seed", "3").code == 0  # its own folder: replaced
    theirs = user_folder(tmp_path / "theirs")
    assert cli("corpus", "synth", "--out", str(theirs), *tiny).code == 2 and untouched(theirs)
    assert cli("corpus", "synth", "--out", str(theirs), *tiny, "--overwrite").code == 0
    assert not (theirs / "thesis.tex").exists() and (theirs / "manifest.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "theirs"]  # no staging or trash left


def test_a_failed_run_leaves_no_folder_behind(cli, tmp_path):
    out = tmp_path / "new" / "deeper" / "index"
    result = cli(*COMMANDS["index build"], "--out", str(out))
    assert result.code == 2
    assert not (tmp_path / "new").exists()
    with pytest.raises(RuntimeError):
        with tables.atomic_directory(out, command="index build"):
            raise RuntimeError("killed mid-write")
    assert list(tmp_path.iterdir()) == []  # neither the staging folder nor the parents it made


def test_annotate_without_an_api_key_leaves_no_empty_parts_or_stats(cli, tmp_path, monkeypatch):
    import io

    import pyarrow as pa
    from PIL import Image

    from silverset.components.common import schemas

    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    manifest = tmp_path / "m.parquet"
    tables.write_table(pa.table({"video_id": ["v1"], "uri": ["/no/v1.mp4"]}), manifest)
    frames = tmp_path / "frames"
    frames.mkdir()
    jpeg = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(jpeg, format="JPEG")
    tables.write_table(
        pa.table(
            {
                "video_id": ["v1"],
                "frame_index": [0],
                "timestamp_s": [0.0],
                "width": [8],
                "height": [8],
                "jpeg": [jpeg.getvalue()],
            }
        ),
        frames / "part-0.parquet",
        schemas.FRAMES,
    )
    spec = Path(__file__).parents[2] / "components" / "corpus" / "attributes" / "onscreen_text.yaml"
    out = tmp_path / "labels"
    result = cli(
        "annotate",
        "--attribute",
        str(spec),
        "--manifest",
        str(manifest),
        "--frames",
        str(frames),
        "--out",
        str(out),
        "--teacher",
        "gemini",
        "--model",
        "gemini-2.5-flash",
    )
    assert result.code == 2, result.err  # no key (or, while model prices change, an unpriced model): exit 2 either way
    assert not out.exists()


def test_a_resumable_command_that_fails_keeps_finished_parts_and_removes_only_an_empty_start(tmp_path):
    out = tmp_path / "labels"
    with pytest.raises(SilversetInputError):
        with tables.resumable_output_folder(out, command="annotate"):
            (out / ".parts").mkdir()
            (out / "stats").mkdir()
            raise SilversetInputError("GEMINI_API_KEY", "is not set")
    assert not out.exists()
    with pytest.raises(RuntimeError):
        with tables.resumable_output_folder(out, command="annotate"):
            (out / ".parts").mkdir()
            (out / ".parts" / "shard-0-part-0.parquet").write_bytes(b"paid for")
            raise RuntimeError("network down after one paid part")
    assert (out / ".parts" / "shard-0-part-0.parquet").read_bytes() == b"paid for"
    with tables.resumable_output_folder(out, command="annotate"):  # the resume is allowed: same command's marker
        pass
    with pytest.raises(SilversetInputError, match="written by `silverset annotate`"):
        with tables.resumable_output_folder(out, command="embed"):
            pass


def test_the_check_itself_names_the_path_and_refuses_links_and_the_home_folder(tmp_path, monkeypatch):
    target = user_folder(tmp_path / "real")
    link = tmp_path / "link"
    os.symlink(target, link)
    with pytest.raises(SilversetInputError, match="symbolic link"):
        tables.check_output_folder(link, command="frames", overwrite=True)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(SilversetInputError, match="home folder"):
        tables.check_output_folder("~", command="frames", overwrite=True)
    assert tables.check_output_folder(tmp_path / "fresh", command="frames") == tmp_path / "fresh"
    assert tables.check_output_folder("s3://bucket/out", command="frames") is None  # object stores: per object
