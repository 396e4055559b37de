"""KFP component: the simulated A/B analysis of a promoted attribute (experiment, logs, lift, CUPED, SRM, CBPS)."""
from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def ab_analysis(spec_path: str, out_dir: str, users: int = 20000, seed: int = 0) -> NamedTuple(
        "ABAnalysis", report=str, passed=bool, summary_json=str):
    """Simulate the attribute's A/B traffic and analyse it; the report and result.json land under out_dir/analysis."""
    import json
    from collections import namedtuple

    from silverset.components.abtest.promotion import simulate_and_analyze

    s = simulate_and_analyze(spec=spec_path, out_dir=out_dir, users=users, seed=seed)
    print(json.dumps(s, default=str))
    return namedtuple("ABAnalysis", "report passed summary_json")(s["report"], s["passed"], json.dumps(s, default=str))
