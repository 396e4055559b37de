"""The compiled package: deterministic, every step present, the ExitHandler/If/ParallelFor structure, the
kubernetes platform spec, and no secret value (only the Secret's name)."""

from __future__ import annotations

import pytest
import yaml

from silverset.pipelines.attribute_promotion import STAGES, PlatformOptions
from silverset.pipelines.compile import check_no_secret_values, compile_pipeline


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = compile_pipeline(tmp_path_factory.mktemp("c") / "pipeline.yaml")
    docs = list(yaml.safe_load_all(path.read_text()))
    return path, docs[0], docs[1]


def test_compiling_twice_gives_the_same_bytes(compiled, tmp_path):
    path, _, _ = compiled
    again = compile_pipeline(tmp_path / "again.yaml")
    assert again.read_bytes() == path.read_bytes()


def _tasks(spec: dict) -> dict[str, dict]:
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_every_stage_is_a_step_and_the_exit_handler_always_notifies(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    executors = set(spec["deploymentSpec"]["executors"])
    for stage, component in STAGES.items():
        assert f"exec-{component.name}" in executors, stage
    notify = spec["root"]["dag"]["tasks"]["notify-run"]
    assert notify["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"  # runs on failure too
    names = {t["taskInfo"]["name"] for t in tasks.values()}
    for step in (
        "plan-incremental",
        "frames",
        "embed-shard",
        "annotate-golden-set",
        "teacher-gate",
        "annotate-shard",
        "merge-labels-exactly-once",
        "carry-over-unchanged-videos",
        "distill-student",
        "score-golden-set",
        "student-gate",
        "human-approval",
        "bulk-score",
        "restricted-vocabulary-and-index",
        "deploy-index",
        "commit-promoted-state",
        "stop-teacher-gate",
        "stop-student-gate",
        "stop-approval",
    ):
        assert step in names, step


def _conditions(spec: dict) -> list[str]:
    return [t["triggerPolicy"]["condition"] for t in _tasks(spec).values() if "condition" in t.get("triggerPolicy", {})]


def test_the_rest_of_the_run_is_skipped_when_nothing_changed(compiled):
    _, spec, _ = compiled
    assert any("plan-incremental-Output" in c and "!= ''" in c for c in _conditions(spec))


def test_each_gate_and_the_approval_guard_what_follows(compiled):
    _, spec, _ = compiled
    conditions = _conditions(spec)
    assert any("teacher-gate-Output" in c and "== 'passed'" in c for c in conditions)
    assert any("student-gate-Output" in c and "== 'passed'" in c for c in conditions)
    assert any("approval-gate-Output" in c and "== 'approved'" in c for c in conditions)
    # Bulk annotation sits under the teacher gate; score, index and deploy under the approval.
    tasks = _tasks(spec)
    branch_of = {
        name: component
        for component, body in spec["components"].items()
        for name in body.get("dag", {}).get("tasks", {})
    }
    # Bulk scoring fans out over shards (a ParallelFor in the approved branch); the index waits for every shard.
    score_loop = next(
        name
        for name, t in tasks.items()
        if "parameterIterator" in t and "bulk-score-2" in spec["components"][t["componentRef"]["name"]]["dag"]["tasks"]
    )
    assert branch_of["deploy-index"] == branch_of["build-index"] == branch_of[score_loop]
    assert "approval-gate" not in spec["components"][branch_of["deploy-index"]]["dag"]["tasks"]
    assert tasks["build-index"]["dependentTasks"] == [score_loop]
    # Only the last step, after the deploy, commits the corpus state: a stopped promotion is planned again.
    assert branch_of["commit-promotion"] == branch_of["deploy-index"]
    assert tasks["commit-promotion"]["dependentTasks"] == ["deploy-index"]


def test_a_stopped_promotion_fails_the_run_in_an_else_branch_naming_the_stage(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    stops = {t["taskInfo"]["name"]: t for t in tasks.values() if t["taskInfo"]["name"].startswith("stop-")}
    assert set(stops) == {"stop-teacher-gate", "stop-student-gate", "stop-approval"}
    stage_of = {name: t["inputs"]["parameters"]["stage"]["runtimeValue"]["constant"] for name, t in stops.items()}
    assert stage_of == {
        "stop-teacher-gate": "teacher_gate",
        "stop-student-gate": "student_gate",
        "stop-approval": "approval",
    }
    conditions = _conditions(spec)
    # dsl.Else compiles to the negation of its dsl.If: each gate's failure and the approval's refusal has a branch.
    assert any("teacher-gate-Output" in c and c.startswith("!(") for c in conditions)
    assert any("student-gate-Output" in c and c.startswith("!(") for c in conditions)
    assert any("approval-gate-Output" in c and c.startswith("!(") for c in conditions)


def test_no_run_parameter_can_approve_on_the_cluster_package(compiled, tmp_path):
    _, spec, _ = compiled
    assert "auto_approve_as" not in spec["root"]["inputDefinitions"]["parameters"]
    approval = _tasks(spec)["approval-gate"]["inputs"]["parameters"]
    assert "auto_approve_as" not in approval  # left at the component's empty default, wired to nothing
    local = compile_pipeline(tmp_path / "local.yaml", options=PlatformOptions(local_demo=True))
    local_spec = next(yaml.safe_load_all(local.read_text()))
    assert "auto_approve_as" in local_spec["root"]["inputDefinitions"]["parameters"]


def test_the_approval_step_waits_cheaply_and_is_bounded_by_a_timeout(compiled, tmp_path):
    _, spec, platform = compiled
    resources = spec["deploymentSpec"]["executors"]["exec-approval-gate"]["container"]["resources"]
    assert resources["resourceCpuRequest"] == "50m" and resources["resourceMemoryRequest"] == "64Mi"
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert int(executors["exec-approval-gate"]["activeDeadlineSeconds"]) >= 72 * 3600
    short = compile_pipeline(tmp_path / "short.yaml", options=PlatformOptions(approval_timeout_hours=2))
    platform = list(yaml.safe_load_all(short.read_text()))[1]
    deadline = int(
        platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-approval-gate"][
            "activeDeadlineSeconds"
        ]
    )
    assert 2 * 3600 <= deadline <= 2 * 3600 + 900


def _loop_of(spec: dict, task: str) -> str:
    """The ParallelFor task whose body holds ``task``."""
    return next(
        name
        for name, t in _tasks(spec).items()
        if "parameterIterator" in t and task in spec["components"][t["componentRef"]["name"]]["dag"]["tasks"]
    )


def test_frames_embed_annotate_and_bulk_score_fan_out_over_shards(compiled, tmp_path):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    loops = {name: t for name, t in tasks.items() if "parameterIterator" in t}
    assert len(loops) == 4
    assert all(t["parameterIterator"]["items"]["raw"] == "[0, 1, 2, 3]" for t in loops.values())
    for step in ("extract-frames", "embed-shard", "annotate-shard-2", "bulk-score-2"):
        loop = _loop_of(spec, step)
        inputs = tasks[step]["inputs"]["parameters"]
        assert inputs["shard_count"]["runtimeValue"]["constant"] == 4, step
        assert inputs["shard_index"]["componentInputParameter"] == loops[loop]["parameterIterator"]["itemInput"], step
    # Every embed shard and the golden-set annotation start after every frames shard finished.
    frames_loop = _loop_of(spec, "extract-frames")
    assert frames_loop in tasks[_loop_of(spec, "embed-shard")]["dependentTasks"]
    assert frames_loop in tasks["annotate-shard"]["dependentTasks"]
    # The golden-set scoring stays one step outside any loop: the student gate reads one small table.
    with pytest.raises(StopIteration):
        _loop_of(spec, "bulk-score")
    two = next(
        yaml.safe_load_all(compile_pipeline(tmp_path / "two.yaml", options=PlatformOptions(shards=2)).read_text())
    )
    widths = {t["parameterIterator"]["items"]["raw"] for t in _tasks(two).values() if "parameterIterator" in t}
    assert widths == {"[0, 1]"}


def test_only_teacher_steps_see_the_gemini_key_and_only_as_an_optional_secret(compiled):
    _, spec, platform = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    secret = executors["exec-annotate-shard"]["secretAsEnv"][0]
    assert secret["secretName"] == "silverset-gemini" and secret["keyToEnv"][0]["envVar"] == "GEMINI_API_KEY"
    assert _tasks(spec)["annotate-shard"]["retryPolicy"]["maxRetryCount"] == 3
    with_secret = {
        name for name, config in executors.items() if config.get("secretAsEnv") or config.get("secretAsVolume")
    }
    assert with_secret == {"exec-annotate-shard", "exec-annotate-shard-2"}  # golden-set and bulk annotate
    # A zero-shot or local-teacher run needs no Secret on the cluster: no step requires one to start.
    for name in with_secret:
        assert all(s["optional"] is True for s in executors[name]["secretAsEnv"]), name


def test_every_step_runs_the_chosen_image_as_the_images_user_without_installing_kfp(tmp_path):
    from silverset.components.common.images import ImageSet

    digest = "sha256:" + "ab" * 32
    images = ImageSet(registry="registry.example.com/ml", tag="1.4.2", digests={"cpu": digest})
    path = compile_pipeline(tmp_path / "p.yaml", options=PlatformOptions(images=images, gpu_teacher=True))
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    containers = {name: e["container"] for name, e in spec["deploymentSpec"]["executors"].items()}
    gpu = {"exec-annotate-shard", "exec-annotate-shard-2"}
    for name, container in containers.items():
        expected = (
            "registry.example.com/ml/silverset-gpu:1.4.2"
            if name in gpu
            else f"registry.example.com/ml/silverset-cpu:1.4.2@{digest}"
        )
        assert container["image"] == expected, name
        assert "pip install" not in " ".join(container["command"]), name  # the image has kfp (requirements.lock)
    for name, config in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        assert config["securityContext"] == {"runAsUser": "10001", "runAsGroup": "10001", "runAsNonRoot": True}, name
        # A mutable tag is pulled every time; a digest never changes, so the node's copy is good.
        assert config["imagePullPolicy"] == ("Always" if name in gpu else "IfNotPresent"), name


def test_gpu_options_put_the_teacher_and_trainer_on_the_gpu_pool(tmp_path):
    path = compile_pipeline(tmp_path / "gpu.yaml", options=PlatformOptions(gpu_teacher=True, gpu_trainer=True))
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name in ("exec-annotate-shard", "exec-distill-student"):
        assert spec["deploymentSpec"]["executors"][name]["container"]["image"].split(":")[0].endswith("silverset-gpu")
        assert executors[name]["nodeSelector"]["labels"] == {"silverset.dev/pool": "gpu"}, name
        assert executors[name]["tolerations"][0]["key"] == "nvidia.com/gpu", name
        resources = spec["deploymentSpec"]["executors"][name]["container"]["resources"]
        assert resources["accelerator"]["resourceCount"] == "1", name


def test_platform_spec_names_secrets_and_pvc_but_holds_no_values(compiled):
    path, _, platform = compiled
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, config in executors.items():
        assert config["pvcMount"][0]["mountPath"] == "/data", name
        assert config["imagePullSecret"][0]["secretName"] == "silverset-registry", name
    text = path.read_text()
    check_no_secret_values(text)
    assert "GEMINI_API_KEY=" not in text and "AIza" not in text


def test_the_compiled_yaml_never_carries_a_key_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "AIzaSyD-this-is-a-fake-key-0123456789")
    path = compile_pipeline(tmp_path / "p.yaml", options=PlatformOptions(artifacts_pvc=None))
    assert "AIzaSyD" not in path.read_text()
    with pytest.raises(ValueError, match="Gemini API key"):
        check_no_secret_values("env: AIzaSyD-this-is-a-fake-key-0123456789")


def test_embedder_and_experiment_are_run_parameters_of_both_packages_and_reach_their_steps(compiled, tmp_path):
    _, spec, _ = compiled
    local = next(
        yaml.safe_load_all(
            compile_pipeline(tmp_path / "local.yaml", options=PlatformOptions(local_demo=True)).read_text()
        )
    )
    for package in (spec, local):
        params = package["root"]["inputDefinitions"]["parameters"]
        assert params["embedder"]["defaultValue"] == "default"
        assert params["experiment_treatment_share"]["defaultValue"] == 0.0  # no experiment unless asked
        assert params["experiment_dir"]["defaultValue"] == ""
        assert params["teacher_temperature"]["defaultValue"] == 0.0
    tasks = _tasks(spec)
    # The plan (run identity) and every embed shard get the same pipeline parameter.
    for task in ("plan-incremental", "embed-shard"):
        wired = tasks[task]["inputs"]["parameters"]["embedder"]["componentInputParameter"]
        assert wired == "pipelinechannel--embedder", task
    assert "embed_manifest.parquet" in str(tasks["embed-shard"]["inputs"]["parameters"]["manifest_uri"])


def test_frame_sampling_is_a_run_parameter_that_reaches_the_frames_step(compiled):
    _, spec, _ = compiled
    assert spec["root"]["inputDefinitions"]["parameters"]["frame_sampling"]["defaultValue"] == "exact"
    wired = _tasks(spec)["extract-frames"]["inputs"]["parameters"]["frame_sampling"]["componentInputParameter"]
    assert wired == "pipelinechannel--frame_sampling"


def test_the_experiment_starts_only_when_asked_after_the_commit_in_the_approved_branch(compiled):
    _, spec, _ = compiled
    tasks = _tasks(spec)
    branch_of = {
        name: component
        for component, body in spec["components"].items()
        for name in body.get("dag", {}).get("tasks", {})
    }
    experiment = tasks["create-experiment"]
    assert experiment["taskInfo"]["name"] == "start-experiment"
    inputs = experiment["inputs"]["parameters"]
    assert inputs["treatment_share"]["componentInputParameter"].endswith("experiment_treatment_share")
    assert inputs["out_dir"]["componentInputParameter"].endswith("experiment_dir")
    assert inputs["serve_root"]["componentInputParameter"].endswith("serve_root")
    # Its own dsl.If on the parameter, nested in the branch that deploys and commits.
    guard = next(
        name for name, t in tasks.items() if branch_of.get("create-experiment") == t.get("componentRef", {}).get("name")
    )
    condition = tasks[guard]["triggerPolicy"]["condition"]
    assert "experiment_treatment_share" in condition and "> 0.0" in condition
    assert branch_of[guard] == branch_of["commit-promotion"]
    assert tasks[guard]["dependentTasks"] == ["commit-promotion"]  # .after(commit) lands on the If's task


FLINK_OPTIONS = (
    "--flink_master=flink-jobmanager.flink:8081 --environment_type=EXTERNAL "
    "--environment_config=localhost:50000 --parallelism=8"
)


def test_beam_runner_and_options_are_run_parameters_that_reach_the_frames_and_score_shards(compiled, tmp_path):
    _, spec, _ = compiled
    local = next(
        yaml.safe_load_all(
            compile_pipeline(tmp_path / "local.yaml", options=PlatformOptions(local_demo=True)).read_text()
        )
    )
    for package in (spec, local):
        params = package["root"]["inputDefinitions"]["parameters"]
        assert params["beam_runner"]["defaultValue"] == "DirectRunner"
        assert params["beam_options"]["defaultValue"] == ""
    tasks = _tasks(spec)
    for step in ("extract-frames", "bulk-score-2"):
        inputs = tasks[step]["inputs"]["parameters"]
        assert inputs["beam_runner"]["componentInputParameter"] == "pipelinechannel--beam_runner", step
        assert inputs["beam_options"]["componentInputParameter"] == "pipelinechannel--beam_options", step
    # The golden-set scoring is left on DirectRunner in its own pod: a few hundred rows.
    assert "beam_options" not in tasks["bulk-score"]["inputs"]["parameters"]


def test_the_compiled_yaml_carries_the_runner_options_chosen_at_compile_time(tmp_path):
    options = PlatformOptions(beam_runner="FlinkRunner", beam_options=FLINK_OPTIONS)
    path = compile_pipeline(tmp_path / "flink.yaml", options=options)
    spec = next(yaml.safe_load_all(path.read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["beam_runner"]["defaultValue"] == "FlinkRunner"
    assert params["beam_options"]["defaultValue"] == FLINK_OPTIONS
    from silverset.components.common.beam_runner import beam_args

    # What the steps will hand Beam: the flags one by one, in order.
    assert beam_args(runner="FlinkRunner", options=params["beam_options"]["defaultValue"]) == FLINK_OPTIONS.split()
    check_no_secret_values(path.read_text())


@pytest.mark.parametrize(
    "field, value, problem",
    [
        ("beam_runner", "Flink", "use one of DirectRunner, FlinkRunner, SparkRunner, PortableRunner, DataflowRunner"),
        ("beam_options", "--service_account_key_file=/secrets/sa.json", "secret"),
        ("beam_options", '["--dataflow_service_options={\\"type\\": \\"service_account\\"}"]', "key JSON"),
        ("beam_options", "--runner=DataflowRunner", "beam_runner parameter"),
        ("beam_options", "flink_master=x:8081", "not a Beam flag"),
    ],
)
def test_an_unknown_runner_or_a_secret_carrying_option_is_refused_at_compile_time(field, value, problem, tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=problem):
        PlatformOptions(**{field: value})


def test_the_cli_refuses_bad_beam_parameters_with_exit_code_2(cli, tmp_path):
    out = tmp_path / "p.yaml"
    result = cli("pipeline", "compile", "--out", str(out), "--beam-runner", "SparkRuner")
    assert result.code == 2 and "SparkRunner" in result.flat_err and not out.exists()
    result = cli(
        "pipeline",
        "run",
        "--local",
        "--attribute",
        str(tmp_path / "a.yaml"),
        "--manifest",
        "m.csv",
        "--param",
        "beam_options=--aws_secret_access_key=abc",
    )
    assert result.code == 2 and "beam_options" in result.flat_err and "secret" in result.flat_err
    assert "abc" not in result.flat_err  # the refused value is never echoed
    result = cli(
        "pipeline",
        "compile",
        "--out",
        str(out),
        "--beam-runner",
        "DataflowRunner",
        "--beam-options",
        '["--project=p", "--region=europe-west4", "--temp_location=gs://b/tmp"]',
    )
    assert result.code == 0 and "DataflowRunner" in out.read_text()


def test_the_documented_beam_parameters_pass_the_checks_the_steps_make():
    import shlex
    from pathlib import Path

    from silverset.pipelines.cli.pipeline import _check_beam_params

    text = (Path(__file__).resolve().parents[2] / "manifests" / "README.md").read_text().replace("\\\n", " ")
    documented = [
        dict(w.split("=", 1) for w in shlex.split(line) if w.startswith("beam_"))
        for line in text.splitlines()
        if line.startswith("silverset pipeline submit")
    ]
    documented = [params for params in documented if params]
    assert documented and any(p["beam_runner"] == "PortableRunner" for p in documented)
    for params in documented:
        assert _check_beam_params(params) == params


# Names retired by issue 20 (one name per concept): none of them may come back as a step's or the run's parameter.
RETIRED_NAMES = {
    "manifest",
    "out_uri",
    "attribute_uri",
    "runner",
    "pipeline_options",
    "out",
    "frames",
    "golden",
    "price_table_uri",
    "teacher",
    "checkpoint",
    "gemini_model",
    "precision",
    "temperature",
    "budget_usd",
    "size",
    "sampling",
}


@pytest.mark.parametrize(
    "component",
    [
        "comp-plan-incremental",
        "comp-extract-frames",
        "comp-embed-shard",
        "comp-annotate-shard",
        "comp-merge-labels",
        "comp-finalize-incremental",
        "comp-commit-promotion",
    ],
)
def test_the_frames_embed_teacher_and_incremental_steps_take_the_one_name_per_concept(compiled, component):
    _, spec, _ = compiled
    params = set(spec["components"][component]["inputDefinitions"]["parameters"])
    assert not params & RETIRED_NAMES, component
    if component not in ("comp-finalize-incremental", "comp-commit-promotion"):
        assert "manifest_uri" in params, component
    if component not in ("comp-plan-incremental", "comp-commit-promotion"):
        assert "out_dir" in params, component


def test_the_annotate_steps_take_the_teacher_run_parameters_under_the_same_names(compiled):
    _, spec, _ = compiled
    run_params = set(spec["root"]["inputDefinitions"]["parameters"])
    teacher_params = {
        "teacher_backend",
        "teacher_checkpoint",
        "teacher_model",
        "teacher_precision",
        "teacher_temperature",
        "gemini_price_table",
        "gemini_rps",
        "gemini_tokens_per_min",
    }
    assert teacher_params <= run_params
    by_name = {t["taskInfo"]["name"]: t["inputs"]["parameters"] for t in _tasks(spec).values()}
    for task, fed in (
        ("annotate-shard", teacher_params | {"teacher_budget_usd"}),
        ("annotate-golden-set", teacher_params),
    ):
        for name in fed:
            assert by_name[task][name]["componentInputParameter"] == f"pipelinechannel--{name}", (task, name)
    # The golden-set annotation is the teacher gate's exam: the run's budget never stops it.
    assert "teacher_budget_usd" not in by_name["annotate-golden-set"]


def test_the_run_takes_its_manifest_as_manifest_uri(compiled):
    _, spec, _ = compiled
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert "manifest_uri" in params and "manifest" not in params
    tasks = _tasks(spec)
    plan = tasks["plan-incremental"]["inputs"]["parameters"]["manifest_uri"]
    assert plan["componentInputParameter"] == "pipelinechannel--manifest_uri"
