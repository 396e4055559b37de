"""KFP component: golden-set evaluation and gate; its one string output ("passed"/"failed") is what dsl.If branches on.

A single output rather than a NamedTuple: kfp.local 2.17 cannot resolve a NamedTuple output inside a dsl.If
condition. Reasons, metrics and the candidate digest are in ``out_dir/gate.json``, which approval and deploy read.
"""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Metrics, Output

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def evaluate_gate(
    attribute: str,
    golden: str,
    predictions: str,
    gate: str,
    out_dir: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    model_dir: str = "",
    teacher_predictions: str = "",
    baseline: str = "",
    teacher_stats: str = "",
    teacher_latency_s_per_item: float = -1.0,
    frames: str = "",
    manifest: str = "",
) -> str:
    """Write gate.json + report.html (+ disagreements.json, with thumbnails from ``frames`` and titles from
    ``manifest``, for the teacher gate) to out_dir and the KFP artifacts; returns "passed" or "failed", never raises
    on a failed gate."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    import json
    import shutil

    from silverset.components.evaluate.gate import run
    from silverset.components.evaluate.kfp_artifacts import log_artifacts

    s = run(
        attribute=attribute,
        golden=golden,
        predictions=predictions,
        gate=gate,
        out=out_dir,
        model=model_dir or None,
        teacher_predictions=teacher_predictions or None,
        baseline=baseline or None,
        teacher_stats=teacher_stats or None,
        teacher_latency_s_per_item=teacher_latency_s_per_item if teacher_latency_s_per_item > 0 else None,
        frames=frames or None,
        manifest=manifest or None,
    )
    log_artifacts(s, metrics=metrics, classification=classification)
    shutil.copyfile(s["report"], report.path)
    print(json.dumps({k: s[k] for k in ("passed", "reasons", "gate", "candidate_digest")}))
    return "passed" if s["passed"] else "failed"
