"""The ``attribute-promotion`` KFP pipeline: plan -> frames -> embed -> teacher gate -> annotate -> merge ->
distill -> student gate -> approval -> score -> restricted vocabulary -> index build -> deploy, in an exit
handler that posts a run summary and cleans up.

Only this module touches ``kfp.kubernetes`` (secrets, node selectors, tolerations, PVCs, pull secrets);
components stay portable. Stages whose ``component.py`` is not in the tree yet are left out of the
graph (``missing_stages()`` names them), so the pipeline compiles and runs on whatever exists.

Caching: every stage writes under ``{workdir}/runs/{digest}``, where the digest covers each video's
content etag and the whole attribute spec; a stage's cache key (its inputs) therefore changes whenever
its inputs' content does. Steps that read or write state outside the run folder (plan, merge/commit,
approval, deploy, notify) never cache.
"""

import importlib
from typing import Callable

from kfp import dsl, kubernetes
from pydantic import BaseModel, ConfigDict, Field

PIPELINE_NAME = "attribute-promotion"


class PlatformOptions(BaseModel):
    """How the compiled pipeline uses the cluster; defaults match manifests/ and images/."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shards: int = Field(4, ge=1, le=256)  # ParallelFor width for embed and annotate
    gemini_secret: str = "silverset-gemini"  # Kubernetes Secret name (never its value)
    gemini_secret_key: str = "api-key"
    artifacts_pvc: str | None = "silverset-artifacts"  # None: use object-store URIs for workdir instead
    artifacts_mount: str = "/data"
    image_pull_secret: str | None = "silverset-registry"
    gpu_node_selector: tuple[str, str] = ("silverset.dev/pool", "gpu")
    gpu_toleration_key: str = "nvidia.com/gpu"
    accelerator_type: str = "nvidia.com/gpu"
    service_retries: int = Field(3, ge=0, le=10)
    gpu_teacher: bool = False  # the local teacher (TensorRT) on the GPU pool; Gemini/zero-shot need none


# stage -> (module, component function name). Looked up at compile time; absent modules are skipped.
STAGES: dict[str, tuple[str, str]] = {
    "plan": ("silverset.components.incremental.component", "plan_incremental"),
    "frames": ("silverset.components.frames.component", "extract_frames"),
    "embed": ("silverset.components.embed.component", "embed_shard"),
    "teacher_gate": ("silverset.components.evaluate.component", "teacher_gate"),
    "annotate": ("silverset.components.teacher.component", "annotate_shard"),
    "merge": ("silverset.components.teacher.component", "merge_labels"),
    "carry": ("silverset.components.incremental.component", "finalize_incremental"),
    "distill": ("silverset.components.distill.component", "distill_student"),
    "student_gate": ("silverset.components.evaluate.component", "student_gate"),
    "approval": ("silverset.components.approval.component", "approval_gate"),
    "score": ("silverset.components.score.component", "score_videos"),
    "vocabulary": ("silverset.components.index.component", "restricted_vocabulary"),
    "index": ("silverset.components.index.component", "build_index"),
    "deploy": ("silverset.components.deploy.component", "deploy_index"),
    "notify": ("silverset.components.notify.component", "notify_run"),
}


def stage_component(stage: str) -> Callable | None:
    module_name, attr = STAGES[stage]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, attr, None)


def missing_stages() -> list[str]:
    """Stages whose component is not in the tree yet."""
    return [stage for stage in STAGES if stage_component(stage) is None]


# The chain after the plan, in order; each needs the one before it. WIRED_IN_BODY says which of them
# _promotion_body connects today (the others wait for their component's inputs/outputs, see report).
CHAIN = ("frames", "embed", "annotate", "merge", "carry", "teacher_gate", "distill", "student_gate", "approval", "score",
         "vocabulary", "index", "deploy")
WIRED_IN_BODY = ("frames", "embed", "annotate", "merge", "carry")


def wired_stages() -> list[str]:
    """Stages that are steps of the compiled pipeline."""
    wired = ["plan", "notify"]
    for stage in CHAIN:
        if stage not in WIRED_IN_BODY or stage_component(stage) is None:
            break
        wired.append(stage)
    return wired


# --- per-step platform settings (the only place kfp.kubernetes is used) ------------------------
def _common(task: dsl.PipelineTask, options: PlatformOptions, *, cpu: str, memory: str) -> dsl.PipelineTask:
    task.set_cpu_request(cpu).set_cpu_limit(cpu).set_memory_request(memory).set_memory_limit(memory)
    if options.image_pull_secret:
        kubernetes.set_image_pull_secrets(task, [options.image_pull_secret])
    if options.artifacts_pvc:
        kubernetes.mount_pvc(task, pvc_name=options.artifacts_pvc, mount_path=options.artifacts_mount)
    return task


def _gpu(task: dsl.PipelineTask, options: PlatformOptions) -> dsl.PipelineTask:
    task.set_accelerator_type(options.accelerator_type).set_accelerator_limit(1)
    key, value = options.gpu_node_selector
    kubernetes.add_node_selector(task, label_key=key, label_value=value)
    kubernetes.add_toleration(task, key=options.gpu_toleration_key, operator="Exists", effect="NoSchedule")
    return task


def _calls_services(task: dsl.PipelineTask, options: PlatformOptions, *, needs_gemini: bool) -> dsl.PipelineTask:
    if options.service_retries:
        task.set_retry(num_retries=options.service_retries, backoff_duration="30s", backoff_factor=2.0,
                       backoff_max_duration="600s")
    if needs_gemini:
        kubernetes.use_secret_as_env(task, secret_name=options.gemini_secret,
                                     secret_key_to_env={options.gemini_secret_key: "GEMINI_API_KEY"})
    return task


def _no_cache(task: dsl.PipelineTask) -> dsl.PipelineTask:
    task.set_caching_options(False)
    return task


def build(options: PlatformOptions = PlatformOptions()) -> Callable:
    """Return the ``attribute-promotion`` pipeline function for these platform options."""
    shard_items = [f"{i}/{options.shards}" for i in range(options.shards)]
    c = {stage: stage_component(stage) for stage in STAGES}

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Promote a plain-language video attribute to a served, A/B-tested retrieval signal.")
    def attribute_promotion(
        attribute_spec: str,
        manifest: str,
        workdir: str,
        state_dir: str,
        webhook_url: str = "",
        frames_per_video: int = 8,
        frame_size: int = 224,
        teacher_backend: str = "zero-shot",
        golden_set: str = "",
        approval_store: str = "",
        submitter: str = "silverset-pipeline",
        auto_approve_as: str = "",
    ) -> None:
        exit_task = c["notify"](run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, webhook_url=webhook_url,
                                attribute_spec=attribute_spec, workdir=workdir, state_dir=state_dir,
                                plan_dir=f"{workdir}/plan")
        _calls_services(_no_cache(_common(exit_task, options, cpu="250m", memory="256Mi")), options, needs_gemini=False)
        exit_task.set_display_name("notify-and-clean-up")

        with dsl.ExitHandler(exit_task, name="promotion"):
            plan = c["plan"](manifest=manifest, attribute_spec=attribute_spec, state_dir=state_dir, workdir=workdir,
                             run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER)
            _no_cache(_common(plan, options, cpu="1", memory="1Gi")).set_display_name("plan-incremental")
            with dsl.If(plan.output != "", name="corpus-or-spec-changed"):
                _promotion_body(c, options, shard_items, plan=plan, attribute_spec=attribute_spec,
                                workdir=workdir, state_dir=state_dir, frames_per_video=frames_per_video,
                                frame_size=frame_size, teacher_backend=teacher_backend, golden_set=golden_set,
                                approval_store=approval_store, submitter=submitter,
                                auto_approve_as=auto_approve_as, webhook_url=webhook_url)

    return attribute_promotion


def _promotion_body(c: dict, options: PlatformOptions, shard_items: list[str], *, plan: dsl.PipelineTask,
                    attribute_spec, workdir, state_dir, frames_per_video, frame_size, teacher_backend, golden_set,
                    approval_store, submitter, auto_approve_as, webhook_url) -> None:
    """Stages after the plan, wired as far as their components exist (each needs the one before it)."""
    run_dir = plan.output
    if c["frames"] is None:
        return
    frames = c["frames"](manifest=f"{workdir}/plan/todo_manifest.parquet", out_dir=f"{run_dir}/frames",
                         frames_per_video=frames_per_video, size=frame_size)
    _common(frames, options, cpu="4", memory="8Gi").set_display_name("frames")
    todo_manifest = f"{workdir}/plan/todo_manifest.parquet"
    if c["embed"] is None or c["annotate"] is None:
        return
    with dsl.ParallelFor(items=list(range(options.shards)), name="embed-shards") as shard:
        embed = c["embed"](frames_uri=f"{run_dir}/frames", manifest_uri=todo_manifest,
                           out_uri=f"{run_dir}/embeddings", shard_index=shard, shard_count=options.shards)
        embed.after(frames)  # frames reach embed through the run folder, not a task output
        _common(embed, options, cpu="2", memory="4Gi").set_display_name("embed-shard")
    with dsl.ParallelFor(items=list(range(options.shards)), name="annotate-shards") as shard:
        annotate = c["annotate"](attribute_uri=attribute_spec, manifest_uri=todo_manifest,
                                 frames_uri=f"{run_dir}/frames", out_uri=f"{run_dir}/teacher", shard_index=shard,
                                 shard_count=options.shards, teacher=teacher_backend)
        annotate.after(frames)
        _calls_services(_common(annotate, options, cpu="2", memory="4Gi"), options, needs_gemini=True)
        if options.gpu_teacher:
            _gpu(annotate, options)
        annotate.set_display_name("annotate-shard")
    if c["merge"] is None:
        return
    merge = c["merge"](manifest_uri=todo_manifest, out_uri=f"{run_dir}/teacher").after(annotate)
    _common(merge, options, cpu="1", memory="2Gi").set_display_name("merge-labels-exactly-once")
    carry = c["carry"](plan_dir=f"{workdir}/plan", new_labels=f"{run_dir}/teacher",
                       new_embeddings=f"{run_dir}/embeddings", state_dir=state_dir,
                       out_dir=f"{run_dir}/merged").after(merge, embed)
    _no_cache(_common(carry, options, cpu="1", memory="4Gi")).set_display_name("carry-and-commit-state")
    # Next in CHAIN: teacher gate, distill, student gate, approval, score, index, deploy (see module doc).


attribute_promotion = build()
