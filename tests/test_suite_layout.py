"""The test suite's own layout: any subset of test files collects in any order, and nothing edits ``sys.path``.

Under ``--import-mode=importlib`` a test file outside a package gets stand-in parent modules; before ``tests`` was
a regular package, a stand-in ``tests`` made ``import tests.fakes`` fail whenever a file from ``tests/components``
was collected first. Shared code lives in ``tests.helpers`` (and ``benchmarks`` is a package run with ``-m``), so
no file under ``tests/`` or ``benchmarks/`` needs to put a folder on ``sys.path``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYS_PATH_EDIT = re.compile(r"sys\.path\.(insert|append|extend)\(|sys\.path\s*(\+=|=)")


def _collect(*files: str) -> subprocess.CompletedProcess:
    # -P: the current folder is not put on sys.path, as when the ``pytest`` console script runs
    command = [sys.executable, "-P", "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *files]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_file_importing_tests_fakes_collects_after_a_file_from_tests_components():
    # the pair that failed with "No module named 'tests.fakes'" while the whole suite passed by collection order
    result = _collect("tests/components/common/test_golden.py", "tests/components/teacher/test_gemini.py")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    collected = result.stdout
    assert "tests/components/common/test_golden.py::" in collected
    assert "tests/components/teacher/test_gemini.py::" in collected


def test_no_test_or_benchmark_edits_sys_path():
    offenders = []
    for path in sorted([*ROOT.joinpath("tests").rglob("*.py"), *ROOT.joinpath("benchmarks").rglob("*.py")]):
        relative = path.relative_to(ROOT).as_posix()
        if relative == "tests/test_suite_layout.py":
            continue
        offenders += [
            f"{relative}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if SYS_PATH_EDIT.search(line)
        ]
    assert offenders == [], "put shared code in tests/helpers and import it by name instead: " + ", ".join(offenders)
