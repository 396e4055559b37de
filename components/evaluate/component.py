"""KFP components: the teacher gate and the student gate on the golden set.

Each returns one string ("passed" / "failed") that the pipeline's dsl.If branches on: a single output rather than a
NamedTuple, because kfp.local 2.17 cannot resolve a NamedTuple output inside a dsl.If condition. Reasons, metrics
and the candidate digest are in ``out_dir/gate.json``, which approval and deploy read. A failed gate never raises.
"""

from kfp import dsl
from kfp.dsl import HTML, ClassificationMetrics, Metrics, Output

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def teacher_gate(
    attribute_spec: str,
    golden_set: str,
    predictions: str,
    out_dir: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    frames_uri: str = "",
    manifest_uri: str = "",
) -> str:
    """The teacher's labels ``predictions`` on the golden set: gate.json + report.html + disagreements.json (with
    thumbnails from ``frames_uri`` and titles from ``manifest_uri``) in out_dir, and the KFP artifacts."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.evaluate.gate import check_teacher
    from silverset.components.evaluate.kfp_artifacts import publish

    summary = check_teacher(
        attribute_spec=attribute_spec,
        golden_set=golden_set,
        predictions=predictions,
        out_dir=out_dir,
        frames_uri=frames_uri or None,
        manifest_uri=manifest_uri or None,
    )
    return publish(summary, metrics=metrics, classification=classification, report=report)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def student_gate(
    attribute_spec: str,
    golden_set: str,
    predictions: str,
    model_dir: str,
    teacher_predictions: str,
    out_dir: str,
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[HTML],
    baseline: str = "",
    teacher_stats: str = "",
    teacher_latency_s_per_item: float = -1.0,
) -> str:
    """The student's golden-set scores ``predictions`` (made by ``model_dir``) against ``teacher_predictions``:
    gate.json + report.html in out_dir, and the KFP artifacts. Teacher latency: ``teacher_latency_s_per_item``
    when > 0, else the shard stats under ``teacher_stats``."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.evaluate.gate import check_student
    from silverset.components.evaluate.kfp_artifacts import publish

    summary = check_student(
        attribute_spec=attribute_spec,
        golden_set=golden_set,
        predictions=predictions,
        model_dir=model_dir,
        teacher_predictions=teacher_predictions,
        out_dir=out_dir,
        baseline=baseline or None,
        teacher_stats=teacher_stats or None,
        teacher_latency_s_per_item=teacher_latency_s_per_item if teacher_latency_s_per_item > 0 else None,
    )
    return publish(summary, metrics=metrics, classification=classification, report=report)
