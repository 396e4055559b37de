"""The demo's closed A/B loop: the real index server runs the experiment, simulated users search it, their
outcomes follow from what it actually served, and the analysis reads the server's own exposure log.

An orchestration over stages (index server, abtest analysis), so it lives under pipelines/, not in a stage package.
Simulated users (``abtest/simulated_users.py``): each has a current interest in the attribute and an older one
that is only partly the same; their watch histories are drawn from the index's own scored videos. Pre-period
covariates (activity, tenure, minutes on the attribute, consumption, creation) correlate with
the trigger, so triggered and not-triggered users differ before any treatment (CBPS must balance them).

Outcomes: a user the server served restricted results gains ``effect x current interest`` minutes of
satisfied consumption (and ``creation_effect x interest`` in creation probability); the truth for the
triggered users is the mean of that over the users the server triggered, in both arms.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq

from silverset.components.abtest import analyze
from silverset.components.abtest.experiment import load_experiment
from silverset.components.abtest.exposure import read_exposures
from silverset.components.abtest.simulated_users import METRICS, outcomes_of, simulate_users
from silverset.components.common.artifacts import IndexManifest, read_index_manifest, write_index_manifest
from silverset.components.common.errors import SilversetInputError
from silverset.components.index import pointer
from silverset.components.index.server import ServerOptions, create_app

_LOGGER = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def loopback_server(serve_root: str | Path, options) -> Iterator[str]:
    """The real index server (uvicorn, in this process) on a free loopback port until the block ends; yields
    its base URL once /readyz answers 200. Leaving the block shuts it down, which finalizes the exposure log."""
    import httpx
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(serve_root, options, poll=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="closed-loop-index-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"index server over '{serve_root}' did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def stage_serve_root(
    *, serve_root: str | Path, attribute: str, out: Path, affinity_model: str | Path | None
) -> tuple[Path, IndexManifest]:
    """Copy the live version of ``attribute`` into ``out`` (CURRENT pointing at it); with ``affinity_model``
    its manifest names the model (the manifest is outside the content digest). Returns (root, manifest)."""
    live = pointer.read_pointer(serve_root, attribute)
    if live is None:
        raise SilversetInputError(f"serve root '{serve_root}'", f"has no live version of '{attribute}' (no CURRENT)")
    source = pointer.version_dir(serve_root, attribute, live)
    target = pointer.version_dir(out, attribute, live)
    if target.parent.parent.exists():
        shutil.rmtree(target.parent.parent)
    shutil.copytree(source, target)
    manifest = read_index_manifest(target)
    if affinity_model is not None:
        serving = {**manifest.serving, "affinity_model": str(Path(affinity_model).resolve())}
        manifest = manifest.model_copy(update={"serving": serving})
        write_index_manifest(target, manifest)
    (out / attribute / pointer.CURRENT).write_text(live + "\n")
    return out, manifest


def run_closed_loop(
    *,
    serve_root: str | Path,
    attribute: str,
    experiment_path: str | Path,
    out_dir: str | Path,
    users: int = 4000,
    effect: float = 2.0,
    seed: int = 0,
    affinity_model: str | Path | None = None,
    creation_effect: float = 0.04,
    clients: int = 8,
    bootstrap_samples: int = 200,
) -> dict:
    """Serve ``attribute``'s live index with the experiment, send one history search per simulated user (a
    quarter send a second), generate outcomes from the responses, analyse the server's exposure log.

    ``effect``: minutes/day a fully interested served user gains (scaled by the user's interest).
    Writes under ``out_dir``: serve/ (the staged index), exposures/ (the server's log), outcomes.parquet,
    analysis/ (result.json, report.html, errors.parquet) and summary.json. Returns the summary: the analysis
    numbers, the truth, and ``checks`` (effect within CI, SRM, |SMD| < 0.1, control never served).
    """
    import httpx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = load_experiment(experiment_path)
    if config.attribute != attribute:
        raise SilversetInputError(f"experiment '{experiment_path}'", f"is for '{config.attribute}', not '{attribute}'")
    root, manifest = stage_serve_root(
        serve_root=serve_root, attribute=attribute, out=out / "serve", affinity_model=affinity_model
    )
    history = pq.read_table(Path(root) / attribute / "versions" / manifest.version / "history.parquet")
    sim = simulate_users(
        history.column("video_id").to_pylist(),
        history.column("probability").to_numpy(),
        users=users,
        min_probability=float(manifest.vocabulary_rule["min_probability"]),
        seed=seed,
    )
    exposures_dir = out / "exposures"
    if exposures_dir.exists():
        shutil.rmtree(exposures_dir)
    options = ServerOptions(
        experiment=str(Path(experiment_path).resolve()),
        exposure_log=str(exposures_dir),
        exposure_max_rows=1000,
        exposure_max_seconds=1.0,
        tune_leaves=False,
    )
    repeat = [i for i in range(users) if i % 4 == 0]
    order = list(range(users)) + repeat
    responses: list[dict | None] = [None] * len(order)
    failures: list[str] = []

    started = time.perf_counter()
    _LOGGER.info(
        "closed loop %s: %d users, %d searches over %d clients against index %s",
        attribute,
        users,
        len(order),
        clients,
        manifest.version,
    )
    with loopback_server(root, options) as url:
        search_url = f"{url}/v1/attributes/{attribute}/search"

        def send(chunk: list[int]) -> None:
            with httpx.Client(timeout=30) as client:
                for j in chunk:
                    i = order[j]
                    body = {
                        "user_id": sim.user_id[i],
                        "history": sim.histories[i],
                        "k": 10,
                        "exclude": sim.histories[i],
                    }
                    r = client.post(search_url, json=body)
                    if r.status_code != 200:
                        failures.append(f"{r.status_code}: {r.text[:200]}")
                        continue
                    responses[j] = r.json()

        with ThreadPoolExecutor(max_workers=clients) as pool:
            list(pool.map(send, [list(range(c, len(order), clients)) for c in range(clients)]))
    serve_seconds = time.perf_counter() - started
    if failures:
        _LOGGER.error(
            "closed loop %s: %d of %d searches failed, e.g. %s", attribute, len(failures), len(order), failures[0]
        )
        raise RuntimeError(f"{len(failures)} of {len(order)} searches failed, e.g. {failures[0]}")
    _LOGGER.info(
        "closed loop %s: %d searches served in %.1f s (%.0f/s)",
        attribute,
        len(order),
        serve_seconds,
        len(order) / serve_seconds if serve_seconds > 0 else 0.0,
    )

    served = np.zeros(users, dtype=bool)
    triggered = np.zeros(users, dtype=bool)
    arm_mismatch = 0
    for j, response in enumerate(responses):
        i = order[j]
        served[i] |= bool(response["served"])
        triggered[i] |= bool(response["triggered"])
        arm_mismatch += response.get("arm") != config.arm_of(sim.user_id[i])
    treatment = np.array([config.arm_of(u) == "treatment" for u in sim.user_id])

    outcomes_path = out / "outcomes.parquet"
    pq.write_table(outcomes_of(sim, served, effect=effect, creation_effect=creation_effect, seed=seed), outcomes_path)
    summary = analyze.run(
        exposures=exposures_dir,
        outcomes=outcomes_path,
        out_dir=out / "analysis",
        options=analyze.AnalysisOptions(
            treatment_share=config.treatment_share,
            metrics=METRICS,
            seed=seed,
            bootstrap_samples=bootstrap_samples,
            experiment_id=config.experiment_id,
        ),
    )
    logged = read_exposures(exposures_dir)
    truth_gain = float(sim.interest[triggered].mean()) if triggered.any() else 0.0
    truth = {
        "satisfied_consumption": {
            "triggered_difference": effect * truth_gain,
            "itt_difference": effect
            * float((sim.interest * (triggered & treatment)).sum())
            / max(int(treatment.sum()), 1),
        },
        # the effect on the users actually served (treatment's triggered users): what CBPS estimates
        "served_difference": effect * float(sim.interest[served].mean()) if served.any() else 0.0,
        "creation_participation": {"triggered_difference_approx": creation_effect * truth_gain},
        "mean_interest_triggered": truth_gain,
        "mean_interest_all": float(sim.interest.mean()),
    }
    trig = summary.triggered_lifts.get("satisfied_consumption")
    result = analyze.AnalysisResult.model_validate_json((out / "analysis" / analyze.RESULT_FILE).read_text())
    obs = result.observational
    checks = {
        "effect_within_ci": bool(
            trig
            and trig.difference_ci[0] <= truth["satisfied_consumption"]["triggered_difference"] <= trig.difference_ci[1]
        ),
        "srm_passed": not summary.srm_mismatch,
        "cbps_all_abs_smd_below_0_1": obs is not None and all(abs(b.smd_after) < 0.1 for b in obs.balance),
        "control_never_served": int((served & ~treatment).sum()) == 0 and summary.control_served == 0,
        "arms_match_experiment": arm_mismatch == 0,
        "every_request_logged": logged.num_rows == len(order),
    }
    report = {
        "experiment_id": config.experiment_id,
        "attribute": attribute,
        "index_version": manifest.version,
        "trigger_source": "model" if affinity_model is not None else "rule",
        "affinity_model": str(affinity_model) if affinity_model else None,
        "users": users,
        "requests": len(order),
        "logged_requests": logged.num_rows,
        "serve_seconds": round(serve_seconds, 2),
        "requests_per_second": round(len(order) / serve_seconds, 1),
        "treatment_users": int(treatment.sum()),
        "triggered_users": int(triggered.sum()),
        "served_users": int(served.sum()),
        "effect": effect,
        "creation_effect": creation_effect,
        "seed": seed,
        "truth": truth,
        "analysis": summary.model_dump(mode="json"),
        "checks": checks,
        "passed": all(checks.values()),
        "paths": {"exposures": str(exposures_dir), "outcomes": str(outcomes_path), "analysis": str(out / "analysis")},
    }
    (out / "summary.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        _LOGGER.warning("closed loop %s: checks failed: %s", attribute, ", ".join(failed))
    return report
