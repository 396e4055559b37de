"""KFP component for the pipeline's ExitHandler: post the run summary to a webhook and clean up."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def notify_run(status: dsl.PipelineTaskFinalStatus, run_id: str, webhook_url: str, attribute_spec: str, workdir: str,
               state_dir: str, plan_dir: str) -> str:
    """Runs whatever happened inside the ExitHandler; returns the HTTP status of the webhook (or 'none')."""
    from silverset.components.notify.webhook import run

    result = run(run_id=run_id, status=status.state,
                 error_message=status.error_message or "", webhook_url=webhook_url, attribute_spec=attribute_spec,
                 workdir=workdir, state_dir=state_dir, plan_dir=plan_dir)
    print(result.model_dump_json())
    return str(result.webhook_status or "none")

