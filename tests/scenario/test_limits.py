"""Input that once crashed the loader or ran away: each case is refused with its place, within the limits.

Large and deep inputs are generated here, never kept as files.
"""

import os
import sys
import time

import pytest

from busim.errors import OverrideError, ScenarioError, ScenarioFileError
from busim.scenario import load_scenario
from busim.scenario.flows import Flow, find_loop, stages
from busim.scenario.loader import MAX_SCENARIO_BYTES, apply_override, parse_yaml, validate
from tests.conftest import SCENARIOS

FLASH_SALE = SCENARIOS / "flash-sale.yaml"
VALID = """\
duration: 10s
events: {E: {}}
publishers: [{name: p, event: E, rate: 10/s}]
consumers: [{name: c, subscribes: [E]}]
"""


def problems(tmp_path, text, overrides=()):
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path, list(overrides))
    return [str(problem).replace(f"{path}:", "") for problem in error.value.problems]


def override_error(assignment):
    with pytest.raises(OverrideError) as error:
        load_scenario(FLASH_SALE, [assignment])
    return str(error.value)


@pytest.mark.parametrize(
    ("character", "named"),
    [
        ("\x00", "the control character U+0000 (NUL)"),
        ("\x07", "the control character U+0007 (BEL)"),
        ("\x7f", "the control character U+007F (DEL)"),
        ("\ufffe", "the character U+FFFE"),
    ],
)
def test_a_character_yaml_refuses_is_located_even_in_a_comment(tmp_path, character, named):
    text = VALID + f"# a comment with {character} in it\n"
    assert problems(tmp_path, text) == [f"5:18: {named} is not allowed in YAML, not even in a comment; remove it"]


def test_a_refused_character_is_located_after_every_kind_of_line_break(tmp_path):
    # PyYAML counts \r\n as one break and \r, NEL and LINE SEPARATOR as breaks too.
    text = "a: 1\r\nb: 2\rc: 3\x85d: 4\u2028e: \x00\n"
    assert problems(tmp_path, text)[0].startswith("5:4: the control character U+0000 (NUL)")


def test_an_integer_python_will_not_read_is_refused_at_its_place(tmp_path):
    text = VALID + "seed: " + "9" * 5000 + "\n"
    assert problems(tmp_path, text) == [
        "5:7: seed: integers must lie within ±2^63 (got 99999999999999999999…, 5,000 characters long)"
    ]


@pytest.mark.parametrize("written", ["0x" + "f" * 1500, "1" + ":59" * 1000])
def test_an_integer_too_long_to_print_is_refused_however_it_is_written(tmp_path, written):
    # Hexadecimal and base 60 escape int()'s digit limit, but not str()'s, which messages use.
    (problem,) = problems(tmp_path, VALID + f"seed: {written}\n")
    assert problem.startswith("5:7: seed: integers must lie within ±2^63 (got ")


def test_an_integer_beyond_a_float_is_refused_where_a_duration_belongs(tmp_path):
    text = VALID.replace("duration: 10s", "duration: " + "9" * 350)
    assert problems(tmp_path, text) == [f"1:11: duration: a duration must be finite (got {'9' * 350})"]


def test_an_integer_beyond_a_float_is_refused_as_a_limit_on_a_metric():
    # Found by tests/scenario/test_fuzz.py: math.isfinite failed on it.
    invariant = "invariants=[{name: i, consumer: payment, max: {duplicate_effects: %s}}]" % ("9" * 350)
    with pytest.raises(ScenarioError) as error:
        load_scenario(SCENARIOS / "order-pipeline.yaml", [invariant])
    assert str(error.value).endswith(
        f": invariants[0].max.duplicate_effects: integers must lie within ±2^63 (got {'9' * 350})"
    )


def test_an_integer_python_will_not_read_is_refused_in_an_override():
    assert override_error("seed=" + "9" * 5000) == (
        f"--set seed={'9' * 55}…: seed: integers must lie within ±2^63 "
        "(got 99999999999999999999…, 5,000 characters long)"
    )


def test_flow_nesting_beyond_the_limit_is_refused(tmp_path):
    text = VALID + "seed: " + "[" * 500 + "]" * 500 + "\n"
    assert problems(tmp_path, text) == ["5:106: lists and mappings nest more than 100 levels deep"]


def test_block_nesting_beyond_the_limit_is_refused(tmp_path):
    text = VALID + "seed:\n" + "- " * 3000 + "x\n"
    assert problems(tmp_path, text) == ["6:199: lists and mappings nest more than 100 levels deep"]


def test_nesting_at_the_limit_is_read(tmp_path):
    # The top-level mapping is the first level.
    text = VALID + "x-deep: " + "[" * 99 + "]" * 99 + "\n"
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert load_scenario(path).scenario.name == "s"


def test_nesting_beyond_the_limit_is_refused_in_an_override():
    assert override_error("duration=" + "[" * 500 + "]" * 500) == (
        f"--set duration={'[' * 51}…: lists and mappings nest more than 100 levels deep"
    )


def test_an_override_key_cannot_create_mappings_beyond_the_limit():
    assert override_error("x-a" + ".a" * 150 + "=1").endswith(": the key has more than 100 parts")


def test_aliases_cannot_nest_beyond_the_limit(tmp_path):
    lines = ["x-a0: &a0 [1]", *(f"x-a{i}: &a{i} [*a{i - 1}]" for i in range(1, 300))]
    assert problems(tmp_path, VALID + "\n".join(lines) + "\n") == [
        "5:7: lists and mappings nest more than 100 levels deep once aliases are expanded"
    ]


def test_merges_cannot_nest_beyond_the_limit(tmp_path):
    lines = ["x-m0: &m0 {a: 1}", *(f"x-m{i}: &m{i} {{<<: *m{i - 1}}}" for i in range(1, 3000))]
    assert problems(tmp_path, VALID + "\n".join(lines) + "\n") == ["5:7: merges (<<) nest more than 100 levels deep"]


def test_a_merge_key_bomb_is_refused_as_its_pairs_are_counted(tmp_path):
    lines = ["x-m0: &m0 {a: 1, b: 2}"]
    lines += [f"x-m{i}: &m{i} {{<<: [{', '.join([f'*m{i - 1}'] * 10)}]}}" for i in range(1, 11)]
    text = VALID + "\n".join(lines) + "\n"
    assert len(text) < 1100
    started = time.process_time()  # CPU time: what the bomb would cost, whatever else the machine runs
    assert problems(tmp_path, text) == ["6:7: the file expands to more than 100,000 values through its aliases"]
    assert time.process_time() - started < 5


def test_a_file_of_too_many_values_is_refused_as_it_is_read(tmp_path):
    text = VALID + "x-many: [" + "1, " * 200_000 + "1]\n"
    started = time.process_time()  # CPU time: what reading costs, whatever else the machine runs
    assert problems(tmp_path, text) == [
        "5:299932: the file holds more than 100,000 values; a large scenario has a few thousand"
    ]
    assert time.process_time() - started < 10


def test_a_publishers_event_that_is_a_list_is_one_problem(tmp_path):
    text = VALID.replace("event: E", "event: [E]")
    assert problems(tmp_path, text) == ["3:31: publishers[0].event: expected a string (got a list)"]


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("publishers", "[{name: [p], event: {E: 1}, rate: 10/s, retries: [1]}]"),
        ("consumers", "[{name: [c], subscribes: [[E], {E: 1}], emits: [{event: [E]}], queries: {counter: [x]}}]"),
        ("consumers", "[{name: c, subscribes: [E], state: [x], effects: [{counter: [x], key: {k: 1}, add: [1]}]}]"),
        ("invariants", "[{name: [i], consumer: [c], counter: {x: 1}, max: [1]}]"),
        ("events", "{E: {key: [k], fields: [a]}}"),
        ("broker", "{publish_ack_loss: 1, outages: [{at: [1]}]}"),
    ],
)
def test_lists_and_mappings_where_names_belong_are_reported_not_hashed(tmp_path, where, value):
    lines = [line for line in VALID.splitlines() if not line.startswith(f"{where}:")]
    messages = problems(tmp_path, "\n".join([*lines, f"{where}: {value}"]) + "\n")
    assert messages and all(": " in message for message in messages)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2024-13-45", "seed: cannot read '2024-13-45' as a date or time: month must be in 1..12"),
        (
            "2001-12-14t21:59:43.10-99:00",
            "seed: cannot read '2001-12-14t21:59:43.10-99:00' as a date or time: "
            "its offset from UTC must be under 24 hours",
        ),
        ("!!int abc", "seed: cannot read 'abc' as a whole number"),
        ("!!float abc", "seed: cannot read 'abc' as a number"),
        ("!!bool abc", "seed: cannot read 'abc' as true or false"),
        ("!!timestamp abc", "seed: cannot read 'abc' as a date or time"),
    ],
)
def test_a_scalar_its_tag_cannot_read_is_refused_at_its_place(tmp_path, value, message):
    assert problems(tmp_path, VALID + f"seed: {value}\n") == [f"5:7: {message}"]


def test_a_list_or_a_mapping_as_a_key_is_refused(tmp_path):
    assert problems(tmp_path, VALID + "? [a, b]\n: 1\n") == [
        "5:3: a key must be a single value, not a list or a mapping"
    ]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * MAX_SCENARIO_BYTES + b"\n")
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(path)
    assert str(error.value) == (
        f"{path}: is {MAX_SCENARIO_BYTES + 3:,} bytes, larger than the 4 MiB (4,194,304 bytes) a scenario file may hold"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_being_opened(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)  # opening it to read would block until a writer came
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(path)
    assert str(error.value) == f"{path}: is a FIFO, not a regular file; give a scenario file"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused(device):
    with pytest.raises(ScenarioFileError) as error:
        load_scenario(device)
    assert str(error.value) == f"{device}: is a character device, not a regular file; give a scenario file"


def test_a_file_that_is_not_utf8_is_refused_at_its_first_bad_byte(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.encode() + "description: café\n".encode("latin-1"))
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert (
        str(error.value) == f"{path}:5:17: is not UTF-8 text (byte 0xE9: invalid continuation byte); save it as UTF-8"
    )


def test_a_chain_of_thousands_of_consumers_is_checked_without_recursion(tmp_path):
    count = 1500  # more than Python's recursion limit of 1000
    lines = ["duration: 1s", "events:", *(f"  E{i}: {{}}" for i in range(count + 1))]
    lines += ["publishers: [{name: p, event: E0, rate: 1}]", "consumers:"]
    lines += [f"  - {{name: c{i}, subscribes: [E{i}], emits: [{{event: E{i + 1}}}]}}" for i in range(count)]
    path = tmp_path / "chain.yaml"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    assert len(load_scenario(path).scenario.consumers) == count
    assert time.perf_counter() - started < 10
    lines[-1] = lines[-1].replace(f"E{count}", "E0")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ScenarioError) as error:
        load_scenario(path)
    assert "consumers[0].emits: event chains loop: c0 emits E1 to c1, c1 emits E2 to c2" in str(error.value)


def test_stages_and_loops_of_a_long_chain_need_no_recursion():
    limit = sys.getrecursionlimit()
    flows = [Flow(f"c{i}", (f"E{i}",), (f"E{i + 1}",)) for i in range(limit * 2)]
    assert stages(list(reversed(flows))) == [[f"c{i}"] for i in range(limit * 2)]
    assert find_loop(flows) is None
    looped = [*flows[:-1], Flow(flows[-1].consumer, flows[-1].subscribes, ("E0",))]
    assert find_loop(looped) == [*(flow.consumer for flow in looped), "c0"]


def test_an_override_reads_its_value_with_the_files_checks():
    document = parse_yaml(FLASH_SALE.read_text(), str(FLASH_SALE))
    apply_override(document, "seed={a: 1, a: 2}")
    with pytest.raises(ScenarioError) as error:
        validate(document)
    assert [str(problem) for problem in error.value.problems] == [
        "--set seed={a: 1, a: 2}: seed: expected a whole number (got a mapping)",
        "--set seed={a: 1, a: 2}: seed.a: duplicate key 'a'",
    ]
    assert override_error("seed=a\x07") == (
        "--set seed=a\\x07: the control character U+0007 (BEL) is not allowed in YAML, not even in a comment; remove it"
    )


def test_the_limits_are_documented():
    from busim.scenario import loader
    from tests.conftest import ROOT

    section = (
        (ROOT / "docs" / "scenarios.md").read_text().split("### Limits of a scenario file", 1)[1].split("\n#", 1)[0]
    )
    assert f"| file size | {loader.MAX_SCENARIO_BYTES // 2**20} MiB;" in section
    assert f"| values | {loader.MAX_YAML_VALUES:,} keys" in section
    assert f"| nesting | {loader.MAX_YAML_DEPTH} levels" in section
    assert f"| integers | {loader.MAX_INTEGER_DIGITS} digits" in section
