"""What every KFP component function calls first: ``begin_step()``.

- Its log records reach the step's pod log (:func:`logs.configure_step_logging`).
- A step that did its work exits 0 instead of aborting in native teardown
  (:func:`process_exit.exit_cleanly_after_kfp_step`): "terminate called without an active exception" after
  every output was written, seen in Gemini annotate steps and in Beam frames steps under kfp.local on loaded
  2-core machines. Only active in a KFP executor process.
"""

from __future__ import annotations

from .logs import configure_step_logging
from .process_exit import exit_cleanly_after_kfp_step


def begin_step() -> None:
    """Set up a KFP step's process: logging to the pod log, a clean exit after the step's work."""
    configure_step_logging()
    exit_cleanly_after_kfp_step()
