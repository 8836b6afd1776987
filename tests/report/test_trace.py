"""trace.jsonl and the Chrome trace, checked on a hand-worked run and for the shape viewers need."""

import io
import itertools
import json
from collections import defaultdict

import busim
from busim.report.trace import write_chrome_trace, write_trace_lines
from tests.analysis.test_stories import crashing_and_losing, crashing_before_every_ack
from tests.conftest import consumer, scenario


def trace_lines(result):
    out = io.StringIO()
    write_trace_lines(result.record, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def chrome_trace(result):
    out = io.StringIO()
    write_chrome_trace(result.record, out)
    return json.loads(out.getvalue())


def test_each_message_has_one_line_with_its_deliveries_in_every_consumer():
    lines = trace_lines(crashing_before_every_ack())
    assert [line["id"] for line in lines] == [0, 1, 2, 3]
    # Message 1 as worked out in tests/analysis/test_stories.py: two attempts, each crashing before its ack.
    assert lines[1] == {
        "id": 1,
        "event": "Job",
        "publisher": "source",
        "caused_by": None,
        "key": 2,
        "fields": {"orderId": 2},
        "published_s": 0.25,
        "accepted_s": 0.25,
        "resends": [],
        "consumers": {
            "worker": {
                "deliveries": [
                    {
                        "attempt": 1,
                        "cause": "first",
                        "instance": 0,
                        "arrival_s": 0.265625,
                        "receive_s": 0.265625,
                        "take_s": 0.265625,
                        "done_s": 0.328125,
                        "outcome": "applied",
                        "crashed": True,
                    },
                    {
                        "attempt": 2,
                        "cause": "crash_before_ack",
                        "instance": 0,
                        "arrival_s": 1.28125,
                        "receive_s": 1.28125,
                        "take_s": 1.28125,
                        "done_s": 1.34375,
                        "outcome": "applied",
                        "crashed": True,
                    },
                ],
                "lost": None,
                "dead_lettered": {"at_s": 2.28125, "cause": "crash_before_ack"},
                "stuck_pending": None,
            }
        },
    }


def test_absent_times_are_null_and_losses_say_why():
    # At-most-once over a lossy broker: a lost message has no delivery, and its loss names the reason.
    result = busim.simulate(scenario(broker={"delivery": "at-most-once", "loss": 0.2}))
    lines = trace_lines(result)
    lost = [line for line in lines if line["consumers"]["worker"]["lost"]]
    assert len(lost) == result.summary.consumers["worker"].lost > 0
    assert {line["consumers"]["worker"]["lost"]["reason"] for line in lost} == {"transit_loss"}
    assert all(line["consumers"]["worker"]["deliveries"] == [] for line in lost)
    # A 5 s outage from 2 s, and publishers that retry once after 1 s: messages published before 6 s fail
    # (no acceptance time, lost), the others are accepted when the broker is back at 7 s.
    retrying_once = {"retries": 1, "publish_timeout": 1}
    failing = busim.simulate(
        scenario(
            broker={"outages": [{"at": "2s", "duration": "5s"}]},
            publishers=[{"name": "source", "event": "Job", "arrivals": "uniform", "rate": 10, **retrying_once}],
        )
    )
    lines = trace_lines(failing)
    assert (lines[20]["published_s"], lines[20]["accepted_s"]) == (2.0, None)
    assert lines[20]["consumers"]["worker"] == {
        "deliveries": [],
        "lost": {"at_s": 2.0, "reason": "publish_failed"},
        "dead_lettered": None,
        "stuck_pending": None,
    }
    assert (lines[65]["published_s"], lines[65]["accepted_s"]) == (6.5, 7.0)
    assert lines[65]["consumers"]["worker"]["deliveries"][0]["arrival_s"] == 7.0


def test_a_consumer_that_does_not_subscribe_has_no_entry():
    result = busim.simulate(
        scenario(
            events={"Job": {}, "Other": {}},
            publishers=[
                {"name": "source", "event": "Job", "arrivals": "uniform", "rate": 1},
                {"name": "elsewhere", "event": "Other", "arrivals": "uniform", "rate": 1},
            ],
        )
    )
    lines = trace_lines(result)
    assert len(lines) == 20
    assert {line["event"]: sorted(line["consumers"]) for line in lines} == {"Job": ["worker"], "Other": []}
    assert {line["key"] for line in lines} == {None}


def test_the_chrome_trace_names_every_process_and_track_in_scenario_order():
    document = chrome_trace(crashing_before_every_ack())
    assert document["displayTimeUnit"] == "ms"
    metadata = [event for event in document["traceEvents"] if event["ph"] == "M"]
    names = {(event["name"], event["pid"], event["tid"]): event["args"] for event in metadata}
    assert names[("process_name", 1, 1)] == {"name": "source"}
    assert names[("process_sort_index", 1, 1)] == {"sort_index": 1}
    assert names[("thread_name", 1, 1)] == {"name": "source"}
    assert names[("process_name", 2, 3)] == {"name": "worker"}
    assert names[("process_sort_index", 2, 3)] == {"sort_index": 2}
    assert names[("thread_name", 2, 2)] == {"name": "worker #0"}
    assert names[("thread_name", 2, 3)] == {"name": "worker queue"}
    # Every event sits on a named process and a named track.
    tracks = {(event["pid"], event["tid"]) for event in metadata if event["name"] == "thread_name"}
    processes = {event["pid"] for event in metadata if event["name"] == "process_name"}
    for event in document["traceEvents"]:
        assert event["pid"] in processes and (event["pid"], event["tid"]) in tracks


def test_a_slice_per_processing_in_microseconds_and_instants_for_publishes_crashes_and_dead_letters():
    events = chrome_trace(crashing_before_every_ack())["traceEvents"]
    slices = [event for event in events if event["ph"] == "X"]
    assert all({"ts", "dur", "pid", "tid", "name"} <= set(event) for event in slices)
    # Whole microseconds, which Perfetto turns into nanoseconds without rounding errors.
    assert all(type(event["ts"]) is int for event in events if event["ph"] != "M")
    assert all(type(event["dur"]) is int for event in slices)
    # Message 1's two processings: from 0.265625 s and 1.28125 s, 1/16 s each.
    assert [(event["ts"], event["dur"], event["args"]) for event in slices if event["args"]["message"] == 1] == [
        (265625, 62500, {"message": 1, "attempt": 1, "cause": "first", "outcome": "applied"}),
        (1281250, 62500, {"message": 1, "attempt": 2, "cause": "crash_before_ack", "outcome": "applied"}),
    ]
    instants = defaultdict(list)
    for event in events:
        if event["ph"] == "i":
            instants[event["cat"]].append(event["ts"])
    assert instants["publish"] == [0, 250000, 500000, 750000]
    # Each message's two processings crash as they end: 1/64 + 1/16 s after its publish, and 1 s after that.
    ends_us = [(publish_us + 78125, publish_us + 1093750) for publish_us in instants["publish"]]
    assert sorted(instants["crash"]) == sorted(end for pair in ends_us for end in pair)
    assert instants["dead letter"] == [2031250, 2281250, 2531250, 2781250]


def test_flows_run_from_each_publish_through_every_processing_of_the_message():
    events = chrome_trace(crashing_and_losing())["traceEvents"]
    flows = defaultdict(list)
    for index, event in enumerate(events):
        if event["ph"] in "stf":
            flows[event["id"]].append((index, event))
    slices = [event for event in events if event["ph"] == "X"]
    processed = {event["args"]["message"] for event in slices}
    assert len(flows) == len(processed)
    for chain in flows.values():
        phases = [event["ph"] for _, event in chain]
        # One start, steps, one end, in time order: a redelivery hangs on the attempt before it.
        assert phases == ["s", *["t"] * (len(phases) - 2), "f"]
        assert [event["ts"] for _, event in chain] == sorted(event["ts"] for _, event in chain)
        assert chain[-1][1]["bp"] == "e"
        start_index, start = chain[0]
        # The start follows the publish it binds to; each step and end follows its processing.
        publish = events[start_index - 1]
        assert (publish["cat"], publish["ts"], publish["tid"]) == ("publish", start["ts"], start["tid"])
        for index, event in chain[1:]:
            enclosing = events[index - 1]
            assert enclosing["ph"] == "X"
            assert (enclosing["ts"], enclosing["pid"], enclosing["tid"]) == (event["ts"], event["pid"], event["tid"])
    assert sum(len(chain) - 1 for chain in flows.values()) == len(slices)


def test_overlapping_processings_of_one_instance_go_on_separate_tracks():
    # Two workers on one instance, each processing for 1 s while messages arrive every 0.1 s.
    result = busim.simulate(scenario(consumers=[consumer(concurrency=2, processing_time="1s")]))
    events = chrome_trace(result)["traceEvents"]
    names = {event["tid"]: event["args"]["name"] for event in events if event["name"] == "thread_name"}
    by_track = defaultdict(list)
    for event in events:
        if event["ph"] == "X":
            by_track[event["tid"]].append((event["ts"], event["ts"] + event["dur"]))
    assert sorted(names[tid] for tid in by_track) == ["worker #0 worker 0", "worker #0 worker 1"]
    for spans in by_track.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert sum(map(len, by_track.values())) == 100


def test_back_to_back_processings_never_overlap_on_a_track():
    # One busy worker: each processing starts the instant the one before it ends, at times with no exact
    # decimal form. Rounded apart, an end could pass the next start and break the track's nesting.
    result = busim.simulate(scenario(consumers=[consumer(processing_time={"exponential": {"mean": "150ms"}})]))
    slices = sorted(
        (event["ts"], event["ts"] + event["dur"]) for event in chrome_trace(result)["traceEvents"] if event["ph"] == "X"
    )
    back_to_back = sum(end == next_start for (_, end), (next_start, _) in itertools.pairwise(slices))
    assert back_to_back > 50
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(slices))
