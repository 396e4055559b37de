"""KFP component: distill a student from teacher labels on precomputed embeddings (TorchScript + ONNX + digest)."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def distill_student(
    embeddings: str,
    labels: str,
    attribute_spec: str,
    out_dir: str,
    architecture: str = "mlp",
    hidden_units: int = 128,
    max_epochs: int = 200,
    seed: int = 0,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> NamedTuple("Student", model_dir=str, model_digest=str, threshold=float):
    """Train, calibrate and export the student into out_dir; returns its digest for the gates and approval."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.common.step import renewing
    from silverset.components.distill.student import StudentOptions
    from silverset.components.distill.train import run

    options = StudentOptions(architecture=architecture, hidden_units=hidden_units, max_epochs=max_epochs, seed=seed)
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        s = run(embeddings=embeddings, labels=labels, attribute_spec=attribute_spec, out_dir=out_dir, options=options)
    print(s.model_dump_json())
    return namedtuple("Student", "model_dir model_digest threshold")(s.model_dir, s.model_digest, s.threshold)
