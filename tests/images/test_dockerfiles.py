"""Dockerfiles build from what the repo has, with the lockfile's versions (no Docker engine needed)."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from silverset.components.common import images

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
LOCK = {m.group(1).lower(): m.group(2) for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$",
                                                             (ROOT / "requirements.lock").read_text(), re.M)}


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def test_there_is_one_dockerfile_per_image():
    assert {p.parent.name for p in DOCKERFILES} == {"cpu", "gpu", "index-server"}
    for path in DOCKERFILES:
        assert f"silverset-{path.parent.name}" in {i.rsplit("/", 1)[1].split(":")[0] for i in
                                                   (images.CPU_IMAGE, images.GPU_IMAGE, images.SERVER_IMAGE)}
        # the build command in the header tags the same image the components run in
        tag = re.search(r"-t (\S+) \.", path.read_text()).group(1)
        assert tag in (images.CPU_IMAGE, images.GPU_IMAGE, images.SERVER_IMAGE)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}-image")
def test_copy_sources_exist_in_the_build_context(dockerfile):
    copies = [args for word, args in _instructions(dockerfile) if word == "COPY"]
    assert copies
    for args in copies:
        parts = [p for p in args.split() if not p.startswith("--")]
        for source in parts[:-1]:
            assert (ROOT / source).exists(), f"{dockerfile.parent.name}: COPY source {source} is not in the repo"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}-image")
def test_pins_agree_with_the_lockfile_and_bases_are_pinned(dockerfile):
    text = dockerfile.read_text()
    for name, version in re.findall(r"\b([a-z][a-z0-9_\-]+)==([0-9][^\s\"'$]*)", text):
        if name == "uv":  # the installer itself is pinned like the Makefile pins it
            makefile = (ROOT / "Makefile").read_text()
            assert f"uv=={version}" in makefile
            continue
        assert LOCK.get(name.lower()) == version, f"{dockerfile.parent.name}: {name}=={version} vs lock {LOCK.get(name)}"
    for word, args in _instructions(dockerfile):
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
    assert "requirements.lock" in text


def test_server_requirements_are_all_in_the_lock():
    names = [line.strip() for line in (ROOT / "images/index-server/requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    missing = [n for n in names if n.lower() not in LOCK]
    assert not missing, f"not in requirements.lock: {missing}"


def test_gpu_image_installs_the_pyproject_gpu_extra_and_image_tags_follow_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"tensorrt", "torch-tensorrt"} <= {re.split(r"[<>=]", d)[0] for d in project["optional-dependencies"]["gpu"]}
    assert '".[gpu]"' in (ROOT / "images/gpu/Dockerfile").read_text()
    assert images.VERSION == project["version"]
