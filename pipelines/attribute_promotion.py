"""The ``attribute-promotion`` KFP pipeline: plan -> frames -> embed (ParallelFor shards) -> teacher gate ->
annotate (ParallelFor shards) -> merge -> carry -> distill -> student gate -> approval -> score -> restricted
vocabulary + index build -> deploy, with ``dsl.If`` on each gate and on the approval, in an exit handler that
posts a run summary to a webhook and cleans up.

Only this module touches ``kfp.kubernetes`` (secrets, node selectors, tolerations, PVCs, pull secrets);
components stay portable. Every stage in ``STAGES`` is imported at compile time: a missing component is an
ImportError, never a smaller graph.

Stages hand each other deterministic paths under the run folder ({workdir}/runs/{digest}, the plan's one
output) plus ``.after()`` edges, rather than task outputs: kfp.local 2.17 resolves only single ``Output``
values inside ``dsl.If`` conditions, so every gate and the approval return one string.

Caching: the run folder's digest covers each video's content etag, the whole attribute spec and the golden
set, so a stage's cache key (its input paths) changes whenever its inputs' content does. Steps that read or
write state outside the run folder (plan, carry/commit, gates, approval, deploy, notify) never cache.
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
    gpu_trainer: bool = False  # the student trainer on the GPU pool (the MLP trains fine on CPU)


# stage -> (module, component function name); every one is imported when the pipeline is built.
STAGES: dict[str, tuple[str, str]] = {
    "plan": ("silverset.components.incremental.component", "plan_incremental"),
    "frames": ("silverset.components.frames.component", "extract_frames"),
    "embed": ("silverset.components.embed.component", "embed_shard"),
    "teacher_gate": ("silverset.components.evaluate.component", "evaluate_gate"),
    "annotate": ("silverset.components.teacher.component", "annotate_shard"),
    "merge": ("silverset.components.teacher.component", "merge_labels"),
    "carry": ("silverset.components.incremental.component", "finalize_incremental"),
    "distill": ("silverset.components.distill.component", "distill_student"),
    "student_gate": ("silverset.components.evaluate.component", "evaluate_gate"),
    "approval": ("silverset.components.approval.component", "approval_gate"),
    "score": ("silverset.components.score.component", "bulk_score"),
    "index": ("silverset.components.index.component", "build_index"),  # restricted vocabulary + ScaNN build
    "deploy": ("silverset.components.deploy.component", "deploy_index"),
    "notify": ("silverset.components.notify.component", "notify_run"),
}


def stage_component(stage: str) -> Callable:
    """The KFP component of ``stage``; raises ImportError/AttributeError when it is not in the tree."""
    module_name, attr = STAGES[stage]
    return getattr(importlib.import_module(module_name), attr)


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
    c = {stage: stage_component(stage) for stage in STAGES}

    @dsl.pipeline(name=PIPELINE_NAME,
                  description="Promote a plain-language video attribute to a served, A/B-tested retrieval signal.")
    def attribute_promotion(
        attribute_spec: str,
        manifest: str,
        workdir: str,
        state_dir: str,
        golden_set: str,
        webhook_url: str = "",
        frames_per_video: int = 8,
        frame_size: int = 224,
        teacher_backend: str = "zero-shot",
        teacher_checkpoint: str = "",
        approval_store: str = "kubernetes://silverset",
        submitter: str = "silverset-pipeline",
        auto_approve_as: str = "",
        deploy_target: str = "kubernetes",
        serve_root: str = "",
        namespace: str = "silverset",
    ) -> None:
        exit_task = c["notify"](run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, webhook_url=webhook_url,
                                attribute_spec=attribute_spec, workdir=workdir, state_dir=state_dir,
                                plan_dir=f"{workdir}/plan")
        _calls_services(_no_cache(_common(exit_task, options, cpu="250m", memory="256Mi")), options, needs_gemini=False)
        exit_task.set_display_name("notify-and-clean-up")

        with dsl.ExitHandler(exit_task, name="promotion"):
            plan = c["plan"](manifest=manifest, attribute_spec=attribute_spec, state_dir=state_dir, workdir=workdir,
                             run_id=dsl.PIPELINE_JOB_NAME_PLACEHOLDER, golden_set=golden_set)
            _no_cache(_common(plan, options, cpu="1", memory="1Gi")).set_display_name("plan-incremental")
            with dsl.If(plan.output != "", name="corpus-or-spec-changed"):
                _promotion_body(c, options, plan=plan, attribute_spec=attribute_spec, workdir=workdir,
                                state_dir=state_dir, frames_per_video=frames_per_video, frame_size=frame_size,
                                teacher_backend=teacher_backend, teacher_checkpoint=teacher_checkpoint,
                                golden_set=golden_set,
                                approval_store=approval_store, submitter=submitter, auto_approve_as=auto_approve_as,
                                webhook_url=webhook_url, deploy_target=deploy_target, serve_root=serve_root,
                                namespace=namespace)

    return attribute_promotion


def _promotion_body(c: dict, options: PlatformOptions, *, plan: dsl.PipelineTask, attribute_spec, workdir, state_dir,
                    frames_per_video, frame_size, teacher_backend, teacher_checkpoint, golden_set, approval_store, submitter,
                    auto_approve_as, webhook_url, deploy_target, serve_root, namespace) -> None:
    """Every stage after the plan; each gate and the approval guard the steps after them with dsl.If."""
    run_dir = plan.output
    plan_dir = f"{workdir}/plan"
    todo_manifest = f"{plan_dir}/todo_manifest.parquet"
    frames_dir, embeddings_dir = f"{run_dir}/frames", f"{run_dir}/embeddings"
    golden_labels, teacher_labels, merged = f"{run_dir}/teacher_golden", f"{run_dir}/teacher", f"{run_dir}/merged"
    model_dir, student_gate_dir = f"{run_dir}/model", f"{run_dir}/student_gate"

    # New/changed videos plus the golden-set videos (the teacher gate labels those every run).
    frames = c["frames"](manifest=f"{plan_dir}/frames_manifest.parquet", out_dir=frames_dir,
                         frames_per_video=frames_per_video, size=frame_size)
    _common(frames, options, cpu="4", memory="8Gi").set_display_name("frames")
    with dsl.ParallelFor(items=list(range(options.shards)), name="embed-shards") as shard:
        embed = c["embed"](frames_uri=frames_dir, manifest_uri=todo_manifest, out_uri=embeddings_dir,
                           shard_index=shard, shard_count=options.shards)
        embed.after(frames)  # frames reach embed through the run folder, not a task output
        _common(embed, options, cpu="2", memory="4Gi").set_display_name("embed-shard")

    # The teacher must pass a golden-set gate before any bulk annotation is spent.
    golden_annotate = c["annotate"](attribute_uri=attribute_spec, manifest_uri=f"{plan_dir}/golden_manifest.parquet",
                                    frames_uri=frames_dir, out_uri=golden_labels, shard_index=0, shard_count=1,
                                    teacher=teacher_backend, checkpoint=teacher_checkpoint).after(frames)
    _teacher_step(_no_cache(golden_annotate), options).set_display_name("annotate-golden-set")
    teacher_gate = c["teacher_gate"](attribute=attribute_spec, golden=golden_set, predictions=golden_labels,
                                     gate="teacher", out_dir=f"{run_dir}/teacher_gate").after(golden_annotate)
    _no_cache(_common(teacher_gate, options, cpu="1", memory="2Gi")).set_display_name("teacher-gate")

    with dsl.If(teacher_gate.outputs["Output"] == "passed", name="teacher-gate-passed"):
        with dsl.ParallelFor(items=list(range(options.shards)), name="annotate-shards") as shard:
            annotate = c["annotate"](attribute_uri=attribute_spec, manifest_uri=todo_manifest, frames_uri=frames_dir,
                                     out_uri=teacher_labels, shard_index=shard, shard_count=options.shards,
                                     teacher=teacher_backend, checkpoint=teacher_checkpoint).after(frames)
            _teacher_step(annotate, options).set_display_name("annotate-shard")
        merge = c["merge"](manifest_uri=todo_manifest, out_uri=teacher_labels).after(annotate)
        _common(merge, options, cpu="1", memory="2Gi").set_display_name("merge-labels-exactly-once")
        carry = c["carry"](plan_dir=plan_dir, new_labels=teacher_labels, new_embeddings=embeddings_dir,
                           state_dir=state_dir, out_dir=merged, golden_set=golden_set).after(merge, embed)
        _no_cache(_common(carry, options, cpu="1", memory="4Gi")).set_display_name("carry-and-commit-state")

        distill = c["distill"](embeddings=f"{merged}/embeddings", labels=f"{merged}/train_labels",
                               attribute=attribute_spec, out_dir=model_dir).after(carry)
        _common(distill, options, cpu="4", memory="8Gi").set_display_name("distill-student")
        if options.gpu_trainer:
            _gpu(distill, options)
        golden_scores = c["score"](model_dir=model_dir, embeddings=f"{merged}/golden_embeddings",
                                   out_dir=f"{run_dir}/student_golden_scores").after(distill)
        _common(golden_scores, options, cpu="1", memory="2Gi").set_display_name("score-golden-set")
        student_gate = c["student_gate"](attribute=attribute_spec, golden=golden_set,
                                         predictions=f"{run_dir}/student_golden_scores", gate="student",
                                         out_dir=student_gate_dir, model_dir=model_dir,
                                         teacher_predictions=golden_labels, teacher_stats=golden_labels
                                         ).after(golden_scores)
        _no_cache(_common(student_gate, options, cpu="1", memory="2Gi")).set_display_name("student-gate")

        with dsl.If(student_gate.outputs["Output"] == "passed", name="student-gate-passed"):
            approval = c["approval"](gate=student_gate_dir, attribute_spec=attribute_spec,
                                     approval_store=approval_store, submitter=submitter,
                                     report_uri=f"{student_gate_dir}/report.html", webhook_url=webhook_url,
                                     auto_approve_as=auto_approve_as).after(student_gate)
            _calls_services(_no_cache(_common(approval, options, cpu="250m", memory="512Mi")), options,
                            needs_gemini=False).set_display_name("human-approval")
            with dsl.If(approval.output == "approved", name="approved"):
                score = c["score"](model_dir=model_dir, embeddings=f"{merged}/embeddings",
                                   out_dir=f"{run_dir}/scores").after(approval)
                _common(score, options, cpu="4", memory="8Gi").set_display_name("bulk-score")
                index = c["index"](scores=f"{run_dir}/scores", embeddings=f"{merged}/embeddings",
                                   attribute_spec=attribute_spec, out_dir=f"{run_dir}/index").after(score)
                _common(index, options, cpu="4", memory="8Gi").set_display_name("restricted-vocabulary-and-index")
                deploy = c["deploy"](index_dir=f"{run_dir}/index", gate=student_gate_dir,
                                     approval_store=approval_store, target=deploy_target, serve_root=serve_root,
                                     namespace=namespace).after(index)
                _calls_services(_no_cache(_common(deploy, options, cpu="250m", memory="512Mi")), options,
                                needs_gemini=False).set_display_name("deploy-index")


def _teacher_step(task: dsl.PipelineTask, options: PlatformOptions) -> dsl.PipelineTask:
    _calls_services(_common(task, options, cpu="2", memory="4Gi"), options, needs_gemini=True)
    if options.gpu_teacher:
        _gpu(task, options)
    return task


attribute_promotion = build()
