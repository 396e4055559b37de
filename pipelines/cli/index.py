"""`silverset index build|serve|deploy`: restricted ScaNN index per attribute, its server, and its rollout."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()
index_app = typer.Typer(help="Restricted retrieval index: build, serve, deploy.", no_args_is_help=True)


@index_app.command("build")
def build(
    scores: str = typer.Option(..., help="Scores table (Parquet file or folder) from bulk scoring."),
    embeddings: str = typer.Option(..., help="Embeddings table (Parquet file or folder)."),
    attribute: Path = typer.Option(..., help="Attribute spec YAML (vocabulary rule, recall target)."),
    out: Path = typer.Option(..., help="Output index folder (replaced atomically)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace --out even when another command or the user wrote it."
    ),
    recall_queries: int = typer.Option(200, help="Query sample size for the recall@10 check."),
) -> None:
    """Build the restricted vocabulary and its ScaNN index; exit 3 if recall@10 is below the spec's target."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from silverset.components.common.tables import check_output_folder
    from silverset.components.index.build import BuildOptions, run

    check_output_folder(out, command="index build", overwrite=overwrite)

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
    ) as progress:
        progress.add_task("building restricted index", total=None)
        summary = run(
            scores=scores,
            embeddings=embeddings,
            attribute_spec=str(attribute),
            out_dir=str(out),
            options=BuildOptions(recall_queries=recall_queries),
            overwrite=overwrite,
        )
    console.print_json(summary.model_dump_json())


@index_app.command("serve")
def serve(
    index_dir: Path = typer.Option(
        ...,
        "--index-dir",
        help="One index folder, or a serving root of <attribute>/versions/<version>/ "
        "(with <attribute>/CURRENT pointers unless --pinned-versions).",
    ),
    port: int = typer.Option(8080, help="TCP port."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    token: str = typer.Option(
        None, envvar="SILVERSET_INDEX_TOKEN", help="Require 'Authorization: Bearer TOKEN' on /v1/."
    ),
    poll_interval: float = typer.Option(2.0, help="Seconds between checks for a new index version (pointers or pins)."),
    max_k: int = typer.Option(1000, help="Largest k a request may ask for."),
    workers: int = typer.Option(1, min=1, max=64, help="Forked worker processes sharing one loaded index."),
    pinned_versions: Path = typer.Option(
        None,
        envvar="SILVERSET_PINNED_VERSIONS",
        help="Kubernetes downwardAPI metadata.annotations file: serve exactly the versions its "
        "index.silverset.dev/<attribute> annotations pin (CURRENT is ignored).",
    ),
    experiment: Path = typer.Option(
        None,
        "--experiment",
        envvar="SILVERSET_EXPERIMENT",
        help="experiment.json from 'abtest create': searches of its attribute need a user_id, only the treatment "
        "arm is served, every request is logged (needs --exposure-log).",
    ),
    exposure_log: Path = typer.Option(
        None,
        "--exposure-log",
        envvar="SILVERSET_EXPOSURE_LOG",
        help="Folder for the experiment's exposure log (rotated Parquet files, read by 'abtest status').",
    ),
    exposure_max_seconds: float = typer.Option(
        60.0, "--exposure-max-seconds", help="Longest an exposure row waits in memory before its file is written."
    ),
) -> None:
    """Serve restricted retrieval over HTTP (hot-swaps new versions after a self-check).

    An empty or missing serving root starts live (/healthz 200) but unready (/readyz 503) until a version appears.
    """
    import os

    from pydantic import ValidationError

    from silverset.components.index.server import ServerOptions, load_server_experiment
    from silverset.components.index.server import serve as run_server
    from silverset.pipelines.cli.output import options_error

    if token is None and "SILVERSET_INDEX_TOKEN" in os.environ:  # click reads an empty variable as unset
        token = os.environ["SILVERSET_INDEX_TOKEN"]
    try:
        options = ServerOptions(
            bearer_token=token,
            poll_interval_s=poll_interval,
            max_k=max_k,
            pinned_versions=str(pinned_versions) if pinned_versions else None,
            experiment=str(experiment) if experiment else None,
            exposure_log=str(exposure_log) if exposure_log else None,
            exposure_max_seconds=exposure_max_seconds,
        )
    except ValidationError as exc:
        raise options_error(
            "index serve options (--token / SILVERSET_INDEX_TOKEN, --poll-interval, --max-k, --exposure-max-seconds)",
            exc,
        ) from None
    load_server_experiment(options)  # a bad --experiment / --exposure-log pair fails here, before anything prints
    if not index_dir.exists():
        console.print(
            f"[yellow]{index_dir} does not exist yet: live but unready until an index version appears[/yellow]"
        )
    pinned = f", versions pinned by {pinned_versions}" if pinned_versions else ""
    running = f", experiment {experiment} logging to {exposure_log}" if experiment else ""
    console.print(f"serving {index_dir} on http://{host}:{port}{pinned}{running}", markup=False)
    run_server(index_dir=str(index_dir), host=host, port=port, workers=workers, options=options)


@index_app.command("deploy")
def deploy(
    index: Path = typer.Option(..., "--index", "--index-dir", help="Built index folder."),
    gate: Path = typer.Option(..., help="gate.json from the evaluate stage."),
    target: str = typer.Option("local", help="local | kubernetes"),
    serve_root: Path = typer.Option(None, help="local: serving root the index server reads."),
    server_url: str = typer.Option(None, help="local: wait for this server to serve the new version (else roll back)."),
    token: str = typer.Option(
        None, envvar="SILVERSET_INDEX_TOKEN", help="local: the --server-url server's bearer token."
    ),
    namespace: str = typer.Option("silverset", help="kubernetes: namespace."),
    deployment: str = typer.Option(
        "silverset-index", help="kubernetes: index server Deployment (canary: NAME-canary)."
    ),
    index_uri: str = typer.Option(
        None,
        help="kubernetes: the URI the version's ConfigMap records (default: the folder published under --serve-root).",
    ),
    timeout: float = typer.Option(300.0, help="Readiness timeout in seconds."),
    store: str = typer.Option(
        ".silverset/approvals.db",
        "--approval-store",
        "--store",
        envvar="SILVERSET_APPROVAL_STORE",
        help="Approval store (sqlite path or kubernetes://NAMESPACE).",
    ),
) -> None:
    """Deploy only with a passing gate and an approval for the same digest; a no-op if already live."""
    from pydantic import ValidationError

    from silverset.components.deploy.deploy import DeployOptions, run
    from silverset.pipelines.cli.output import options_error

    try:
        options = DeployOptions(
            target=target,
            server_url=server_url,
            server_token=token or None,
            namespace=namespace,
            deployment=deployment,
            published_uri=index_uri,
            timeout_s=timeout,
        )
    except ValidationError as exc:
        raise options_error("index deploy options (--timeout)", exc) from None
    summary = run(
        index_dir=str(index),
        gate_result=str(gate),
        approval_store=store,
        serve_root=str(serve_root) if serve_root else None,
        options=options,
    )
    console.print_json(summary.model_dump_json())


def register(app: typer.Typer) -> None:
    app.add_typer(index_app, name="index")
