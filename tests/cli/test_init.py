"""busim init: a commented starter scenario that runs as it is, on any preset."""

import pytest
from typer.testing import CliRunner

import busim
from busim.cli import app
from busim.scenario.json_schema import SCHEMA_FILE
from busim.scenario.presets import PRESET_NAMES
from busim.scenario.starter import MODELINE
from tests.conftest import ROOT

runner = CliRunner()


def test_init_writes_orders_yaml_which_validates_and_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init"])
    assert (result.exit_code, result.stdout) == (0, "Wrote orders.yaml: run it with busim run orders.yaml\n")
    text = (tmp_path / "orders.yaml").read_text(encoding="utf-8")
    assert text.splitlines()[0] == f"{MODELINE}{SCHEMA_FILE.resolve().as_posix()}"
    assert runner.invoke(app, ["validate", "orders.yaml"]).stdout == "orders.yaml: ok\n"
    ran = runner.invoke(app, ["run", "orders.yaml", "--no-charts", "-q"])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "runs" / "orders" / "latest" / "results.json").exists()
    assert (tmp_path / "orders.yaml").read_text(encoding="utf-8") == text  # its comments stay where they were


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_the_starter_runs_on_every_preset(tmp_path, monkeypatch, preset):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["init", f"on-{preset}", "--preset", preset])
    assert result.exit_code == 0, result.output
    scenario = busim.load(tmp_path / f"on-{preset}.yaml")
    assert (scenario.name, scenario.broker.preset) == (f"on-{preset}", preset)
    inventory = busim.simulate(scenario).summary.consumers["inventory"]
    assert inventory.processed == 2_985  # the same orders, whatever the broker
    text = (tmp_path / f"on-{preset}.yaml").read_text(encoding="utf-8")
    assert f"`busim presets {preset}` lists this preset's keys" in text


def test_every_key_of_the_starter_is_commented():
    from busim.scenario.starter import starter_text

    text = starter_text("orders", "kafka", "scenario.schema.json")
    keys = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    uncommented = [line for line in keys if "  # " not in line and not line.startswith(("  ", "description"))]
    assert uncommented == []
    assert "  # partitions: 6  # judgement: a typical topic\n" in text  # the preset's own keys, at their defaults
    assert "# Every key and its meaning: `busim schema` (and docs/scenarios.md in busim's source); the\n" in text


def test_init_takes_a_file_name_or_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scenarios").mkdir()
    assert runner.invoke(app, ["init", "scenarios/checkout.yml"]).exit_code == 0
    assert busim.load(tmp_path / "scenarios" / "checkout.yml").name == "checkout"
    # Folders that are not there yet are made.
    made = runner.invoke(app, ["init", "new/deeper/checkout"])
    assert (made.exit_code, made.stdout) == (
        0,
        "Wrote new/deeper/checkout.yaml: run it with busim run new/deeper/checkout.yaml\n",
    )
    assert busim.load(tmp_path / "new" / "deeper" / "checkout.yaml").name == "checkout"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["orders"], "busim: orders.yaml already exists; give another NAME, or move it away first\n"),
        (
            ["--preset", "kafak"],
            "busim: unknown preset 'kafak'; did you mean 'kafka'? (presets: ideal, kafka, rabbitmq, "
            "rabbitmq-quorum, sqs-standard, sqs-fifo, sns-sqs, nats-jetstream, redis-streams)\n",
        ),
        (
            ["my.orders"],
            "busim: 'my.orders' cannot name a scenario: use letters, digits and _ : -, not starting with : or -\n",
        ),
    ],
)
def test_init_refuses_to_overwrite_an_unknown_preset_or_a_bad_name(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orders.yaml").write_text("mine\n")
    result = runner.invoke(app, ["init", *arguments])
    assert (result.exit_code, result.stderr) == (2, message)
    assert (tmp_path / "orders.yaml").read_text() == "mine\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["orders.yaml"]


def test_the_help_points_a_new_user_at_init_first():
    helped = runner.invoke(app, ["--help"], prog_name="busim")
    commands = helped.output.split("Commands:\n", 1)[1].split()
    assert commands[0] == "init"
    assert "New here? busim init writes a scenario to start from; busim run FILE" in helped.output


def test_the_readmes_modeline_is_what_init_writes_in_an_editable_install_of_the_checkout():
    from busim.scenario.starter import schema_reference

    # README: pip install -e . and busim init checkout, at the checkout's root.
    schema = schema_reference(ROOT / "checkout.yaml", ROOT / "busim" / "scenario" / "scenario.schema.json")
    assert f"\n{MODELINE}{schema}\n" in (ROOT / "README.md").read_text(encoding="utf-8")
