"""KFP components of the A/B stage: the experiment config for a promoted attribute, and the simulated A/B analysis."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def ab_analysis(attribute_spec: str, out_dir: str, users: int = 20000, seed: int = 0) -> NamedTuple(
    "ABAnalysis", report=str, passed=bool, summary_json=str
):
    """Simulate the attribute's A/B traffic and analyse it; the report and result.json land under out_dir/analysis."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.abtest.promotion import PromotionABOptions, simulate_and_analyze

    summary = simulate_and_analyze(
        attribute_spec=attribute_spec, out_dir=out_dir, options=PromotionABOptions(users=users, seed=seed)
    )
    print(summary.model_dump_json())
    return namedtuple("ABAnalysis", "report passed summary_json")(
        summary.report, summary.passed, summary.model_dump_json()
    )


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def create_experiment(
    attribute_spec: str, out_dir: str = "", treatment_share: float = 0.5, salt: str = "", serve_root: str = ""
) -> NamedTuple("Experiment", experiment_path=str, experiment_id=str, attribute_version=int):
    """Write out_dir/experiment.json for the promoted spec (the index server's --experiment).

    out_dir "" = ``experiment/`` beside ``serve_root`` (/data/serving -> /data/experiment, where the index
    server's manifests read it). salt "" = one bound to the spec's content hash, so a rerun for the same
    version keeps every user's arm.
    """
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    import posixpath
    from collections import namedtuple

    from silverset.components.common.errors import SilversetInputError

    if not out_dir:
        if not serve_root.rstrip("/"):
            raise SilversetInputError("experiment_dir", "empty, and no serve_root to put experiment/ beside")
        out_dir = posixpath.join(posixpath.dirname(serve_root.rstrip("/")), "experiment")

    from silverset.components.abtest.experiment import CONFIG_FILE, default_salt
    from silverset.components.abtest.experiment import create_experiment as create
    from silverset.components.common.spec import load_spec

    spec = load_spec(attribute_spec)
    config = create(spec=spec, salt=salt or default_salt(spec), treatment_share=treatment_share, out_dir=out_dir)
    return namedtuple("Experiment", "experiment_path experiment_id attribute_version")(
        f"{out_dir.rstrip('/')}/{CONFIG_FILE}", config.experiment_id, config.attribute_version
    )
