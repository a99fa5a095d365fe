"""The pyinfra command stops on invalid cluster data before it connects to any host."""

import shutil
from pathlib import Path

from click.testing import CliRunner
from pyinfra_cli.main import cli

PROJECT = Path(__file__).resolve().parents[2]


def run_pyinfra(site: Path, monkeypatch):
    """Run `pyinfra -y inventory.py deploy.py` in the site folder with the project's config.py."""
    shutil.copy(PROJECT / "config.py", site / "config.py")
    (site / "deploy.py").write_text('raise AssertionError("deploy.py ran")\n')
    monkeypatch.chdir(site)
    return CliRunner().invoke(cli, ["-y", "inventory.py", "deploy.py"])


def test_invalid_data_stops_before_connecting(site, monkeypatch):
    all_py = site / "group_data" / "all.py"
    all_py.write_text(all_py.read_text() + 'message_size_limit = "big"\n')

    result = run_pyinfra(site, monkeypatch)

    assert result.exit_code == 1
    assert "Connecting to hosts" not in result.output
    assert "group_data/all.py" in result.output
    assert "message_size_limit" in result.output


def test_valid_data_goes_on_to_connect(site, monkeypatch):
    result = run_pyinfra(site, monkeypatch)

    # The unit tests' guard refuses the connection, so the run fails there, after validation.
    assert "Connecting to hosts" in result.output
    assert "invalid cluster data" not in result.output
