"""The GPU image's lock agrees with pyproject's `gpu` extra and with the CPU lock (offline; `make lock-gpu`
re-resolves)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
GPU_LOCK = ROOT / "images/gpu/requirements.lock"


def read_pins(path: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a uv-compiled lock."""
    return {
        canonicalize_name(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)$", path.read_text(), re.M)
    }


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def drift(requirements: list[str], pins: dict[str, str], *, provided_by: dict[str, str] | None = None) -> list[str]:
    """Each requirement the pins miss or pin outside its range, as 'name: why' (empty when the lock satisfies all)."""
    provided_by = provided_by or {}
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(
            {"python_version": "3.11", "sys_platform": "linux", "platform_system": "Linux", "extra": ""}
        ):
            continue
        name = canonicalize_name(requirement.name)
        pinned_as = provided_by.get(name, name)
        version = pins.get(pinned_as)
        if version is None:
            problems.append(f"{name}: not in the lock")
        elif not requirement.specifier.contains(Version(version).public, prereleases=True):
            problems.append(f"{name}: lock has {pinned_as}=={version}, pyproject wants {requirement.specifier}")
    return problems


def test_gpu_lock_pins_the_gpu_extra_and_the_project_dependencies():
    pins = read_pins(GPU_LOCK)
    extras = project()["optional-dependencies"]
    # onnxruntime-gpu ships the `onnxruntime` module: the lock holds it instead of the CPU wheel, same version rule
    assert (
        drift(project()["dependencies"] + extras["objectstore"], pins, provided_by={"onnxruntime": "onnxruntime-gpu"})
        == []
    )
    assert drift(extras["gpu"], pins) == []
    assert "onnxruntime" not in pins, "the CPU onnxruntime wheel would overwrite onnxruntime-gpu's module"


def test_drift_check_fails_on_a_lock_that_left_the_extra_behind():
    """The check above can fail: yesterday's extra (torch-tensorrt 2.14 / TensorRT 11.4) against today's lock."""
    pins = read_pins(GPU_LOCK)
    stale = drift(["tensorrt>=11.4", "torch-tensorrt>=2.14", "onnxruntime-gpu>=1.31"], pins)
    assert [p.split(":")[0] for p in stale] == ["tensorrt", "torch-tensorrt"]
    assert drift(["tensorrt>=11.0,<11.1"], {k: v for k, v in pins.items() if k != "tensorrt"}) == [
        "tensorrt: not in the lock"
    ]


def test_gpu_lock_shares_every_cpu_lock_version_and_torch_differs_only_by_build():
    cpu, gpu = read_pins(ROOT / "requirements.lock"), read_pins(GPU_LOCK)
    assert Version(cpu["torch"]).local == "cpu" and Version(gpu["torch"]).local is None
    assert Version(cpu["torch"]).public == gpu["torch"]
    differ = {
        name: (cpu[name], gpu[name]) for name in cpu.keys() & gpu.keys() if name != "torch" and cpu[name] != gpu[name]
    }
    assert differ == {}, f"the GPU lock drifted from requirements.lock: {differ}"


def test_gpu_stack_is_one_cuda_major_and_one_tensorrt_release():
    pins = read_pins(GPU_LOCK)
    trt = {name: version for name, version in pins.items() if name.startswith("tensorrt")}
    assert set(trt) == {"tensorrt", "tensorrt-cu13", "tensorrt-cu13-bindings", "tensorrt-cu13-libs"}
    assert len(set(trt.values())) == 1  # metapackage, frontend, bindings and libs of one TensorRT release
    # torch-tensorrt X.Y is built for torch X.Y (its wheel requires torch>=X.Y,<X.Y+1)
    assert Version(pins["torch-tensorrt"]).release[:2] == Version(pins["torch"]).release[:2]
    cuda = Version(pins["cuda-toolkit"]).release[:2]
    assert not [n for n in pins if re.search(r"-cu1[0-9]$", n) and not n.endswith(f"-cu{cuda[0]}")], "mixed CUDA majors"
    # the base image's CUDA (the driver floor NVIDIA_REQUIRE_CUDA) is the wheels' CUDA major.minor
    base = re.search(r"^FROM nvidia/cuda:(\d+)\.(\d+)\.\d+-\S+", (ROOT / "images/gpu/Dockerfile").read_text(), re.M)
    assert base and (int(base.group(1)), int(base.group(2))) == cuda


def test_uv_metadata_override_names_the_locked_tensorrt_libs():
    """images/gpu/uv.toml stands in for the stub's unreadable metadata; it must name the version the lock pins."""
    override = tomllib.loads((ROOT / "images/gpu/uv.toml").read_text())["dependency-metadata"]
    assert [(e["name"], e["version"]) for e in override] == [
        ("tensorrt-cu13-libs", read_pins(GPU_LOCK)["tensorrt-cu13-libs"])
    ]
