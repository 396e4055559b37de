"""The ``attribute-promotion`` KFP pipeline: plan -> frames -> embed (each ParallelFor shards) -> teacher gate ->
annotate (ParallelFor shards) -> merge -> carry -> distill -> student gate -> approval -> score (ParallelFor
shards) -> restricted vocabulary + index build -> deploy -> commit -> (optional) experiment, with ``dsl.If`` on
each gate and on the approval, in an exit handler that posts a run summary to a webhook and cleans up.

``beam_runner`` / ``beam_options`` (run parameters; their defaults come from PlatformOptions, checked by
``common.beam_runner``) hand the frames and bulk-score shards' Beam pipelines to DirectRunner (default, in the
step's pod) or a distributed runner (Flink, Spark, Dataflow; manifests/README.md).

``embedder`` picks the embed step's embedder (default, clip:PATH_OR_HUB_ID, a checkpoint); the plan puts it in
the run's identity and re-embeds carried videos of another embedder. ``experiment_treatment_share`` > 0 writes
the promoted version's ``experiment.json`` (``experiment_dir``, "" = ``experiment/`` beside ``serve_root``)
after the commit: the index server follows that file (manifests/README.md) and logs exposures for the analysis.

A promotion that a gate or the approval stops ends FAILED: each ``dsl.If`` has a ``dsl.Else`` whose step
exits non-zero naming the stage and its reasons. "Nothing new to do" (the plan's empty output) stays a
success. The corpus state is committed only by the last step, after the deploy made the index live, so a
stopped promotion is planned again by the next run.

Only this module touches ``kfp.kubernetes`` (secrets, node selectors, tolerations, PVCs, pull secrets);
components stay portable. Every stage's component is imported plainly at the top: a missing component is an ImportError,
never a smaller graph.

Stages hand each other deterministic paths under the run folder ({workdir}/runs/{digest}, the plan's one
output) plus ``.after()`` edges, rather than task outputs: kfp.local 2.17 resolves only single ``Output``
values inside ``dsl.If`` conditions, so every gate and the approval return one string.

Caching: the run folder's digest covers each video's content etag, the whole attribute spec and the golden
set, so a stage's cache key (its input paths) changes whenever its inputs' content does. Steps that read or
write state outside the run folder (plan, carry/commit, gates, approval, deploy, notify) never cache.
"""

from typing import Callable

from kfp import dsl, kubernetes
from pydantic import BaseModel, ConfigDict, Field, field_validator

from silverset.components.abtest.component import create_experiment
from silverset.components.approval.component import approval_gate
from silverset.components.common.beam_runner import beam_args, check_runner
from silverset.components.common.images import ImageSet
from silverset.components.common.kube import CONTROL_STORE_URI
from silverset.components.deploy.component import deploy_index
from silverset.components.distill.component import distill_student
from silverset.components.embed.component import embed_shard
from silverset.components.evaluate.component import student_gate, teacher_gate
from silverset.components.frames.component import extract_frames
from silverset.components.incremental.component import commit_promotion, finalize_incremental, plan_incremental
from silverset.components.incremental.plan import DEFAULT_COST_PER_CORE_HOUR_USD, EMBED_MANIFEST, TEACHER_MANIFEST
from silverset.components.incremental.sample import DEFAULT_PRIORITY
from silverset.components.index.component import build_index
from silverset.components.notify.component import notify_run, stop_promotion
from silverset.components.score.component import bulk_score
from silverset.components.teacher.component import annotate_shard, merge_labels

PIPELINE_NAME = "attribute-promotion"


class PlatformOptions(BaseModel):
    """How the compiled pipeline uses the cluster; defaults match manifests/ and images/."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shards: int = Field(4, ge=1, le=256)  # ParallelFor width for frames, embed, annotate and bulk score
    # Defaults of the beam_runner / beam_options run parameters (frames and bulk score hand their Beam pipelines to
    # this runner); checked here, so a package never carries an unknown runner or a secret-carrying option.
    beam_runner: str = "DirectRunner"
    beam_options: str = ""  # JSON list or space-separated Beam flags, e.g. "--flink_master=... --environment_type=..."
    images: ImageSet = ImageSet()  # registry and tag/digest of the CPU and GPU images every step runs in
    gemini_secret: str = "silverset-gemini"  # Kubernetes Secret name (never its value); optional on teacher steps only
    gemini_secret_key: str = "api-key"
    artifacts_pvc: str | None = "silverset-artifacts"  # None: use object-store URIs for workdir instead
    artifacts_mount: str = "/data"
    image_pull_secret: str | None = "silverset-registry"
    run_as_user: int | None = Field(10001, ge=1)  # the images' user; the PVC is made writable for it (manifests/)
    gpu_node_selector: tuple[str, str] = ("silverset.dev/pool", "gpu")
    gpu_toleration_key: str = "nvidia.com/gpu"
    accelerator_type: str = "nvidia.com/gpu"
    service_retries: int = Field(3, ge=0, le=10)
    gpu_teacher: bool = False  # the local teacher (TensorRT) on the GPU pool, in the GPU image
    gpu_trainer: bool = False  # the student trainer on the GPU pool (the MLP trains fine on CPU)
    # KFP timeout of the approval step; keep it >= the specs' approval_timeout_hours (the step itself returns
    # "expired" at the spec's expiry, this only bounds a step that hangs).
    approval_timeout_hours: float = Field(72.0, gt=0, le=24 * 30)
    # Only the local demo's build has the auto_approve_as parameter; a compiled cluster package never does.
    local_demo: bool = False

    @field_validator("beam_runner")
    @classmethod
    def _known_runner(cls, value: str) -> str:
        return check_runner(value)

    @field_validator("beam_options")
    @classmethod
    def _safe_options(cls, value: str) -> str:
        beam_args(options=value)
        return value


# stage -> its KFP component, imported plainly above (the test checks every one becomes a step).
STAGES: dict[str, Callable] = {
    "plan": plan_incremental,
    "frames": extract_frames,
    "embed": embed_shard,
    "teacher_gate": teacher_gate,
    "annotate": annotate_shard,
    "merge": merge_labels,
    "carry": finalize_incremental,
    "distill": distill_student,
    "student_gate": student_gate,
    "approval": approval_gate,
    "score": bulk_score,
    "index": build_index,  # restricted vocabulary + ScaNN build
    "deploy": deploy_index,
    "commit": commit_promotion,
    "experiment": create_experiment,
    "stop": stop_promotion,
    "notify": notify_run,
}


# --- per-step platform settings (the only place kfp.kubernetes is used) ------------------------
def _common(
    task: dsl.PipelineTask,
    options: PlatformOptions,
    *,
    cpu: str,
    memory: str,
    cpu_limit: str | None = None,
    memory_limit: str | None = None,
) -> dsl.PipelineTask:
    task.set_cpu_request(cpu).set_cpu_limit(cpu_limit or cpu)
    task.set_memory_request(memory).set_memory_limit(memory_limit or memory)
    task.set_container_image(options.images.cpu)
    kubernetes.set_image_pull_policy(task, options.images.pull_policy("cpu"))  # Always, unless pinned by digest
    if options.run_as_user is not None:
        kubernetes.set_security_context(
            task, run_as_user=options.run_as_user, run_as_group=options.run_as_user, run_as_non_root=True
        )
    if options.image_pull_secret:
        kubernetes.set_image_pull_secrets(task, [options.image_pull_secret])
    if options.artifacts_pvc:
        kubernetes.mount_pvc(task, pvc_name=options.artifacts_pvc, mount_path=options.artifacts_mount)
    return task


def _gpu(task: dsl.PipelineTask, options: PlatformOptions) -> dsl.PipelineTask:
    task.set_container_image(options.images.gpu)
    kubernetes.set_image_pull_policy(task, options.images.pull_policy("gpu"))
    task.set_accelerator_type(options.accelerator_type).set_accelerator_limit(1)
    key, value = options.gpu_node_selector
    kubernetes.add_node_selector(task, label_key=key, label_value=value)
    kubernetes.add_toleration(task, key=options.gpu_toleration_key, operator="Exists", effect="NoSchedule")
    return task


def _calls_services(task: dsl.PipelineTask, options: PlatformOptions) -> dsl.PipelineTask:
    if options.service_retries:
        task.set_retry(
            num_retries=options.service_retries, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s"
        )
    return task


def _no_cache(task: dsl.PipelineTask) -> dsl.PipelineTask:
    task.set_caching_options(False)
    return task


def build(options: PlatformOptions = PlatformOptions()) -> Callable:
    """Return the ``attribute-promotion`` pipeline function for these platform options.

    ``options.local_demo`` adds the demo-only ``auto_approve_as`` parameter (kfp.local with a SQLite approval
    store); the cluster package has no parameter that can approve.
    """
    description = "Promote a plain-language video attribute to a served, A/B-tested retrieval signal."

    def body(
        *,
        attribute_spec,
        manifest_uri,
        workdir,
        state_dir,
        golden_set,
        webhook_url,
        frames_per_video,
        frame_size,
        frame_sampling,
        teacher_backend,
        teacher_checkpoint,
        teacher_model,
        teacher_precision,
        gemini_price_table,
        gemini_rps,
        gemini_tokens_per_min,
        approval_store,
        run_lock,
        submitter,
        deploy_target,
        serve_root,
        serving_namespace,
        teacher_budget_videos,
        teacher_budget_usd,
        teacher_priority,
        cost_per_core_hour_usd,
        embedder,
        teacher_temperature,
        experiment_treatment_share,
        experiment_dir,
        beam_runner,
        beam_options,
        auto_approve_as="",
    ) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        exit_task = notify_run(
            run_id=run_id,
            webhook_url=webhook_url,
            attribute_spec=attribute_spec,
            workdir=workdir,
            state_dir=state_dir,
            run_lock=run_lock,
        )
        _calls_services(_no_cache(_common(exit_task, options, cpu="100m", memory="256Mi")), options)
        exit_task.set_display_name("notify-and-clean-up")

        with dsl.ExitHandler(exit_task, name="promotion"):
            plan = plan_incremental(
                manifest_uri=manifest_uri,
                attribute_spec=attribute_spec,
                state_dir=state_dir,
                workdir=workdir,
                run_id=run_id,
                golden_set=golden_set,
                run_lock=run_lock,
                teacher_backend=teacher_backend,
                teacher_checkpoint=teacher_checkpoint,
                teacher_model=teacher_model,
                gemini_price_table=gemini_price_table,
                teacher_budget_videos=teacher_budget_videos,
                teacher_budget_usd=teacher_budget_usd,
                teacher_priority=teacher_priority,
                cost_per_core_hour_usd=cost_per_core_hour_usd,
                embedder=embedder,
                teacher_temperature=teacher_temperature,
            )
            _no_cache(_common(plan, options, cpu="1", memory="1Gi")).set_display_name("plan-incremental")
            with dsl.If(plan.output != "", name="corpus-or-spec-changed"):
                _promotion_body(
                    options,
                    run_dir=plan.output,
                    run_id=run_id,
                    attribute_spec=attribute_spec,
                    state_dir=state_dir,
                    frames_per_video=frames_per_video,
                    frame_size=frame_size,
                    frame_sampling=frame_sampling,
                    beam=dict(beam_runner=beam_runner, beam_options=beam_options),
                    teacher=dict(
                        teacher_backend=teacher_backend,
                        teacher_checkpoint=teacher_checkpoint,
                        teacher_precision=teacher_precision,
                        teacher_model=teacher_model,
                        gemini_price_table=gemini_price_table,
                        gemini_rps=gemini_rps,
                        gemini_tokens_per_min=gemini_tokens_per_min,
                        teacher_temperature=teacher_temperature,
                    ),
                    teacher_budget_usd=teacher_budget_usd,
                    golden_set=golden_set,
                    approval_store=approval_store,
                    run_lock=run_lock,
                    submitter=submitter,
                    auto_approve_as=auto_approve_as,
                    webhook_url=webhook_url,
                    deploy_target=deploy_target,
                    serve_root=serve_root,
                    serving_namespace=serving_namespace,
                    embedder=embedder,
                    experiment=dict(treatment_share=experiment_treatment_share, out_dir=experiment_dir),
                )

    if options.local_demo:

        @dsl.pipeline(name=PIPELINE_NAME, description=description)
        def attribute_promotion(
            attribute_spec: str,
            manifest_uri: str,
            workdir: str,
            state_dir: str,
            golden_set: str,
            webhook_url: str = "",
            frames_per_video: int = 8,
            frame_size: int = 224,
            frame_sampling: str = "exact",
            teacher_backend: str = "zero-shot",
            teacher_checkpoint: str = "",
            teacher_model: str = "",
            teacher_precision: str = "auto",
            gemini_price_table: str = "",
            gemini_rps: float = 2.0,
            gemini_tokens_per_min: int = 2_000_000,
            approval_store: str = "",
            run_lock: str = "",
            submitter: str = "silverset-pipeline",
            deploy_target: str = "local",
            serve_root: str = "",
            serving_namespace: str = "",
            teacher_budget_videos: int = 0,
            teacher_budget_usd: float = 0.0,
            teacher_priority: str = DEFAULT_PRIORITY,
            cost_per_core_hour_usd: float = DEFAULT_COST_PER_CORE_HOUR_USD,
            embedder: str = "default",
            teacher_temperature: float = 0.0,
            experiment_treatment_share: float = 0.0,
            experiment_dir: str = "",
            beam_runner: str = options.beam_runner,
            beam_options: str = options.beam_options,
            auto_approve_as: str = "",
        ) -> None:
            body(**{name: value for name, value in locals().items() if name != "body"})

        return attribute_promotion

    @dsl.pipeline(name=PIPELINE_NAME, description=description)
    def attribute_promotion(
        attribute_spec: str,
        manifest_uri: str,
        workdir: str,
        state_dir: str,
        golden_set: str,
        webhook_url: str = "",
        frames_per_video: int = 8,
        frame_size: int = 224,
        frame_sampling: str = "exact",  # exact | keyframe
        teacher_backend: str = "zero-shot",
        teacher_checkpoint: str = "",
        teacher_model: str = "",
        teacher_precision: str = "auto",
        gemini_price_table: str = "",
        gemini_rps: float = 2.0,
        gemini_tokens_per_min: int = 2_000_000,
        approval_store: str = CONTROL_STORE_URI,
        run_lock: str = CONTROL_STORE_URI,
        submitter: str = "silverset-pipeline",
        deploy_target: str = "kubernetes",
        serve_root: str = "/data/serving",
        serving_namespace: str = "",  # "": the step pod's own namespace (where the overlays put the index server)
        teacher_budget_videos: int = 0,  # the teacher labels at most this many due videos per run (0 = all)
        teacher_budget_usd: float = 0.0,  # Gemini teacher: at most this many USD per run (0 = no cap)
        teacher_priority: str = DEFAULT_PRIORITY,  # which due videos the teacher labels first
        cost_per_core_hour_usd: float = DEFAULT_COST_PER_CORE_HOUR_USD,  # prices measured CPU-seconds in the summary
        embedder: str = "default",  # embed step: default | visual | clip:PATH_OR_HUB_ID | checkpoint path
        teacher_temperature: float = 0.0,  # clip-zero-shot teacher's softmax temperature (0 = the model's scale)
        experiment_treatment_share: float = 0.0,  # > 0: write the promoted version's experiment.json (0 = none)
        experiment_dir: str = "",  # "": experiment/ beside serve_root (/data/experiment, read by the index server)
        beam_runner: str = options.beam_runner,  # frames + bulk score: DirectRunner | FlinkRunner | DataflowRunner ...
        beam_options: str = options.beam_options,  # their Beam flags: a JSON list or one space-separated string
    ) -> None:
        body(**{name: value for name, value in locals().items() if name != "body"})

    return attribute_promotion


def _promotion_body(
    options: PlatformOptions,
    *,
    run_dir,
    run_id,
    attribute_spec,
    state_dir,
    frames_per_video,
    frame_size,
    frame_sampling,
    beam: dict,
    teacher: dict,
    teacher_budget_usd,
    golden_set,
    approval_store,
    run_lock,
    submitter,
    auto_approve_as,
    webhook_url,
    deploy_target,
    serve_root,
    serving_namespace,
    embedder,
    experiment: dict,
) -> None:
    """Every stage after the plan; each gate and the approval guard the steps after them with dsl.If, and a
    dsl.Else step fails the run naming the stage that stopped it. ``teacher``: the annotate steps' teacher
    arguments (backend, checkpoint, Gemini model, price table and the key's quota for the whole run).
    Every due video is framed and embedded; the bulk teacher labels only the plan's sample
    (``teacher_manifest.parquet``, every due video without a budget; ``teacher_budget_usd`` is its Gemini
    hard stop); the student trains on the labelled videos and scores every embedding of the corpus.
    ``embedder``: the embed steps' (the plan's ``embed_manifest.parquet`` adds carried videos of another embedder);
    ``experiment``: create_experiment's treatment_share (> 0 runs it after the commit) and out_dir.
    ``beam``: the Beam runner and options the frames and bulk-score shards run their pipelines with; both stages
    fan out over ``options.shards`` pods like embed and annotate, each shard writing ``<folder>/shard-<tag>/``
    (its own errors.parquet) that the next steps read as one table."""
    plan_dir = f"{run_dir}/plan"
    embed_manifest = f"{plan_dir}/{EMBED_MANIFEST}"  # todo videos + carried videos of another embedder
    teacher_manifest = f"{plan_dir}/{TEACHER_MANIFEST}"
    frames_dir, embeddings_dir = f"{run_dir}/frames", f"{run_dir}/embeddings"
    golden_labels, teacher_labels, merged = f"{run_dir}/teacher_golden", f"{run_dir}/teacher", f"{run_dir}/merged"
    model_dir, student_gate_dir = f"{run_dir}/model", f"{run_dir}/student_gate"
    lock = {"run_lock": run_lock, "state_dir": state_dir, "run_id": run_id}  # every working step renews the run lock

    # New/changed videos plus the golden-set videos (the teacher gate labels those every run).
    with dsl.ParallelFor(items=list(range(options.shards)), name="frames-shards") as shard:
        frames = extract_frames(
            manifest_uri=f"{plan_dir}/frames_manifest.parquet",
            out_dir=frames_dir,
            frames_per_video=frames_per_video,
            frame_size=frame_size,
            frame_sampling=frame_sampling,
            shard_index=shard,
            shard_count=options.shards,
            **beam,
            **lock,
        )
        _common(frames, options, cpu="4", memory="8Gi").set_display_name("frames")
    with dsl.ParallelFor(items=list(range(options.shards)), name="embed-shards") as shard:
        embed = embed_shard(
            frames_uri=frames_dir,
            manifest_uri=embed_manifest,
            out_dir=embeddings_dir,
            shard_index=shard,
            shard_count=options.shards,
            embedder=embedder,
            **lock,
        )
        embed.after(frames)  # frames reach embed through the run folder, not a task output
        _common(embed, options, cpu="2", memory="4Gi").set_display_name("embed-shard")

    # The teacher must pass a golden-set gate before any bulk annotation is spent.
    golden_annotate = annotate_shard(
        attribute_spec=attribute_spec,
        manifest_uri=f"{plan_dir}/golden_manifest.parquet",
        frames_uri=frames_dir,
        out_dir=golden_labels,
        shard_index=0,
        shard_count=1,
        **teacher,
        **lock,
    ).after(frames)
    _teacher_step(_no_cache(golden_annotate), options).set_display_name("annotate-golden-set")
    teacher_verdict = teacher_gate(
        attribute_spec=attribute_spec,
        golden_set=golden_set,
        predictions=golden_labels,
        out_dir=f"{run_dir}/teacher_gate",
        frames_uri=frames_dir,
        manifest_uri=f"{plan_dir}/golden_manifest.parquet",
    ).after(golden_annotate)
    _no_cache(_common(teacher_verdict, options, cpu="1", memory="2Gi")).set_display_name("teacher-gate")

    with dsl.If(teacher_verdict.outputs["Output"] == "passed", name="teacher-gate-passed"):
        with dsl.ParallelFor(items=list(range(options.shards)), name="annotate-shards") as shard:
            annotate = annotate_shard(
                attribute_spec=attribute_spec,
                manifest_uri=teacher_manifest,
                frames_uri=frames_dir,
                out_dir=teacher_labels,
                shard_index=shard,
                shard_count=options.shards,
                teacher_budget_usd=teacher_budget_usd,
                **teacher,
                **lock,
            ).after(frames)
            _teacher_step(annotate, options).set_display_name("annotate-shard")
        merge = merge_labels(manifest_uri=teacher_manifest, out_dir=teacher_labels).after(annotate)
        _common(merge, options, cpu="1", memory="2Gi").set_display_name("merge-labels-exactly-once")
        carry = finalize_incremental(
            plan_dir=plan_dir,
            new_labels=teacher_labels,
            new_embeddings=embeddings_dir,
            out_dir=merged,
            golden_set=golden_set,
        ).after(merge, embed)
        _no_cache(_common(carry, options, cpu="1", memory="4Gi")).set_display_name("carry-over-unchanged-videos")

        distill = distill_student(
            embeddings=f"{merged}/embeddings",
            labels=f"{merged}/train_labels",
            attribute_spec=attribute_spec,
            out_dir=model_dir,
            **lock,
        ).after(carry)
        _common(distill, options, cpu="4", memory="8Gi").set_display_name("distill-student")
        if options.gpu_trainer:
            _gpu(distill, options)
        golden_scores = bulk_score(
            model_dir=model_dir,
            embeddings=f"{merged}/golden_embeddings",
            out_dir=f"{run_dir}/student_golden_scores",
            **lock,
        ).after(distill)
        _common(golden_scores, options, cpu="1", memory="2Gi").set_display_name("score-golden-set")
        student_verdict = student_gate(
            attribute_spec=attribute_spec,
            golden_set=golden_set,
            predictions=f"{run_dir}/student_golden_scores",
            model_dir=model_dir,
            teacher_predictions=golden_labels,
            out_dir=student_gate_dir,
            teacher_stats=golden_labels,
        ).after(golden_scores)
        _no_cache(_common(student_verdict, options, cpu="1", memory="2Gi")).set_display_name("student-gate")

        with dsl.If(student_verdict.outputs["Output"] == "passed", name="student-gate-passed"):
            approval_args = dict(auto_approve_as=auto_approve_as) if options.local_demo else {}
            approval = approval_gate(
                gate_result=student_gate_dir,
                attribute_spec=attribute_spec,
                approval_store=approval_store,
                submitter=submitter,
                report_uri=f"{student_gate_dir}/report.html",
                webhook_url=webhook_url,
                run_dir=run_dir,
                **lock,
                **approval_args,
            ).after(student_verdict)
            # Waiting for a person is cheap: a small request, and a KFP timeout that bounds a hung wait (the
            # step itself returns "expired" at the spec's expiry). The limit stays above the ~113 MiB the
            # process holds after `import kfp.dsl`, which pulls in the kubernetes client.
            _calls_services(
                _no_cache(_common(approval, options, cpu="50m", memory="64Mi", cpu_limit="500m", memory_limit="256Mi")),
                options,
            ).set_display_name("human-approval")
            kubernetes.set_timeout(approval, int(options.approval_timeout_hours * 3600) + 900)
            with dsl.If(approval.output == "approved", name="approved"):
                with dsl.ParallelFor(items=list(range(options.shards)), name="score-shards") as shard:
                    score = bulk_score(
                        model_dir=model_dir,
                        embeddings=f"{merged}/embeddings",
                        out_dir=f"{run_dir}/scores",
                        shard_index=shard,
                        shard_count=options.shards,
                        **beam,
                        **lock,
                    ).after(approval)
                    _common(score, options, cpu="4", memory="8Gi").set_display_name("bulk-score")
                index = build_index(
                    scores=f"{run_dir}/scores",
                    embeddings=f"{merged}/embeddings",
                    attribute_spec=attribute_spec,
                    out_dir=f"{run_dir}/index",
                    **lock,
                ).after(score)
                _common(index, options, cpu="4", memory="8Gi").set_display_name("restricted-vocabulary-and-index")
                deploy = deploy_index(
                    index_dir=f"{run_dir}/index",
                    gate_result=student_gate_dir,
                    approval_store=approval_store,
                    target=deploy_target,
                    serve_root=serve_root,
                    namespace=serving_namespace,
                    run_dir=run_dir,
                    **lock,
                ).after(index)
                _calls_services(
                    _no_cache(_common(deploy, options, cpu="250m", memory="512Mi")), options
                ).set_display_name("deploy-index")
                commit = commit_promotion(
                    plan_dir=plan_dir,
                    merged_dir=merged,
                    state_dir=state_dir,
                    run_dir=run_dir,
                    run_id=run_id,
                    run_lock=run_lock,
                ).after(deploy)
                _no_cache(_common(commit, options, cpu="1", memory="2Gi")).set_display_name("commit-promoted-state")
                share = experiment["treatment_share"]
                with dsl.If(share > 0.0, name="experiment-requested"):
                    start = create_experiment(
                        attribute_spec=attribute_spec,
                        out_dir=experiment["out_dir"],
                        treatment_share=share,
                        serve_root=serve_root,
                    ).after(commit)
                    _no_cache(_common(start, options, cpu="100m", memory="256Mi")).set_display_name("start-experiment")
            with dsl.Else(name="not-approved"):
                _stop(options, run_dir=run_dir, stage="approval")
        with dsl.Else(name="student-gate-failed"):
            _stop(options, run_dir=run_dir, stage="student_gate")
    with dsl.Else(name="teacher-gate-failed"):
        _stop(options, run_dir=run_dir, stage="teacher_gate")


def _stop(options: PlatformOptions, *, run_dir, stage: str) -> None:
    """The step that fails the run when ``stage`` stopped the promotion (its message names the reasons)."""
    stop = stop_promotion(run_dir=run_dir, stage=stage)
    _no_cache(_common(stop, options, cpu="50m", memory="128Mi")).set_display_name(f"stop-{stage.replace('_', '-')}")


def _teacher_step(task: dsl.PipelineTask, options: PlatformOptions) -> dsl.PipelineTask:
    """A teacher step: retried, the Gemini key mounted as an optional Secret (zero-shot and local runs need no
    Secret on the cluster), on the GPU pool in the GPU image when the local teacher runs there."""
    _calls_services(_common(task, options, cpu="2", memory="4Gi"), options)
    kubernetes.use_secret_as_env(
        task,
        secret_name=options.gemini_secret,
        secret_key_to_env={options.gemini_secret_key: "GEMINI_API_KEY"},
        optional=True,
    )
    if options.gpu_teacher:
        _gpu(task, options)
    return task


attribute_promotion = build()
