"""`silverset approvals ...`: list, show, submit, approve, reject and audit candidate approval requests."""
from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
approvals_app = typer.Typer(help="Human approval of candidates, bound to their digest (audited).", no_args_is_help=True)
DEFAULT_STORE = ".silverset/approvals.db"

StoreOption = typer.Option(DEFAULT_STORE, "--store", envvar="SILVERSET_APPROVAL_STORE",
                           help="sqlite:///FILE, a SQLite file path, or kubernetes://NAMESPACE.")
WebhookOption = typer.Option(None, "--webhook", envvar="SILVERSET_APPROVAL_WEBHOOK", help="URL that receives a JSON POST per event.")
ApproverOption = typer.Option([], "--approver", help="Extra approver allowed besides the spec's (repeatable; config).")


def _service(store: str, webhook: str | None = None, approvers: list[str] | None = None):
    from silverset.components.approval.notify import Notifier
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.approval.store import open_store

    return ApprovalService(open_store(store), notifier=Notifier(webhook) if webhook else None, extra_approvers=tuple(approvers or ()))


def _print(request) -> None:
    console.print_json(json.dumps(request.model_dump(mode="json")))


@approvals_app.command("list")
def list_requests(store: str = StoreOption, state: str = typer.Option(None, help="Only pending, approved or rejected.")) -> None:
    """List approval requests (timed-out ones show as rejected)."""
    table = Table("candidate", "attribute", "state", "submitter", "decided by", "expires")
    for r in _service(store).list():
        if state and r.state.value != state:
            continue
        table.add_row(r.candidate_digest[:23], r.key, r.state.value, r.submitter, r.decided_by or "", f"{r.expires_at:%Y-%m-%d %H:%M}Z")
    console.print(table)


@approvals_app.command("show")
def show(candidate: str = typer.Argument(..., help="Candidate digest or a unique prefix."), store: str = StoreOption) -> None:
    """Show one request with its gate results, report link and audit trail."""
    service = _service(store)
    _print(service.get(candidate))
    for e in service.audit(candidate):
        console.print(f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.actor:<28} {e.action:<13} {e.previous_state.value if e.previous_state else '-':>8} -> {e.new_state.value:<8} {e.reason}", markup=False)


@approvals_app.command("submit")
def submit(
    gate: Path = typer.Option(..., help="gate.json from the evaluate stage (names the candidate digest)."),
    attribute: Path = typer.Option(..., help="Attribute spec YAML (approvers, timeout, self-approval)."),
    as_user: str = typer.Option(..., "--as", help="Who submits."),
    report: str = typer.Option("", help="Link to the evaluation report."),
    auto_approve_as: str = typer.Option(None, "--auto-approve-as", help="DEMO ONLY: approve at once as this approver (audited as auto-approve)."),
    store: str = StoreOption, webhook: str = WebhookOption, approver: list[str] = ApproverOption,
) -> None:
    """Open an approval request for the gate's candidate (idempotent)."""
    from silverset.components.approval.wait import read_gate
    from silverset.components.common.errors import GateFailed
    from silverset.components.common.spec import load_spec

    result = read_gate(gate)
    if not result.passed:
        raise GateFailed(f"candidate {result.candidate_digest[:19]} did not pass its gate: {'; '.join(result.reasons)}")
    service = _service(store, webhook, approver)
    request = service.submit(gate=result, spec=load_spec(attribute), submitter=as_user, report_uri=report)
    if auto_approve_as:
        request = service.approve(request.candidate_digest, user=auto_approve_as, reason="auto-approved for the demo", auto=True)
    _print(request)


@approvals_app.command("approve")
def approve(
    candidate: str = typer.Argument(..., help="Candidate digest or a unique prefix."),
    as_user: str = typer.Option(..., "--as", help="The approver (must be on the allow-list)."),
    reason: str = typer.Option(..., help="Why; recorded in the audit log."),
    store: str = StoreOption, webhook: str = WebhookOption, approver: list[str] = ApproverOption,
) -> None:
    """Approve exactly this candidate (idempotent; a rejected or timed-out request stays rejected)."""
    _print(_service(store, webhook, approver).approve(candidate, user=as_user, reason=reason))


@approvals_app.command("reject")
def reject(
    candidate: str = typer.Argument(..., help="Candidate digest or a unique prefix."),
    as_user: str = typer.Option(..., "--as", help="The approver (must be on the allow-list)."),
    reason: str = typer.Option(..., help="Why; recorded in the audit log."),
    store: str = StoreOption, webhook: str = WebhookOption, approver: list[str] = ApproverOption,
) -> None:
    """Reject exactly this candidate (idempotent)."""
    _print(_service(store, webhook, approver).reject(candidate, user=as_user, reason=reason))


@approvals_app.command("audit")
def audit(candidate: str = typer.Argument(None, help="Only this candidate."), store: str = StoreOption) -> None:
    """Print the append-only audit log as JSON lines."""
    for e in _service(store).audit(candidate):
        console.print(e.model_dump_json(), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
