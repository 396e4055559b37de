"""KFP components: plan an incremental run, and merge + commit its labels afterwards."""
from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def plan_incremental(manifest: str, attribute_spec: str, state_dir: str, workdir: str, run_id: str,
                     golden_set: str = "") -> str:
    """Diff the manifest against the previous state; the plan goes to workdir/plan. Returns the run folder
    ({workdir}/runs/{digest}: every stage writes under it) or "" when the corpus, spec and golden set are unchanged."""
    from silverset.components.incremental.plan import plan_run

    s = plan_run(manifest=manifest, attribute_spec=attribute_spec, state_dir=state_dir, workdir=workdir, run_id=run_id,
                 golden_set=golden_set)
    print(s.model_dump_json())
    return s.run_dir


@dsl.component(base_image=CPU_IMAGE)
def finalize_incremental(plan_dir: str, new_labels: str, new_embeddings: str, state_dir: str, out_dir: str,
                         golden_set: str = "") -> NamedTuple("Merged", labels_dir=str, embeddings_dir=str, labels=int):
    """Carried + new labels (and embeddings) into out_dir, with train_labels/ and golden_embeddings/ for distill;
    commit them to the state for the next run."""
    from collections import namedtuple

    from silverset.components.incremental.plan import finalize

    s = finalize(plan_dir=plan_dir, new_labels=new_labels, new_embeddings=new_embeddings or None,
                 state_dir=state_dir, out_dir=out_dir, golden_set=golden_set)
    print(s.model_dump_json())
    return namedtuple("Merged", "labels_dir embeddings_dir labels")(s.labels_dir, s.embeddings_dir or "", s.labels)
