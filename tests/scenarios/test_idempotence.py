"""A second deploy of an unchanged cluster changes nothing."""

from mailfleet import harness


def test_second_deploy_changes_nothing(deployed, inventory_path):
    result = harness.run_pyinfra(inventory_path)

    assert result.returncode == 0, result.stderr[-2000:]
    assert harness.changed_operations(result.stderr) == 0, result.stderr[-4000:]
