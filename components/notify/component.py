"""KFP components for the pipeline's end: post the run summary to a webhook and clean up (the ExitHandler),
and fail the run where a gate or the approval stopped the promotion (the dsl.Else branches)."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def notify_run(
    status: dsl.PipelineTaskFinalStatus,
    run_id: str,
    webhook_url: str,
    attribute_spec: str,
    workdir: str,
    state_dir: str,
    run_lock: str = "",
) -> str:
    """Runs whatever happened inside the ExitHandler; returns the HTTP status of the webhook (or 'none')."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.notify.webhook import run

    result = run(
        run_id=run_id,
        status=status.state,
        error_message=status.error_message or "",
        webhook_url=webhook_url,
        attribute_spec=attribute_spec,
        workdir=workdir,
        state_dir=state_dir,
        run_lock=run_lock,
    )
    print(result.model_dump_json())
    return str(result.webhook_status or "none")


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def stop_promotion(run_dir: str, stage: str):
    """Fail the run: ``stage`` (teacher_gate, student_gate or approval) stopped the promotion; the error names why."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.notify.stop import stop

    stop(run_dir=run_dir, stage=stage)
