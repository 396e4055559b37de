"""KFP component: the frames stage (Beam + PyAV) over a manifest, writing sharded Parquet + errors."""
from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def extract_frames(manifest: str, out_dir: str, frames_per_video: int = 8, size: int = 224, sampling: str = "exact",
                   runner: str = "DirectRunner", pipeline_options: list = [],
                   run_lock: str = "", state_dir: str = "", run_id: str = "") -> NamedTuple(
        "Frames", frames_dir=str, videos=int, errors=int, frames=int):
    """Sample frames_per_video JPEG frames (size x size) per manifest video (``sampling``: exact | keyframe); bad
    videos go to errors.parquet."""
    import json
    from collections import namedtuple

    from silverset.components.frames.pipeline import run
    from silverset.components.incremental.guard import renewing
    from silverset.components.incremental.plan import manifest_is_empty

    if manifest.endswith(".parquet") and manifest_is_empty(manifest):  # an incremental run with nothing to frame
        return namedtuple("Frames", "frames_dir videos errors frames")(out_dir, 0, 0, 0)
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        s = run(manifest=manifest, out=out_dir, frames_per_video=frames_per_video, size=size, sampling=sampling, runner=runner,
                pipeline_options=pipeline_options)
    print(json.dumps(s))
    return namedtuple("Frames", "frames_dir videos errors frames")(s["out"], s["videos_ok"], s["errors"], s["frames"])
