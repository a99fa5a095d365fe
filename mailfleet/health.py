"""Read the failover state of a deployed container cluster: which host has each floating IP,
which HAProxy backends are up, what dsync replication reports. Failover tests wait on these."""

from __future__ import annotations

import csv
import ipaddress
import time

from mailfleet.harness import run_on_node
from mailfleet.model import Cluster, Node

HAPROXY_SOCKET = "/run/haproxy/admin.sock"


def holds_address(node: Node, address: ipaddress.IPv4Address) -> bool:
    """Tell whether the node's container has the address on an interface now."""
    result = run_on_node(node.inventory_name, "ip", "-o", "-4", "addr", "show")
    return f" {address}/" in result.stdout


def floating_groups(cluster: Cluster) -> list[tuple[ipaddress.IPv4Address, list[Node]]]:
    """Return each floating IP with the nodes that may hold it."""
    groups = [(cluster.virtual_ip, cluster.loadbalancers)]
    for shard in cluster.mailbox_shards:
        groups.append((shard.virtual_ip, [cluster.node_named(name) for name in shard.hosts]))
    return groups


def holders(address: ipaddress.IPv4Address, members: list[Node]) -> list[Node]:
    return [node for node in members if holds_address(node, address)]


def haproxy_servers(node: Node) -> dict[str, str]:
    """Return "backend/server" -> status (UP, DOWN, ...) from a load balancer's admin socket;
    empty when HAProxy does not respond."""
    result = run_on_node(
        node.inventory_name, "sh", "-c", f"echo 'show stat' | socat stdio {HAPROXY_SOCKET}"
    )
    lines = result.stdout.lstrip("# ").splitlines()
    servers = {}
    for row in csv.DictReader(lines):
        if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
            servers[f"{row['pxname']}/{row['svname']}"] = row["status"]
    return servers


def replication_queue(node: Node) -> dict[str, str]:
    """Return `doveadm replicator status` of a mailbox host as name -> value."""
    result = run_on_node(node.inventory_name, "doveadm", "replicator", "status")
    status = {}
    for line in result.stdout.splitlines():
        name, _, value = line.rpartition(" ")
        if name.strip():
            status[name.strip()] = value
    return status


def mailbox_guids(node: Node, user: str) -> list[str]:
    """Return the GUIDs of the messages in the user's INBOX on one mailbox host."""
    result = run_on_node(
        node.inventory_name, "doveadm", "-f", "flow", "fetch", "-u", user, "guid",
        "mailbox", "INBOX",
    )
    return sorted(line.removeprefix("guid=") for line in result.stdout.split() if line)


def has_message(node: Node, user: str, message_id: str) -> bool:
    """Tell whether the user's INBOX on one mailbox host has a message with this Message-ID."""
    result = run_on_node(
        node.inventory_name, "doveadm", "search", "-u", user, "mailbox", "INBOX", "header",
        "message-id", message_id,
    )
    return bool(result.stdout.strip())


def health_problems(cluster: Cluster) -> list[str]:
    """Return what keeps the cluster from full redundancy; empty when it has it."""
    problems = []
    for address, members in floating_groups(cluster):
        count = len(holders(address, members))
        if count != 1:
            problems.append(f"{address} is held by {count} hosts")
    for balancer in cluster.loadbalancers:
        servers = haproxy_servers(balancer)
        # The MX fallback entries are backups without a health check ("no check").
        down = sorted(
            name for name, status in servers.items()
            if status != "UP" and not name.endswith("-fallback")
        )
        if not servers or down:
            problems.append(f"HAProxy on {balancer.name}: not up: {', '.join(down) or 'all'}")
    return problems


def wait_until_healthy(cluster: Cluster, timeout: float = 240) -> float:
    """Wait until every floating IP has one holder and every HAProxy backend is up; return the
    seconds it took. Raises TimeoutError naming what is still missing."""
    started = time.monotonic()
    problems = health_problems(cluster)
    while problems:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"the cluster is not healthy after {timeout:.0f} s: {problems}")
        time.sleep(2)
        problems = health_problems(cluster)
    return time.monotonic() - started
