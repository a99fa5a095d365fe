"""Attacks from clients outside the cluster fail: old TLS, direct backend access, brute force.

Clauses 3.2 (confidentiality) and 5.1.5 (secure authentication).
"""

import pytest

from mailfleet import harness
from roles.filter import HEALTH_PORT
from roles.mailstore import DOVEADM_PORT, PROXIED_LOGIN_PORTS
from roles.redis import PORT

pytestmark = [pytest.mark.security]

TLS_PORTS = ["25", "587", "465", "143", "993", "110", "995"]


@pytest.fixture(scope="module")
def handshakes(client) -> dict:
    return client("tls_handshakes", versions=["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"])


@pytest.mark.clause("3.2")
@pytest.mark.parametrize("port", TLS_PORTS)
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1.1"])
def test_old_tls_version_rejected(handshakes, port, version):
    assert not handshakes[port][version]


@pytest.mark.clause("3.2")
@pytest.mark.parametrize("port", TLS_PORTS)
@pytest.mark.parametrize("version", ["TLSv1.2", "TLSv1.3"])
def test_current_tls_version_accepted(handshakes, port, version):
    assert handshakes[port][version]


@pytest.mark.clause("3.2")
def test_backends_unreachable_from_clients(client, cluster):
    """Only the load balancers are reachable from outside; the MX and mailbox ports are not."""
    targets = [f"{node.address}:{port}" for node in cluster.mtas for port in (25, 587, 465)]
    targets += [
        f"{node.address}:{port}" for node in cluster.mailstores for port in (143, 993, 110, 24)
    ]
    reachable = client("reachable", targets=targets)

    assert [target for target, is_open in reachable.items() if is_open] == []


def cluster_only_ports(cluster) -> list[tuple[str, str, int]]:
    """Return (node, peer that may connect, port) for each port that serves only cluster peers:
    Redis, Dovecot's replication and proxied logins, and the filter's health agent."""
    redis_hosts = cluster.redis_servers
    ports = [(node, redis_hosts[1 - index], PORT) for index, node in enumerate(redis_hosts[:2])]
    first, second = cluster.mailstores[:2]
    for port in (DOVEADM_PORT, *PROXIED_LOGIN_PORTS.values()):
        ports += [(first, second, port), (second, first, port)]
    ports += [(mta, cluster.loadbalancers[0], HEALTH_PORT) for mta in cluster.mtas]
    return ports


def peer_connects(peer, address, port: int) -> bool:
    result = harness.run_on_node(
        peer.inventory_name, "timeout", "3", "bash", "-c", f"</dev/tcp/{address}/{port}"
    )
    return result.returncode == 0


@pytest.mark.clause("3.2")
def test_cluster_ports_only_for_peers(client, cluster):
    """Redis, replication, proxied logins and the health agent accept only their peers."""
    ports = cluster_only_ports(cluster)
    reachable = client("reachable", targets=[f"{node.address}:{port}" for node, _, port in ports])

    assert [target for target, is_open in reachable.items() if is_open] == []
    for node, peer, port in ports:
        assert peer_connects(peer, node.address, port), f"{peer.name} -> {node.name}:{port}"


def lift_every_ban(cluster) -> None:
    """Unban every address and unlock every account on the hosts that run fail2ban."""
    for node in [*cluster.mtas, *cluster.mailstores]:
        result = harness.run_on_node(node.inventory_name, "fail2ban-client", "unban", "--all")
        assert result.returncode == 0, f"{node.name}: {result.stderr}"


@pytest.fixture
def no_bans(deployed):
    """Start without bans, and lift the test's own bans so later tests can still log in."""
    lift_every_ban(deployed)
    yield
    lift_every_ban(deployed)


@pytest.mark.clause("5.1.5")
def test_successful_logins_never_banned(client, deployed, no_bans):
    user = deployed.mail_users[0].address
    password = harness.credentials(deployed)[user]
    attempts = deployed.security.ban_max_failures + 2

    logins = [
        client("imap_login", client="client2", user=user, password=password)
        for _ in range(attempts)
    ]

    assert [login["accepted"] for login in logins] == [True] * attempts


@pytest.mark.clause("5.1.5")
def test_brute_force_throttled_then_blocked(client, deployed, no_bans):
    user = deployed.mail_users[0].address
    password = harness.credentials(deployed)[user]
    attempts = deployed.security.ban_max_failures + 1

    failures = [
        client("imap_login", user=user, password=f"wrong-{number}") for number in range(attempts)
    ]
    blocked = harness.wait_until(
        lambda: not client("imap_login", user=user, password=password)["accepted"], timeout=30
    )
    other_client = client("imap_login", client="client2", user=user, password=password)

    assert not any(failure["accepted"] for failure in failures)
    # Dovecot's auth penalty makes each further failure from the same address slower.
    assert failures[-1]["seconds"] > failures[0]["seconds"] + 2
    assert blocked, "the correct password still worked after the burst"
    assert other_client["accepted"]
