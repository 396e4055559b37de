"""KFP components: plan an incremental run, and merge + commit its labels afterwards."""
from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def plan_incremental(manifest: str, attribute_spec: str, state_dir: str, out_dir: str, run_id: str) -> NamedTuple(
        "Plan", todo_manifest=str, todo=int, up_to_date=bool, plan_dir=str):
    """Diff the manifest against the previous run's state (video_id + content etag, prompt hash)."""
    from collections import namedtuple

    from silverset.components.incremental.plan import run

    s = run(manifest=manifest, attribute_spec=attribute_spec, state_dir=state_dir, out_dir=out_dir, run_id=run_id)
    print(s.model_dump_json())
    return namedtuple("Plan", "todo_manifest todo up_to_date plan_dir")(s.todo_manifest, s.todo, s.up_to_date, s.out_dir)


@dsl.component(base_image=CPU_IMAGE)
def finalize_incremental(plan_dir: str, new_labels: str, new_embeddings: str, state_dir: str,
                         out_dir: str) -> NamedTuple("Merged", labels_dir=str, embeddings_dir=str, labels=int):
    """Carried + new labels (and embeddings) into out_dir; commit them to the state for the next run."""
    from collections import namedtuple

    from silverset.components.incremental.plan import finalize

    s = finalize(plan_dir=plan_dir, new_labels=new_labels, new_embeddings=new_embeddings or None,
                 state_dir=state_dir, out_dir=out_dir)
    print(s.model_dump_json())
    return namedtuple("Merged", "labels_dir embeddings_dir labels")(s.labels_dir, s.embeddings_dir or "", s.labels)
