"""No TensorRT-11-removed Python API is called unguarded anywhere in the product (a static check, no TensorRT needed).

The list is NVIDIA's "Removed Python APIs and Replacements" for 10.x -> 11.x (docs.nvidia.com, TensorRT 11.4
migration guide, read late 2026): weak-typing builder flags, the INT8 calibrator and calibration profiles,
quantization flags, and the fast-fp16/int8 platform queries. Strongly typed networks with Q/DQ in the graph
replace them. A use is allowed only inside ``if <...tensorrt_major...> < 11:`` (TensorRT 10 only).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [ROOT / "components", ROOT / "pipelines", ROOT / "benchmarks"]

REMOVED_BUILDER_FLAGS = {
    "FP16",
    "INT8",
    "FP8",
    "BF16",
    "INT4",
    "FP4",
    "OBEY_PRECISION_CONSTRAINTS",
    "PREFER_PRECISION_CONSTRAINTS",
    "DIRECT_IO",
}
REMOVED_ATTRIBUTES = {
    "int8_calibrator",
    "set_calibration_profile",
    "get_calibration_profile",
    "set_quantization_flag",
    "get_quantization_flag",
    "quantization_flags",
    "clear_quantization_flag",
    "device_memory_size",
    "platform_has_fast_fp16",
    "platform_has_fast_int8",
    "IInt8Calibrator",
    "IInt8EntropyCalibrator",
    "IInt8EntropyCalibrator2",
    "IInt8MinMaxCalibrator",
    "IInt8LegacyCalibrator",
    "CalibrationAlgoType",
}


def _guards_tensorrt_10(test: ast.expr) -> bool:
    """``tensorrt_major < 11`` / ``tensorrt_major == 10`` (any name or attribute containing tensorrt_major)."""
    if not isinstance(test, ast.Compare) or len(test.ops) != 1:
        return False
    left, right = ast.unparse(test.left), ast.unparse(test.comparators[0])
    return "tensorrt_major" in left and (
        (isinstance(test.ops[0], ast.Lt) and right == "11")
        or (isinstance(test.ops[0], (ast.Eq, ast.LtE)) and right == "10")
    )


def unguarded_removed_apis(source: str, filename: str = "<source>") -> list[str]:
    """'file:line: API' for each use of a TensorRT-11-removed API outside a TensorRT-10-only branch."""
    found: list[str] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If):
            visit(node.test, guarded)
            inner = guarded or _guards_tensorrt_10(node.test)
            for child in node.body:
                visit(child, inner)
            for child in node.orelse:
                visit(child, guarded)
            return
        if isinstance(node, ast.Attribute) and not guarded:
            owner = ast.unparse(node.value)
            if (
                node.attr in REMOVED_BUILDER_FLAGS and owner.endswith("BuilderFlag")
            ) or node.attr in REMOVED_ATTRIBUTES:
                found.append(f"{filename}:{node.lineno}: {owner}.{node.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source, filename), False)
    return found


def test_product_calls_no_tensorrt_11_removed_api_unguarded():
    problems = []
    for folder in PRODUCT:
        for path in sorted(folder.rglob("*.py")):
            problems += unguarded_removed_apis(path.read_text(), str(path.relative_to(ROOT)))
    assert problems == []


def test_the_check_finds_the_calls_tensorrt_11_removed_and_accepts_a_tensorrt_10_branch():
    weak_typing = """
config.set_flag(trt.BuilderFlag.FP16)
if precision == "int8":
    config.set_flag(trt.BuilderFlag.INT8)
    config.int8_calibrator = make_calibrator(trt, batches)
    config.set_calibration_profile(profile)
class Calibrator(trt.IInt8EntropyCalibrator2):
    pass
"""
    assert [p.split(": ")[1] for p in unguarded_removed_apis(weak_typing)] == [
        "trt.BuilderFlag.FP16",
        "trt.BuilderFlag.INT8",
        "config.int8_calibrator",
        "config.set_calibration_profile",
        "trt.IInt8EntropyCalibrator2",
    ]
    guarded = """
if self.tensorrt_major < 11:
    config.set_flag(trt.BuilderFlag.FP16)
else:
    network = builder.create_network(strongly_typed_flags(trt))
"""
    assert unguarded_removed_apis(guarded) == []
    wrong_branch = guarded.replace(
        "network = builder.create_network(strongly_typed_flags(trt))", "config.set_flag(trt.BuilderFlag.INT8)"
    )
    assert [p.split(": ")[1] for p in unguarded_removed_apis(wrong_branch)] == ["trt.BuilderFlag.INT8"]
    # flags TensorRT 11 keeps are not flagged
    assert unguarded_removed_apis("config.set_flag(trt.BuilderFlag.TF32)\nconfig.set_flag(trt.BuilderFlag.REFIT)") == []
