"""configure_step_logging: a step's INFO records reach its log; nothing global in library modules."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from silverset.components.common.errors import SilversetInputError
from silverset.components.common.logs import configure_cli_logging, configure_step_logging, parse_level

STAGE = "silverset.components.teacher.annotate"


@pytest.fixture
def bare_root(monkeypatch):
    """The root logger with no handler and the silverset logger at its default level, restored afterwards."""
    monkeypatch.delenv("SILVERSET_LOG_LEVEL", raising=False)
    root, package = logging.getLogger(), logging.getLogger("silverset")
    handlers, root_level, package_level = root.handlers[:], root.level, package.level
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    package.setLevel(logging.NOTSET)
    yield root
    root.handlers[:] = handlers
    root.setLevel(root_level)
    package.setLevel(package_level)


def _step(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "SILVERSET_LOG_LEVEL"} | (env or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=environ)


def test_a_plain_process_drops_info_and_the_helper_lets_it_through():
    emit = f"import logging; logging.getLogger({STAGE!r}).info('labelled %d videos in %.1f s', 3, 0.5)"
    without = _step(emit)
    with_helper = _step(
        "from silverset.components.common.logs import configure_step_logging; configure_step_logging(); " + emit
    )
    assert "labelled" not in without.stdout + without.stderr
    assert with_helper.returncode == 0, with_helper.stderr
    assert f"INFO {STAGE}: labelled 3 videos in 0.5 s" in with_helper.stdout


def test_the_level_comes_from_the_environment_at_call_time():
    code = (
        "from silverset.components.common.logs import configure_step_logging; configure_step_logging(); "
        f"import logging; log = logging.getLogger({STAGE!r}); log.info('start'); log.warning('retry 2')"
    )
    quiet = _step(code, {"SILVERSET_LOG_LEVEL": "warning"})
    assert "start" not in quiet.stdout and "WARNING" in quiet.stdout and "retry 2" in quiet.stdout


def _streams(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if type(h) is logging.StreamHandler]  # pytest adds its own capture handlers


def test_kfp_executor_handler_is_reused_not_doubled(bare_root, capsys):
    existing = logging.StreamHandler(sys.stdout)  # what kfp's executor_main puts there (basicConfig at INFO)
    existing.setFormatter(logging.Formatter("[KFP Executor %(levelname)s]: %(message)s"))
    bare_root.addHandler(existing)
    configure_step_logging()
    configure_step_logging()
    logging.getLogger(STAGE).info("frames: %d videos", 2)
    logging.getLogger("some.other.library").info("chatty")
    assert _streams(bare_root) == [existing]
    out = capsys.readouterr().out
    assert out.count("[KFP Executor INFO]: frames: 2 videos") == 1
    assert "chatty" not in out  # only silverset's level changes; other libraries keep the root's WARNING


def test_twice_adds_one_handler():
    done = _step(
        "from silverset.components.common.logs import configure_step_logging; "
        "configure_step_logging(); configure_step_logging('DEBUG'); "
        f"import logging; logging.getLogger({STAGE!r}).debug('item %s', 'v1')"
    )
    assert done.stdout.count(f"DEBUG {STAGE}: item v1") == 1, done.stdout + done.stderr


def test_bad_level_names_the_setting():
    with pytest.raises(SilversetInputError, match="SILVERSET_LOG_LEVEL.*'loud'.*INFO"):
        parse_level("loud")
    assert parse_level(None) == logging.INFO and parse_level("debug") == logging.DEBUG and parse_level("15") == 15


def test_cli_logging_is_untouched_unless_asked(bare_root, monkeypatch):
    assert configure_cli_logging() is None
    assert _streams(bare_root) == [] and logging.getLogger("silverset").level == logging.NOTSET
    monkeypatch.setenv("SILVERSET_LOG_LEVEL", "INFO")
    assert configure_cli_logging() is logging.getLogger("silverset")
    assert logging.getLogger("silverset").level == logging.INFO


def test_cli_prints_warnings_only_by_default_and_info_when_asked():
    code = (
        "from silverset.components.common.logs import configure_cli_logging; configure_cli_logging(); "
        f"import logging; log = logging.getLogger({STAGE!r}); log.info('stage done'); log.warning('retry 2')"
    )
    default, asked = _step(code), _step(code, {"SILVERSET_LOG_LEVEL": "INFO"})
    assert default.stdout == "" and default.stderr == "retry 2\n"  # Python's last-resort handler, as before
    assert f"INFO {STAGE}: stage done" in asked.stderr and asked.stdout == ""


STEP_PACKAGES = (
    "frames",
    "embed",
    "teacher",
    "distill",
    "index",
    "deploy",
    "incremental",
    "notify",
    "abtest",
    "evaluate",
    "approval",
    "score",
    "corpus",
)


def test_every_step_begins_with_the_step_set_up():
    """Every component function calls common.step.begin_step (its logging and the clean exit after its work)."""
    import importlib
    import inspect

    missing = []
    for package in STEP_PACKAGES:
        module = importlib.import_module(f"silverset.components.{package}.component")
        for name, obj in vars(module).items():
            func = getattr(obj, "python_func", None)
            if func is not None and func.__module__ == module.__name__:
                if "begin_step()" not in inspect.getsource(func):
                    missing.append(f"{package}.{name}")
    assert missing == []


def test_an_annotate_step_logs_its_counts_to_the_step_output(tmp_path):
    from silverset.components.common.spec import example_specs_dir

    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "video_id,uri,title,description\n"
        "v1,file:///v1.mp4,a red sunset,red sky\nv2,file:///v2.mp4,a blue lake,calm water\n"
    )
    spec = example_specs_dir() / "red_dominant.yaml"
    code = (
        "from silverset.components.teacher.component import annotate_shard; "
        f"annotate_shard.python_func(attribute_spec={str(spec)!r}, manifest_uri={str(manifest)!r}, frames_uri='', "
        f"out_dir={str(tmp_path / 'labels')!r}, teacher_backend='zero-shot')"
    )
    done = _step(code)
    assert done.returncode == 0, done.stderr[-2000:]
    ends = [line for line in done.stdout.splitlines() if f"INFO {STAGE}: annotate" in line and "labelled" in line]
    assert len(ends) == 1 and ": 2 labelled, 0 errors" in ends[0], done.stdout[-2000:]


def test_the_cli_logs_stages_only_when_asked_and_refuses_a_bad_level(tmp_path):
    from silverset.components.common.spec import example_specs_dir

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("video_id,uri,title,description\nv1,file:///v1.mp4,a red sunset,red sky\n")
    command = [
        str(Path(sys.executable).with_name("silverset")),
        "annotate",
        "--attribute",
        str(example_specs_dir() / "red_dominant.yaml"),
        "--manifest",
        str(manifest),
        "--teacher",
        "zero-shot",
    ]
    environ = {k: v for k, v in os.environ.items() if k != "SILVERSET_LOG_LEVEL"}
    quiet = subprocess.run(
        command + ["--out", str(tmp_path / "a")], capture_output=True, text=True, timeout=120, env=environ
    )
    asked = subprocess.run(
        command + ["--out", str(tmp_path / "b")],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ | {"SILVERSET_LOG_LEVEL": "info"},
    )
    bad = subprocess.run(
        command + ["--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ | {"SILVERSET_LOG_LEVEL": "loud"},
    )
    assert quiet.returncode == 0 and asked.returncode == 0, quiet.stderr + asked.stderr
    assert f"INFO {STAGE}" not in quiet.stderr + quiet.stdout
    assert f"INFO {STAGE}: annotate" in asked.stderr and "1 labelled" in asked.stderr
    assert bad.returncode == 2 and "SILVERSET_LOG_LEVEL" in bad.stderr and "'loud'" in bad.stderr


def test_safe_url_drops_what_carries_secrets():
    from silverset.components.common.logs import safe_url

    assert safe_url("https://bob:hunter2@idx.example:8443/v1/admin?token=abc#x") == "https://idx.example:8443/v1/admin"
    assert (
        safe_url("https://hooks.slack.com/services/T0/B0/SECRETPART", keep_path=False) == "https://hooks.slack.com/..."
    )
    assert safe_url("http://127.0.0.1:8080", keep_path=False) == "http://127.0.0.1:8080"
    assert safe_url(None) == "none" and safe_url("") == "none"
    assert "hunter2" not in safe_url("bob:hunter2@host/x") and "abc" not in safe_url("host/x?token=abc")
