"""Ending a process that did its work without running native libraries' static destructors.

Why: on this project's 2-core machines under load, about 1 in 30 processes that annotated with the Gemini teacher
did all their work, wrote every file (the KFP executor its output file too), and then aborted during interpreter
teardown with "terminate called without an active exception" (SIGABRT: a C++ thread object destroyed while
joinable; pyarrow was the only extension with C++ threads loaded). A step that did its work must not fail there,
neither as the ``silverset`` command nor as a KFP step. The root cause is not pinned down.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading


def exit_now(code: int) -> None:
    """The interpreter's own shutdown steps (non-daemon threads joined, atexit handlers run, logging and streams
    flushed), then ``os._exit(code)``, which skips the C/C++ static destructors."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


KFP_EXECUTOR = "kfp.dsl.executor_main"


def running_as_kfp_step() -> bool:
    """True in a process started as ``python -m kfp.dsl.executor_main`` (a KFP step, in a pod or kfp.local)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == KFP_EXECUTOR


def exit_cleanly_after_kfp_step() -> None:
    """From inside a KFP component: when the step's interpreter shuts down, end it with :func:`exit_now`.

    Only in a KFP executor process (:func:`running_as_kfp_step`); anywhere else (a test calling the component's
    ``python_func``, a notebook) it does nothing, so it can never change another program's exit code. The exit
    code is 1 when an exception reached the top level (the executor failed: ``sys.excepthook`` saw it), else 0;
    the KFP executor raises no ``SystemExit``. Calling it twice registers it once.
    """
    if not running_as_kfp_step() or getattr(sys, "_silverset_exit_cleanly", False):
        return
    setattr(sys, "_silverset_exit_cleanly", True)  # on sys: one registration per process, whichever import did it
    failed = []
    previous_hook = sys.excepthook

    def hook(kind, value, traceback) -> None:
        failed.append(kind)
        previous_hook(kind, value, traceback)

    def at_shutdown() -> None:
        atexit.unregister(at_shutdown)  # exit_now runs the remaining atexit handlers
        exit_now(1 if failed else 0)

    sys.excepthook = hook
    atexit.register(at_shutdown)
