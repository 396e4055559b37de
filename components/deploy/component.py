"""KFP component: deploy an approved index version (re-checks the gate and the approval for its digest)."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def deploy_index(index: dsl.Input[dsl.Artifact], gate: dsl.Input[dsl.Artifact], approval_store: str, target: str = "local",
                 serve_root: str = "", namespace: str = "silverset", index_uri: str = "") -> str:
    import json
    from pathlib import Path

    from silverset.components.deploy.deploy import run

    gate_path = Path(gate.path) / "gate.json" if Path(gate.path).is_dir() else Path(gate.path)
    summary = run(index=index.path, gate=str(gate_path), approval_store=approval_store, target=target,
                  serve_root=serve_root or None, namespace=namespace, index_uri=index_uri or index.uri)
    return json.dumps(summary)
