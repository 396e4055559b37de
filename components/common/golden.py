"""Golden sets (human labels), v2: one row per (video, rater), read and written in one place.

Contract (schemas.GOLDEN): each row is one rater's vote on one video. ``labeler`` is the rater, ``rater_label``
their vote, ``label`` the video's resolved label (adjudication wins, else a strict majority) repeated on each of
the video's rows, ``how`` how it was resolved (adjudicated | unanimous | majority | single), ``classes`` the
spec's class names joined by ",". An adjudicator who did not vote adds no row of their own.

v1 files (no ``rater_label`` column; one row per video whose ``labeler`` lists the agreeing raters as
"alice,bob") still read: each listed labeler votes the row's label, ``how`` is "single" for one labeler and
"unanimous" for several, ``classes`` is unknown. The same rule applies to any v2 row whose ``rater_label`` is null,
so a folder mixing v1 and v2 shards reads too.

``read_golden_set`` returns one attribute's labels for a spec: the rows of the spec's version or, when there are
none, those of the newest other version whose ``classes`` equal the spec's ("the golden set carries across
versions when the classes are unchanged"), with ``carried_from`` set. Anything else is a version mismatch, raised
as SilversetInputError naming the file, as is every other unusable input.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import pyarrow as pa

from . import schemas, tables
from .errors import SilversetInputError
from .spec import AttributeSpec

HOW = ("adjudicated", "unanimous", "majority", "single")
# The v1 layout: one row per video, agreeing labelers joined by ",".
GOLDEN_V1 = pa.schema(
    [
        schemas.GOLDEN.field(name)
        for name in ("video_id", "attribute", "attribute_version", "label", "labeler", "labeled_at")
    ]
)
_V2_ONLY = [f for f in schemas.GOLDEN if f.name not in GOLDEN_V1.names]


@dataclass(frozen=True)
class GoldenSet:
    """One attribute's golden set at one version.

    resolved: video_id -> resolved label (class index), in file order; votes: video_id -> {rater: vote};
    raters: every rater who voted, sorted; how: video_id -> how the label was resolved;
    carried_from: the version the labels were read from when it is not ``version`` (same classes), else None.
    """

    attribute: str
    version: int
    carried_from: int | None
    resolved: dict[str, int]
    votes: dict[str, dict[str, int]]
    raters: list[str]
    how: dict[str, str] = field(default_factory=dict)


def classes_text(classes: Iterable[str]) -> str:
    """The ``classes`` column's value for a spec's class names, e.g. "negative,positive"."""
    names = list(classes)
    bad = [c for c in names if "," in c or not c]
    if bad:
        raise ValueError(f"class names must be non-empty and contain no ',': {bad}")
    return ",".join(names)


def upgrade(table: pa.Table, *, name: str = "golden set") -> pa.Table:
    """A golden table in v1 or v2 layout (or a mix) as a schemas.GOLDEN (v2) table, one row per (video, rater).

    Rows with a null ``rater_label`` (every v1 row) are split: each comma-listed labeler votes the row's label.
    """
    base = tables.conform(table, GOLDEN_V1, name=name)
    n = table.num_rows
    extra = {f.name: (table.column(f.name) if f.name in table.column_names else pa.nulls(n, f.type)) for f in _V2_ONLY}
    rows = tables.conform(
        pa.Table.from_arrays([*base.columns, *extra.values()], names=[*base.column_names, *extra]),
        schemas.GOLDEN,
        name=name,
    ).to_pylist()
    out = []
    for row in rows:
        if row["rater_label"] is not None:
            out.append(row)
            continue
        raters = [r.strip() for r in row["labeler"].split(",") if r.strip()]
        if not raters:
            raise SilversetInputError(name, f"video '{row['video_id']}' has an empty labeler")
        how = row["how"] or ("single" if len(raters) == 1 else "unanimous")
        out.extend({**row, "labeler": r, "rater_label": row["label"], "how": how} for r in raters)
    return pa.Table.from_pylist(out, schema=schemas.GOLDEN)


def read_golden_table(uri: str, *, name: str | None = None) -> pa.Table:
    """Every row of a golden-set file or folder (v1 or v2, all attributes and versions) as a v2 table."""
    label = name or f"golden set '{uri}'"
    return upgrade(tables.read_table(uri, name=label), name=label)


def golden_video_ids(uri: str, *, attribute: str | None = None) -> list[str]:
    """The distinct video_ids of a golden set (of ``attribute`` when given, any version), in file order."""
    table = read_golden_table(uri)
    ids = table.column("video_id").to_pylist()
    if attribute is not None:
        ids = [v for v, a in zip(ids, table.column("attribute").to_pylist()) if a == attribute]
    return list(dict.fromkeys(ids))


def read_golden_set(uri: str, *, spec: AttributeSpec) -> GoldenSet:
    """``spec``'s golden set from ``uri`` (see the module docstring for the version rule).

    Empty (no row for the attribute) is returned as an empty set; the caller decides whether that is enough.
    Raises SilversetInputError for an unreadable file, a version mismatch, labels outside the spec's classes,
    a video whose rows disagree on the resolved label, or a rater voting twice on one video.
    """
    name = f"golden set '{uri}'"
    rows = [r for r in read_golden_table(uri, name=name).to_pylist() if r["attribute"] == spec.name]
    versions = sorted({r["attribute_version"] for r in rows})
    wanted = classes_text(spec.classes)
    carried_from = None
    if rows and spec.version not in versions:
        same = [v for v in versions if all(r["classes"] == wanted for r in rows if r["attribute_version"] == v)]
        if not same:
            found = sorted({str(r["classes"]) for r in rows})
            raise SilversetInputError(
                name,
                f"attribute version mismatch: golden set is for {spec.name} v{versions}, "
                f"spec is {spec.key}; labels carry to a new version only when their "
                f"classes equal the spec's ({wanted!r}), these have {found}",
            )
        carried_from = max(same)
    version = carried_from if carried_from is not None else spec.version
    n_classes = len(spec.classes)
    resolved: dict[str, int] = {}
    votes: dict[str, dict[str, int]] = {}
    how: dict[str, str] = {}
    for row in rows:
        if row["attribute_version"] != version:
            continue
        video, rater = row["video_id"], row["labeler"]
        for column in ("label", "rater_label"):
            if not 0 <= row[column] < n_classes:
                raise SilversetInputError(
                    name,
                    f"video '{video}' has {column} {row[column]}; {spec.key} has classes 0..{n_classes - 1} ({wanted})",
                )
        if resolved.setdefault(video, row["label"]) != row["label"]:
            raise SilversetInputError(
                name,
                f"video '{video}' has different resolved labels on its rows ({resolved[video]} and {row['label']})",
            )
        if rater in votes.setdefault(video, {}):
            raise SilversetInputError(name, f"rater '{rater}' has two votes on video '{video}'")
        votes[video][rater] = row["rater_label"]
        if row["how"] is not None:
            if row["how"] not in HOW:
                raise SilversetInputError(name, f"video '{video}' has how={row['how']!r}; expected one of {HOW}")
            how.setdefault(video, row["how"])
    raters = sorted({r for v in votes.values() for r in v})
    return GoldenSet(
        attribute=spec.name,
        version=spec.version,
        carried_from=carried_from,
        resolved=resolved,
        votes=votes,
        raters=raters,
        how=how,
    )


def golden_rows(
    *,
    attribute: str,
    version: int,
    classes: Iterable[str] | None,
    votes: Mapping[str, Mapping[str, int]],
    resolved: Mapping[str, int],
    how: Mapping[str, str],
    labeled_at: Mapping[str, dt.datetime],
) -> pa.Table:
    """A schemas.GOLDEN (v2) table: for each video of ``resolved`` (in its order), one row per rater (sorted).

    classes: the spec's class names (None when unknown: the labels then never carry to another version).
    Raises ValueError for a resolved video without votes, votes on a video that is not resolved, or a ``how``
    outside HOW.
    """
    text = classes_text(classes) if classes is not None else None
    extra = sorted(set(votes) - set(resolved))
    if extra:
        raise ValueError(f"votes on videos without a resolved label: {extra[:5]}")
    out = []
    for video, label in resolved.items():
        if not votes.get(video):
            raise ValueError(f"video '{video}' has a resolved label but no rater's vote")
        if how.get(video) not in HOW:
            raise ValueError(f"video '{video}' has how={how.get(video)!r}; expected one of {HOW}")
        for rater in sorted(votes[video]):
            out.append(
                {
                    "video_id": video,
                    "attribute": attribute,
                    "attribute_version": version,
                    "label": int(label),
                    "labeler": rater,
                    "labeled_at": labeled_at[video],
                    "rater_label": int(votes[video][rater]),
                    "how": how[video],
                    "classes": text,
                }
            )
    return pa.Table.from_pylist(out, schema=schemas.GOLDEN)
