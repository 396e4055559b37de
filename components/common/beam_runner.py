"""Which Beam runner the frames and bulk-score stages hand their pipelines to, and with which options.

Contract: ``beam_args(runner=..., options=...)`` turns the pipeline parameters ``beam_runner`` (a runner name)
and ``beam_options`` (a JSON list of strings, or one space-separated string, of Beam ``--key=value`` flags)
into a checked list of Beam flags, or raises SilversetInputError naming the parameter and the problem:

- the runner must be one of ``RUNNERS`` (the message lists them);
- every option is a ``--flag`` or ``--flag=value``; ``--runner`` is refused there (``beam_runner`` says it);
- an option that would carry a secret is refused: a flag whose name says it holds a key, password, token or
  credential (``--service_account_key_file``, ``--aws_secret_access_key``, ...) or a value that looks like a
  key (a service-account key JSON, a PEM block, a Gemini ``AIza...`` key). These options end up in the
  compiled package and in every step's command line; workers get credentials from their Kubernetes or
  cloud service account (``--service_account_email`` names one and is allowed), never from a flag.

Nothing here reads the environment. No kfp or apache_beam import.
"""

from __future__ import annotations

import json
import re
import shlex

from .errors import SilversetInputError

DEFAULT_RUNNER = "DirectRunner"
# Beam 2.77 runner names: in the step's pod, Flink/Spark (portable, through a Beam job server), Dataflow. Prism is
# left out: it fetches its binary from GitHub at start, which a step pod cannot.
RUNNERS = ("DirectRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "DataflowRunner")

_FLAG_RE = re.compile(r"^--(?P<key>[A-Za-z][A-Za-z0-9_\-]*)(?:=(?P<value>.*))?$", re.DOTALL)
_SECRET_NAME_RE = re.compile(
    r"(password|passwd|secret|token|credential|private_key|key_?file|api_?key|access_?key)", re.IGNORECASE
)
_SECRET_VALUE_RES = (
    (re.compile(r'"private_key(_id)?"\s*:'), "a service-account key JSON"),
    (re.compile(r'"type"\s*:\s*"service_account"'), "a service-account key JSON"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a PEM private key"),
    (re.compile(r"AIza[0-9A-Za-z_\-]{20,}"), "a Google API key"),
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
)


def parse_beam_options(text: str | list | tuple | None) -> list[str]:
    """``beam_options`` as a list of strings: a JSON list (``'["--a=1", "--b"]'``), a space-separated string
    (shell quoting allowed, ``"--a=1 --b"``), an already-split list, or empty/None for none."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        items = list(text)
    else:
        text = text.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SilversetInputError("beam_options", f"starts with '[' but is not a JSON list: {exc}") from None
            if not isinstance(items, list):
                raise SilversetInputError("beam_options", "must be a JSON list of strings")
        else:
            try:
                items = shlex.split(text)
            except ValueError as exc:
                raise SilversetInputError("beam_options", f"cannot be split into flags: {exc}") from None
    if not all(isinstance(item, str) for item in items):
        raise SilversetInputError("beam_options", 'must hold only strings, e.g. ["--flink_master=host:8081"]')
    return [item.strip() for item in items if item.strip()]


def check_runner(runner: str) -> str:
    """``runner`` if it is a known Beam runner name, else SilversetInputError listing the valid ones."""
    if runner not in RUNNERS:
        raise SilversetInputError(
            "beam_runner", f"{runner!r} is not a Beam runner Silverset runs on; use one of {', '.join(RUNNERS)}"
        )
    return runner


def check_option(option: str) -> str:
    """One Beam flag, refused when malformed, when it sets the runner, or when it would carry a secret."""
    for pattern, what in _SECRET_VALUE_RES:
        if pattern.search(option):
            raise SilversetInputError(
                "beam_options",
                f"an option looks like {what}; secrets never go in beam_options (give the workers a service account)",
            )
    match = _FLAG_RE.match(option)
    if not match:
        raise SilversetInputError("beam_options", f"{_shown(option)} is not a Beam flag; write --key=value or --flag")
    key = match["key"]
    if key.replace("-", "_") == "runner":
        raise SilversetInputError("beam_options", "sets --runner; choose the runner with the beam_runner parameter")
    if _SECRET_NAME_RE.search(key):
        raise SilversetInputError(
            "beam_options",
            f"--{key} would put a secret in the compiled pipeline and every "
            "step's command line; give the workers a service account instead",
        )
    return option


def beam_args(*, runner: str = DEFAULT_RUNNER, options: str | list | tuple | None = None) -> list[str]:
    """Checked Beam flags for ``runner`` and ``options`` (see the module docstring); ``--runner`` not included."""
    check_runner(runner)
    return [check_option(option) for option in parse_beam_options(options)]


def _shown(option: str) -> str:
    """An option as quoted in a message: never more than its first 40 characters (it might be a pasted key)."""
    return repr(option if len(option) <= 40 else option[:40] + "...")
