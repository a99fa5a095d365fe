"""Reading pyinfra's results table, which molecule's idempotence step relies on."""

import pytest

from mailfleet import harness
from mailfleet.containers import HarnessError

# The end of pyinfra 3's results table, as it logs it to stderr: "Success" counts the hosts
# where an operation changed something.
RESULTS = """\
    Operation                          Hosts   Success   Error   No Change
    Ensure packages are installed      3       -         -       3
    Grand total                        120     {changed}         -       113
"""


def test_no_change_counted_as_zero():
    assert harness.changed_operations(RESULTS.format(changed="-")) == 0


def test_changed_operations_counted():
    assert harness.changed_operations(RESULTS.format(changed="7")) == 7


def test_missing_results_table_rejected():
    with pytest.raises(HarnessError, match="no results table"):
        harness.changed_operations("--> Connecting to hosts...\n")


def test_molecule_launcher_starts_nothing(monkeypatch):
    monkeypatch.setattr(harness.localsite, "LAUNCHER", "molecule")

    with pytest.raises(HarnessError, match="molecule create -s mailfleet"):
        harness.up("inventories/local.py")
