"""A second deploy of an unchanged cluster changes nothing."""

import re

from mailfleet import harness


def changed_operations(pyinfra_output: str) -> int:
    """Return the number of operations that changed something, from pyinfra's results table
    (which pyinfra logs to stderr)."""
    match = re.search(r"Grand total\s+(\d+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)", pyinfra_output)
    assert match, "pyinfra printed no results table"
    changed = match.group(2)
    return 0 if changed == "-" else int(changed)


def test_second_deploy_changes_nothing(deployed, inventory_path):
    result = harness.run_pyinfra(inventory_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert changed_operations(result.stderr) == 0, result.stderr[-4000:]
