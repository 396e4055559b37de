"""KFP component: restrict the vocabulary (spec's probability rule) and build the ScaNN index for one attribute."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def build_index(scores: str, embeddings: str, attribute_spec: str, out_dir: str) -> str:
    """Scores + embeddings -> restricted vocabulary -> recall-checked index in ``out_dir``; returns its version."""
    import json

    from silverset.components.index.build import run

    summary = run(scores=scores, embeddings=embeddings, attribute=attribute_spec, out=out_dir)
    print(json.dumps(summary))
    return summary["version"]
