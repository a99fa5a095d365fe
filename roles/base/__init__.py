"""Firewall, log retention and deploy journal, which every host gets whatever its roles.

Clauses 3.2 (only the ports a role needs are reachable) and 5.1.5 (operation logs).
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from mailfleet.model import Cluster, Node
from roles.common import DOVECOT_LOG, put_rendered
from roles.common.journal import JOURNAL, JOURNAL_FOLDER
from roles.common.services import configuration_applied
from roles.filter import HEALTH_PORT
from roles.keepalived import vrrp_peers
from roles.loadbalancer import SERVICES
from roles.mailstore import DOVEADM_PORT, PROXIED_LOGIN_PORTS
from roles.redis import PORT as REDIS_PORT

# Clause -> {"file on the host: setting": what it does}, read by `mailfleet report`.
CLAUSES = {
    "3.2": {
        "/etc/nftables.conf: policy drop": "inbound traffic is dropped unless a rule admits it",
        "/etc/nftables.conf: ip saddr": (
            "MX, mailbox and Redis ports admit only the cluster's peers"
        ),
        "/etc/nftables.conf: ip protocol": "VRRP is admitted from the host's peers only",
    },
    "5.1.5": {
        "/etc/logrotate.d/mailfleet: rotate": "logs are kept for log_retention_days",
        "/etc/logrotate.d/mailfleet: compress": "rotated logs are compressed",
        "/etc/logrotate.d/mailfleet: create": "log files are readable by root and log_group only",
        "/var/log/mailfleet/deploys.log: mode 0640": "the deploy journal: a line per deploy that"
        " changed the host, readable by root and log_group only",
    },
}

NFTABLES_CONFIG = "/etc/nftables.conf"
LOGROTATE_CONFIG = "/etc/logrotate.d/mailfleet"


def ports_of(role: str) -> list[int]:
    return [service.port for service in SERVICES if service.role == role]


def firewall_rules(cluster: Cluster, node: Node) -> list[dict]:
    """Return the inbound rules of the node's roles.

    Clients reach only the load balancers. The MX and mailbox ports admit only the load
    balancers, LMTP admits only the MX hosts, and Redis only the MX and other Redis hosts.
    VRRP comes only from the peers that share a floating IP with the node. A rule without
    ports admits its `protocol`.
    """
    balancers = [str(lb.address) for lb in cluster.loadbalancers]
    rules = []
    peers = vrrp_peers(cluster, node)
    if peers:
        rules.append(
            {"comment": "VRRP from the peers of the floating IPs", "sources": peers,
             "protocol": "vrrp", "ports": []}
        )
    if "loadbalancer" in node.roles:
        mail_ports = sorted({service.port for service in SERVICES})
        rules.append({"comment": "mail clients", "sources": [], "ports": mail_ports})
    if "mta" in node.roles:
        rules.append(
            {"comment": "SMTP from the load balancers", "sources": balancers,
             "ports": ports_of("mta")}
        )
        rules.append(
            {"comment": "filter health checks from the load balancers", "sources": balancers,
             "ports": [HEALTH_PORT]}
        )
    if "mailstore" in node.roles:
        rules.append(
            {"comment": "IMAP and POP3 from the load balancers", "sources": balancers,
             "ports": ports_of("mailstore")}
        )
        rules.append(
            {"comment": "LMTP from the MX hosts",
             "sources": [str(mta.address) for mta in cluster.mtas], "ports": [24]}
        )
        rules.append(
            {"comment": "IMAP and POP3 logins proxied to the user's shard by mailbox hosts",
             "sources": [str(store.address) for store in cluster.mailstores],
             "ports": sorted(PROXIED_LOGIN_PORTS.values())}
        )
        shard = cluster.shard_of_node(node)
        partners = [str(cluster.node_named(name).address) for name in shard.hosts
                    if name != node.name]
        if partners:
            rules.append(
                {"comment": "dsync replication from the other host of the pair",
                 "sources": partners, "ports": [DOVEADM_PORT]}
            )
    # A host reaches its own address over loopback, which needs no rule. An empty source list
    # would admit every address, so a Redis host without peers gets no rule.
    redis_peers = {str(other.address) for other in cluster.mtas + cluster.redis_servers}
    redis_peers.discard(str(node.address))
    if "redis" in node.roles and redis_peers:
        rules.append(
            {"comment": "Redis from the MX hosts and the other Redis hosts",
             "sources": sorted(redis_peers), "ports": [REDIS_PORT]}
        )
    return rules


def rotated_logs(node: Node) -> list[dict]:
    """Return the log files of the node's roles, with the command that makes a daemon reopen
    its file after rotation. The load balancer's log is rotated by its own role."""
    logs = [{"path": JOURNAL, "reopen": ""}]
    if "mta" in node.roles:
        logs.append({"path": "/var/log/postfix.log", "reopen": "/usr/sbin/postfix reload"})
    if node.roles & {"mta", "mailstore"}:
        logs.append({"path": DOVECOT_LOG, "reopen": "/usr/bin/doveadm log reopen"})
    return logs


@deploy("Base")
def base(cluster: Cluster, node: Node):
    apt.packages(
        name="nftables and logrotate are installed",
        packages=["nftables", "logrotate"],
        update=True,
        cache_time=86400,
    )

    put_rendered(
        name="The firewall admits only what the host's roles serve",
        template="nftables/etc/nftables.conf.j2",
        dest=NFTABLES_CONFIG,
        mode="755",
        admin_networks=[str(network) for network in cluster.security.admin_networks],
        rules=firewall_rules(cluster, node),
    )
    systemd.service(
        name="nftables loads the firewall at boot",
        service="nftables",
        enabled=True,
        running=True,
    )
    configuration_applied(
        name="The firewall rules are loaded",
        service="nftables",
        paths=[NFTABLES_CONFIG],
        check=f"nft -c -f {NFTABLES_CONFIG}",
        action="reload",
    )

    files.directory(
        name="The deploy journal's folder is readable by root and the log group only",
        path=JOURNAL_FOLDER,
        user="root",
        group=cluster.security.log_group,
        mode="750",
    )
    files.file(
        name="The deploy journal is readable by root and the log group only",
        path=JOURNAL,
        user="root",
        group=cluster.security.log_group,
        mode="640",
    )
    put_rendered(
        name="Operation logs are kept, rotated and compressed for the retention period",
        template="logrotate/etc/logrotate.d/mailfleet.j2",
        dest=LOGROTATE_CONFIG,
        logs=rotated_logs(node),
        retention_days=cluster.security.log_retention_days,
        log_group=cluster.security.log_group,
    )
