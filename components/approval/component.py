"""KFP component: the approval step; its string output ("approved"/"rejected"/"expired") is what dsl.If branches on."""

from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def approval_gate(
    gate_result: str,
    attribute_spec: str,
    approval_store: str,
    submitter: str,
    run_dir: str,
    report_uri: str = "",
    webhook_url: str = "",
    auto_approve_as: str = "",
    run_lock: str = "",
    state_dir: str = "",
    run_id: str = "",
) -> str:
    """Submit the candidate that ``gate_result`` (gate.json or its folder) blessed and wait for a human decision,
    keeping the run lock while it waits; the decision goes to ``run_dir``/approval/decision.json."""
    from silverset.components.common.step import begin_step

    begin_step()  # logs reach the pod log; a step that did its work never aborts in native teardown
    from silverset.components.approval.wait import ApprovalOptions, run
    from silverset.components.common.artifacts import write_approval_decision
    from silverset.components.common.step import renewing

    with renewing(run_lock=run_lock, state_dir=state_dir, run_id=run_id):
        outcome = run(
            gate_result=gate_result,
            attribute_spec=attribute_spec,
            approval_store=approval_store,
            submitter=submitter,
            report_uri=report_uri,
            webhook_url=webhook_url,
            options=ApprovalOptions(auto_approve_as=auto_approve_as),
        )
    write_approval_decision(f"{run_dir.rstrip('/')}/approval", outcome)
    print(outcome.model_dump_json())
    return outcome.decision.value
