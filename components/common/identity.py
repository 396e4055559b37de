"""What counts as a person's or service account's identity: the one rule every approver, submitter and actor meets.

An identity names who did something in an audit trail, so it must be unambiguous when printed:
not empty, no whitespace, no control or invisible formatting characters (a zero-width space makes
``alice@x`` and ``alice\\u200b@x`` look the same), at most ``MAX_IDENTITY_LENGTH`` characters.
"""

from __future__ import annotations

import unicodedata

from .errors import SilversetInputError

MAX_IDENTITY_LENGTH = 256


def identity_problem(value: object) -> str | None:
    """Why ``value`` is not a usable identity, or None when it is."""
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    if not value:
        return "is empty"
    if len(value) > MAX_IDENTITY_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_IDENTITY_LENGTH} are allowed"
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if char.isspace() or category.startswith("Z"):
            return f"contains whitespace at position {position}"
        if category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return f"contains the control or invisible character U+{ord(char):04X} at position {position}"
    return None


def check_identity(value: object, *, what: str) -> str:
    """Return ``value`` if it is a usable identity; else raise SilversetInputError naming ``what``."""
    problem = identity_problem(value)
    if problem is not None:
        raise SilversetInputError(
            what, f"identity {value!r} {problem}" if isinstance(value, str) else f"identity {problem}"
        )
    return value  # type: ignore[return-value]
