"""Golden set v2: per-rater rows round-trip, v1 files read, the carry-across-versions rule and its refusals."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from silverset.components.common import golden, schemas, tables
from silverset.components.common.errors import SilversetInputError
from silverset.components.common.spec import example_specs_dir, load_spec

SPEC = load_spec(example_specs_dir() / "red_dominant.yaml")  # red_dominant v1, classes negative,positive
AT = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


def _v2(path, *, version=1, classes=("negative", "positive"), attribute="red_dominant"):
    votes = {"v1": {"alice": 1, "bob": 1, "carol": 0}, "v2": {"alice": 0, "bob": 1}, "v3": {"carol": 1}}
    resolved = {"v1": 1, "v2": 0, "v3": 1}
    how = {"v1": "majority", "v2": "adjudicated", "v3": "single"}
    table = golden.golden_rows(
        attribute=attribute,
        version=version,
        classes=classes,
        votes=votes,
        resolved=resolved,
        how=how,
        labeled_at={v: AT for v in resolved},
    )
    tables.write_table(table, path, schemas.GOLDEN)
    return str(path)


def _v1(path, rows, *, version=1):
    """A v1 file as the old studio export wrote it: one row per video, agreeing labelers joined by ','."""
    n = len(rows)
    tables.write_table(
        pa.table(
            {
                "video_id": [r[0] for r in rows],
                "attribute": ["red_dominant"] * n,
                "attribute_version": pa.array([version] * n, pa.int32()),
                "label": pa.array([r[1] for r in rows], pa.int32()),
                "labeler": [r[2] for r in rows],
                "labeled_at": pa.array([AT] * n, pa.timestamp("us", tz="UTC")),
            }
        ),
        path,
        golden.GOLDEN_V1,
    )
    return str(path)


def test_v2_rows_round_trip_one_row_per_rater(tmp_path):
    path = _v2(tmp_path / "g.parquet")
    assert tables.read_table(path, schemas.GOLDEN).num_rows == 6  # 3 + 2 + 1 votes
    got = golden.read_golden_set(path, spec=SPEC)
    assert got.resolved == {"v1": 1, "v2": 0, "v3": 1}
    assert got.votes == {"v1": {"alice": 1, "bob": 1, "carol": 0}, "v2": {"alice": 0, "bob": 1}, "v3": {"carol": 1}}
    assert got.raters == ["alice", "bob", "carol"]
    assert got.how == {"v1": "majority", "v2": "adjudicated", "v3": "single"}
    assert got.carried_from is None and got.version == 1


def test_v1_file_reads_each_listed_labeler_as_a_vote(tmp_path):
    path = _v1(tmp_path / "old.parquet", [("a", 1, "alice,bob"), ("b", 0, "carol"), ("c", 1, "bob")])
    got = golden.read_golden_set(path, spec=SPEC)
    assert got.resolved == {"a": 1, "b": 0, "c": 1}
    assert got.votes == {"a": {"alice": 1, "bob": 1}, "b": {"carol": 0}, "c": {"bob": 1}}
    assert got.how == {"a": "unanimous", "b": "single", "c": "single"}
    assert golden.golden_video_ids(path) == ["a", "b", "c"]


def test_a_folder_mixing_v1_and_v2_shards_reads(tmp_path):
    _v2(tmp_path / "g" / "part-0.parquet")
    _v1(tmp_path / "g" / "part-1.parquet", [("v9", 0, "dave,erin")])
    got = golden.read_golden_set(str(tmp_path / "g"), spec=SPEC)
    assert list(got.resolved) == ["v1", "v2", "v3", "v9"]
    assert got.votes["v9"] == {"dave": 0, "erin": 0} and got.raters == ["alice", "bob", "carol", "dave", "erin"]


def test_labels_carry_to_a_new_version_with_the_same_classes(tmp_path):
    path = _v2(tmp_path / "g.parquet", version=1)
    v2 = SPEC.model_copy(update={"version": 2})
    got = golden.read_golden_set(path, spec=v2)
    assert got.carried_from == 1 and got.version == 2 and got.resolved == {"v1": 1, "v2": 0, "v3": 1}


def test_the_newest_matching_version_is_carried_and_the_own_version_wins(tmp_path):
    tables.write_table(
        pa.concat_tables(
            [
                golden.golden_rows(
                    attribute="red_dominant",
                    version=v,
                    classes=("negative", "positive"),
                    votes={f"x{v}": {"alice": 1}},
                    resolved={f"x{v}": 1},
                    how={f"x{v}": "single"},
                    labeled_at={f"x{v}": AT},
                )
                for v in (1, 2, 3)
            ]
        ),
        tmp_path / "g.parquet",
        schemas.GOLDEN,
    )
    path = str(tmp_path / "g.parquet")
    assert golden.read_golden_set(path, spec=SPEC.model_copy(update={"version": 5})).resolved == {"x3": 1}
    assert golden.read_golden_set(path, spec=SPEC.model_copy(update={"version": 2})).resolved == {"x2": 1}


@pytest.mark.parametrize("case", ["classes_changed", "classes_unknown_v1"])
def test_labels_do_not_carry_when_classes_differ_or_are_unknown(tmp_path, case):
    if case == "classes_changed":
        path = _v2(tmp_path / "g.parquet", classes=("no", "yes"))
    else:
        path = _v1(tmp_path / "g.parquet", [("a", 1, "alice")])
    with pytest.raises(SilversetInputError, match="attribute version mismatch.*red_dominant@v2") as err:
        golden.read_golden_set(path, spec=SPEC.model_copy(update={"version": 2}))
    assert "g.parquet" in str(err.value)


def test_no_rows_for_the_attribute_is_an_empty_set(tmp_path):
    path = _v2(tmp_path / "g.parquet", attribute="other")
    got = golden.read_golden_set(path, spec=SPEC)
    assert got.resolved == {} and got.raters == []


@pytest.mark.parametrize(
    "case,message",
    [
        ("label_range", "label 2"),
        ("resolved_disagrees", "different resolved labels"),
        ("twice", "two votes"),
        ("bad_how", "how='vibes'"),
        ("missing_column", "missing required column"),
    ],
)
def test_unusable_golden_sets_are_refused_naming_file_and_problem(tmp_path, case, message):
    rows = golden.golden_rows(
        attribute="red_dominant",
        version=1,
        classes=None,
        votes={"a": {"alice": 1}},
        resolved={"a": 1},
        how={"a": "single"},
        labeled_at={"a": AT},
    ).to_pylist()
    row = rows[0]
    if case == "label_range":
        rows = [{**row, "rater_label": 2}]
    elif case == "resolved_disagrees":
        rows = [row, {**row, "labeler": "bob", "label": 0}]
    elif case == "twice":
        rows = [row, {**row, "rater_label": 0}]
    elif case == "bad_how":
        rows = [{**row, "how": "vibes"}]
    table = pa.Table.from_pylist(rows, schema=schemas.GOLDEN)
    if case == "missing_column":
        table = table.drop_columns(["label"])
    path = tmp_path / "bad.parquet"
    tables.write_table(table, path)
    with pytest.raises(SilversetInputError, match=message) as err:
        golden.read_golden_set(str(path), spec=SPEC)
    assert "bad.parquet" in str(err.value)


def test_golden_rows_refuses_inconsistent_input():
    kw = dict(attribute="red_dominant", version=1, classes=("negative", "positive"), labeled_at={"a": AT})
    with pytest.raises(ValueError, match="no rater's vote"):
        golden.golden_rows(votes={}, resolved={"a": 1}, how={"a": "single"}, **kw)
    with pytest.raises(ValueError, match="without a resolved label"):
        golden.golden_rows(votes={"a": {"x": 1}, "b": {"x": 1}}, resolved={"a": 1}, how={"a": "single"}, **kw)
    with pytest.raises(ValueError, match="how"):
        golden.golden_rows(votes={"a": {"x": 1}}, resolved={"a": 1}, how={"a": "guess"}, **kw)


def test_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(SilversetInputError, match="nope.parquet.*does not exist"):
        golden.read_golden_set(str(tmp_path / "nope.parquet"), spec=SPEC)
