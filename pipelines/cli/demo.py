"""`silverset demo`: the whole attribute-promotion pipeline through kfp.local on a synthetic corpus, a sample
query against the served index, a simulated A/B analysis, and a summary a person can read."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from silverset.pipelines.local_progress import TaskEvent

console = Console()


def demo(
    workdir: Path = typer.Option(Path("demo-workdir"), "--workdir", help="Folder that keeps every artifact."),
    videos: int = typer.Option(200, "--videos", min=1, help="Synthetic videos to generate."),
    seed: int = typer.Option(0, "--seed", help="Random seed for the corpus, golden set and A/B simulation."),
    shards: int = typer.Option(2, "--shards", min=1, max=64, help="ParallelFor width for embed and annotate."),
    frames_per_video: int = typer.Option(8, "--frames-per-video", min=1, max=64),
    teacher: str = typer.Option(
        "local",
        "--teacher",
        help="local: a frames CNN trained on its own synthetic corpus "
        "(cached in the workdir); zero-shot: the embedded text-only teacher (weak: the "
        "teacher gate may stop the run).",
    ),
    teacher_budget_share: float = typer.Option(
        0.5,
        "--teacher-budget-share",
        min=0.0,
        max=1.0,
        help="The bulk teacher labels at most this share of the corpus (at "
        "least 10 videos; 0: all); the student scores every video.",
    ),
    ab_users: int = typer.Option(4000, "--ab-users", min=100, help="Simulated users in the closed A/B loop."),
) -> None:
    """Run the whole pipeline end to end on a synthetic corpus and print what it made and where.

    Each stage, and each task of the pipeline, prints a line as it starts and as it ends (seconds, and the count
    it reports); kfp.local's full task log goes to a file under the workdir, named on the pipeline's line.
    """
    from silverset.components.common.errors import SilversetInputError
    from silverset.pipelines.demo import run_demo

    if teacher not in ("local", "zero-shot"):
        raise SilversetInputError("--teacher", f"{teacher!r} is not a demo teacher; use local or zero-shot")
    # Bound to this stdout now: kfp.local's task log replaces sys.stdout while the pipeline runs.
    out = Console(file=sys.stdout, highlight=False)
    printer = ProgressPrinter(out)
    synthesized = [0]

    def on_video(_: str) -> None:
        synthesized[0] += 1
        if synthesized[0] < videos and synthesized[0] % max(1, videos // 4) == 0:
            out.print(f"{time.strftime('%H:%M:%S')}       corpus synth: {synthesized[0]}/{videos} videos", markup=False)

    summary = run_demo(
        workdir=workdir,
        videos=videos,
        seed=seed,
        shards=shards,
        frames_per_video=frames_per_video,
        teacher=teacher,
        teacher_budget_share=teacher_budget_share,
        ab_users=ab_users,
        on_video=on_video,
        on_event=printer,
    )
    print_summary(summary)


class ProgressPrinter:
    """One line per stage start and end: ``HH:MM:SS start <stage>`` / ``HH:MM:SS done  <stage>: 60 videos framed
    (note) 12.3 s``; a pipeline task is indented under its stage, a failed stage or task says FAILED."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, event: TaskEvent) -> None:
        indent = "  " if event.within else ""
        clock = time.strftime("%H:%M:%S")
        if event.phase == "start":
            self.console.print(f"{clock} {indent}start {event.label}", markup=False, soft_wrap=True)
            return
        what = ", ".join(
            part
            for part in (f"{event.count} {event.unit}".strip() if event.count is not None else "", event.note)
            if part
        )
        verdict = "done " if event.status == "SUCCESS" else "FAILED"
        self.console.print(
            f"{clock} {indent}{verdict} {event.label}"
            + (f": {what}" if what else "")
            + f"  {event.seconds or 0.0:.1f} s",
            markup=False,
            soft_wrap=True,
        )


def _teacher_line(teacher: dict) -> str:
    """What the demo's local teacher is; how good it is against truth is the teacher gate's row."""
    card = teacher.get("card") or {}
    corpus = card.get("training_corpus", {})
    own = card.get("validation_f1_own_corpus", {})
    sizes = ", ".join(f"{w}x{h}" for w, h in corpus.get("sizes", []))
    return (
        f"local checkpoint: a small frames CNN trained on its own synthetic corpus ({corpus.get('videos')} videos, "
        f"seed {corpus.get('seed')}, {sizes}, no hard cases; F1 "
        f"{', '.join(f'{a} {v:.2f}' for a, v in own.items())} on held-out videos of that corpus); it never "
        "sees this corpus's truth, and misses some of its hard cases (see the teacher gate)"
    )


def _rel(path: str | None, workdir: str) -> str:
    if not path:
        return "-"
    try:
        return str(Path(path).relative_to(workdir))
    except ValueError:
        return path


def _with_ci(name: str, metric: dict) -> str:
    """``f1 0.912 [0.850, 0.960]`` from a gate metric {value, lower, upper} (95% bootstrap CI)."""
    text = f"{name} {metric['value']:.3f}"
    if metric.get("lower") is not None and metric.get("upper") is not None:
        text += f" [{metric['lower']:.3f}, {metric['upper']:.3f}]"
    return text


def _gate_row(gate: dict) -> tuple[str, str]:
    if not gate:
        return "not run", ""
    metrics = gate["metrics"]
    shown = []
    for who in ("candidate", "teacher"):
        block = metrics.get(who) or {}
        cells = [
            _with_ci(name, block[name])
            for name in ("f1", "precision", "recall", "auc_pr")
            if isinstance(block.get(name), dict) and block[name].get("value") is not None
        ]
        if cells:
            model = "student" if who == "candidate" and gate["kind"] == "student" else "teacher"
            shown.append(f"{model}: " + ", ".join(cells))
    if metrics.get("f1_retention") is not None:
        shown.append(f"F1 retention {metrics['f1_retention']:.3f}")
    ratio = (metrics.get("latency") or {}).get("ratio")
    if ratio is not None:
        shown.append(f"latency ratio student/teacher {ratio:.4f}")
    verdict = "PASSED" if gate["passed"] else "FAILED: " + "; ".join(gate["reasons"])
    return verdict, "\n".join(shown) + ("\n(95% bootstrap CIs in brackets)" if shown else "")


def print_summary(summary: dict) -> None:
    w = summary["workdir"]
    corpus, pipeline, index, query, ab = (
        summary["corpus"],
        summary["pipeline"],
        summary["index"],
        summary["query"],
        summary["abtest"],
    )
    plan = pipeline["plan"]
    table = Table(title=f"silverset demo: {summary['attribute']} in {w}", show_lines=True)
    table.add_column("step")
    table.add_column("result", overflow="fold")
    table.add_column("where (in workdir)", overflow="fold")
    table.add_row("corpus synth", f"{corpus['videos']} videos, {corpus['errors']} errors", _rel(corpus["out_dir"], w))
    golden = summary["golden"]
    table.add_row(
        "golden set",
        f"{golden['items']} videos ({golden['positives']} positive), labeler synthetic-truth",
        _rel(golden["golden_set"], w),
    )
    teacher = summary["teacher"]
    line = _teacher_line(teacher) if teacher["backend"] == "local" else "zero-shot (text only, embedded)"
    table.add_row("teacher", line, _rel(teacher["checkpoint"], w))
    work = (
        "corpus unchanged: nothing to do, zero teacher calls"
        if plan.get("up_to_date")
        else f"{plan.get('todo')} of {plan.get('videos')} videos processed"
    )
    table.add_row(
        "pipeline (kfp.local)",
        f"{pipeline['status']} in {pipeline['wall_s']} s, {pipeline['tasks']} tasks; {work}",
        _rel(pipeline["run_summary"], w),
    )
    costs = pipeline.get("costs") or {}
    if costs:
        table.add_row(
            "teacher on a sample, student on everything", _costs_line(costs, pipeline), _rel(pipeline["run_summary"], w)
        )
    for name in ("teacher_gate", "student_gate"):
        verdict, metrics = _gate_row(summary[name])
        table.add_row(name.replace("_", " "), f"{verdict}\n{metrics}".strip(), _rel(summary[name].get("report"), w))
    zero_shot = summary.get("zero_shot_teacher") or {}
    if zero_shot:
        verdict, metrics = _gate_row(zero_shot)
        table.add_row(
            "zero-shot teacher (embedded default, for comparison)",
            f"same golden set, teacher gate {verdict}\n{metrics}".strip(),
            _rel(zero_shot.get("report"), w),
        )
    approval = summary["approval"]
    if approval:
        trail = ", ".join(f"{e['action']} by {e['actor']}" for e in approval["audit"])
        table.add_row(
            "approval",
            f"{approval['state']} by {approval['decided_by']} ({approval['reason']}); audit: {trail}",
            _rel(approval["store"], w),
        )
    else:
        table.add_row("approval", "not requested", "-")
    if index.get("version"):
        table.add_row(
            "index",
            f"version {index['version']}: {index['vocabulary']} of {index['history']} videos in the "
            f"restricted vocabulary, recall {index['recall']:.3f}; live: {index['live_version']}",
            _rel(index["index_dir"], w),
        )
    else:
        table.add_row("index", f"not built; live: {index['live_version'] or 'none'}", _rel(index["serve_root"], w))
    if query:
        response = query["response"]
        hits = ", ".join(f"{r['video_id']} ({r['score']:.2f})" for r in response["results"][:5])
        table.add_row(
            "sample query",
            f"history {query['request']['history']} -> triggered {response['triggered']} "
            f"(affinity {response['affinity']:.2f}), {len(response['results'])} results, "
            f"{query['positives_in_results']} positive: {hits}",
            query["url"],
        )
    if ab:
        analysis = ab["analysis"]
        where = _rel(ab["paths"]["analysis"], w)
        table.add_row(
            "A/B closed loop (index server runs the experiment)",
            f"{ab['users']} simulated users, {ab['requests']} searches, {ab['logged_requests']} exposures "
            f"logged by the server; {ab['treatment_users']} in treatment, {ab['triggered_users']} triggered, "
            f"{ab['served_users']} served; checks: "
            + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in ab["checks"].items()),
            _rel(ab["paths"]["exposures"], w),
        )
        for metric, est in _ab_lifts(analysis):
            table.add_row(f"A/B lift (all users): {metric}", est, where)
        for metric, est in _ab_lifts({"lifts": analysis.get("triggered_lifts") or {}}):
            table.add_row(f"A/B lift (triggered users, randomized): {metric}", est, where)
        if analysis.get("cbps_max_abs_smd_after") is not None:
            table.add_row(
                "A/B balance (CBPS)",
                f"max |SMD| {analysis['cbps_max_abs_smd_before']:.3f} before -> "
                f"{analysis['cbps_max_abs_smd_after']:.3f} after weighting "
                f"({'balanced' if analysis.get('cbps_balance_passed') else 'NOT balanced'})",
                where,
            )
    console.print(table)
    if index.get("live_version"):  # what a newcomer does next: label the live run's videos in the studio
        console.print(
            f"next: silverset studio serve --workdir {w}   (label the live run's videos: text search, "
            "active-learning feeds; http://127.0.0.1:8765/)",
            markup=False,
            soft_wrap=True,
        )


def _costs_line(costs: dict, pipeline: dict) -> str:
    """Teacher calls against the budget, student items scored, and $ per 1,000 videos for each."""

    def usd(value) -> str:
        return "n/a" if value is None else f"${value:.4f}"

    budget = pipeline.get("teacher_budget_videos") or costs.get("teacher_budget_videos") or 0
    ratio = costs.get("teacher_to_student_cost_ratio")
    return (
        f"teacher: {costs['teacher_calls']} calls (budget {budget or 'none'}) + {costs['golden_teacher_calls']} "
        f"golden-set calls, {usd(costs['teacher_usd_per_1000_videos'])} per 1,000 videos; student: "
        f"{costs['student_items_scored']} videos scored, {usd(costs['student_usd_per_1000_videos'])} per 1,000 "
        f"videos"
        + (f"; teacher/student {ratio:.0f}x per video" if ratio else "")
        + f" (CPU-seconds at ${costs['cost_per_core_hour_usd']}/core-hour; {costs['teacher_priced_by']})"
    )


def _ab_lifts(ab: dict) -> list[tuple[str, str]]:
    rows = []
    for metric, lift in (ab.get("lifts") or {}).items():
        ci = lift.get("ci") or [None, None]
        value = lift.get("relative_lift")
        if value is None:
            continue
        text = f"{value:+.2%} relative"
        if ci[0] is not None:
            text += f" [95% CI {ci[0]:+.2%}, {ci[1]:+.2%}]"
        text += f" ({lift.get('method', '')}, p={lift['p_value']:.3g})" if lift.get("p_value") is not None else ""
        rows.append((metric, text))
    return rows


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
