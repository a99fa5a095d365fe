"""keepalived: a floating IP held by one host of a group at a time, with VRRP between unicast
peers (clause 5.1.6). The load balancers share the clients' virtual IP; each mailbox pair
shares the IP that serves its shard's users.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, systemd

from mailfleet.model import Cluster, Node
from roles.common import put_rendered
from roles.common.services import configuration_applied

CONFIG = "/etc/keepalived/keepalived.conf"
# Seconds between VRRP advertisements; a backup takes over after about three missed ones.
ADVERT_INTERVAL = 1
# VRRP router ids on the cluster network: the load balancers' group, then one per shard.
LOADBALANCER_ROUTER_ID = 51
FIRST_SHARD_ROUTER_ID = 52

# Clause -> {"file on the host: setting": what it does}, read by `mailfleet report`.
CLAUSES = {
    "5.1.6": {
        "/etc/keepalived/keepalived.conf: virtual_ipaddress": (
            "one host of the group holds the floating IP; another takes it over when it fails"
        ),
        "/etc/keepalived/keepalived.conf: unicast_peer": "VRRP goes only to the group's peers",
        "/etc/keepalived/keepalived.conf: track_script": (
            "a host whose service is down gives up the floating IP"
        ),
        "/etc/keepalived/keepalived.conf: nopreempt": (
            "a returning host leaves the floating IP where it is, so users do not move twice"
        ),
    },
}


@dataclass(frozen=True)
class FloatingAddress:
    """One VRRP instance: the group's floating IP, its peers and the service it tracks."""

    name: str
    router_id: int
    virtual_ip: ipaddress.IPv4Address
    members: tuple[Node, ...]
    # systemd unit whose failure makes this host give up the address.
    tracked_service: str


class InterfaceWithAddress(FactBase):
    """Name of the network interface that carries an IPv4 address, or None."""

    def command(self, address: str) -> str:
        return f"ip -o -4 addr show | awk '$4 ~ \"^{address}/\" {{print $2; exit}}'"

    def process(self, output: list[str]) -> str | None:
        return output[0].split("@")[0] if output and output[0] else None


def floating_addresses(cluster: Cluster, node: Node) -> list[FloatingAddress]:
    """Return the VRRP instances a node takes part in: the load balancers' virtual IP and the
    floating IP of its mailbox shard."""
    instances = []
    if "loadbalancer" in node.roles:
        instances.append(FloatingAddress(
            "loadbalancers", LOADBALANCER_ROUTER_ID, cluster.virtual_ip,
            tuple(cluster.loadbalancers), "haproxy",
        ))
    if "mailstore" in node.roles:
        shard = cluster.shard_of_node(node)
        index = cluster.mailbox_shards.index(shard)
        instances.append(FloatingAddress(
            f"shard-{shard.name}", FIRST_SHARD_ROUTER_ID + index, shard.virtual_ip,
            tuple(cluster.node_named(name) for name in shard.hosts), "dovecot",
        ))
    return instances


def vrrp_peers(cluster: Cluster, node: Node) -> list[str]:
    """Return the addresses this node exchanges VRRP with, for the firewall."""
    return sorted({
        str(member.address)
        for instance in floating_addresses(cluster, node)
        for member in instance.members
        if member != node
    })


def instance_values(instance: FloatingAddress, node: Node, prefix_length: int) -> dict:
    """Values of one vrrp_instance block; the first member listed gets the highest priority."""
    return {
        "name": instance.name,
        "router_id": instance.router_id,
        "priority": 150 - 10 * instance.members.index(node),
        "address": str(node.address),
        "peers": [str(member.address) for member in instance.members if member != node],
        "virtual_ip": f"{instance.virtual_ip}/{prefix_length}",
        "tracked_service": instance.tracked_service,
    }


@deploy("Floating IP")
def keepalived(cluster: Cluster, node: Node):
    # keepalived.service reloads with /bin/kill, which comes from procps.
    apt.packages(
        name="keepalived is installed, with procps for its reload",
        packages=["keepalived", "procps"],
        update=True,
        cache_time=86400,
    )

    interface = host.get_fact(InterfaceWithAddress, address=str(node.address))
    if interface is None:
        raise DeployError(
            f"no network interface of {node.name} has the address {node.address}: fix the"
            " node's address in the inventory"
        )
    put_rendered(
        name="keepalived holds the floating IPs of this host's groups with their peers",
        template="keepalived/etc/keepalived/keepalived.conf.j2",
        dest=CONFIG,
        mode="640",
        node_name=node.name,
        interface=interface,
        advert_interval=ADVERT_INTERVAL,
        instances=[
            instance_values(instance, node, cluster.cluster_network.prefixlen)
            for instance in floating_addresses(cluster, node)
        ],
    )

    systemd.service(
        name="keepalived is running and starts at boot",
        service="keepalived",
        running=True,
        enabled=True,
    )
    configuration_applied(
        name="keepalived runs its current configuration",
        service="keepalived",
        paths=[CONFIG],
        check=f"keepalived --config-test --use-file {CONFIG}",
        action="reload",
    )
