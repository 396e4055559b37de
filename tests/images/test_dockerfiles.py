"""Dockerfiles build from what the repo has, with the lockfile's versions (no Docker engine needed)."""

from __future__ import annotations

import re
import runpy
import tomllib
from pathlib import Path

import pytest

from silverset.components.common import images

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
LOCK = {
    m.group(1).lower(): m.group(2)
    for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M)
}


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
        assert f"silverset-{path.parent.name}" in {
            i.rsplit("/", 1)[1].split(":")[0] for i in (images.CPU_IMAGE, images.GPU_IMAGE, images.SERVER_IMAGE)
        }
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
        assert LOCK.get(name.lower()) == version, (
            f"{dockerfile.parent.name}: {name}=={version} vs lock {LOCK.get(name)}"
        )
    for word, args in _instructions(dockerfile):
        if word == "FROM":
            image = args.split()[0]
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"
    assert "requirements.lock" in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}-image")
def test_every_install_line_is_in_the_image_install_script(dockerfile):
    """The image tests run images/<name>/install.sh; a package installed beside it would go untested."""
    script = f"images/{dockerfile.parent.name}/install.sh"
    assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    runs = [args for word, args in _instructions(dockerfile) if word == "RUN"]
    assert [r for r in runs if script in r], f"{dockerfile.parent.name}: no RUN of {script}"
    for args in runs:
        if script in args:
            continue
        installs = re.findall(r"(?:pip|uv pip) install [^&;|]*", args)
        assert all(re.fullmatch(r"pip install --no-cache-dir uv==[0-9.]+\s*", i) for i in installs), (
            f"{dockerfile.parent.name}: install outside {script}: {installs}"
        )
    copied = " ".join(args for word, args in _instructions(dockerfile) if word == "COPY")
    assert script in copied


def test_server_lock_is_the_fresh_dependency_closure_of_its_requirements():
    closure = runpy.run_path(str(ROOT / "images/requirements_closure.py"))
    fresh = closure["render"](ROOT / "images/index-server/requirements.in")
    committed = (ROOT / "images/index-server/requirements.lock").read_text()
    assert committed == fresh, (
        "stale: run .venv/bin/python images/requirements_closure.py images/index-server/requirements.in"
    )
    pinned = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", committed, re.M))
    assert all(LOCK[name.lower()] == version for name, version in pinned.items())
    # Imported at run time by fastapi and by ScaNN, and missing from the hand-kept list this replaced.
    assert {"opentelemetry-api", "protobuf"} <= set(pinned)
    # The server image stays small: none of the pipeline's heavy stacks come in through the closure.
    assert not {"torch", "tensorflow", "apache-beam", "kfp"} & set(pinned)


def test_closure_follows_extras_and_markers_and_refuses_what_the_lock_lacks(tmp_path):
    closure = runpy.run_path(str(ROOT / "images/requirements_closure.py"))
    requirements = tmp_path / "requirements.in"
    requirements.write_text("typer  # the CLI\n")
    names = set(closure["closure"]([closure["Requirement"]("typer")]))
    assert "colorama" not in names  # typer needs it only where platform_system == "Windows"
    assert {"rich", "pygments", "shellingham"} <= names
    extra = set(closure["closure"]([closure["Requirement"]("fsspec[arrow]")])) - set(
        closure["closure"]([closure["Requirement"]("fsspec")])
    )
    assert extra == {"pyarrow"}  # fsspec's requirement `pyarrow>=1; extra == "arrow"`, and pyarrow needs nothing
    lock = {k: v for k, v in closure["read_lock"]().items() if k != "shellingham"}
    with pytest.raises(closure["ClosureError"], match=r"shellingham \(needed by typer\) is not in requirements.lock"):
        closure["render"](requirements, lock)


def test_gpu_image_installs_its_own_lock_and_image_tags_follow_pyproject():
    """The GPU stack comes from images/gpu/requirements.lock (checked against pyproject in test_gpu_lock.py)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {"tensorrt", "torch-tensorrt"} <= {re.split(r"[<>=]", d)[0] for d in project["optional-dependencies"]["gpu"]}
    install = (ROOT / "images/gpu/install.sh").read_text()
    assert '-r "$here/requirements.lock"' in install and '--no-deps "$@" "$root"' in install
    assert "download.pytorch.org" not in install  # PyPI's torch is already the CUDA build the lock pins
    assert images.VERSION == project["version"]
