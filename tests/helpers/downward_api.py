"""The kubelet's side of a downwardAPI ``metadata.annotations`` volume, for tests of pinned serving.

Format as Kubernetes' ``pkg/fieldpath`` FormatMap writes it: keys sorted, one ``key=%q`` line each
(Go ``strconv.Quote``), no trailing newline. Files are replaced as the kubelet's AtomicWriter does:
a new timestamped folder, then the ``..data`` symlink swapped to it in one rename, the visible file
being a symlink through ``..data``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(value: str) -> str:
    """Go's ``strconv.Quote`` for a valid UTF-8 string."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out) + '"'


def format_annotations(annotations: dict[str, str]) -> str:
    return "\n".join(f"{key}={go_quote(annotations[key])}" for key in sorted(annotations))


def write_annotations_volume(volume: Path, annotations: dict[str, str], *, name: str = "annotations") -> Path:
    """Write (or replace) ``volume/name`` the way the kubelet updates a downwardAPI volume; returns its path."""
    volume.mkdir(parents=True, exist_ok=True)
    stamp = volume / (time.strftime("..%Y_%m_%d_%H_%M_%S.") + str(time.perf_counter_ns()))
    stamp.mkdir()
    (stamp / name).write_text(format_annotations(annotations))
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.symlink(stamp.name, volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")
    if not (volume / name).is_symlink():
        os.symlink(f"..data/{name}", volume / name)
    if old is not None:
        for leftover in (volume / old).iterdir():
            leftover.unlink()
        (volume / old).rmdir()
    return volume / name
