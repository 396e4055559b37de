"""A KFP step that did its work exits 0 even when a native library would abort during teardown; a failed step
still exits non-zero; outside a KFP executor process nothing changes (a test runner's exit code is never touched).

The native abort is simulated faithfully: libc's ``abort`` registered with ``__cxa_atexit`` (the way C++ registers
static destructors) runs after the interpreter's finalization, as a destroyed joinable ``std::thread`` does
(SIGABRT, "terminate called without an active exception")."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from silverset.components.common import process_exit

STEP = textwrap.dedent("""
    import atexit, ctypes, sys, types
    if {as_kfp_step}:
        sys.modules["__main__"].__spec__ = types.SimpleNamespace(name="kfp.dsl.executor_main")
    libc = ctypes.CDLL("libc.so.6")
    # how C++ registers a static destructor; this one aborts, as a joinable std::thread's destructor does
    libc.__cxa_atexit(ctypes.cast(libc.abort, ctypes.c_void_p), None, None)
    from silverset.components.common.process_exit import exit_cleanly_after_kfp_step
    exit_cleanly_after_kfp_step()
    atexit.register(lambda: open({marker!r}, "w").write("flushed"))  # other shutdown steps still run
    print("work done", flush=True)
    if {fail}:
        raise RuntimeError("the step failed")
""")


def run_step(tmp_path, *, as_kfp_step: bool, fail: bool) -> tuple[int, str]:
    marker = tmp_path / "atexit-ran"
    code = STEP.format(as_kfp_step=as_kfp_step, fail=fail, marker=str(marker))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "work done" in done.stdout
    return done.returncode, marker.read_text() if marker.exists() else ""


def test_a_kfp_step_that_did_its_work_exits_0_despite_a_native_abort_in_teardown(tmp_path):
    assert run_step(tmp_path, as_kfp_step=True, fail=False) == (0, "flushed")


def test_a_failed_kfp_step_still_exits_1(tmp_path):
    assert run_step(tmp_path, as_kfp_step=True, fail=True) == (1, "flushed")


def test_outside_a_kfp_step_nothing_changes(tmp_path):
    code, flushed = run_step(tmp_path, as_kfp_step=False, fail=False)
    assert code == -signal.SIGABRT and flushed == "flushed"  # the simulated abort is real without the guard


def test_calling_it_in_this_process_registers_nothing(monkeypatch):
    monkeypatch.delattr(sys, "_silverset_exit_cleanly", raising=False)
    process_exit.exit_cleanly_after_kfp_step()
    assert not process_exit.running_as_kfp_step() and not getattr(sys, "_silverset_exit_cleanly", False)


@pytest.mark.parametrize("name, expected", [("kfp.dsl.executor_main", True), ("pytest", False)])
def test_a_kfp_step_is_known_by_its_main_module(monkeypatch, name, expected):
    import types

    monkeypatch.setattr(sys.modules["__main__"], "__spec__", types.SimpleNamespace(name=name), raising=False)
    assert process_exit.running_as_kfp_step() is expected
