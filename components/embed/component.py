"""KFP component: embed one shard of the videos (fan out with dsl.ParallelFor over shard indices)."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def embed_shard(
    frames_uri: str,
    manifest_uri: str,
    out_dir: str,
    shard_index: int = 0,
    shard_count: int = 1,
    embedder: str = "default",
    batch_size: int = 32,
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> str:
    """Embed shard i/n into ``out_dir`` (shared by all shards); returns the shard's ``ShardStats`` as JSON (all
    zero for an empty plan manifest: see ``common.step.nothing_to_do``)."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    import json

    from silverset.components.common.artifacts import ShardStats
    from silverset.components.common.sharding import Shard
    from silverset.components.common.step import nothing_to_do, renewing
    from silverset.components.embed.embed import EmbedOptions, run

    shard = Shard(shard_index, shard_count)
    if nothing_to_do(manifest_uri):  # incremental run: nothing new
        return json.dumps(ShardStats(shard=str(shard), model_id="").to_dict())
    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        summary = run(
            frames_uri=frames_uri,
            out_dir=out_dir,
            manifest_uri=manifest_uri or None,
            shard=shard,
            options=EmbedOptions(embedder=embedder, batch_size=batch_size),
        )
    return json.dumps(summary.stats.to_dict())
