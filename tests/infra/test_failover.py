"""Floating IPs, health-checked backends and replicated mailbox pairs on the deployed hosts.

Clause 5.1.6: a distributed architecture that balances load and survives the loss of a host.
"""

from __future__ import annotations

import pytest
import testinfra

from mailfleet import harness
from tests.infra.conftest import backend_url

pytestmark = pytest.mark.clause("5.1.6")

ROLES = ["loadbalancer", "mailstore"]


@pytest.fixture(scope="module")
def hosts_by_name(deployed, pyinfra_inventory) -> dict:
    """Every node's testinfra host, by node name."""
    return {
        node.name: testinfra.get_host(
            backend_url(pyinfra_inventory.get_host(node.inventory_name))
        )
        for node in deployed.nodes
    }


def has_address(host, address) -> bool:
    return f" {address}/" in host.check_output("ip -o -4 addr show")


def test_keepalived_running(host):
    assert host.service("keepalived").is_running


def test_keepalived_enabled(host):
    assert host.service("keepalived").is_enabled


def test_virtual_ip_held_once(cluster, hosts_by_name):
    """Exactly one load balancer has the clients' virtual IP."""
    holders = [lb.name for lb in cluster.loadbalancers
               if has_address(hosts_by_name[lb.name], cluster.virtual_ip)]

    assert len(holders) == 1, f"{cluster.virtual_ip} is held by {holders or 'no host'}"


def test_shard_ip_held_once(cluster, hosts_by_name):
    """Exactly one host of each mailbox pair has the pair's floating IP."""
    for shard in cluster.mailbox_shards:
        holders = [
            name for name in shard.hosts if has_address(hosts_by_name[name], shard.virtual_ip)
        ]

        assert len(holders) == 1, f"{shard.virtual_ip} is held by {holders or 'no host'}"


def haproxy_statuses(host) -> dict[str, str]:
    """Return "backend/server" -> status from HAProxy's admin socket."""
    statuses = harness.server_statuses(host.check_output(harness.HAPROXY_STATS))
    return {f"{backend}/{server}": status for (backend, server), status in statuses.items()}


def test_haproxy_backends_up(node, host, cluster):
    """Every backend server of every mail port passes its health check."""
    if "loadbalancer" not in node.roles:
        pytest.skip("only load balancers run HAProxy")
    # The MX fallback entries are backups without a health check: they carry the filter's 451
    # while no MX has a healthy filter, so HAProxy reports them as "no check".
    statuses = {
        name: status for name, status in haproxy_statuses(host).items()
        if not name.endswith("-fallback")
    }
    expected = len(cluster.mtas) * 3 + len(cluster.mailstores) * 4

    assert len(statuses) == expected
    assert {name: status for name, status in statuses.items() if status != "UP"} == {}


def test_replication_configured(node, host, cluster):
    """dsync replicates to the other host of the pair over doveadm's TCP port."""
    if "mailstore" not in node.roles:
        pytest.skip("only mailbox hosts replicate")
    shard = cluster.shard_of_node(node)
    partner = next(cluster.node_named(name) for name in shard.hosts if name != node.name)

    assert host.check_output("doveconf -h -P plugin/mail_replica") == (
        f"tcp:{partner.address}:12345"
    )
    assert host.socket("tcp://0.0.0.0:12345").is_listening


def test_replication_healthy(node, host, cluster):
    """The replicator lists every user and has no failed synchronisation queued."""
    if "mailstore" not in node.roles:
        pytest.skip("only mailbox hosts replicate")
    status = host.check_output("doveadm replicator status")
    users = host.check_output("doveadm replicator status '*'")

    assert "Queued 'failed' requests" in status
    assert any(line.split()[-1] == "0" for line in status.splitlines()
               if line.startswith("Queued 'failed' requests"))
    assert all(user.address in users for user in cluster.mail_users)


def test_doveadm_password_private(node, host):
    if "mailstore" not in node.roles:
        pytest.skip("only mailbox hosts replicate")
    secret = host.file("/etc/dovecot/doveadm-secret.conf")

    assert secret.user == "root"
    assert secret.mode == 0o600
