"""KFP component: one shard of the frames stage (Beam + PyAV) over a manifest, writing Parquet + errors."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def extract_frames(
    manifest_uri: str,
    out_dir: str,
    frames_per_video: int = 8,
    frame_size: int = 224,
    frame_sampling: str = "exact",
    beam_runner: str = "DirectRunner",
    beam_options: str = "",
    shard_index: int = 0,
    shard_count: int = 1,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> NamedTuple("Frames", frames_dir=str, videos=int, errors=int, frames=int):
    """Sample frames_per_video JPEG frames (frame_size x frame_size) per manifest video of shard shard_index/shard_count
    (``frame_sampling``: exact | keyframe) into out_dir (out_dir/shard-<tag>/ when shard_count > 1) on Beam
    ``beam_runner`` with ``beam_options`` (JSON list or space-separated flags); bad videos go to that folder's
    errors.parquet. An empty plan manifest (``common.step.nothing_to_do``) frames nothing: (out_dir, 0, 0, 0)."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.common.beam_runner import beam_args
    from silverset.components.common.errors import SilversetInputError
    from silverset.components.common.sharding import Shard
    from silverset.components.common.step import nothing_to_do, renewing
    from silverset.components.frames.extract import SAMPLING_MODES, FrameOptions
    from silverset.components.frames.pipeline import run

    outputs = namedtuple("Frames", "frames_dir videos errors frames")
    flags = beam_args(runner=beam_runner, options=beam_options)
    if frame_sampling not in SAMPLING_MODES:
        raise SilversetInputError("frame_sampling", f"{frame_sampling!r} is not one of {', '.join(SAMPLING_MODES)}")
    options = FrameOptions(frames_per_video=frames_per_video, size=frame_size, sampling=frame_sampling)  # type: ignore[arg-type]
    if nothing_to_do(manifest_uri):  # an incremental run with nothing to frame
        return outputs(out_dir, 0, 0, 0)
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        summary = run(
            manifest_uri=manifest_uri,
            out_dir=out_dir,
            options=options,
            beam_runner=beam_runner,
            beam_options=flags,
            shard=Shard(int(shard_index), int(shard_count)),  # collected/looped ints may arrive as floats locally
        )
    print(summary.model_dump_json())
    return outputs(summary.table, summary.videos_ok, summary.errors, summary.frames)
