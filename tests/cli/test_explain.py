"""``busim explain``: a run's messages, one by one, from its folder simulated again."""

import json
import re
import shutil

import pytest
from typer.testing import CliRunner

import busim
from busim.analysis.stories import ANOMALY_KINDS
from busim.cli import app
from tests.analysis.test_duplicate_causes import SLOW_PAST_ACK_WAIT, overtaken_originals
from tests.analysis.test_stories import CRASH_AND_LOSS, CRASH_BEFORE_ACK

pytestmark = pytest.mark.xdist_group("explain")  # one worker: the module's shared runs run once

runner = CliRunner()
ANOMALIES = (
    "duplicate_effect, lost, dead_lettered, stuck_pending, wrongly_rejected, wrongly_accepted, out_of_order, failed"
)


def run_folder(tmp_path_factory, scenario, name):
    folder = tmp_path_factory.mktemp(name)
    result = runner.invoke(app, ["run", str(scenario), "--out", str(folder), "--no-charts", "--quiet"])
    assert result.exit_code == 0, result.output
    return folder


@pytest.fixture(scope="module")
def crashed(tmp_path_factory):
    return run_folder(tmp_path_factory, CRASH_BEFORE_ACK, "crashed")


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    return run_folder(tmp_path_factory, CRASH_AND_LOSS, "lossy")


def explain(*arguments):
    return runner.invoke(app, ["explain", *map(str, arguments)])


def test_a_story_names_crash_before_ack_as_the_cause_of_the_duplicate(crashed):
    # As worked out in tests/analysis/test_stories.py: two attempts, each crashing before its ack, then the
    # delivery limit.
    result = explain(crashed, "--message", 1)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "message 1 Job (orderId=2), published by source at 0.250 s",
        "  0.266 s  worker     reached the queue (attempt 1)",
        "  0.266 s  worker #0  received",
        "  0.266 s  worker #0  started processing",
        "  0.328 s  worker #0  applied its effects",
        "  0.328 s  worker #0  crashed after processing it, before acknowledging it",
        "  1.281 s  worker     reached the queue (attempt 2, crash before ack)",
        "  1.281 s  worker #0  received",
        "  1.281 s  worker #0  started processing",
        "  1.344 s  worker #0  applied its effects",
        "  1.344 s  worker #0  crashed after processing it, before acknowledging it",
        "  2.281 s  worker     dead-lettered: the delivery limit refused another attempt after crash before ack",
        "  ! duplicate effect in worker: its effects were applied twice, the second after a redelivery because the "
        "instance crashed before its ack",
        "  ! dead-lettered in worker at 2.281 s after 2 attempts: the delivery limit refused a redelivery because "
        "the instance crashed before its ack; it had been processed",
    ]


def test_a_redelivery_that_finished_before_the_slow_original_is_blamed_on_the_ack_wait(tmp_path_factory):
    # Its duplicate effect is the redelivery's, whichever copy finished first: the story, the anomaly
    # listing and results.json all name the ack wait, none a broker duplicate.
    folder = run_folder(tmp_path_factory, SLOW_PAST_ACK_WAIT, "slow")
    overtaken = overtaken_originals(busim.simulate(busim.load(SLOW_PAST_ACK_WAIT)).record)
    assert overtaken
    told = explain(folder, "--message", overtaken[0])
    assert told.exit_code == 0, told.output
    assert [line for line in told.stdout.splitlines() if line.startswith("  ! duplicate effect")] == [
        "  ! duplicate effect in worker: its effects were applied twice, the second after a redelivery because the "
        "processing outlasted the ack timeout (ack wait)"
    ]
    listed = explain(folder, "--anomaly", "duplicate_effect", "--top", 100)
    assert listed.exit_code == 0, listed.output
    assert "ack wait" in listed.stdout
    assert "broker" not in listed.stdout
    worker = json.loads((folder / "results.json").read_text())["consumers"]["worker"]
    assert worker["by_reason"]["duplicate_effects"] == {"ack_timeout": worker["duplicate_effects"]}


def test_anomaly_tells_the_worst_messages_first(lossy):
    result = explain(lossy, "--anomaly", "duplicate_effect", "--top", 2)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "31 messages show duplicate_effect in worker, most applications first; the first 2:"
    # Messages 8 and 16 were applied three times (tests/analysis/test_stories.py).
    headings = [line for line in lines if line.startswith("message ")]
    assert [heading.split()[1] for heading in headings] == ["8", "16"]
    assert "  ! duplicate effect in worker: its effects were applied 3 times, " in "\n".join(lines)
    assert lines[1] == ""


def test_an_anomaly_no_message_shows_says_so(crashed):
    result = explain(crashed, "--anomaly", "lost")
    assert (result.exit_code, result.stdout) == (0, "No message shows lost in worker.\n")


def test_without_a_question_explain_counts_the_messages_with_each_anomaly(crashed):
    result = explain(crashed)
    assert result.exit_code == 0, result.output
    assert [line.rstrip() for line in result.stdout.splitlines()] == [
        "crash-before-ack, seed 1: 4 messages (ids 0 to 3)",
        "Messages with each anomaly",
        "",
        "  anomaly            worker",
        " ───────────────────────────",
        "  duplicate_effect        4",
        "  lost                    0",
        "  dead_lettered           4",
        "  stuck_pending           0",
        "  wrongly_rejected        0",
        "  wrongly_accepted        0",
        "  out_of_order            0",
        "  failed                  0",
        "",
        "Crashes in worker (8): #0 at 0.078 s, #0 at 0.328 s, #0 at 0.578 s, #0 at 0.828 s, #0 at 1.094 s, "
        "#0 at 1.344 s, #0 at 1.594 s, #0 at 1.844 s.",
        f"busim explain {crashed} --message ID tells a message's story;",
        f"busim explain {crashed} --anomaly KIND tells the stories of the 5 worst messages with that anomaly "
        "(--top N for more, --consumer NAME for one consumer); busim explain --help says the order of each.",
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--message", "4"], "no message 4 in this run: its messages are 0 to 3"),
        (
            ["--anomaly", "duplicate"],
            f"unknown anomaly 'duplicate'; did you mean 'duplicate_effect'? (anomalies: {ANOMALIES})",
        ),
        (["--consumer", "worke"], "unknown consumer 'worke'; did you mean 'worker'? (consumers: worker)"),
        (["--message", "1", "--anomaly", "lost"], "give --message or --anomaly, not both"),
    ],
)
def test_a_bad_question_exits_2_with_one_line(crashed, arguments, message):
    result = explain(crashed, *arguments)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == f"busim: {message}\n"


def test_a_folder_that_is_not_a_run_is_refused(tmp_path, crashed):
    missing = tmp_path / "nowhere"
    result = explain(missing)
    assert (result.exit_code, result.stderr) == (
        2,
        f"busim: {missing}: no such folder; give the output folder of a busim run\n",
    )
    empty = explain(tmp_path)
    assert (empty.exit_code, empty.stderr) == (
        2,
        f"busim: {tmp_path}: no results.json here; give the output folder of a busim run\n",
    )
    partial = tmp_path / "partial"
    shutil.copytree(crashed, partial)
    (partial / "scenario.yaml").unlink()
    result = explain(partial)
    assert (result.exit_code, result.stderr) == (
        2,
        f"busim: {partial}: no scenario.yaml here; give the output folder of a busim run\n",
    )
    gutted = tmp_path / "gutted"
    shutil.copytree(crashed, gutted)
    (gutted / "results.json").write_text('{"schema": "busim.result/1"}')
    result = explain(gutted)
    assert (result.exit_code, result.stderr) == (
        2,
        f"busim: {gutted / 'results.json'}: scenario: missing; the file was written by another version of busim, "
        "or edited\n",
    )


def test_a_replicated_run_is_refused(tmp_path):
    folder = tmp_path / "replicated"
    ran = runner.invoke(app, ["run", str(CRASH_BEFORE_ACK), "--out", str(folder), "--quiet", "--replications", "2"])
    assert ran.exit_code == 0, ran.output
    seed = json.loads((folder / "results.json").read_text())["seeds"][0]
    result = explain(folder)
    assert result.exit_code == 2
    assert result.stderr == (
        f"busim: {folder}: holds 2 replications; explain needs a single run "
        f"(run one of them with --seed, e.g. --seed {seed})\n"
    )


def test_a_folder_whose_results_the_scenario_does_not_give_again_is_refused(tmp_path, crashed):
    edited = tmp_path / "edited"
    shutil.copytree(crashed, edited)
    results = edited / "results.json"
    document = json.loads(results.read_text())
    assert document["consumers"]["worker"]["delivered"] == 8
    document["consumers"]["worker"]["delivered"] = 9
    results.write_text(json.dumps(document))
    result = explain(edited, "--message", 1)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"busim: {edited}: simulating its scenario.yaml again does not give its results.json (worker delivered: "
        "9 there, 8 now); it was written by another version of busim, or edited\n"
    )


def test_consumer_keeps_to_one_consumer(tmp_path):
    # Two consumers of the same messages: billing crashes before every ack, shipping never does.
    source = CRASH_BEFORE_ACK.read_text()
    billing = source[source.index("  - name: worker") :].replace("worker", "billing")
    shipping = billing.replace("billing", "shipping").replace("    crash: {probability: 1, restart_after: 0s}\n", "")
    path = tmp_path / "two.yaml"
    path.write_text(source[: source.index("  - name: worker")] + billing + shipping)
    folder = tmp_path / "run"
    assert runner.invoke(app, ["run", str(path), "--out", str(folder), "--no-charts", "--quiet"]).exit_code == 0
    both = explain(folder).stdout.splitlines()
    assert [both[3].rstrip(), both[5].rstrip()] == [
        "  anomaly            billing   shipping",
        "  duplicate_effect         4          0",
    ]
    shipping_only = explain(folder, "--consumer", "shipping").stdout.splitlines()
    assert [shipping_only[3].rstrip(), shipping_only[5].rstrip()] == [
        "  anomaly            shipping",
        "  duplicate_effect          0",
    ]
    story = explain(folder, "--message", 1, "--consumer", "shipping").stdout.splitlines()
    assert story[1:] == [
        "  0.266 s  shipping     reached the queue (attempt 1)",
        "  0.266 s  shipping #0  received",
        "  0.266 s  shipping #0  started processing",
        "  0.328 s  shipping #0  applied its effects",
        "  no anomaly",
    ]
    assert explain(folder, "--anomaly", "duplicate_effect", "--consumer", "shipping").stdout == (
        "No message shows duplicate_effect in shipping.\n"
    )
    listed = explain(folder, "--anomaly", "duplicate_effect", "--top", 1).stdout.splitlines()
    assert listed[0] == "4 messages show duplicate_effect in any consumer, most applications first; the first:"


@pytest.fixture(scope="module")
def flash_sale_stories():
    """The flash sale's run, and its messages' stories."""
    from busim.analysis.stories import Stories
    from tests.conftest import simulated

    result = simulated("flash-sale.yaml")
    return result, Stories(result.record)


def test_every_anomaly_kind_the_readme_lists_is_accepted_and_counted_as_results_json_counts_it(flash_sale_stories):
    from busim.report.stories import anomaly_kind
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    listed = re.search(r"`--anomaly duplicate_effect` \(or (.*?)\) tells", readme, re.DOTALL).group(1)
    kinds = ["duplicate_effect", *re.findall(r"`(\w+)`", listed)]
    assert kinds == list(ANOMALY_KINDS)
    assert [anomaly_kind(kind) for kind in kinds] == kinds
    result, stories = flash_sale_stories
    inventory = result.to_dict()["consumers"]["inventory"]
    counts = stories.counts()["inventory"]
    # Messages, where duplicate_effects counts the applications beyond the first: 8 messages applied twice.
    figure = {"duplicate_effect": "duplicate_effects", "failed": None}  # the flash sale's processing never fails
    assert counts == {kind: inventory[figure.get(kind, kind)] if figure.get(kind, kind) else 0 for kind in kinds}
    assert counts["wrongly_accepted"] == 17


@pytest.mark.parametrize("spelling", ["wrongly accepted", "wrongly-accepted", "Wrongly_Accepted", "wrongly_accepted"])
def test_an_anomaly_may_be_named_as_the_console_writes_it(crashed, spelling):
    result = explain(crashed, "--anomaly", spelling)
    assert (result.exit_code, result.stdout) == (0, "No message shows wrongly_accepted in worker.\n")


def test_out_of_order_messages_are_listed_longest_overtaken_first(flash_sale_stories):
    _, stories = flash_sale_stories
    worst = stories.with_anomaly("out_of_order")[:20].tolist()
    anomalies = [stories.story(message).anomalies[-1] for message in worst]
    assert {anomaly.kind for anomaly in anomalies} == {"out_of_order"}
    lags_s = [anomaly.time_s - anomaly.overtaken_s for anomaly in anomalies]
    assert lags_s == sorted(lags_s, reverse=True)
    assert worst[:3] == [22446, 22443, 22458]
