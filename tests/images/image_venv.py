"""Build a venv the way an image's Dockerfile builds its /opt/venv: the same COPYs, the same install.sh runs.

The Dockerfile's COPY instructions are replayed into a temporary build context (its WORKDIR), a venv is
created with the project's Python, and every ``RUN images/<name>/install.sh /opt/venv/bin/python PART``
is run as written with the venv's python in place of /opt/venv's, in uv's offline mode (tests never reach
the network; uv hardlinks from the cache that ``make venv`` filled). The only source added is
``/opt/wheels``, this machine's copy of the CPU torch wheel the CPU image pulls from PyTorch's index.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
IMAGE_VENV = "/opt/venv"
LOCAL_WHEELS = Path("/opt/wheels")
# What uv says when offline mode needs something its cache does not hold.
CACHE_MISS = re.compile(r"because the network was disabled|network connectivity is disabled")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _replay_copies(instructions: list[tuple[str, str]], context: Path) -> None:
    workdir = "/"
    for word, args in instructions:
        if word == "WORKDIR":
            workdir = args
        elif word == "COPY":
            *sources, dest = [p for p in shlex.split(args) if not p.startswith("--")]
            target = context / os.path.relpath(os.path.join(workdir, dest), workdir)
            for source in sources:
                src = ROOT / source
                into = target / src.name if dest.endswith("/") or len(sources) > 1 else target
                into.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(
                        src, into, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True
                    )
                else:
                    shutil.copy2(src, into)


def build_image_venv(image: str, where: Path, *, timeout_s: float = 300) -> Path:
    """Build ``where/venv`` from ``images/<image>``'s install lines; returns the venv's python. Skips on a cache
    miss."""
    dockerfile = ROOT / "images" / image / "Dockerfile"
    instructions = _instructions(dockerfile)
    uv_pin = re.search(r"uv==([0-9.]+)", dockerfile.read_text()).group(1)
    uv_version = subprocess.run([str(UV), "--version"], capture_output=True, text=True, check=True).stdout.split()[1]
    assert uv_version == uv_pin, f"the image installs uv {uv_pin}, this venv has {uv_version}"

    context = where / "context"
    _replay_copies(instructions, context)
    venv = where / "venv"
    subprocess.run([str(UV), "venv", "--offline", "--quiet", "--python", sys._base_executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {
        "PATH": f"{UV.parent}:/usr/bin:/bin",
        "HOME": str(where),
        "UV_CACHE_DIR": _uv_cache_dir(),
        "UV_LINK_MODE": "hardlink",
    }
    extra = ["--offline"] + (["--find-links", str(LOCAL_WHEELS)] if LOCAL_WHEELS.is_dir() else [])
    runs = [args for word, args in instructions if word == "RUN" and f"images/{image}/install.sh" in args]
    assert runs, f"{dockerfile} runs no images/{image}/install.sh"
    for args in runs:
        command = shlex.split(args.replace(f"{IMAGE_VENV}/bin/python", str(python)))
        result = subprocess.run(
            [*command, *extra], cwd=context, env=env, capture_output=True, text=True, timeout=timeout_s
        )
        if result.returncode != 0 and CACHE_MISS.search(result.stderr) and "Traceback" not in result.stderr:
            pytest.skip(
                f"uv's cache lacks a wheel {image} installs (run `make venv` online once): "
                f"{result.stderr.strip()[-300:]}"
            )
        assert result.returncode == 0, f"{args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return python


def _uv_cache_dir() -> str:
    return subprocess.run([str(UV), "cache", "dir"], capture_output=True, text=True, check=True).stdout.strip()


def image_env(where: Path) -> dict[str, str]:
    """A bare environment for running inside the image venv: nothing of the project venv or the checkout."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(where), "LANG": "C.UTF-8"}
