"""The commands README.md and manifests/README.md tell a platform team to run are runnable as written: every
``--param`` of ``silverset pipeline submit|schedule`` names a parameter of the compiled package, the required
ones are all there, store URIs are valid, and every ``kubectl apply -k`` names an overlay that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from silverset.pipelines import cluster
from silverset.pipelines.compile import compile_pipeline

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "manifests" / "README.md"]


def shell_commands(markdown: str) -> list[str]:
    """Commands in the document's fenced code blocks, backslash continuations joined, comments dropped."""
    commands: list[str] = []
    for block in re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", markdown, flags=re.S):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def pipeline_params(command: str) -> dict[str, str]:
    words = shlex.split(command)
    return dict(words[i + 1].split("=", 1) for i, w in enumerate(words[:-1]) if w == "--param")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return cluster.pipeline_inputs(compile_pipeline(tmp_path_factory.mktemp("pkg") / "pipeline.yaml"))


def _commands(kind: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for command in shell_commands(doc.read_text()):
            if re.match(rf"silverset pipeline {kind}\b", command):
                found.append((doc.name, command))
    return found


def test_the_documents_show_how_to_submit_and_schedule():
    assert _commands("submit") and _commands("schedule")


@pytest.mark.parametrize("doc,command", _commands("submit") + _commands("schedule"))
def test_every_documented_submit_and_schedule_command_passes_the_parameter_check(doc, command, inputs):
    params = pipeline_params(command)
    cluster.check_params(params, inputs)  # unknown, missing required, bad store URI: SilversetInputError


@pytest.mark.parametrize(
    "doc,command", [(d, c) for d in DOCS for c in shell_commands(d.read_text()) if c.startswith("kubectl apply -k")]
)
def test_every_documented_overlay_exists(doc, command):
    overlay = shlex.split(command)[3]
    assert (ROOT / overlay / "kustomization.yaml").is_file(), f"{doc}: {command}"


def test_the_check_would_catch_what_the_documents_once_said(inputs):
    """The old manifests/README.md passed approval_store=k8s:silverset and the old README left out state_dir."""
    from silverset.components.common.errors import SilversetInputError

    good = {
        "attribute_spec": "/data/s.yaml",
        "manifest_uri": "/data/m.parquet",
        "workdir": "/data/w",
        "state_dir": "/data/w/state",
        "golden_set": "/data/g.parquet",
    }
    cluster.check_params(good, inputs)
    with pytest.raises(SilversetInputError, match="approval_store"):
        cluster.check_params({**good, "approval_store": "k8s:silverset"}, inputs)
    with pytest.raises(SilversetInputError, match="state_dir"):
        cluster.check_params({k: v for k, v in good.items() if k != "state_dir"}, inputs)
