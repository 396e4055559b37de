"""KFP component: restrict the vocabulary (spec's probability rule) and build the ScaNN index for one attribute."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def build_index(
    scores: str,
    embeddings: str,
    attribute_spec: str,
    out_dir: str,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> str:
    """Scores + embeddings -> restricted vocabulary -> recall-checked index in ``out_dir``; returns its version."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.common.step import renewing
    from silverset.components.index.build import run

    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        summary = run(scores=scores, embeddings=embeddings, attribute_spec=attribute_spec, out_dir=out_dir)
    print(summary.model_dump_json())
    return summary.version
