"""The beam_runner / beam_options parameters the frames and score shards hand Beam: parsed both ways, and refused
when the runner is unknown or an option would carry a secret (the message never repeats the secret)."""

from __future__ import annotations

import json

import pytest
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions, StandardOptions

from silverset.components.common.beam_runner import RUNNERS, beam_args, parse_beam_options
from silverset.components.common.errors import SilversetInputError
from silverset.components.frames.pipeline import pipeline_options

FLINK = [
    "--flink_master=flink-jobmanager.flink:8081",
    "--environment_type=EXTERNAL",
    "--environment_config=localhost:50000",
    "--parallelism=8",
]


def test_a_json_list_and_a_space_separated_string_give_the_same_flags():
    assert parse_beam_options(json.dumps(FLINK)) == parse_beam_options(" ".join(FLINK)) == FLINK
    assert parse_beam_options("--labels='team=video ml' --save_main_session") == [
        "--labels=team=video ml",
        "--save_main_session",
    ]  # shell quoting keeps a value with a space whole
    assert parse_beam_options("") == parse_beam_options("  ") == parse_beam_options(None) == []


def test_the_flags_reach_beam_as_its_own_options():
    args = beam_args(
        runner="DataflowRunner",
        options='["--project=p1", "--region=europe-west4", '
        '"--temp_location=gs://b/tmp", "--service_account_email='
        'beam-worker@p1.iam.gserviceaccount.com"]',
    )
    gcp = PipelineOptions(["--runner=DataflowRunner", *args]).view_as(GoogleCloudOptions)
    assert (gcp.project, gcp.region, gcp.temp_location) == ("p1", "europe-west4", "gs://b/tmp")
    assert gcp.service_account_email == "beam-worker@p1.iam.gserviceaccount.com"  # a name, not a secret
    # The frames stage keeps its one-worker DirectRunner default unless the options say otherwise.
    direct = pipeline_options("DirectRunner", beam_args(options="--direct_num_workers=2")).get_all_options()
    assert direct["direct_num_workers"] == 2 and direct["direct_running_mode"] == "in_memory"
    flink = pipeline_options("FlinkRunner", beam_args(runner="FlinkRunner", options=FLINK))
    assert flink.view_as(StandardOptions).runner == "FlinkRunner"
    assert flink.get_all_options()["flink_master"] == "flink-jobmanager.flink:8081"
    assert "direct_num_workers" not in " ".join(flink.get_all_options(drop_default=True))


@pytest.mark.parametrize("runner", ["Flink", "directrunner", "DataFlowRunner", "", "TestDataflowRunner", "PrismRunner"])
def test_an_unknown_runner_is_refused_with_the_valid_ones_named(runner):
    with pytest.raises(SilversetInputError, match="beam_runner") as info:
        beam_args(runner=runner)
    assert all(name in str(info.value) for name in RUNNERS)


KEY_JSON = json.dumps(
    {
        "type": "service_account",
        "project_id": "p1",
        "private_key_id": "0123abcd",
        "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
    }
)


@pytest.mark.parametrize(
    "option, secret",
    [
        ("--service_account_key_file=/var/secrets/sa.json", "/var/secrets/sa.json"),
        ("--aws_secret_access_key=wJalrXUtnFEMIK7MDENG", "wJalrXUtnFEMIK7MDENG"),
        ("--s3_access_key_id=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("--hdfs_password=hunter2", "hunter2"),
        ("--gcs_oauth_token=ya29.a0Af", "ya29.a0Af"),
        (f"--dataflow_service_options={KEY_JSON}", "MIIEvQIBADANBg"),
        (f"--labels={KEY_JSON}", "MIIEvQIBADANBg"),
        ("--experiments=gemini=AIzaSyD-this-is-a-fake-key-0123456789", "AIzaSyD"),
        (KEY_JSON, "MIIEvQIBADANBg"),  # a key pasted as an option of its own
    ],
)
def test_an_option_that_would_carry_a_secret_is_refused_without_repeating_it(option, secret):
    with pytest.raises(SilversetInputError, match="beam_options") as info:
        beam_args(runner="DataflowRunner", options=json.dumps(["--project=p1", option]))
    assert secret not in str(info.value)


@pytest.mark.parametrize(
    "options, problem",
    [
        ("--runner=DataflowRunner", "beam_runner parameter"),
        ("flink_master=host:8081", "not a Beam flag"),
        ('["--a=1", 2]', "only strings"),
        ('{"a": 1}', "not a Beam flag"),
        ("[--a=1", "not a JSON list"),
        ("--labels='unclosed", "cannot be split"),
    ],
)
def test_malformed_options_are_refused_naming_the_parameter(options, problem):
    with pytest.raises(SilversetInputError, match=problem):
        beam_args(options=options)
