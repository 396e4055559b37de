"""KFP component: the approval step; its string output ("approved"/"rejected") is what dsl.If branches on."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def approval_gate(gate: str, attribute_spec: str, approval_store: str, submitter: str, report_uri: str = "",
                  webhook_url: str = "", auto_approve_as: str = "") -> str:
    """Submit the candidate that ``gate`` (gate.json or its folder) blessed and wait for a human decision."""
    from silverset.components.approval.wait import run

    result = run(gate=gate, attribute=attribute_spec, store=approval_store, submitter=submitter,
                 report_uri=report_uri, webhook_url=webhook_url, auto_approve_as=auto_approve_as)
    print(result)
    return result["decision"]
