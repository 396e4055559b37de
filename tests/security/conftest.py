"""Security-suite fixtures: none of its own. ``cli`` is tests.helpers.cli's, which the root conftest registers for
every test; it is re-exported here only for the studio tests that still import it from this module."""

from __future__ import annotations

from tests.helpers.cli import cli  # noqa: F401 - see the docstring
