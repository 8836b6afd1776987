"""YAML features and abuses: merges, aliases, odd keys, strict types, created override paths."""

import pytest

from busim.errors import OverrideError, ScenarioError
from busim.report.files import resolved_scenario_yaml
from busim.scenario import load_scenario
from busim.scenario.loader import parse_yaml, validate
from busim.scenario.schema import Consumer
from busim.scenario.variants import load_variants
from tests.conftest import SCENARIOS

BASE = """\
duration: 10s
events: {E: {fields: {k: {uniform_int: {low: 1, high: 3}}}}}
publishers: [{name: p, event: E, rate: 5}]
"""


def problems(tmp_path, text, overrides=()):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as error:
        load_scenario(path, list(overrides))
    return [str(problem).replace(f"{path}:", "") for problem in error.value.problems]


def test_merge_keys_fill_in_and_explicit_keys_win(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        BASE
        + "x-worker: &worker {subscribes: [E], instances: 2}\n"
        + "consumers:\n  - {<<: *worker, name: a}\n  - {<<: *worker, name: b, instances: 4}\n"
    )
    consumers = load_scenario(path).scenario.consumers
    assert [(c.name, c.instances, c.subscribes) for c in consumers] == [("a", 2, ["E"]), ("b", 4, ["E"])]


def test_merges_follow_yaml_earlier_mappings_in_a_list_and_inner_keys_win(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        BASE
        + "x-a: &a {subscribes: [E], instances: 4}\nx-b: &b {instances: 5}\n"
        + "consumers:\n  - {<<: [*a, *b], name: listed}\n  - {<<: {<<: *a, instances: 6}, name: nested}\n"
    )
    consumers = load_scenario(path).scenario.consumers
    assert [(c.name, c.instances) for c in consumers] == [("listed", 4), ("nested", 6)]


def test_a_repeated_key_is_reported_with_every_other_problem(tmp_path):
    text = BASE + "consumers:\n  - {name: a, subscribes: [E], instances: 2, instances: 3, concurency: 2}\n"
    assert problems(tmp_path, text) == [
        "5:46: consumers[0].instances: duplicate key 'instances' (first given on line 5)",
        "5:60: consumers[0].concurency: unknown key 'concurency'; did you mean 'concurrency'?",
    ]


def test_a_merge_of_something_else_than_a_mapping_is_refused(tmp_path):
    assert problems(tmp_path, "a: {<<: [1, 2]}\n") == ["1:10: << merges a mapping or a list of mappings"]


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    assert problems(tmp_path, "a: &x [*x]\n") == ["1:4: an alias refers to a value that contains it"]


def test_aliases_that_expand_without_bound_are_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems(tmp_path, "\n".join(lines) + "\n") == [
        "1:37: the file expands to more than 100,000 values through its aliases"
    ]


def test_keys_keep_their_written_form(tmp_path):
    text = BASE + "consumers: [{name: c, subscribes: [E], true: 1, 3: x}]\n"
    keys = ", ".join(Consumer.model_fields)
    assert keys.startswith("name, subscribes, instances, concurrency, processing_time, idempotency")
    assert problems(tmp_path, text) == [
        f"4:40: consumers[0].true: unknown key 'true' (valid keys: {keys})",
        f"4:49: consumers[0].3: unknown key '3' (valid keys: {keys})",
    ]


def test_booleans_are_not_numbers(tmp_path):
    text = BASE + "broker: {duplication: true}\nconsumers: [{name: c, subscribes: [E], instances: false}]\n"
    assert problems(tmp_path, text) == [
        "4:23: broker.duplication: expected a number (got true)",
        "5:51: consumers[0].instances: expected a whole number (got false)",
    ]


def test_values_a_run_could_not_hold_are_refused_up_front(tmp_path):
    text = (
        "duration: 10s\n"
        "events: {E: {fields: {k: {zipf: {n: 1000000000000, s: 1}}, "
        "w: {choice: {values: [1, 2], weights: [.inf, 1]}}}}}\n"
        "publishers: [{name: p, event: E, rate: 5}]\n"
        "consumers: [{name: c, subscribes: [E], state: {s: {initial: 100000000000000000000}}}]\n"
    )
    assert problems(tmp_path, text) == [
        "2:37: events.E.fields.k.zipf.n: must be <= 10000000 (got 1000000000000)",
        "2:99: events.E.fields.w.choice.weights[0]: must be a finite number (got inf)",
        "4:61: consumers[0].state.s.initial: must be <= 9223372036854775807 (got 100000000000000000000)",
    ]


def test_a_list_where_a_scalar_belongs_gives_one_message(tmp_path):
    text = (
        "duration: 10s\nevents: {E: {fields: {c: {constant: [1]}}}}\npublishers: [{name: p, event: E, rate: 5}]\n"
        "consumers: [{name: c, subscribes: [E], state: {s: {}}, effects: [{counter: s, key: c, add: [1]}]}]\n"
    )
    assert problems(tmp_path, text) == [
        "2:37: events.E.fields.c.constant: expected a number, a string or true/false (got a list)",
        "4:92: consumers[0].effects[0].add: expected an integer or a field name such as quantity or -quantity "
        "(got a list)",
    ]


def test_steps_and_outages_outside_the_run_are_refused(tmp_path):
    text = (
        "duration: 60s\ndrain_timeout: 60s\nevents: {E: {}}\n"
        "publishers: [{name: p, event: E, rate: [{at: 0s, rate: 5}, {at: 2m, rate: 9}]}]\n"
        "broker: {outages: [{at: 3m, duration: 5s}]}\nconsumers: [{name: c, subscribes: [E]}]\n"
    )
    assert problems(tmp_path, text) == [
        "4:65: publishers[0].rate[1].at: this step starts at 120s, when publishing has ended (duration: 60s)",
        "5:25: broker.outages[0].at: this outage starts at 180s, after the run ends (duration + drain_timeout: 120s)",
    ]


def test_overrides_create_missing_mappings_and_are_blamed_for_them():
    loaded = load_scenario(SCENARIOS / "payments-at-most-once.yaml", ["consumers[payment].crash.restart_after=1s"])
    assert loaded.scenario.consumer("payment").crash.restart_after == 1.0
    with pytest.raises(ScenarioError) as error:
        load_scenario(SCENARIOS / "flash-sale.yaml", ["broker.retry.backoff=1s"])
    assert str(error.value) == (
        "--set broker.retry.backoff=1s: broker.retry: unknown key 'retry' (valid keys: preset, delivery, latency, "
        "duplication, loss, publish_ack_loss, throughput, outages, prefetch, consumer_timeout, capacity, overflow)"
    )


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        (
            "a..b=1",
            "--set a..b=1: malformed key 'a..b'; write keys such as broker.loss or consumers[inventory].instances",
        ),
        (
            "broker.latency={exponential: {mean: 3ms}",
            "--set broker.latency={exponential: {mean: 3ms}: the value is not valid YAML "
            "(expected ',' or '}', but got '<stream end>')",
        ),
        ("broker.outages[0].at.x=1", "--set broker.outages[0].at.x=1: broker.outages[0].at is not a mapping or a list"),
    ],
)
def test_malformed_overrides_are_refused(assignment, message):
    with pytest.raises(OverrideError) as error:
        load_scenario(SCENARIOS / "flash-sale.yaml", [assignment])
    assert str(error.value) == message


# YAML 1.1 reads unquoted yes, no, on and off (and True, OFF, ...) as true and false.
REDIS = BASE + "consumers: [{name: c, subscribes: [E]}]\nbroker:\n  preset: redis-streams\n"


@pytest.mark.parametrize("written", ["off", "Off", "OFF", "'off'", "false"])
def test_claim_interval_off_loads_unquoted_and_is_written_back_as_off(tmp_path, written):
    path = tmp_path / "s.yaml"
    path.write_text(REDIS + f"  claim_interval: {written}\n")
    scenario = load_scenario(path).scenario
    assert scenario.broker.claim_interval == "off"
    resolved = resolved_scenario_yaml(scenario)
    assert "  claim_interval: 'off'\n" in resolved
    assert validate(parse_yaml(resolved, "resolved.yaml")) == scenario


@pytest.mark.parametrize(
    ("written", "got"),
    [("true", "true"), ("on", "on, which YAML reads as true"), ("Yes", "Yes, which YAML reads as true")],
)
def test_claim_interval_on_is_refused_at_its_place(tmp_path, written, got):
    assert problems(tmp_path, REDIS + f"  claim_interval: {written}\n") == [
        f"7:19: broker.claim_interval: expected a duration such as 5s, or off (got {got})"
    ]


def test_words_yaml_reads_as_booleans_are_named_as_written_where_no_boolean_belongs(tmp_path):
    text = (
        "duration: 10s\nevents: {E: {fields: {k: yes}}}\n"
        "publishers: [{name: p, event: E, rate: no}]\n"
        "broker: {latency: Off}\n"
        "consumers: [{name: c, subscribes: [E], idempotency: no, dedup: {ttl: off}}]\n"
    )
    rate_hint = "expected a number per second or a string such as '800/s', '50/min', '3/h' (per us, ms, s, min or m, h)"
    duration_hint = (
        "expected seconds as a number or a string such as '250ms', '2s', '5min' (units: us, ms, s, min or m, h)"
    )
    assert problems(tmp_path, text) == [
        "2:26: events.E.fields.k: expected field generator as one of constant, uniform_int, choice, zipf, sequence, "
        "written as {kind: {parameters}} (got yes, which YAML reads as true)",
        f"3:40: publishers[0].rate: invalid rate no (YAML reads it as false): {rate_hint}",
        f"4:19: broker.latency: invalid duration Off (YAML reads it as false): {duration_hint}",
        "5:53: consumers[0].idempotency: must be one of 'none' or 'dedup' (got no, which YAML reads as false); "
        "did you mean 'none'?",
        f"5:70: consumers[0].dedup.ttl: invalid duration off (YAML reads it as false): {duration_hint}",
    ]


def test_a_word_yaml_reads_as_a_boolean_in_an_override_is_named_as_written():
    path = SCENARIOS / "flash-sale.yaml"
    loaded = load_scenario(path, ["broker.preset=redis-streams", "broker.claim_interval=off"])
    assert loaded.scenario.broker.claim_interval == "off"
    with pytest.raises(ScenarioError) as error:
        load_scenario(path, ["broker.preset=redis-streams", "broker.claim_interval=on"])
    assert str(error.value) == (
        "--set broker.claim_interval=on: broker.claim_interval: expected a duration such as 5s, or off "
        "(got on, which YAML reads as true)"
    )


def test_a_varied_word_names_its_variant_as_written():
    variants = load_variants(
        [SCENARIOS / "flash-sale.yaml"], ["broker.claim_interval=off,5s"], ["broker.preset=redis-streams"]
    )
    assert [(variant.name, variant.loaded.scenario.broker.claim_interval) for variant in variants] == [
        ("claim_interval=off", "off"),
        ("claim_interval=5s", 5.0),
    ]
    assert variants[0].loaded.overrides == ("broker.preset=redis-streams", "broker.claim_interval=off")


def test_minutes_and_other_spellings_of_units_load_from_a_file(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "duration: 5min\nevents: {E: {}}\npublishers: [{name: p, event: E, rate: 90/m}]\n"
        "broker: {ack_timeout: 2 sec, latency: 3 msec}\nconsumers: [{name: c, subscribes: [E]}]\n"
    )
    scenario = load_scenario(path).scenario
    assert (scenario.duration, scenario.publishers[0].rate[0].rate) == (300.0, 1.5)
    assert (scenario.broker.ack_timeout, scenario.broker.latency.value) == (2.0, 0.003)
