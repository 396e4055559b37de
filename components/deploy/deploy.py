"""`silverset index deploy`: refuse without a passing gate and an approval for the same digest, then roll out."""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from silverset.components.approval.policy import ApprovalService, NotApproved
from silverset.components.approval.store import open_store
from silverset.components.approval.wait import read_gate
from silverset.components.common.artifacts import IndexManifest, read_index_manifest
from silverset.components.common.errors import GateFailed, SilversetInputError

_LOGGER = logging.getLogger(__name__)

TARGETS = ("local", "kubernetes")


class DeployOptions(BaseModel):
    """Where and how ``run`` rolls an index version out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target: str = "local"  # "local" (CURRENT/PREVIOUS pointers under serve_root) | "kubernetes" (pins on Deployments)
    server_url: str | None = None  # local: wait for this server to serve the new version, else roll back
    server_token: str | None = None  # local: the server's bearer token
    namespace: str | None = None  # kubernetes: None = this pod's own namespace
    deployment: str = "silverset-index"  # kubernetes: the index server Deployment (canary: NAME-canary)
    # kubernetes: the URI the version ConfigMap records for it; None = the folder it was published to under serve_root
    published_uri: str | None = None
    timeout_s: float = Field(300.0, gt=0)  # readiness wait before rolling back
    poll_s: float = Field(2.0, gt=0)


class DeploySummary(BaseModel):
    """What a deploy did; ``changed`` is False when the version was already live (nothing was touched)."""

    model_config = ConfigDict(frozen=True)

    target: str
    attribute: str
    version: str
    changed: bool
    previous: str | None = None  # the version live before (local: the PREVIOUS pointer afterwards)
    verified: bool = False  # local: the published copy passed the digest and self-check before the pointer moved
    canary: bool = False  # kubernetes: a NAME-canary Deployment was rolled first
    published: str = ""  # kubernetes: the version folder under serve_root


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
    index_dir: str,
    gate_result: str,
    approval_store: str,
    serve_root: str | None = None,
    options: DeployOptions = DeployOptions(),
    api_client=None,
) -> DeploySummary:
    """Check gate + approval for the index's digest, then deploy to ``options.target`` ("local" or "kubernetes").

    ``gate_result`` is gate.json or its folder. local: publish under ``serve_root`` and move its CURRENT pointer.
    kubernetes: publish the index under ``serve_root`` (where the index server pods read it) and pin it on the
    Deployment in ``options.namespace`` (default: this pod's own namespace, where the overlays put the index server).
    """
    if options.target not in TARGETS:
        raise SilversetInputError("--target", f"{options.target!r} is not a target; use local or kubernetes")
    manifest = read_index_manifest(index_dir)
    _LOGGER.info(
        "deploy %s version %s (candidate %s) to %s",
        manifest.attribute,
        manifest.version,
        manifest.model_digest[:19],
        options.target,
    )
    try:
        check_release(
            manifest=manifest,
            gate_path=gate_result,
            approvals=ApprovalService(open_store(approval_store, api_client=api_client)),
        )
    except GateFailed as exc:
        _LOGGER.error("deploy %s refused: %s", manifest.attribute, exc)
        raise
    if options.target == "local":
        from .local import deploy_local

        if not serve_root:
            raise SilversetInputError("--serve-root", "the local target needs the serving root the index server reads")
        return deploy_local(
            index_dir=index_dir,
            manifest=manifest,
            serve_root=serve_root,
            server_url=options.server_url,
            timeout_s=options.timeout_s,
            token=options.server_token,
        )
    from silverset.components.common.kube import current_namespace, load_api_client
    from silverset.components.index.loaded import load_verified

    from .kube import KubernetesDeployer

    load_verified(index_dir, attribute=manifest.attribute)  # digest + self-check before any pin moves
    if api_client is None:
        api_client = load_api_client()
    deployer = KubernetesDeployer(
        options.namespace or current_namespace(),
        deployment=options.deployment,
        api_client=api_client,
        timeout_s=options.timeout_s,
        poll_s=options.poll_s,
    )
    return deployer.deploy(
        attribute=manifest.attribute,
        version=manifest.version,
        index_dir=index_dir,
        serve_root=serve_root,
        published_uri=options.published_uri,
    )
