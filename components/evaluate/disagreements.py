"""Golden items where the teacher and the resolved human label differ: ``disagreements.json`` and its HTML section.

The teacher gate writes ``disagreements.json`` beside gate.json (one :class:`Disagreements` model, read back by the
studio with :func:`read_disagreements`): every golden item whose teacher decision differs from the resolved label,
with the teacher's probability and rationale, each rater's vote, the manifest title and the number of frames the
frames table holds for it, sorted by teacher confidence ``|p - 0.5|``, most confident first (a confident miss is the
most telling one to review). :func:`html_section` renders the same list for report.html: small JPEG thumbnails as
data: URIs, every user or model text escaped, and a column sort done by a static inline script (no external JS).
Frames and manifest are optional: without them the list still shows, with no thumbnails or titles.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError

from silverset.components.common import tables
from silverset.components.common.errors import SilversetInputError

if TYPE_CHECKING:
    from silverset.components.common.spec import AttributeSpec

_LOGGER = logging.getLogger(__name__)

DISAGREEMENTS_FILE = "disagreements.json"
THUMBNAILS_PER_ITEM = 3
THUMBNAIL_PX = 96  # longest side of an embedded thumbnail


class DisagreementItem(BaseModel):
    """One golden item the teacher got "wrong" (or the raters did): what a reviewer needs to judge it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video_id: str
    title: str | None
    teacher_label: int
    teacher_probability: float
    resolved_label: int
    rationale: str | None
    votes: dict[str, int]  # rater -> 0 | 1 (empty when the golden set records no votes)
    frame_count: int  # frames of this video in the frames table (0 without one)

    @property
    def confidence(self) -> float:
        """How sure the teacher was: |p - 0.5|, in [0, 0.5]."""
        return abs(self.teacher_probability - 0.5)


class Disagreements(BaseModel):
    """The content of ``disagreements.json``: items sorted by teacher confidence, most confident first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attribute: str
    attribute_version: int
    items: list[DisagreementItem]


def write_disagreements(out_dir: str | Path, disagreements: Disagreements) -> Path:
    """Write ``out_dir/disagreements.json``; returns its path."""
    path = Path(out_dir) / DISAGREEMENTS_FILE
    path.write_text(json.dumps(disagreements.model_dump(), indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def read_disagreements(uri: str | Path) -> Disagreements:
    """Read a ``disagreements.json`` (the file, or the gate folder holding it)."""
    uri = str(uri)
    if not uri.endswith(".json"):
        uri = uri.rstrip("/") + "/" + DISAGREEMENTS_FILE
    try:
        record = tables.read_json(uri)
    except (OSError, ValueError) as exc:
        raise SilversetInputError(f"disagreements '{uri}'", f"unreadable: {exc}") from None
    if not record:
        raise SilversetInputError(f"disagreements '{uri}'", "does not exist (the teacher gate writes it)")
    try:
        return Disagreements.model_validate(record)
    except ValidationError as exc:
        raise SilversetInputError(f"disagreements '{uri}'", f"not a disagreements record: {exc}") from None


def find_disagreements(
    *,
    attribute: str,
    attribute_version: int,
    resolved: dict[str, int],
    votes: dict[str, dict[str, int]],
    probabilities: dict[str, float],
    decided: dict[str, int],
    rationales: dict[str, str | None],
    titles: dict[str, str | None],
    frame_counts: dict[str, int],
) -> Disagreements:
    """The items of ``resolved`` (video_id -> resolved label) whose teacher decision (``decided``) differs.

    Every golden item must be in ``probabilities`` and ``decided``; the other lookups may miss items.
    Sorted by |p - 0.5| descending, ties by video_id.
    """
    items = [
        DisagreementItem(
            video_id=vid,
            title=titles.get(vid),
            teacher_label=int(decided[vid]),
            teacher_probability=float(probabilities[vid]),
            resolved_label=int(label),
            rationale=rationales.get(vid),
            votes={r: int(v) for r, v in sorted(votes.get(vid, {}).items())},
            frame_count=int(frame_counts.get(vid, 0)),
        )
        for vid, label in resolved.items()
        if int(decided[vid]) != int(label)
    ]
    items.sort(key=lambda item: (-item.confidence, item.video_id))
    return Disagreements(attribute=attribute, attribute_version=attribute_version, items=items)


def teacher_disagreements(
    *,
    spec: "AttributeSpec",
    golden: str,
    probabilities: dict[str, float],
    decided: dict[str, int],
    rationales: dict[str, str | None],
    frames: str | None = None,
    manifest: str | None = None,
) -> tuple[Disagreements, dict[str, list[str]]]:
    """The teacher gate's disagreements on the golden set at ``golden`` and their thumbnails (empty without frames).

    Resolved labels and votes come from ``read_golden_set``; titles from ``manifest``; thumbnails and frame counts
    from ``frames``. Raises SilversetInputError naming a frames table or manifest it cannot read.
    """
    from silverset.components.common.golden import read_golden_set

    golden_set = read_golden_set(golden, spec=spec)
    wrong = [v for v, label in golden_set.resolved.items() if v in decided and int(decided[v]) != int(label)]
    titles = read_titles(manifest, wrong) if manifest else {}
    counts, thumbs = read_thumbnails(frames, wrong) if frames else ({}, {})
    resolved = {v: label for v, label in golden_set.resolved.items() if v in decided}
    found = find_disagreements(
        attribute=spec.name,
        attribute_version=spec.version,
        resolved=resolved,
        votes=golden_set.votes,
        probabilities=probabilities,
        decided=decided,
        rationales=rationales,
        titles=titles,
        frame_counts=counts,
    )
    return found, thumbs


# ---------------------------------------------------------------- frames and titles


def read_titles(manifest: str, video_ids: Sequence[str]) -> dict[str, str | None]:
    """video_id -> manifest title for ``video_ids`` (those the manifest lacks are left out)."""
    from silverset.components.common.manifest import read_manifest

    table, _ = read_manifest(manifest, stage="evaluate")
    wanted = set(video_ids)
    ids, titles = table.column("video_id").to_pylist(), table.column("title").to_pylist()
    return {v: t for v, t in zip(ids, titles) if v in wanted}


def read_thumbnails(
    frames: str, video_ids: Sequence[str], *, per_item: int = THUMBNAILS_PER_ITEM, size: int = THUMBNAIL_PX
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """(video_id -> frame count, video_id -> up to ``per_item`` evenly spaced thumbnails as JPEG data: URIs).

    Reads only the rows of ``video_ids`` from each Parquet file of the frames table (row-group filtering), so a
    run's whole frames table is not loaded for a few dozen golden items. A frame that does not decode is skipped.
    """
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    from silverset.components.runtime.inputs import sample_indices

    wanted = sorted(set(video_ids))
    counts: dict[str, int] = {}
    thumbs: dict[str, list[str]] = {}
    if not wanted:
        return counts, thumbs
    parts = []
    for file in tables.parquet_files(frames):
        try:
            with fsspec.open(file, "rb") as f:
                parts.append(
                    pq.read_table(f, columns=["video_id", "frame_index", "jpeg"], filters=[("video_id", "in", wanted)])
                )
        except (OSError, pa.ArrowInvalid, KeyError) as exc:
            raise SilversetInputError(
                f"frames '{frames}'", f"file '{file}' unreadable as a frames table: {exc}"
            ) from None
    if not parts:
        return counts, thumbs
    table = pa.concat_tables(parts).sort_by([("video_id", "ascending"), ("frame_index", "ascending")])
    by_video: dict[str, list[bytes]] = {}
    for vid, jpeg in zip(table.column("video_id").to_pylist(), table.column("jpeg").to_pylist()):
        by_video.setdefault(vid, []).append(jpeg)
    for vid, jpegs in by_video.items():
        counts[vid] = len(jpegs)
        thumbs[vid] = [
            uri
            for uri in (_thumbnail(jpegs[i], size=size) for i in sample_indices(len(jpegs), per_item))
            if uri is not None
        ]
    return counts, thumbs


def _thumbnail(jpeg: bytes, *, size: int) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(jpeg))
        image.draft("RGB", (size, size))
        image = image.convert("RGB")
        image.thumbnail((size, size))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        _LOGGER.warning("skipping a frame that does not decode as JPEG: %s", exc)
        return None
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------- HTML

_SORT_SCRIPT = """<script>
function silversetSortDisagreements(descending) {
  var body = document.getElementById('disagreements').tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var d = parseFloat(a.getAttribute('data-confidence')) - parseFloat(b.getAttribute('data-confidence'));
    return descending ? -d : d;
  });
  rows.forEach(function (row) { body.appendChild(row); });
}
</script>"""


def _text(value: str | None) -> str:
    return html.escape(value, quote=True) if value else "<span class='none'>&mdash;</span>"


def html_section(disagreements: Disagreements, *, thumbnails: dict[str, list[str]] | None = None) -> str:
    """The report's "Teacher vs golden disagreements" section: a table, one row per item, sortable by confidence."""
    thumbnails = thumbnails or {}
    items = disagreements.items
    parts = [f"<h2 id='disagreements-title'>Teacher vs golden disagreements ({len(items)})</h2>"]
    if not items:
        parts.append("<p>The teacher agrees with the resolved label on every golden item.</p>")
        return "\n".join(parts)
    parts += [
        "<p>Every golden item where the teacher's decision differs from the resolved human label; confidence is "
        "|p &minus; 0.5|. Sort: <button type='button' id='sort-confidence-desc' "
        "onclick='silversetSortDisagreements(true)'>most confident first</button> "
        "<button type='button' id='sort-confidence-asc' onclick='silversetSortDisagreements(false)'>"
        "least confident first</button></p>",
        "<table id='disagreements'><thead><tr><th>frames</th><th>video</th><th>title</th><th>teacher</th>"
        "<th>p(positive)</th><th>confidence</th><th>resolved</th><th>votes</th><th>rationale</th></tr></thead><tbody>",
    ]
    for item in items:
        images = "".join(
            f"<img class='thumb' alt='frame' src='{html.escape(uri, quote=True)}'>"
            for uri in thumbnails.get(item.video_id, [])
        )
        votes = ", ".join(f"{html.escape(rater)}: {vote}" for rater, vote in item.votes.items())
        parts.append(
            f"<tr data-video-id='{html.escape(item.video_id, quote=True)}' data-confidence='{item.confidence:.6f}'>"
            f"<td class='thumbs'>{images or '&mdash;'}</td><td><code>{html.escape(item.video_id)}</code></td>"
            f"<td class='title'>{_text(item.title)}</td><td>{item.teacher_label}</td>"
            f"<td>{item.teacher_probability:.3f}</td><td>{item.confidence:.3f}</td><td>{item.resolved_label}</td>"
            f"<td>{votes or '&mdash;'}</td><td class='rationale'>{_text(item.rationale)}</td></tr>"
        )
    parts += ["</tbody></table>", _SORT_SCRIPT]
    return "\n".join(parts)
