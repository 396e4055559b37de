"""`silverset approvals ...`: list, show, submit, approve, reject and audit (and verify) candidate approval requests."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)
approvals_app = typer.Typer(
    help="Human approval of candidates, bound to their digest (hash-chained audit).", no_args_is_help=True
)
DEFAULT_STORE = ".silverset/approvals.db"
AUDIT_BROKEN_EXIT = 3

StoreOption = typer.Option(
    DEFAULT_STORE,
    "--store",
    "--approval-store",
    envvar="SILVERSET_APPROVAL_STORE",
    help="sqlite:///FILE, a SQLite file path, or kubernetes://NAMESPACE.",
)
WebhookOption = typer.Option(
    None,
    "--webhook",
    "--webhook-url",
    envvar="SILVERSET_APPROVAL_WEBHOOK",
    help="URL that receives a JSON POST per event.",
)
ApproverAsOption = typer.Option(
    None,
    "--as",
    help="The approver, on a SQLite store. Refused on kubernetes://, where the API "
    "server says who you are (SelfSubjectReview).",
)
ReasonOption = typer.Option(..., help="Why; recorded in the audit log.")
CandidateArgument = typer.Argument(..., help="Candidate digest or a unique prefix.")


def _service(store: str, webhook: str | None = None, *, create: bool = True):
    from silverset.components.approval.notify import Notifier
    from silverset.components.approval.policy import ApprovalService
    from silverset.components.approval.store import open_store

    return ApprovalService(open_store(store, create=create), notifier=Notifier(webhook) if webhook else None)


def _print(request) -> None:
    console.print_json(json.dumps(request.model_dump(mode="json")))


def _warn_if_broken(service) -> None:
    broken = service.verify_audit()
    if broken is not None:
        err_console.print(
            f"warning: the audit chain is broken ({broken}); no candidate deploys until it is repaired; "
            "see `silverset approvals audit --verify`",
            style="bold red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@approvals_app.command(
    "list",
    help="List approval requests with their state as the audit chain says "
    "(an undecided request past its expiry is expired).",
)
def list_requests(
    store: str = StoreOption, state: str = typer.Option(None, help="Only pending, approved, rejected or expired.")
) -> None:
    service = _service(store, create=False)
    table = Table("candidate", "attribute", "state", "submitter", "decided by", "expires")
    for r in service.list():
        if state and r.state.value != state:
            continue
        table.add_row(
            r.candidate_digest[:23],
            r.key,
            r.state.value,
            r.submitter,
            r.decided_by or "",
            f"{r.expires_at:%Y-%m-%d %H:%M}Z",
        )
    console.print(table)
    _warn_if_broken(service)


@approvals_app.command("show")
def show(candidate: str = CandidateArgument, store: str = StoreOption) -> None:
    """Show one request with its gate results, report link and audit trail."""
    service = _service(store, create=False)
    request = service.get(candidate)
    _print(request)
    if not service.store.submissions_chained:
        console.print(
            f"{request.created_at:%Y-%m-%d %H:%M:%S}Z  {request.submitter:<28} submit (the request object)",
            markup=False,
        )
    for e in service.audit(candidate):
        console.print(
            f"{e.at:%Y-%m-%d %H:%M:%S}Z  {e.actor:<28} {e.action.value:<13} "
            f"{e.previous_state.value if e.previous_state else '-':>8} -> {e.new_state.value:<8} {e.reason}",
            markup=False,
        )
    _warn_if_broken(service)


@approvals_app.command(
    "submit",
    help="Open an approval request for the gate's candidate; its approvers are the spec's "
    "(idempotent for the same spec).",
)
def submit(
    gate: Path = typer.Option(
        ..., help="gate.json from the evaluate stage (names the candidate digest and its spec's hash)."
    ),
    attribute: Path = typer.Option(
        ..., help="The attribute spec the gate ran with (approvers, timeout, self-approval)."
    ),
    as_user: str = typer.Option(..., "--as", help="Who submits."),
    report: str = typer.Option("", help="Link to the evaluation report."),
    auto_approve_as: str = typer.Option(
        None,
        "--auto-approve-as",
        help="DEMO ONLY, SQLite store only: approve at once as this approver of the spec (audited as auto-approve).",
    ),
    store: str = StoreOption,
    webhook: str = WebhookOption,
) -> None:
    from silverset.components.approval.wait import read_gate
    from silverset.components.common.errors import GateFailed
    from silverset.components.common.spec import load_spec

    result = read_gate(gate)
    if not result.passed:
        raise GateFailed(f"candidate {result.candidate_digest[:19]} did not pass its gate: {'; '.join(result.reasons)}")
    service = _service(store, webhook)
    request = service.submit(gate=result, spec=load_spec(attribute), submitter=as_user, report_uri=report)
    if auto_approve_as:
        request = service.approve(
            request.candidate_digest, user=auto_approve_as, reason="auto-approved for the demo", auto=True
        )
    _print(request)


@approvals_app.command("approve")
def approve(
    candidate: str = CandidateArgument,
    as_user: str = ApproverAsOption,
    reason: str = ReasonOption,
    store: str = StoreOption,
    webhook: str = WebhookOption,
) -> None:
    """Approve exactly this candidate (idempotent; a rejected or expired request stays so)."""
    _print(_service(store, webhook).approve(candidate, user=as_user, reason=reason))


@approvals_app.command("reject")
def reject(
    candidate: str = CandidateArgument,
    as_user: str = ApproverAsOption,
    reason: str = ReasonOption,
    store: str = StoreOption,
    webhook: str = WebhookOption,
) -> None:
    """Reject exactly this candidate (idempotent)."""
    _print(_service(store, webhook).reject(candidate, user=as_user, reason=reason))


@approvals_app.command("audit")
def audit(
    candidate: str = typer.Argument(None, help="Only this candidate."),
    store: str = StoreOption,
    verify: bool = typer.Option(
        False,
        "--verify",
        help=f"Check every hash link and request; exit {AUDIT_BROKEN_EXIT} "
        "naming the first broken link, 0 when intact.",
    ),
) -> None:
    """Print the hash-chained audit log as JSON lines, or verify it."""
    service = _service(store, create=False)
    if verify:
        broken = service.verify_audit()
        if broken is not None:
            err_console.print(
                f"audit chain broken: {broken}", style="bold red", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(AUDIT_BROKEN_EXIT)
        console.print(
            f"audit chain intact: {len(service.audit())} entries, {len(service.store.list())} requests", markup=False
        )
        return
    for e in service.audit(candidate):
        console.print(e.model_dump_json(), markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(approvals_app, name="approvals")
