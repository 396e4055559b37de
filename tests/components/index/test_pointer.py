"""Publishing an index version where the servers read it: whole or not at all, idempotent, local or object store."""

from __future__ import annotations

import filecmp
import json

import fsspec
import pytest

from silverset.components.common.errors import SilversetInputError
from silverset.components.index import pointer
from silverset.components.index.loaded import LoadedIndex
from tests.helpers.indexes import build_tiny_index


@pytest.fixture
def tiny(tmp_path, spec_path):
    out, _, _, summary = build_tiny_index(tmp_path / "build", spec_path)
    return out, summary.version


def _same_tree(a, b) -> bool:
    cmp = filecmp.dircmp(a, b)
    return not (cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files) and all(
        _same_tree(a / d, b / d) for d in cmp.common_dirs
    )


def test_publish_puts_a_loadable_copy_in_the_version_folder_and_is_a_no_op_the_second_time(tmp_path, tiny):
    index, version = tiny
    root = tmp_path / "serving"
    published = pointer.publish_version(index, root, "red_dominant", version)
    assert published == root / "red_dominant" / "versions" / version
    assert _same_tree(index, published)
    assert LoadedIndex(published, expect_attribute="red_dominant").version == version  # digest verified on load
    # nothing half-written is left beside it, and no pointer is written (pods pin versions themselves)
    assert [p.name for p in (root / "red_dominant" / "versions").iterdir()] == [version]
    assert pointer.read_pointer(root, "red_dominant") is None

    stamp = (published / "manifest.json").stat().st_mtime_ns
    assert pointer.publish_version(index, root, "red_dominant", version) == published
    assert (published / "manifest.json").stat().st_mtime_ns == stamp


def test_publish_refuses_an_index_that_is_not_the_named_version(tmp_path, tiny):
    index, version = tiny
    with pytest.raises(SilversetInputError, match=r"index '.*': is red_dominant/.*, not the red_dominant/other-v9"):
        pointer.publish_version(index, tmp_path / "serving", "red_dominant", "other-v9")
    with pytest.raises(SilversetInputError, match="not the pets/"):
        pointer.publish_version(index, tmp_path / "serving", "pets", version)
    assert not (tmp_path / "serving").exists()


def test_publish_refuses_a_different_index_already_published_under_the_same_version(tmp_path, tiny):
    index, version = tiny
    root = tmp_path / "serving"
    squatter = pointer.version_dir(root, "red_dominant", version)
    squatter.mkdir(parents=True)
    manifest = json.loads((index / "manifest.json").read_text())
    (squatter / "manifest.json").write_text(json.dumps({**manifest, "digest": "0" * 64}))
    with pytest.raises(
        SilversetInputError,
        match=f"serving root '{root}': already holds version {version} with content digest 000000000000",
    ):
        pointer.publish_version(index, root, "red_dominant", version)


def test_publish_to_an_fsspec_uri_uploads_every_file_and_then_is_a_no_op(tiny):
    index, version = tiny
    fs = fsspec.filesystem("memory")
    root = "memory://silverset-test-serving"
    try:
        uri = pointer.publish_version(index, root, "red_dominant", version)
        assert uri == f"memory:///silverset-test-serving/red_dominant/versions/{version}"
        local = sorted(p.relative_to(index).as_posix() for p in index.rglob("*") if p.is_file())
        remote_root = f"/silverset-test-serving/red_dominant/versions/{version}"
        remote = sorted(p[len(remote_root) + 1 :] for p in fs.find(remote_root))
        assert remote == local
        for rel in local:
            assert fs.cat_file(f"{remote_root}/{rel}") == (index / rel).read_bytes()
        fs.rm_file(f"{remote_root}/vocabulary.parquet")  # a second publish must not upload again
        assert pointer.publish_version(index, root, "red_dominant", version) == uri
        assert not fs.exists(f"{remote_root}/vocabulary.parquet")
    finally:
        if fs.exists("/silverset-test-serving"):
            fs.rm("/silverset-test-serving", recursive=True)
