"""KFP component: deploy an approved index version (re-checks the gate and the approval for its digest)."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def deploy_index(
    index_dir: str,
    gate_result: str,
    approval_store: str,
    run_dir: str,
    target: str = "local",
    serve_root: str = "",
    namespace: str = "",
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> str:
    """Make the index in ``index_dir`` live; ``gate_result`` is gate.json or its folder; ``namespace`` "" is the step
    pod's own (kubernetes target). The outcome (or the failure and rollback) goes to ``run_dir``/deploy/deploy.json;
    returns it as JSON. A failed deploy fails the step."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.common.artifacts import DeployRecord, write_deploy_record
    from silverset.components.common.step import renewing
    from silverset.components.deploy.deploy import DeployOptions, run

    record_dir = f"{run_dir.rstrip('/')}/deploy"
    try:
        with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
            summary = run(
                index_dir=index_dir,
                gate_result=gate_result,
                approval_store=approval_store,
                serve_root=serve_root or None,
                options=DeployOptions(target=target, namespace=namespace or None),
            )
    except Exception as exc:
        write_deploy_record(
            record_dir, DeployRecord(status="failed", target=target, error=f"{type(exc).__name__}: {exc}")
        )
        raise
    write_deploy_record(record_dir, DeployRecord(status="deployed", **summary.model_dump(mode="json")))
    print(summary.model_dump_json())
    return summary.model_dump_json()
