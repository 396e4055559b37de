"""KFP component: generate the synthetic corpus (videos, manifest, truth) for demos and smoke runs."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def synth_corpus(
    out_dir: str, videos: int = 200, seed: int = 0, duration_s: float = 3.0, width: int = 320, height: int = 240
) -> NamedTuple("Corpus", manifest_uri=str, truth_uri=str, videos=int):
    """Write out_dir/videos/*.mp4, manifest.parquet and truth.parquet; same seed, same bytes."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.corpus.synth import SynthOptions, run

    options = SynthOptions(videos=videos, seed=seed, duration_s=duration_s, width=width, height=height)
    s = run(out_dir=out_dir, options=options)
    print(s.model_dump_json())
    return namedtuple("Corpus", "manifest_uri truth_uri videos")(s.manifest_uri, s.truth_uri, s.videos)
