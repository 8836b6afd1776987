"""Overrides that break a scenario are told as the cause; overrides that make part of the file moot leave it out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import busim
from busim.cli import app
from busim.errors import OverrideError, ScenarioError
from busim.loadtest.api import check_real
from busim.loadtest.target import BrokerURLError
from busim.scenario.loader import load_scenario
from busim.scenario.ranges import parse_axis
from busim.scenario.variants import grid, load_variants

SCENARIOS = Path(__file__).parents[2] / "scenarios"
CRASHING = """\
name: crashing
duration: 10s
events: {E: {}}
publishers: [{name: p, event: E, rate: [{at: 0s, rate: 5/s}, {at: 8s, rate: 9/s}]}]
consumers:
  - {name: c, subscribes: [E], instances: 2, crash: {at: 5s, instance: 1}}
variants:
  one: {consumers.c.instances: 1}
"""


@pytest.fixture
def crashing(tmp_path: Path) -> Path:
    path = tmp_path / "crashing.yaml"
    path.write_text(CRASHING)
    return path


def test_a_problem_an_override_causes_in_the_file_names_the_override(crashing):
    with pytest.raises(ScenarioError) as raised:
        load_scenario(crashing, ["consumers.c.instances=1"])
    assert str(raised.value) == (
        f"{crashing}:6:72: consumers[0].crash.instance: c has instance 0 (got 1) "
        "(caused by --set consumers.c.instances=1)"
    )


def test_the_cause_is_the_override_after_which_the_problem_appears(crashing):
    with pytest.raises(ScenarioError) as raised:
        load_scenario(crashing, ["seed=3", "consumers.c.instances=1", "warmup=1s"])
    assert str(raised.value).endswith("(caused by --set consumers.c.instances=1)")


def test_a_problem_of_the_file_itself_names_no_override(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(CRASHING.replace("instances: 2", "instances: 1"))
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, ["seed=3"])
    assert str(raised.value) == f"{path}:6:72: consumers[0].crash.instance: c has instance 0 (got 1)"


def test_a_variant_that_breaks_the_file_is_named(crashing):
    with pytest.raises(OverrideError) as raised:
        load_variants([crashing], [], [])
    assert str(raised.value) == (
        f"{crashing}:6:72: consumers[0].crash.instance: c has instance 0 (got 1) (caused by {crashing}: variants.one)"
    )


def test_a_grid_point_that_breaks_the_file_is_named(crashing):
    with pytest.raises(ScenarioError) as raised:
        grid(crashing, [parse_axis("consumers.c.instances=2,1"), parse_axis("warmup=1s")], [])
    assert str(raised.value) == (
        f"{crashing}:6:72: consumers[0].crash.instance: c has instance 0 (got 1) "
        "(caused by --vary consumers.c.instances=1 at point instances=1 warmup=1s)"
    )


def test_a_shorter_duration_given_as_an_override_runs_the_first_part_of_the_file():
    loaded = load_scenario(SCENARIOS / "flash-sale.yaml", ["duration=60s"])
    assert [step.at for step in loaded.scenario.publishers[0].rate] == [0, 30]
    assert loaded.left_out == ("publishers[0].rate[2]: starts after publishing ends at 60s",)
    loaded = load_scenario(SCENARIOS / "flash-sale.yaml", ["duration=20s", "drain_timeout=10s"])
    assert list(loaded.scenario.broker.outages) == []
    assert loaded.left_out == (
        "publishers[0].rate[1]: starts after publishing ends at 20s",
        "publishers[0].rate[2]: starts after publishing ends at 20s",
        "broker.outages[0]: starts after the run ends at 30s",
    )
    assert busim.load("scenarios/flash-sale.yaml", ["duration=60s"]).duration == 60


def test_a_late_crash_of_the_file_is_left_out_with_a_shorter_run(crashing):
    loaded = load_scenario(crashing, ["duration=2s", "drain_timeout=1s"])
    assert loaded.scenario.consumers[0].crash is None
    assert loaded.left_out == (
        "publishers[0].rate[1]: starts after publishing ends at 2s",
        "consumers[0].crash.at: comes after the run ends at 3s",
    )


def test_a_late_step_the_override_gives_itself_is_refused_as_the_override(crashing):
    with pytest.raises(ScenarioError) as raised:
        load_scenario(crashing, ["duration=5s", "publishers.p.rate=[{at: 0s, rate: 1/s}, {at: 7s, rate: 2/s}]"])
    assert str(raised.value) == (
        "--set publishers.p.rate=[{at: 0s, rate: 1/s}, {at: 7s, rate: 2/s}]: publishers[0].rate[1].at: "
        "this step starts at 7s, when publishing has ended (duration: 5s)"
    )


def test_a_comparison_of_a_shorter_run_runs_each_variant_on_the_first_rate_step_and_says_so_once(tmp_path):
    out = tmp_path / "out"
    command = ["compare", str(SCENARIOS / "flash-sale.yaml"), "--vary", "broker.preset=rabbitmq,kafka"]
    result = CliRunner().invoke(app, [*command, "--set", "duration=20s", "--no-charts", "--out", str(out)])
    assert result.exit_code == 0, result.output
    left_out = tuple(f"publishers[0].rate[{step}]: starts after publishing ends at 20s" for step in (1, 2))
    assert result.stderr == f"busim: the overrides leave out {'; '.join(left_out)}\n"  # the same for both variants
    ran = [
        (o.scenario.duration, len(o.scenario.publishers[0].rate), o.source.left_out) for o in busim.read(out).outcomes
    ]
    assert ran == [(20.0, 1, left_out)] * 2


def test_varying_the_preset_leaves_out_the_file_keys_of_the_other_preset():
    variants = load_variants(
        [SCENARIOS / "calibration" / "redis-claim.yaml"], ["broker.preset=redis-streams,rabbitmq"], []
    )
    redis, rabbit = (variant.loaded for variant in variants)
    assert (redis.scenario.broker.claim_interval, redis.left_out) == (0.25, ())
    assert rabbit.left_out == tuple(
        f"broker.{key}: not a key of preset rabbitmq" for key in ("batch_size", "claim_interval", "claim_min_idle")
    )


@pytest.mark.parametrize(
    ("name", "keys"),
    [("redis-claim", "batch_size, claim_interval, claim_min_idle"), ("jetstream-ack-wait", "ack_wait, max_deliver")],
)
def test_the_hint_for_a_broker_of_another_preset_works_as_given(name, keys):
    path = SCENARIOS / "calibration" / f"{name}.yaml"
    url = "amqp://guest:guest@127.0.0.1:5672/"
    with pytest.raises(BrokerURLError) as raised:
        check_real(load_scenario(path), url)
    message = str(raised.value)
    assert message.endswith(
        f"add --set broker.preset=rabbitmq to run this scenario against it, which leaves out its broker.{keys} "
        "(rabbitmq takes no such keys)"
    )
    overrides = re.findall(r"--set (\S+)", message)
    scenario, _, _ = check_real(load_scenario(path, overrides), url)  # checks what the driver realises, no connection
    assert scenario.broker.preset == "rabbitmq"


RUN = """\
name: run
duration: 20s
drain_timeout: {drain}
events: {{E: {{}}}}
publishers: [{{name: p, event: E, rate: [{{at: 0s, rate: 5/s}}, {{at: 10s, rate: 8/s}}]}}]
broker:
  slowdowns: [{{from: 25s, to: 28s, factor: 2}}]
consumers:
  - name: c
    subscribes: [E]
    instances: 2
    slowdowns: [{{from: 4s, to: 6s, factor: 2}}, {{from: 12s, to: 14s, factor: 3}}]
    crash: {{at: [5s, 25s]}}
"""


def test_slowdowns_after_a_shorter_run_are_left_out(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN.format(drain="10s"))
    loaded = load_scenario(path, ["duration=8s", "drain_timeout=2s"])
    assert list(loaded.scenario.broker.slowdowns) == []
    assert [slowdown.start for slowdown in loaded.scenario.consumers[0].slowdowns] == [4]
    assert loaded.left_out == (
        "publishers[0].rate[1]: starts after publishing ends at 8s",
        "broker.slowdowns[0]: starts after the run ends at 10s",
        "consumers[0].slowdowns[1]: starts after the run ends at 10s",
        "consumers[0].crash.at[1]: comes after the run ends at 10s",
    )


def test_what_the_file_has_wrong_stays_wrong_and_names_no_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(RUN.format(drain="2s"))  # the slowdown and the crash at 25s are after its 22s
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, ["drain_timeout=3s"])
    assert str(raised.value) == (
        f"{path}:7:22: broker.slowdowns[0].from: this slowdown starts at 25s, after the run ends "
        "(duration + drain_timeout: 23s)\n"
        f"{path}:13:22: consumers[0].crash.at[1]: this crash comes at 25s, after the run ends "
        "(duration + drain_timeout: 23s)"
    )


def test_an_override_of_the_files_own_preset_leaves_nothing_out(tmp_path):
    path = tmp_path / "rabbit.yaml"
    path.write_text(
        "name: r\nduration: 5s\nevents: {E: {}}\npublishers: [{name: p, event: E, rate: 5/s}]\n"
        "broker: {preset: rabbitmq, prefetch: 5, partitions: 3}\nconsumers: [{name: c, subscribes: [E]}]\n"
    )
    refused = (
        f"{path}:5:53: broker.partitions: partitions does not apply to preset {{}}; it applies to kafka "
        "(leave it out or set it to null)"
    )
    with pytest.raises(ScenarioError) as raised:
        busim.load(path, ["broker.preset=rabbitmq"])
    assert str(raised.value) == refused.format("rabbitmq")
    # Another preset leaves out the file's keys of its own preset, not the ones it has wrong already.
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path, ["broker.preset=redis-streams"])
    assert str(raised.value) == refused.format("redis-streams")


def test_blaming_many_overrides_reads_the_file_once_and_validates_a_few_times(crashing, monkeypatch):
    from busim.scenario import loader

    calls = {"read": 0, "validate": 0}
    read, validate = loader.read_scenario_text, loader.validate

    def counted_read(path):
        calls["read"] += 1
        return read(path)

    def counted_validate(document):
        calls["validate"] += 1
        return validate(document)

    monkeypatch.setattr(loader, "read_scenario_text", counted_read)
    monkeypatch.setattr(loader, "validate", counted_validate)
    overrides = [f"seed={seed}" for seed in range(100)]
    with pytest.raises(ScenarioError) as raised:
        load_scenario(crashing, [*overrides[:60], "consumers.c.instances=1", *overrides[60:]])
    assert str(raised.value).endswith("(caused by --set consumers.c.instances=1)")
    assert calls["read"] == 2  # the file, and once more to blame
    assert calls["validate"] <= 12


def test_compare_and_sweep_say_what_the_overrides_leave_out_of_each_variant(crashing, tmp_path):
    told = []
    for command in ("compare", "sweep"):
        result = CliRunner().invoke(
            app,
            [
                *(command, str(crashing), "--vary", "consumers.c.instances=1,2", "--set", "duration=2s"),
                *("--set", "drain_timeout=1s", "--json", "--no-charts", "--out", str(tmp_path / command)),
            ],
        )
        assert result.exit_code == 0, result.output
        told.append(result.stderr)
    left_out = (
        "busim: the overrides leave out publishers[0].rate[1]: starts after publishing ends at 2s; "
        "consumers[0].crash.at: comes after the run ends at 3s\n"
    )
    assert told == [left_out, left_out]
    assert load_variants([crashing], ["broker.preset=rabbitmq,kafka"], ["duration=2s", "drain_timeout=1s"])[
        0
    ].loaded.left_out == (
        "publishers[0].rate[1]: starts after publishing ends at 2s",
        "consumers[0].crash.at: comes after the run ends at 3s",
    )


def test_a_comparison_records_and_reports_what_the_overrides_left_out_of_each_variant(tmp_path):
    out = tmp_path / "compared"
    file = SCENARIOS / "calibration" / "redis-claim.yaml"
    command = ["compare", str(file), "--vary", "broker.preset=redis-streams,rabbitmq", "--set", "duration=5s"]
    result = CliRunner().invoke(app, [*command, "--no-charts", "--quiet", "--out", str(out)])
    assert result.exit_code == 0, result.output
    left_out = [
        f"broker.{key}: not a key of preset rabbitmq" for key in ("batch_size", "claim_interval", "claim_min_idle")
    ]
    compared = busim.read(out)
    assert [outcome.source.left_out for outcome in compared.outcomes] == [(), tuple(left_out)]
    rows = [line for line in (out / "compare.md").read_text().splitlines() if line.startswith("| preset=")]
    assert rows[:2] == [  # the variants table, before the verdicts
        "| preset=redis-streams | broker.preset=redis-streams |",
        f"| preset=rabbitmq | broker.preset=rabbitmq (leaves out {'; '.join(left_out)}) |",
    ]
