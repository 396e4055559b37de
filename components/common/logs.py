"""Where Silverset's log records go: one call at the top of a KFP step, one opt-in call in the CLI.

Library modules only create ``logging.getLogger(__name__)`` and log with %-style arguments; they configure
nothing. Two entry points decide where records go:

- ``configure_step_logging()``: called first in every component function, so a step's INFO records (stage
  start/end with counts and seconds) reach its pod log. kfp's ``executor_main`` already puts an INFO handler
  on the root logger; a step run any other way (``component.python_func(...)``, a plain ``python -c``) may
  have none, and the root logger's default level (WARNING) would drop INFO. The call adds one stream handler
  only when the root logger has none, and sets the level of the ``silverset`` logger only (other libraries
  keep theirs). Calling it twice changes nothing.
- ``configure_cli_logging()``: the ``silverset`` command's default is Python's own (WARNING and above on
  stderr, bare messages), so the CLI's output stays as it is; ``SILVERSET_LOG_LEVEL=INFO`` (or DEBUG) asks
  for more, read when the command starts, never at import.
"""

from __future__ import annotations

import logging
import os
import sys

PACKAGE_LOGGER = "silverset"
LEVEL_ENV = "SILVERSET_LOG_LEVEL"
STEP_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_level(value: str | int | None, *, default: int = logging.INFO) -> int:
    """A level name (any case) or number; None or "" gives ``default``. Raises SilversetInputError otherwise."""
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    name = value.strip().upper()
    if name.isdigit():
        return int(name)
    if name not in _LEVELS:
        from .errors import SilversetInputError

        raise SilversetInputError(LEVEL_ENV, f"unknown log level {value!r}; use one of {', '.join(_LEVELS)}")
    return getattr(logging, name)


def configure_step_logging(level: str | int | None = None) -> logging.Logger:
    """Make ``silverset.*`` records at ``level`` (default: $SILVERSET_LOG_LEVEL, else INFO) reach the step's log.

    Adds a stdout handler to the root logger only when it has none; returns the ``silverset`` logger.
    """
    chosen = parse_level(level if level is not None else os.environ.get(LEVEL_ENV))
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter(STEP_FORMAT))
        root.addHandler(handler)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(chosen)
    return package


def configure_cli_logging() -> logging.Logger | None:
    """The CLI's logging: untouched (Python's WARNING-and-above on stderr) unless $SILVERSET_LOG_LEVEL is set,
    then ``silverset.*`` records at that level go to stderr. Returns the ``silverset`` logger when configured."""
    wanted = os.environ.get(LEVEL_ENV)
    if not wanted:
        return None
    chosen = parse_level(wanted)
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    package = logging.getLogger(PACKAGE_LOGGER)
    package.setLevel(chosen)
    return package


def safe_url(url: str | None, *, keep_path: bool = True) -> str:
    """``url`` fit for a log line: no user:password, query or fragment (they carry tokens), and no path either
    when ``keep_path`` is False (a webhook's path is its secret). None gives "none"."""
    if not url:
        return "none"
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "[unparseable url]"
    if not parts.scheme or not parts.hostname:
        return "[url without scheme or host]" if "@" in url or "?" in url else url
    path = parts.path if keep_path else ("/..." if parts.path not in ("", "/") else "")
    return f"{parts.scheme}://{parts.hostname}{port}{path}"
