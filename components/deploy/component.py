"""KFP component: deploy an approved index version (re-checks the gate and the approval for its digest)."""
from kfp import dsl

from silverset.components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def deploy_index(index_dir: str, gate: str, approval_store: str, target: str = "local", serve_root: str = "",
                 namespace: str = "silverset", index_uri: str = "") -> str:
    """Make the index in ``index_dir`` live; ``gate`` is gate.json or its folder. Returns the deploy summary as JSON."""
    import json
    from pathlib import Path

    from silverset.components.deploy.deploy import run

    gate_path = Path(gate) / "gate.json" if Path(gate).is_dir() else Path(gate)
    summary = run(index=index_dir, gate=str(gate_path), approval_store=approval_store, target=target,
                  serve_root=serve_root or None, namespace=namespace, index_uri=index_uri or index_dir)
    print(json.dumps(summary))
    return json.dumps(summary)
