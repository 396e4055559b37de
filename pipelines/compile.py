"""Compile the attribute-promotion pipeline to one deterministic YAML package (same code, same bytes)."""

from __future__ import annotations

from pathlib import Path

import yaml

from silverset.pipelines.attribute_promotion import PlatformOptions, build


def compile_pipeline(out: str | Path, *, options: PlatformOptions = PlatformOptions()) -> Path:
    """Write the compiled package (PipelineSpec + kubernetes platform spec, two YAML documents) to ``out``.

    Raises ValueError if the result holds anything that looks like a secret value rather than a name.
    """
    from kfp import compiler

    used = {"cpu"} | ({"gpu"} if options.gpu_teacher or options.gpu_trainer else set())
    options.images.check_used(used)  # one digest cannot name two images
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(options), package_path=str(out))
    check_no_secret_values(out.read_text())
    return out


def check_no_secret_values(text: str) -> None:
    """The package may name Secrets; it must never carry a key's value (e.g. a Gemini key ``AIza...``)."""
    import re

    if re.search(r"AIza[0-9A-Za-z_\-]{20,}", text):
        raise ValueError("compiled pipeline contains what looks like a Gemini API key")
    for doc in yaml.safe_load_all(text):
        if not isinstance(doc, dict):
            continue
        for executor in (
            doc.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {}).values()
        ):
            for env in executor.get("secretAsEnv", []):
                if set(env) - {"secretName", "keyToEnv", "optional", "secretNameParameter"}:
                    raise ValueError(f"unexpected secret fields in the platform spec: {sorted(env)}")
