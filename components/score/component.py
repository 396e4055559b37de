"""KFP component: bulk-score every embedding with the student through Beam RunInference."""
from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def bulk_score(model_dir: str, embeddings: str, out_dir: str, backend: str = "onnx", runner: str = "DirectRunner",
               batch_size: int = 8192,
               run_lock: str = "", state_dir: str = "", run_id: str = ""
               ) -> NamedTuple("Scores", scores=str, scored=int, errors=int):
    """Write out_dir/scores-*.parquet and errors.parquet (rows whose embedder id or dimension do not fit the model),
    and the step's measured CPU-seconds in out_dir/stats/cpu-score.json."""
    import json
    from collections import namedtuple

    from silverset.components.score.bulk import ScoreOptions, run
    from silverset.components.incremental.guard import renewing
    from silverset.components.notify.costs import measure_cpu, write_cpu

    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id), measure_cpu() as cpu:
        s = run(model=model_dir, embeddings=embeddings, out=out_dir,
                options=ScoreOptions(backend=backend, runner=runner, batch_size=batch_size))
    write_cpu(out_dir, "score", cpu_seconds=cpu.cpu_seconds, items=s["scored"])
    print(json.dumps(s))
    return namedtuple("Scores", "scores scored errors")(s["scores"], s["scored"], s["errors"])
