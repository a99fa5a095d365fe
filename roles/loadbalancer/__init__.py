"""HAProxy load balancer in front of the MX and mailbox hosts (clause 5.1.6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from mailfleet.model import Cluster, Node, Role
from roles.common import put_rendered
from roles.common.services import configuration_applied
from roles.filter import HEALTH_PORT
from roles.keepalived import keepalived

CONFIG = "/etc/haproxy/haproxy.cfg"

SMTP_CHECK = ("option smtpchk EHLO {hostname}",)
IMAP_CHECK = ("option tcp-check", 'tcp-check expect string "* OK"')
POP3_CHECK = ("option tcp-check", 'tcp-check expect string "+OK"')
# The MX hosts' filter health agent, asked every few seconds besides the service check.
FILTER_AGENT = f" agent-check agent-port {HEALTH_PORT} agent-inter 3s"
# Implicit-TLS ports: the check completes a TLS handshake with the backend.
TLS_CHECK_OPTIONS = " check-ssl verify none"


@dataclass(frozen=True)
class Service:
    """One forwarded port and the role whose hosts serve it."""

    name: str
    port: int
    role: Role
    check: tuple[str, ...] = ()
    server_options: str = ""
    balance: str = "leastconn"
    # Longest idle time of a client or backend connection; IMAP IDLE keeps connections open.
    timeout: str = "5m"


SERVICES = (
    Service("smtp", 25, "mta", check=SMTP_CHECK),
    Service("submission", 587, "mta", check=SMTP_CHECK),
    Service("submissions", 465, "mta", server_options=TLS_CHECK_OPTIONS),
    # A client's IMAP and POP3 connections all reach the same mailbox host while it is up, so
    # that host's fail2ban counts every failed login of the client. NOTE: bans are per host; a
    # client moves to the other host, with a clean record there, when its host fails.
    Service("imap", 143, "mailstore", check=IMAP_CHECK, timeout="30m", balance="source"),
    Service("imaps", 993, "mailstore", server_options=TLS_CHECK_OPTIONS, timeout="30m",
            balance="source"),
    Service("pop3", 110, "mailstore", check=POP3_CHECK, balance="source"),
    Service("pop3s", 995, "mailstore", server_options=TLS_CHECK_OPTIONS, balance="source"),
)

# Clauses of the standard this role serves: clause id -> {"file: key" on the load balancer: what
# that setting does for the clause}. `mailfleet report` lists them beside each clause's tests.
CLAUSES = {
    "5.1.6": {
        "/etc/haproxy/haproxy.cfg: balance": (
            "spreads connections over the hosts of a role; IMAP and POP3 by client address"
        ),
        "/etc/haproxy/haproxy.cfg: check": "health checks take a failed backend out of service",
        "/etc/haproxy/haproxy.cfg: redispatch": (
            "a connection that a failed backend refuses is retried on another one"
        ),
        "/etc/haproxy/haproxy.cfg: send-proxy-v2": "backends see the client's address",
    },
    "2.2.4": {
        "/etc/haproxy/haproxy.cfg: agent-check": (
            "an MX whose spam and virus filter does not answer gets no new connections"
        ),
    },
    "5.1.7": {
        "/etc/haproxy/haproxy.cfg: frontend": (
            "one frontend per mail port: SMTP 25, 587, 465, IMAP 143, 993 and POP3 110, 995"
        ),
    },
}

def haproxy_services(cluster: Cluster, node: Node) -> list[dict]:
    """Return the frontends and backends of haproxy.cfg, each with its servers and checks."""
    hostname = f"{node.name}.{cluster.mail_domains[0]}"
    services = []
    for service in SERVICES:
        values = asdict(service)
        values["check"] = [line.format(hostname=hostname) for line in service.check]
        backends = cluster.nodes_with(service.role)
        values["servers"] = [
            {"name": backend.name, "address": str(backend.address)} for backend in backends
        ]
        # An MX is in rotation only while its filter's agent reports "up". When no MX has a
        # healthy filter, the unchecked backup entries still reach Postfix, which then defers
        # each message with 4xx instead of the client finding no server at all.
        # NOTE: the backups have no health check, and HAProxy uses only the first of them, so
        # while no filter is healthy, mail goes to the first MX even if it is down.
        values["agent"] = FILTER_AGENT if service.role == "mta" else ""
        values["fallbacks"] = values["servers"] if service.role == "mta" else []
        services.append(values)
    return services


@deploy("Load balancer")
def loadbalancer(cluster: Cluster, node: Node):
    # haproxy.service reloads with /bin/kill, which comes from procps, not a dependency of haproxy.
    # rsyslog writes HAProxy's connection log to /var/log/haproxy.log (Debian's haproxy package
    # ships the rsyslog rule). socat reads the backends' state from HAProxy's admin socket.
    apt.packages(
        name="HAProxy is installed, with rsyslog for its log file and socat for its admin socket",
        packages=["haproxy", "procps", "rsyslog", "socat"],
        update=True,
        cache_time=86400,
    )

    put_rendered(
        name="HAProxy forwards every mail port to healthy backends with the PROXY protocol",
        template="haproxy/etc/haproxy/haproxy.cfg.j2",
        dest=CONFIG,
        services=haproxy_services(cluster, node),
        max_connections=4000,
        # A failed backend is out after two failed checks, within about four seconds.
        check_interval="2s",
        check_fall=2,
        check_rise=2,
    )

    systemd.service(
        name="HAProxy is running and starts at boot",
        service="haproxy",
        running=True,
        enabled=True,
    )

    put_rendered(
        name="HAProxy's connection log is kept for the retention period",
        template="logrotate/etc/logrotate.d/mailfleet.j2",
        dest="/etc/logrotate.d/haproxy",
        logs=[{"path": "/var/log/haproxy.log", "reopen": "/usr/lib/rsyslog/rsyslog-rotate"}],
        retention_days=cluster.security.log_retention_days,
        log_group=cluster.security.log_group,
    )

    configuration_applied(
        name="HAProxy runs its current configuration",
        service="haproxy",
        paths=[CONFIG],
        check=f"haproxy -c -q -f {CONFIG}",
        action="reload-or-restart",
    )

    keepalived(cluster, node)
