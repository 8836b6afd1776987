"""Shell completion: the script Typer installs, and what it completes."""

from typer.testing import CliRunner

from busim.cli import app


def test_show_completion_prints_a_bash_completion_script(monkeypatch):
    # Typer guesses the shell from the process's ancestors, which differ from one test run to another; named, it
    # takes the shell given. Typer reads the switch as it builds the command, before CliRunner applies ``env``.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    shown = CliRunner().invoke(app, ["--show-completion", "bash"], env={"SHELL": "/bin/bash"}, prog_name="busim")
    assert shown.exit_code == 0, shown.output
    assert "complete -o default -F _busim_completion busim" in shown.output
    assert "_BUSIM_COMPLETE=complete_bash" in shown.output


def test_install_completion_is_an_option():
    helped = CliRunner().invoke(app, ["--help"], prog_name="busim")
    assert "--install-completion" in helped.output
    assert "--show-completion" in helped.output


def _completed(words: str) -> list[str]:
    """What bash completion offers for the last of ``words``."""
    parts = words.split(" ")
    env = {"_BUSIM_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    completed = CliRunner().invoke(app, [], env=env, prog_name="busim")
    assert completed.exit_code == 0, completed.output
    return completed.output.split()


def test_completion_offers_commands_presets_and_anomaly_kinds():
    assert _completed("busim pre") == ["presets"]
    assert _completed("busim presets rabbit") == ["rabbitmq", "rabbitmq-quorum"]
    assert _completed("busim explain runs/x --anomaly wrongly") == ["wrongly_rejected", "wrongly_accepted"]
