"""Index versions pinned by the pod's own annotations, read from a Kubernetes downwardAPI file.

The deploy step sets ``index.silverset.dev/<attribute>: <version>`` on the index server's pod template;
the pod mounts ``metadata.annotations`` through a downwardAPI volume, and the kubelet writes that file
as its ``fieldpath.FormatMap`` does: one ``key="value"`` line per annotation, keys sorted, the value
quoted by Go's ``%q`` (``strconv.Quote``), and the file replaced in place when the annotations change.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from silverset.components.common.errors import SilversetInputError

log = logging.getLogger(__name__)

ANNOTATION_PREFIX = "index.silverset.dev/"

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", re.S)


def go_unquote(quoted: str) -> str:
    """The string Go's ``strconv.Quote`` turned into ``quoted`` (double quotes included). ValueError if malformed."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError("not a double-quoted string")
    body = quoted[1:-1]
    out = bytearray()
    pos = 0
    for match in _ESCAPE.finditer(body):
        plain = body[pos : match.start()]
        if '"' in plain:
            raise ValueError("unescaped double quote")
        out += plain.encode()
        code = match.group(1)
        if code[0] in "xU" and len(code) > 1 or code[0] == "u" and len(code) == 5:
            value = int(code[1:], 16)
            out += bytes([value]) if code[0] == "x" else chr(value).encode()  # \x is one byte of UTF-8
        elif code.isdigit() and len(code) == 3:
            out += bytes([int(code, 8)])
        elif code in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[code].encode()
        else:
            raise ValueError(f"unknown escape \\{code}")
        pos = match.end()
    if '"' in body[pos:]:
        raise ValueError("unescaped double quote")
    out += body[pos:].encode()
    return out.decode("utf-8", errors="replace")


def parse_annotations(text: str) -> dict[str, str]:
    """Annotations from a downwardAPI ``metadata.annotations`` file; lines not ``key="value"`` are skipped."""
    annotations = {}
    for number, line in enumerate(text.splitlines(), start=1):
        key, sep, quoted = line.partition("=")
        try:
            if not sep or not key:
                raise ValueError('no key="value"')
            annotations[key] = go_unquote(quoted)
        except ValueError as exc:
            log.warning("annotations line %d skipped (%s): %.80r", number, exc, line)
    return annotations


def read_pinned_versions(path: str | Path) -> dict[str, str]:
    """attribute -> version for every ``index.silverset.dev/<attribute>`` annotation in the file at ``path``."""
    where = f"--pinned-versions '{path}'"
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise SilversetInputError(
            where, "does not exist (mount metadata.annotations there with a downwardAPI volume)"
        ) from None
    except OSError as exc:
        raise SilversetInputError(where, f"cannot be read: {exc}") from None
    pins = {}
    for key, value in parse_annotations(text).items():
        if not key.startswith(ANNOTATION_PREFIX):
            continue
        attribute, version = key[len(ANNOTATION_PREFIX) :], value.strip()
        if not attribute or not version or "/" in version or version.startswith("."):
            raise SilversetInputError(where, f"annotation {key}={value!r} does not name a version folder")
        pins[attribute] = version
    return pins
