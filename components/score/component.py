"""KFP component: bulk-score one shard of the embeddings with the student through Beam RunInference."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def bulk_score(
    model_dir: str,
    embeddings: str,
    out_dir: str,
    backend: str = "onnx",
    beam_runner: str = "DirectRunner",
    batch_size: int = 8192,
    beam_options: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> NamedTuple("Scores", scores=str, scored=int, errors=int):
    """Score shard shard_index/shard_count of the embeddings on Beam ``beam_runner`` with ``beam_options`` (JSON list or
    space-separated flags): out_dir/scores-*.parquet and errors.parquet (rows whose embedder id or dimension do not
    fit the model), under out_dir/shard-<tag>/ when shard_count > 1, and the step's measured CPU-seconds in
    out_dir/stats/cpu-score[-<tag>].json."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.common.beam_runner import beam_args
    from silverset.components.common.cpu_stats import measure_cpu, write_cpu
    from silverset.components.common.sharding import Shard
    from silverset.components.common.step import renewing
    from silverset.components.score.bulk import ScoreOptions
    from silverset.components.score.shards import run_shard

    shard = Shard(int(shard_index), int(shard_count))  # looped ints may arrive as floats locally
    options = ScoreOptions(
        backend=backend,
        runner=beam_runner,
        batch_size=batch_size,
        pipeline_args=tuple(beam_args(runner=beam_runner, options=beam_options)),
    )
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id), measure_cpu() as cpu:
        s = run_shard(model_dir=model_dir, embeddings=embeddings, out_dir=out_dir, shard=shard, options=options)
    write_cpu(
        out_dir, "score" if shard.count == 1 else f"score-{shard.tag}", cpu_seconds=cpu.cpu_seconds, items=s.scored
    )
    print(s.model_dump_json())
    return namedtuple("Scores", "scores scored errors")(s.table, s.scored, s.errors)
