"""Shared fixtures: the cluster model, and the deployed cluster that infra and scenario tests use.

With the default inventory the session brings the container cluster up and deploys it once;
with another inventory (`--inventory inventories/production.py`) the hosts must already be
deployed, and the tests only read them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mailfleet import harness
from mailfleet.inventory import load_cluster, load_inventory
from mailfleet.model import Cluster

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_INVENTORY = "inventories/local.py"
# Inventories of container clusters, which the session brings up and deploys itself.
CONTAINER_INVENTORIES = (DEFAULT_INVENTORY, "inventories/local_shards.py")
CLUSTER_FOLDERS = ("infra", "scenarios")
# Lines the failover scenarios report (floating IP move times, outages), printed at the end.
FAILOVER_LINES = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--inventory",
        default=DEFAULT_INVENTORY,
        help="pyinfra inventory of the deployed cluster to verify (default: %(default)s)",
    )
    parser.addoption(
        "--no-deploy",
        action="store_true",
        help="verify the hosts as they are: neither start nor deploy the container cluster"
        " (for containers that molecule started and converged)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/infra and tests/scenarios as needing the cluster."""
    for item in items:
        if Path(item.fspath).parent.name in CLUSTER_FOLDERS:
            item.add_marker(pytest.mark.cluster)


def inventory_option(config: pytest.Config) -> str:
    return config.getoption("--inventory")


def uses_container_cluster(config: pytest.Config) -> bool:
    """Tell whether the session starts and deploys the harness's container cluster itself."""
    return inventory_option(config) in CONTAINER_INVENTORIES and not config.getoption("--no-deploy")


@pytest.fixture(scope="session")
def inventory_path(pytestconfig: pytest.Config) -> str:
    return inventory_option(pytestconfig)


@pytest.fixture(scope="session")
def pyinfra_inventory(inventory_path: str):
    return load_inventory(PROJECT / inventory_path)


@pytest.fixture(scope="session")
def cluster(inventory_path: str) -> Cluster:
    return load_cluster(PROJECT / inventory_path)


@pytest.fixture(scope="session")
def deployed(pytestconfig: pytest.Config, cluster: Cluster, inventory_path: str):
    """The cluster, deployed: brought up and deployed once per session for the container cluster,
    unless --no-deploy is given."""
    if not uses_container_cluster(pytestconfig):
        yield cluster
        return

    with harness.exclusive():
        harness.up(inventory_path)
        harness.deploy(inventory_path)
        harness.wait_for_backends(cluster)
        harness.wait_for_health_checks(cluster)
        yield cluster


def pytest_itemcollected(item: pytest.Item) -> None:
    """Record in the JUnit XML which clauses each test proves, and whether it ran live.

    `mailfleet report` reads these per-test properties: "clause" once per id of the test's
    clause markers, "proof" ("live" for tests under tests/infra and tests/scenarios, which run
    against deployed hosts, "unit" otherwise) and, for live tests, the "inventory".
    """
    for marker in item.iter_markers("clause"):
        item.user_properties.extend(("clause", clause_id) for clause_id in marker.args)
    live = Path(item.fspath).parent.name in CLUSTER_FOLDERS
    item.user_properties.append(("proof", "live" if live else "unit"))
    if live:
        item.user_properties.append(("inventory", inventory_option(item.config)))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """Print what the failover scenarios measured: timings are reported, never asserted."""
    lines = config.stash.get(FAILOVER_LINES, [])
    if lines:
        terminalreporter.section("failover timings")
        for line in lines:
            terminalreporter.write_line(line)
