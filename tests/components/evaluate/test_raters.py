"""Raters vs teacher: hand-worked kappa/alpha examples, per-rater scores against scikit-learn, references, the CLI."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, precision_score, recall_score

from silverset.components.common import golden, schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.golden import GoldenSet
from silverset.components.evaluate import raters
from tests.helpers.cli import run_silverset
from tests.helpers.factories import SPEC, write_golden, write_scores

M = raters.MISSING
AT = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _matrix(columns):
    """votes [raters, videos] from per-video tuples (None = no vote)."""
    return np.array([[M if v is None else v for v in col] for col in columns], dtype=np.int64).T


# ---------------------------------------------------------------- hand-worked agreement


def test_cohen_kappa_wikipedia_example():
    # Wikipedia "Cohen's kappa": 50 proposals, both yes 20, both no 15, A yes/B no 5, A no/B yes 10:
    # p_o = 35/50 = 0.7; p_e = 0.5*0.6 + 0.5*0.4 = 0.5; kappa = 0.4
    a = np.array([1] * 20 + [0] * 15 + [1] * 5 + [0] * 10)
    b = np.array([1] * 20 + [0] * 15 + [0] * 5 + [1] * 10)
    assert raters.cohen_kappa(a, b, n_classes=2) == pytest.approx(0.4)
    report = raters.agreement(np.stack([a, b]), ["A", "B"], n_classes=2)
    assert report.pairs[0].cohen_kappa == pytest.approx(0.4) and report.pairs[0].percent_agreement == pytest.approx(0.7)
    assert report.percent_agreement == pytest.approx(0.7) and report.unanimous_share == pytest.approx(0.7)


FLEISS_TABLE = [  # Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories; kappa = 0.210
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_wikipedia_example_on_the_modal_vote_count_only():
    columns = [[k for k, count in enumerate(row) for _ in range(count)] for row in FLEISS_TABLE]
    columns += [[0, 4] + [None] * 12, [1, 3] + [None] * 12]  # two videos with 2 votes: not the modal 14, left out
    value, m, n = raters.fleiss_kappa_modal(_matrix(columns), n_classes=5)
    # P-bar = 0.378, P-bar_e = 0.2128 (hand-worked on the Wikipedia page): (0.378 - 0.2128) / (1 - 0.2128) = 0.210
    assert value == pytest.approx(0.2099, abs=5e-4) and m == 14 and n == 10


def test_krippendorff_alpha_worked_example_with_missing_values():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", nominal data, 4 observers x 12 units
    # with missing values: alpha = 0.743.
    a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    votes = np.array([[M if v is None else v - 1 for v in row] for row in (a, b, c, d)])
    assert raters.krippendorff_alpha(votes, n_classes=5) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_binary_hand_worked():
    # units (0,0), (1,1), (0,1): coincidences o00 = 2, o11 = 2, o01 = o10 = 1; n = 6, n0 = n1 = 3;
    # D_o = 2/6, D_e = 2 * 3 * 3 / (6 * 5) = 0.6; alpha = 1 - (1/3)/0.6 = 4/9
    votes = np.array([[0, 1, 0], [0, 1, 1]])
    assert raters.krippendorff_alpha(votes, n_classes=2) == pytest.approx(4 / 9)


def test_analytic_kappa_matches_brute_force_enumeration():
    a1, a2, p = 0.8, 0.9, 0.3
    joint = np.zeros((2, 2))
    for truth, pt in ((1, p), (0, 1 - p)):
        for c1, p1 in ((True, a1), (False, 1 - a1)):
            for c2, p2 in ((True, a2), (False, 1 - a2)):
                joint[truth if c1 else 1 - truth, truth if c2 else 1 - truth] += pt * p1 * p2
    p_o = np.trace(joint)
    p_e = joint.sum(axis=1) @ joint.sum(axis=0)
    kappa = raters.analytic_cohen_kappa(accuracy_a=a1, accuracy_b=a2, prevalence=p)
    assert kappa == pytest.approx((p_o - p_e) / (1 - p_e))


# ---------------------------------------------------------------- references and scores


def test_references_use_adjudication_else_the_other_raters_majority():
    # videos: v1 a=1 b=1 c=0 (majority); v2 a=0 b=1 adjudicated to 0; v3 all 1; v4 a=1 b=0 c=0 d... (3 raters)
    votes = _matrix([(1, 1, 0), (0, 1, None), (1, 1, 1), (None, 0, 0)])
    resolved = np.array([1, 0, 1, 0])
    adjudicated = np.array([False, True, False, False])
    ref = raters.references(votes, resolved, adjudicated, n_classes=2, min_other_votes=2)
    # a: v1 others (1, 0) tie -> none; v2 adjudicated 0; v3 others (1, 1) -> 1; v4 no vote
    # b: v1 tie; v2 0; v3 1; v4 only one other (c) -> none.   c: v1 others (1, 1) -> 1; v2 no vote; v3 1; v4 one other
    assert ref.tolist() == [[M, 0, 1, M], [M, 0, 1, M], [1, M, 1, M]]


def _random_golden(seed: int, *, n: int = 120, n_raters: int = 4) -> tuple[GoldenSet, dict[str, int]]:
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.4).astype(int)
    names = [f"r{i}" for i in range(n_raters)]
    votes, resolved, how = {}, {}, {}
    for j in range(n):
        video = f"v{j:03d}"
        voters = [r for r in names if rng.random() < 0.75] or [names[0]]
        votes[video] = {r: int(truth[j] if rng.random() < 0.8 else 1 - truth[j]) for r in voters}
        ones = sum(votes[video].values())
        if rng.random() < 0.15 or ones * 2 == len(voters):
            resolved[video], how[video] = int(truth[j]), "adjudicated"
        else:
            resolved[video] = int(ones * 2 > len(voters))
            how[video] = "single" if len(voters) == 1 else ("unanimous" if ones in (0, len(voters)) else "majority")
    teacher = {f"v{j:03d}": int(truth[j] if rng.random() < 0.88 else 1 - truth[j]) for j in range(n)}
    return GoldenSet(
        attribute="red_dominant", version=1, carried_from=None, resolved=resolved, votes=votes, raters=names, how=how
    ), teacher


def _brute_reference(gs: GoldenSet, video: str, rater: str) -> int | None:
    if rater not in gs.votes[video]:
        return None
    if gs.how[video] == "adjudicated":
        return gs.resolved[video]
    others = [v for r, v in gs.votes[video].items() if r != rater]
    if len(others) < 2 or sum(others) * 2 == len(others):
        return None
    return int(sum(others) * 2 > len(others))


def test_per_rater_and_teacher_scores_agree_with_sklearn():
    gs, teacher = _random_golden(3)
    report = raters.evaluate_raters(gs, teacher, n_classes=2, samples=200, seed=0)
    videos = list(gs.resolved)
    y = [gs.resolved[v] for v in videos]
    t = [teacher[v] for v in videos]
    assert report.teacher.f1.value == pytest.approx(f1_score(y, t))
    assert report.teacher.precision.value == pytest.approx(precision_score(y, t))
    assert report.teacher.recall.value == pytest.approx(recall_score(y, t))
    f1_gaps = []
    for score in report.per_rater:
        pairs = [(_brute_reference(gs, v, score.rater), gs.votes[v].get(score.rater), teacher[v]) for v in videos]
        pairs = [p for p in pairs if p[0] is not None]
        ref, vote, tv = ([p[i] for p in pairs] for i in range(3))
        assert score.scores.n == len(pairs) > 10
        assert score.scores.f1.value == pytest.approx(f1_score(ref, vote))
        assert score.scores.precision.value == pytest.approx(precision_score(ref, vote))
        assert score.scores.recall.value == pytest.approx(recall_score(ref, vote))
        assert score.teacher_same_videos.f1.value == pytest.approx(f1_score(ref, tv))
        assert score.scores.f1.lower <= score.scores.f1.value <= score.scores.f1.upper
        rated = [v for v in videos if score.rater in gs.votes[v]]
        assert score.vs_resolved.f1.value == pytest.approx(
            f1_score([gs.resolved[v] for v in rated], [gs.votes[v][score.rater] for v in rated])
        )
        assert score.teacher_kappa == pytest.approx(
            cohen_kappa_score([teacher[v] for v in rated], [gs.votes[v][score.rater] for v in rated])
        )
        f1_gaps.append(f1_score(ref, tv) - f1_score(ref, vote))
    d = report.teacher_minus_mean_rater
    assert d.value == pytest.approx(np.mean(f1_gaps)) and d.lower <= d.value <= d.upper and d.raters == 4


def test_own_vote_inflates_the_inclusive_score():
    """Raters no better than chance look good against a majority that counts their vote; leave-one-out does not."""
    rng = np.random.default_rng(0)
    n = 1000
    votes = {f"v{j}": {r: int(rng.random() < 0.5) for r in ("a", "b", "c")} for j in range(n)}
    resolved = {v: int(sum(x.values()) >= 2) for v, x in votes.items()}
    how = {v: "majority" for v in votes}
    gs = GoldenSet(
        attribute="x", version=1, carried_from=None, resolved=resolved, votes=votes, raters=["a", "b", "c"], how=how
    )
    report = raters.evaluate_raters(gs, {v: 1 for v in votes}, n_classes=2, samples=200, seed=0)
    for score in report.per_rater:
        # inclusive: 0.75 expected (the rater's own vote breaks the others' tie half the time); leave-one-out: 0.5
        assert score.vs_resolved.accuracy.value == pytest.approx(0.75, abs=0.04)
        assert score.scores.accuracy.value == pytest.approx(0.5, abs=0.06)
    assert abs(report.agreement.krippendorff_alpha) < 0.1


def test_a_clearly_better_teacher_has_a_positive_difference():
    gs, _ = _random_golden(5, n=200)
    truth_like = dict(gs.resolved)  # the teacher agrees with the resolved label everywhere
    d = raters.evaluate_raters(gs, truth_like, n_classes=2, samples=300, seed=1).teacher_minus_mean_rater
    assert d.lower > 0 and d.p_value < 0.05


def test_missing_teacher_decision_is_refused():
    gs, teacher = _random_golden(1, n=20)
    teacher.pop("v003")
    with pytest.raises(SilversetInputError, match="1 of 20 golden videos have no teacher decision"):
        raters.evaluate_raters(gs, teacher, n_classes=2, samples=100, seed=0)


# ---------------------------------------------------------------- files and CLI


def _write_v2(path, gs: GoldenSet) -> str:
    table = golden.golden_rows(
        attribute="red_dominant",
        version=1,
        classes=("negative", "positive"),
        votes=gs.votes,
        resolved=gs.resolved,
        how=gs.how,
        labeled_at={v: AT for v in gs.resolved},
    )
    tables.write_table(table, path, schemas.GOLDEN)
    return str(path)


def _teacher_scores(path, teacher: dict[str, int]) -> str:
    ids = list(teacher)
    return write_scores(path, [0.9 if teacher[v] else 0.1 for v in ids], ids=ids)


def test_run_writes_raters_json(tmp_path):
    gs, teacher = _random_golden(2)
    report = raters.run(
        attribute=SPEC,
        golden=_write_v2(tmp_path / "g.parquet", gs),
        predictions=_teacher_scores(tmp_path / "t.parquet", teacher),
        out=str(tmp_path / "eval"),
    )
    saved = json.loads((tmp_path / "eval" / raters.RATERS_FILE).read_text())
    assert saved["reference"] == raters.REFERENCE and saved["raters"] == ["r0", "r1", "r2", "r3"]
    assert saved["teacher"]["f1"]["value"] == pytest.approx(report.teacher.f1.value)
    assert len(saved["agreement"]["pairs"]) == 6


def test_v1_golden_file_runs_with_no_leave_one_out_reference(tmp_path):
    """An old one-row-per-video file: every video has a single (possibly joint) vote, so only vs_resolved is defined."""
    truth = (np.arange(40) % 3 == 0).astype(int)
    path = write_golden(tmp_path / "old.parquet", truth)
    report = raters.run(
        attribute=SPEC,
        golden=path,
        out=str(tmp_path / "eval"),
        predictions=write_scores(tmp_path / "t.parquet", np.where(truth == 1, 0.8, 0.2)),
    )
    assert report.raters == ["alice"] and report.per_rater[0].scores.n == 0
    assert report.per_rater[0].vs_resolved.f1.value == 1.0 and report.teacher.f1.value == 1.0
    assert report.teacher_minus_mean_rater.value is None and report.agreement.krippendorff_alpha is None


@pytest.mark.slow  # CLI start-ups
def test_cli_raters_flag(tmp_path):
    gs, teacher = _random_golden(4, n=160)
    path = _write_v2(tmp_path / "g.parquet", gs)
    scores = _teacher_scores(tmp_path / "t.parquet", teacher)
    cli = ["evaluate", "--attribute", SPEC, "--golden", path, "--predictions", scores]
    ok = run_silverset(*cli, "--gate", "teacher", "--raters", "--out", str(tmp_path / "a"))
    assert ok.returncode == 0, ok.stderr
    assert "Krippendorff" in ok.stdout and "teacher - mean rater F1" in ok.stdout
    assert json.loads((tmp_path / "a" / "raters.json").read_text())["videos"] == 160
    wrong = run_silverset(*cli, "--gate", "student", "--raters", "--out", str(tmp_path / "b"))
    assert wrong.returncode == 2 and "--raters" in wrong.stderr and "--gate teacher" in wrong.stderr
