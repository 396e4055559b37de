"""KFP components: plan an incremental run (taking the run lock), merge its labels, and commit the state once
the promotion went live."""

from typing import NamedTuple

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def plan_incremental(
    manifest_uri: str,
    attribute_spec: str,
    state_dir: str,
    workdir: str,
    run_id: str,
    golden_set: str = "",
    run_lock: str = "",
    teacher_backend: str = "zero-shot",
    teacher_checkpoint: str = "",
    teacher_model: str = "",
    gemini_price_table: str = "",
    teacher_budget_videos: int = 0,
    teacher_budget_usd: float = 0.0,
    teacher_priority: str = "new,priority,views",
    cost_per_core_hour_usd: float = 0.0408,
    embedder: str = "default",
    teacher_temperature: float = 0.0,
) -> str:
    """Take the run lock, diff the manifest against the state, write the plan (with the teacher's budgeted
    sample). Returns the run folder ({workdir}/runs/{digest}: every stage writes under it) or "" when the corpus,
    spec, golden set, teacher, budget and embedder are unchanged (``teacher_temperature`` 0 = the clip-zero-shot
    model's own scale). Fails (StateLocked) when another run holds the lock."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.incremental.plan import PlanOptions, plan_run
    from silverset.components.incremental.sample import teacher_budget

    options = PlanOptions(
        teacher_backend=teacher_backend,
        teacher_checkpoint=teacher_checkpoint,
        teacher_model=teacher_model,
        teacher_temperature=teacher_temperature or None,
        budget=teacher_budget(videos=teacher_budget_videos, usd=teacher_budget_usd, priority=teacher_priority),
        price_table=gemini_price_table,
        cost_per_core_hour_usd=cost_per_core_hour_usd,
        embedder=embedder,
    )
    s = plan_run(
        manifest_uri=manifest_uri,
        attribute_spec=attribute_spec,
        state_dir=state_dir,
        workdir=workdir,
        run_id=run_id,
        golden_set=golden_set,
        run_lock=run_lock,
        options=options,
    )
    print(s.model_dump_json())
    return s.run_dir


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def finalize_incremental(
    plan_dir: str, new_labels: str, new_embeddings: str, out_dir: str, golden_set: str = ""
) -> NamedTuple("Merged", labels_dir=str, embeddings_dir=str, labels=int):
    """Carried + new labels (and embeddings) into out_dir, with train_labels/ and golden_embeddings/ for distill.
    Writes nothing to the state: only ``commit_promotion`` does, after the deploy."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from collections import namedtuple

    from silverset.components.incremental.plan import finalize

    s = finalize(
        plan_dir=plan_dir,
        new_labels=new_labels,
        new_embeddings=new_embeddings or None,
        out_dir=out_dir,
        golden_set=golden_set,
    )
    print(s.model_dump_json())
    return namedtuple("Merged", "labels_dir embeddings_dir labels")(s.labels_dir, s.embeddings_dir or "", s.labels)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def commit_promotion(
    plan_dir: str, merged_dir: str, state_dir: str, run_dir: str, run_id: str, run_lock: str = ""
) -> str:
    """The promotion is live: commit its labels (and embeddings) to the state and mark the corpus completed,
    so the next run over the same corpus has nothing to do. Returns the commit summary as JSON."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.common.step import renewing
    from silverset.components.incremental.plan import commit_promotion as commit

    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        s = commit(
            plan_dir=plan_dir,
            merged_dir=merged_dir,
            state_dir=state_dir,
            run_id=run_id,
            scores=f"{run_dir.rstrip('/')}/scores",
        )  # the scores that went into the deployed index
    print(s.model_dump_json())
    return s.model_dump_json()
