"""KFP component: build the restricted ScaNN index for one attribute from scores and embeddings."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def build_index(scores: dsl.Input[dsl.Dataset], embeddings: dsl.Input[dsl.Dataset], attribute_spec: str,
                index: dsl.Output[dsl.Artifact]) -> str:
    from silverset.components.index.build import run

    summary = run(scores=scores.path, embeddings=embeddings.path, attribute=attribute_spec, out=index.path)
    index.metadata.update(summary)
    return summary["version"]
