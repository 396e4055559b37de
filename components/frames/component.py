"""KFP component: one shard of the frames stage (Beam + PyAV) over a manifest, writing Parquet + errors."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def extract_frames(
    manifest: str,
    out_dir: str,
    frames_per_video: int = 8,
    size: int = 224,
    sampling: str = "exact",
    runner: str = "DirectRunner",
    pipeline_options: list = [],
    beam_options: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> NamedTuple("Frames", frames_dir=str, videos=int, errors=int, frames=int):
    """Sample frames_per_video JPEG frames (size x size) per manifest video of shard shard_index/shard_count
    (``sampling``: exact | keyframe) into out_dir (out_dir/shard-<tag>/ when shard_count > 1) on Beam ``runner``
    with ``beam_options`` (JSON list or space-separated flags); bad videos go to that folder's errors.parquet."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    import json
    from collections import namedtuple

    from silverset.components.common.beam_runner import beam_args
    from silverset.components.common.sharding import Shard
    from silverset.components.common.step import nothing_to_do, renewing
    from silverset.components.frames.pipeline import run

    shard = Shard(int(shard_index), int(shard_count))  # collected/looped ints may arrive as floats locally
    flags = list(pipeline_options) + beam_args(runner=runner, options=beam_options)
    if nothing_to_do(manifest):  # an incremental run with nothing to frame
        return namedtuple("Frames", "frames_dir videos errors frames")(out_dir, 0, 0, 0)
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        s = run(
            manifest=manifest,
            out=out_dir,
            frames_per_video=frames_per_video,
            size=size,
            sampling=sampling,
            runner=runner,
            pipeline_options=flags,
            shard=shard,
        )
    print(json.dumps(s))
    return namedtuple("Frames", "frames_dir videos errors frames")(s["table"], s["videos_ok"], s["errors"], s["frames"])
