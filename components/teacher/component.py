"""KFP components: annotate one shard (fan out with dsl.ParallelFor) and check the merged labels exactly-once."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def annotate_shard(
    attribute_spec: str,
    manifest_uri: str,
    frames_uri: str,
    out_dir: str,
    shard_index: int = 0,
    shard_count: int = 1,
    teacher_backend: str = "zero-shot",
    max_usd: float = -1.0,
    teacher_checkpoint: str = "",
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
    teacher_model: str = "",
    gemini_price_table: str = "",
    gemini_rps: float = 2.0,
    gemini_tokens_per_min: int = 2_000_000,
    teacher_precision: str = "auto",
    teacher_budget_usd: float = 0.0,
    teacher_temperature: float = 0.0,
) -> str:
    """Label shard i/n into ``out_dir`` (shared by all shards); returns the shard's ``ShardStats`` as JSON (all
    zero for an empty plan manifest: see ``common.step.nothing_to_do``) and records the shard's measured
    CPU-seconds in ``out_dir/stats/cpu-shard-<tag>.json``.

    The teacher parameters carry the run parameters' names (one name per concept in the compiled YAML):
    ``teacher_backend`` (zero-shot, clip-zero-shot, gemini, local); ``teacher_checkpoint``: the local teacher's
    TorchScript/ONNX file (teacher_backend="local"). ``teacher_model`` overrides the spec's Gemini model;
    ``gemini_price_table`` the shipped price table; ``gemini_rps`` / ``gemini_tokens_per_min`` are the key's quota
    for the whole run (each of the ``shard_count`` shards takes its share). ``teacher_precision`` (local teacher:
    auto, fp32, fp16, int8) calibrates INT8 on the run's own frames in ``frames_uri``.
    ``teacher_budget_usd`` > 0 (the run's Gemini budget): the shard stops at its share of it, by its share of the
    manifest's videos (all shards together never pass it), unless ``max_usd`` (no run parameter: a step's own
    cap, -1 = none) sets the shard's own cap. ``teacher_temperature``: the clip-zero-shot teacher's softmax
    temperature (0 = the model's own logit scale)."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    import json

    from silverset.components.common.artifacts import ShardStats
    from silverset.components.common.cpu_stats import measure_cpu, write_cpu
    from silverset.components.common.sharding import Shard
    from silverset.components.common.step import nothing_to_do, renewing
    from silverset.components.teacher.annotate import AnnotateOptions, run
    from silverset.components.teacher.gemini import GeminiOptions

    shard = Shard(shard_index, shard_count)
    if nothing_to_do(manifest_uri):  # incremental run: nothing new
        return json.dumps(ShardStats(shard=str(shard), model_id="").to_dict())
    if teacher_budget_usd > 0 and max_usd < 0:
        from silverset.components.teacher.prices import shard_share_usd

        max_usd = shard_share_usd(manifest_uri, shard, teacher_budget_usd)
    gemini = GeminiOptions(
        max_usd=max_usd if max_usd >= 0 else None,
        model=teacher_model or None,
        price_table=gemini_price_table or None,
        rps=gemini_rps,
        tokens_per_min=gemini_tokens_per_min,
    )
    options = AnnotateOptions(
        teacher=teacher_backend,
        gemini=gemini,
        checkpoint=teacher_checkpoint or None,
        precision=teacher_precision,
        temperature=teacher_temperature or None,
        calibration=frames_uri if teacher_precision == "int8" and frames_uri else None,
    )
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id), measure_cpu() as cpu:
        summary = run(
            attribute_spec=attribute_spec,
            manifest_uri=manifest_uri,
            frames_uri=frames_uri or None,
            out_dir=out_dir,
            options=options,
            shard=shard,
        )
    write_cpu(out_dir, f"shard-{shard.tag}", cpu_seconds=cpu.cpu_seconds, items=summary.stats.processed)
    return json.dumps(summary.stats.to_dict())


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def merge_labels(manifest_uri: str, out_dir: str) -> int:
    """Fail unless every manifest video is labelled or in ``out_dir``'s errors.parquet exactly once; returns the
    label count (0 for an empty plan manifest: see ``common.step.nothing_to_do``)."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.common.manifest import read_manifest
    from silverset.components.common.step import nothing_to_do
    from silverset.components.runtime.runner import merge_check

    if nothing_to_do(manifest_uri):  # incremental run: nothing new
        return 0
    manifest, dropped = read_manifest(manifest_uri)
    report = merge_check(out_dir, manifest.column("video_id").to_pylist() + [e.key for e in dropped])
    if not report.ok:
        raise RuntimeError(
            f"labels not exactly-once: missing {report.missing[:5]}, duplicated {report.duplicated[:5]}, "
            f"unexpected {report.unexpected[:5]}"
        )
    return report.outputs
