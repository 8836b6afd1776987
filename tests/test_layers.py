"""The simulation core stays pure: a notebook can simulate without the CLI's libraries."""

import subprocess
import sys

from tests.conftest import SCENARIOS


def test_simulating_through_the_api_loads_neither_rich_nor_matplotlib_nor_typer_nor_jinja():
    code = (
        "import sys, busim\n"
        f"result = busim.simulate(busim.load({str(SCENARIOS / 'flash-sale.yaml')!r}))\n"
        "assert result.summary.consumers['inventory'].processed > 0\n"
        "print(sorted(m for m in ('rich', 'matplotlib', 'typer', 'click', 'jinja2') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_engine_alone_loads_none_of_the_rendering_libraries():
    code = "import sys, busim.engine\nprint(sorted(m for m in ('rich', 'matplotlib', 'typer') if m in sys.modules))\n"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_a_command_that_writes_no_report_loads_no_templates():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom busim.cli import app\n"
        f"assert CliRunner().invoke(app, ['validate', {str(SCENARIOS / 'flash-sale.yaml')!r}]).exit_code == 0\n"
        "print('jinja2' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"


def test_drawing_charts_loads_no_terminal_library():
    code = (
        "import sys, busim, busim.report.charts as charts\n"
        "charts.write_charts\n"
        "print(sorted(m for m in ('rich', 'typer', 'click') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_simulating_loads_none_of_the_brokers_clients():
    code = (
        "import sys, busim\n"
        f"busim.simulate(busim.load({str(SCENARIOS / 'flash-sale.yaml')!r}))\n"
        "from typer.testing import CliRunner\nfrom busim.cli import app\n"
        f"assert CliRunner().invoke(app, ['validate', {str(SCENARIOS / 'flash-sale.yaml')!r}]).exit_code == 0\n"
        "print(sorted(m for m in ('aio_pika', 'aiormq', 'redis', 'nats', 'psycopg') if m in sys.modules))\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"
