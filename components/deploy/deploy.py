"""`silverset index deploy`: refuse without a passing gate and an approval for the same digest, then roll out."""

from __future__ import annotations

import logging

from silverset.components.approval.policy import ApprovalService, NotApproved
from silverset.components.approval.store import open_store
from silverset.components.approval.wait import read_gate
from silverset.components.common.artifacts import IndexManifest, read_index_manifest
from silverset.components.common.errors import GateFailed, SilversetInputError

_LOGGER = logging.getLogger(__name__)


def check_release(*, manifest: IndexManifest, gate_path: str, approvals: ApprovalService) -> None:
    """Raise GateFailed unless gate.json passed for this index's model digest and the audit chain approves that digest.

    The approval is read from the verified audit chain (an ``approve`` entry for exactly this digest by
    one of the spec's approvers), never from the request row alone, and must be for the spec the gate ran with.
    ``gate_path`` is gate.json or the folder holding it.
    """
    digest = manifest.model_digest
    gate = read_gate(gate_path)
    if gate.candidate_digest != digest:
        raise GateFailed(
            f"gate result is for candidate {gate.candidate_digest[:19]}, the index was built from {digest[:19]}"
        )
    if not gate.passed:
        raise GateFailed(f"gate did not pass for {digest[:19]}: {'; '.join(gate.reasons) or 'no reasons given'}")
    try:
        approvals.approval_for(
            digest,
            attribute=manifest.attribute,
            attribute_version=manifest.attribute_version,
            spec_content_hash=gate.spec_content_hash,
        )
    except NotApproved as exc:
        raise GateFailed(
            f"candidate {digest[:19]} ({manifest.attribute}@v{manifest.attribute_version}) has no approval: {exc}; "
            f"an approver runs `silverset approvals approve {digest[:19]} --reason TEXT` "
            "(plus --as NAME on a SQLite store)"
        ) from None


def run(
    *,
    index: str,
    gate: str,
    approval_store: str,
    target: str = "local",
    serve_root: str | None = None,
    server_url: str | None = None,
    namespace: str | None = None,
    deployment: str = "silverset-index",
    index_uri: str | None = None,
    timeout_s: float = 300.0,
    poll_s: float = 2.0,
    api_client=None,
    server_token: str | None = None,
) -> dict:
    """Check gate + approval for the index's digest, then deploy to ``target`` ("local" or "kubernetes").

    kubernetes: publish the index under ``serve_root`` (where the index server pods read it) and pin it on the
    Deployment in ``namespace`` (default: this pod's own namespace, where the overlays put the index server).
    """
    manifest = read_index_manifest(index)
    _LOGGER.info(
        "deploy %s version %s (candidate %s) to %s",
        manifest.attribute,
        manifest.version,
        manifest.model_digest[:19],
        target,
    )
    try:
        check_release(
            manifest=manifest,
            gate_path=gate,
            approvals=ApprovalService(open_store(approval_store, api_client=api_client)),
        )
    except GateFailed as exc:
        _LOGGER.error("deploy %s refused: %s", manifest.attribute, exc)
        raise
    if target == "local":
        from .local import deploy_local

        if not serve_root:
            raise SilversetInputError("--serve-root", "the local target needs the serving root the index server reads")
        return deploy_local(
            index_dir=index,
            manifest=manifest,
            serve_root=serve_root,
            server_url=server_url,
            timeout_s=timeout_s,
            token=server_token,
        )
    if target == "kubernetes":
        from silverset.components.index.loaded import load_verified

        from .kube import KubernetesDeployer

        load_verified(index, attribute=manifest.attribute)  # digest + self-check before any pin moves

        from silverset.components.common.kube import current_namespace, load_api_client

        if api_client is None:
            api_client = load_api_client()
        deployer = KubernetesDeployer(
            namespace or current_namespace(),
            deployment=deployment,
            api_client=api_client,
            timeout_s=timeout_s,
            poll_s=poll_s,
        )
        return deployer.deploy(
            attribute=manifest.attribute,
            version=manifest.version,
            index_dir=index,
            serve_root=serve_root,
            index_uri=index_uri,
        )
    raise SilversetInputError("--target", f"{target!r} is not a target; use local or kubernetes")
