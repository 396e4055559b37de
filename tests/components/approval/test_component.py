"""The approval KFP component: python_func directly, and one kfp.local run whose output dsl.If can branch on."""

import json

import pytest

from silverset.components.approval.component import approval_gate
from silverset.components.common.artifacts import read_approval_decision
from silverset.components.common.spec import example_specs_dir, load_spec

A = "sha256:" + "a" * 64


def test_python_func_returns_the_decision(tmp_path):
    gate = tmp_path / "gate.json"
    spec = example_specs_dir() / "red_dominant.yaml"
    gate.write_text(
        json.dumps(
            {
                "passed": True,
                "reasons": [],
                "metrics": {},
                "candidate_digest": A,
                "spec_content_hash": load_spec(spec).content_hash,
            }
        )
    )
    decision = approval_gate.python_func(
        gate_result=str(gate),
        attribute_spec=str(spec),
        approval_store=str(tmp_path / "a.db"),
        submitter="demo",
        run_dir=str(tmp_path / "run"),
        auto_approve_as="bob@silverset.dev",
    )
    assert decision == "approved"
    recorded = read_approval_decision(tmp_path / "run" / "approval")  # what the run summary and stop step read
    assert (recorded.decision.value, recorded.candidate_digest, recorded.decided_by) == (
        "approved",
        A,
        "bob@silverset.dev",
    )


@pytest.mark.slow
def test_kfp_local_run_branches_on_the_decision(tmp_path):
    from kfp import dsl, local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    store = str(tmp_path / "a.db")
    spec = str(example_specs_dir() / "red_dominant.yaml")
    marker = str(tmp_path / "released.txt")

    @dsl.component(base_image="python:3.11")
    def write_gate(out_dir: str, digest: str, spec_hash: str) -> str:
        import json
        import os

        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "gate.json"), "w") as f:
            json.dump(
                {
                    "passed": True,
                    "reasons": [],
                    "metrics": {},
                    "candidate_digest": digest,
                    "spec_content_hash": spec_hash,
                },
                f,
            )
        return out_dir

    @dsl.component(base_image="python:3.11")
    def released(decision: str, marker: str):
        with open(marker, "w") as f:
            f.write("released " + decision)

    @dsl.pipeline
    def promote():
        g = write_gate(out_dir=str(tmp_path / "gate"), digest=A, spec_hash=load_spec(spec).content_hash)
        step = approval_gate(
            gate_result=g.output,
            attribute_spec=spec,
            approval_store=store,
            submitter="demo",
            run_dir=str(tmp_path / "run"),
            auto_approve_as="alice@silverset.dev",
        )
        with dsl.If(step.output == "approved"):
            released(decision=step.output, marker=marker)

    promote()
    assert (tmp_path / "released.txt").read_text() == "released approved"
