"""testinfra checks: each test runs once per host of the roles it names, over any connector.

A test module sets ROLES (the roles whose hosts it checks); a test that takes `host` runs on
each of them, identified by node name. Containers are reached with docker://, other hosts
with ssh:// and the inventory's ssh_* data.
"""

from __future__ import annotations

import pytest
import testinfra

from mailfleet.inventory import load_cluster
from tests.conftest import PROJECT, inventory_option


def backend_url(inventory_host) -> str:
    """Return testinfra's address for a pyinfra inventory host."""
    name = inventory_host.name
    if name.startswith("@docker/"):
        return "docker://" + name.removeprefix("@docker/")

    address = inventory_host.data.get("ssh_hostname") or name
    user = inventory_host.data.get("ssh_user")
    port = inventory_host.data.get("ssh_port")
    url = "ssh://" + (f"{user}@" if user else "") + address + (f":{port}" if port else "")
    sudo = "?sudo=true" if inventory_host.data.get("_sudo") else ""
    return url + sudo


def case_label(value) -> str:
    """Name a case by its first field when it is a tuple, such as (path, owner, group, mode)."""
    return str(value[0] if isinstance(value, tuple) else value)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise `node` over the hosts of the module's ROLES (every host if it sets none).

    A module may also map an argument name to per-role values in PER_ROLE, for example
    {"service": {"mta": ["postfix", "dovecot"]}}: a test taking that argument then runs once
    per host and value, so a failure names both.
    """
    if "node" not in metafunc.fixturenames:
        return
    cluster = load_cluster(PROJECT / inventory_option(metafunc.config))
    roles = getattr(metafunc.module, "ROLES", None)
    nodes = [node for node in cluster.nodes if roles is None or node.roles & set(roles)]

    per_role = getattr(metafunc.module, "PER_ROLE", {})
    argument = next((name for name in per_role if name in metafunc.fixturenames), None)
    if argument is None:
        metafunc.parametrize("node", nodes, ids=[node.name for node in nodes], scope="module")
        return

    cases = [
        (node, value)
        for node in nodes
        for role in sorted(node.roles)
        for value in per_role[argument].get(role, [])
    ]
    metafunc.parametrize(
        ("node", argument),
        cases,
        ids=[f"{node.name}-{case_label(value)}" for node, value in cases],
        scope="module",
    )


@pytest.fixture(scope="module")
def host(node, deployed, pyinfra_inventory):
    """The testinfra host of `node`."""
    return testinfra.get_host(backend_url(pyinfra_inventory.get_host(node.inventory_name)))
