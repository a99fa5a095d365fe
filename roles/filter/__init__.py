"""Spam and virus filter on every MX: Rspamd as Postfix's milter, clamd for its antivirus module.

Clauses 2.2.4 (anti-spam as a basic service), 2.3.1 and 5.1.8 (anti-virus). Postfix defers a
message with 4xx whenever the filter cannot give a verdict, so no mail is lost and none is
delivered unscanned.
"""

from __future__ import annotations

import math

from pyinfra.api import deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from mailfleet.eicar import signature_line
from mailfleet.filtering import FilterPolicy
from mailfleet.model import Cluster, Node, dkim_key_path
from roles.common import put_rendered
from roles.common.services import configuration_applied
from roles.redis import PORT as REDIS_PORT
from roles.redis import redis_password

RSPAMD_LOCAL = "/etc/rspamd/local.d"
RSPAMD_USER = "_rspamd"
DKIM_FOLDER = "/var/lib/rspamd/dkim"
MILTER_PORT = 11332
# Rspamd's normal worker, which the health agent pings.
RSPAMD_PORT = 11333
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
CLAMD_CONF = "/etc/clamav/clamd.conf"
MIB = 1024 * 1024
# Debian's clamd limit on the data it scans per message, archives unpacked.
DEBIAN_SCAN_LIMIT_MIB = 100
CLAMAV_DATABASES = "/var/lib/clamav"
TEST_SIGNATURES = f"{CLAMAV_DATABASES}/mailfleet-test.hdb"
# Port of the HAProxy agent check that reports whether this MX's filter responds.
HEALTH_PORT = 11330
HEALTH_UNIT = "mailfleet-filter-health.service"
HEALTH_SCRIPT = "/usr/local/lib/mailfleet/filter-health"
VIRUS_SYMBOL = "CLAM_VIRUS"
# Rspamd's symbol for a file beyond clamd's limits (Heuristics.Limits.Exceeded).
LIMITS_SYMBOL = "CLAM_LIMITS_EXCEEDED"
# Seconds that Rspamd waits for clamd per try (two tries), and for a whole scan.
ANTIVIRUS_TIMEOUT = 5
TASK_TIMEOUT = 20

# Rspamd modules that query services outside the cluster (DNS blocklists, fuzzy hash servers,
# maps and updates from rspamd.com, URL redirect lookups, MX probes). Offline mode disables
# them, or every message would wait for their timeouts.
OFFLINE_DISABLED_MODULES = (
    "asn", "emails", "fuzzy_check", "mid", "mime_types", "multimap", "mx_check", "phishing",
    "rbl", "rspamd_update", "surbl", "url_redirector", "whitelist",
)

# Clauses of the standard this role serves: clause id -> {"file: key" on the MX host: what that
# setting does for the clause}. `mailfleet report` lists them beside each clause's tests.
CLAUSES = {
    "2.2.4": {
        "/etc/postfix/main.cf: smtpd_milters": "every message goes through Rspamd",
        "/etc/postfix/main.cf: milter_default_action": (
            "a down or hung filter defers mail with 4xx, never delivers it unscanned"
        ),
        "/etc/rspamd/local.d/actions.conf: reject": "spam above the threshold is rejected",
        "/etc/rspamd/local.d/dkim_signing.conf: domain": "outbound mail is DKIM-signed",
        "/etc/rspamd/local.d/ratelimit.conf: user": "a logged-in user's sending is rate-limited",
    },
    "2.3.1": {
        "/etc/rspamd/local.d/antivirus.conf: clamav": "every message part is scanned by clamd",
        "/etc/rspamd/local.d/force_actions.conf: virus_scan_failed": (
            "mail that clamd could not scan is deferred with 4xx"
        ),
        "/etc/rspamd/local.d/force_actions.conf: virus_scan_limits": (
            "a file too large or too deeply packed to scan whole is rejected, not delivered"
        ),
    },
    "5.1.8": {
        "/etc/rspamd/local.d/antivirus.conf: action": "a virus rejects the message with 5xx",
        "/etc/clamav/freshclam.conf: PrivateMirror": (
            "clamd's signatures come from the operator's mirror"
        ),
    },
}


def rspamd_files(cluster: Cluster) -> list[str]:
    """Upload Rspamd's local.d settings; return the paths it reads at start."""
    policy = cluster.filtering
    paths = []

    def local(name: str, description: str, template: str = "", mode: str = "644", **values):
        dest = f"{RSPAMD_LOCAL}/{name}"
        put_rendered(
            name=description,
            template=f"rspamd/etc/rspamd/local.d/{template or name}.j2",
            dest=dest,
            mode=mode,
            group=RSPAMD_USER,
            **values,
        )
        paths.append(dest)

    local("worker-proxy.inc", "Rspamd serves Postfix as a milter on loopback",
          milter_port=MILTER_PORT, timeout=TASK_TIMEOUT + 10)
    local("options.inc", f"Rspamd's offline mode is {'on' if policy.offline else 'off'}",
          offline=policy.offline, dns_timeout=1 if policy.offline else 5,
          dns_retransmits=1 if policy.offline else 3, task_timeout=TASK_TIMEOUT)
    local("actions.conf", "Rspamd takes the actions of the configured score thresholds",
          actions=sorted(policy.actions.items()))
    local("redis.conf", "Rspamd keeps its state in the cluster's Redis", mode="640",
          primary=str(cluster.redis_servers[0].address), port=REDIS_PORT,
          password=redis_password(cluster))
    local("greylist.conf", f"Greylisting is {'on' if policy.greylisting else 'off'}",
          enabled=policy.greylisting)
    local("antivirus.conf", "Rspamd sends every message part to clamd",
          clamd_socket=CLAMD_SOCKET, virus_symbol=VIRUS_SYMBOL, timeout=ANTIVIRUS_TIMEOUT,
          limits_symbol=LIMITS_SYMBOL)
    local("force_actions.conf", "A message clamd could not scan is deferred or rejected",
          fail_symbol=f"{VIRUS_SYMBOL}_FAIL", limits_symbol=LIMITS_SYMBOL)
    local("milter_headers.conf", "Rspamd adds its verdict to every delivered message")
    local("dkim_signing.conf", "Rspamd signs mail of logged-in users with the domain's key",
          domains=cluster.mail_domains, key_folder=DKIM_FOLDER, selector=policy.dkim_selector)
    local("ratelimit.conf", "Each logged-in user's sending is rate-limited",
          burst=policy.rate_limit_messages,
          rate=f"{policy.rate_limit_messages} / {policy.rate_limit_period}")

    for module in OFFLINE_DISABLED_MODULES:
        dest = f"{RSPAMD_LOCAL}/{module}.conf"
        if policy.offline:
            local(f"{module}.conf", f"Offline mode disables Rspamd's {module} module",
                  template="module-disabled.conf")
        else:
            files.file(name=f"Rspamd's {module} module keeps its defaults", path=dest,
                       present=False)
    return paths


def dkim_keys(cluster: Cluster) -> list[str]:
    """Upload each domain's private DKIM key, readable by root and Rspamd only."""
    files.directory(
        name=f"{DKIM_FOLDER} is readable by root and Rspamd only",
        path=DKIM_FOLDER,
        user="root",
        group=RSPAMD_USER,
        mode="750",
    )
    paths = []
    for domain in cluster.mail_domains:
        dest = f"{DKIM_FOLDER}/{domain}.{cluster.filtering.dkim_selector}.key"
        files.put(
            name=f"The DKIM key of {domain} is readable by root and Rspamd only",
            src=str(dkim_key_path(cluster.filtering, domain)),
            dest=dest,
            user="root",
            group=RSPAMD_USER,
            mode="640",
        )
        paths.append(dest)
    return paths


def clamav_signatures(policy: FilterPolicy) -> None:
    """Install the signature source: the operator's mirror, or the shipped test signature."""
    if policy.test_signatures:
        put_rendered(
            name="clamd knows the EICAR test signature",
            template="clamav/var/lib/clamav/mailfleet-test.hdb.j2",
            dest=TEST_SIGNATURES,
            line=signature_line(),
        )
        # Masking keeps freshclam from starting and trying the internet.
        systemd.service(name="freshclam is stopped", service="clamav-freshclam",
                        running=False, enabled=False)
        files.link(name="freshclam is masked: no mirror is configured",
                   path="/etc/systemd/system/clamav-freshclam.service", target="/dev/null")
        return

    files.file(name="The test signature is absent", path=TEST_SIGNATURES, present=False)
    files.file(name="freshclam is not masked", path="/etc/systemd/system/clamav-freshclam.service",
               present=False)
    put_rendered(
        name="freshclam fetches signatures from the operator's mirror",
        template="clamav/etc/clamav/freshclam.conf.j2",
        dest="/etc/clamav/freshclam.conf",
        mirror=policy.clamav_mirror,
    )
    systemd.service(name="freshclam is running and starts at boot", service="clamav-freshclam",
                    running=True, enabled=True, daemon_reload=True)


def clamd_limits(cluster: Cluster) -> dict[str, str]:
    """Return clamd's size limits, and whether it flags what it could not scan whole.

    Rspamd sends each message to clamd as one stream, so the stream and file limits exceed the
    largest message Postfix accepts, and an archive may unpack to four times that. Past a
    limit, clamd stops scanning the file: with AlertExceedsMax it reports
    Heuristics.Limits.Exceeded, which Rspamd's rule rejects, so that no virus hides behind a
    compression bomb.
    """
    message_mib = math.ceil(cluster.message_size_limit / MIB) + 1
    scan_mib = max(DEBIAN_SCAN_LIMIT_MIB, 4 * message_mib)
    return {
        "StreamMaxLength": f"{message_mib}M",
        "MaxFileSize": f"{scan_mib}M",
        "MaxScanSize": f"{scan_mib}M",
        "AlertExceedsMax": "true" if cluster.filtering.reject_unscannable else "false",
    }


def clamav(cluster: Cluster) -> None:
    apt.packages(name="ClamAV's daemon is installed", packages=["clamav-daemon"])
    clamav_signatures(cluster.filtering)
    # Debian's package writes clamd.conf, so these lines replace its values of the same keys.
    for key, value in clamd_limits(cluster).items():
        files.line(name=f"clamd.conf sets {key} {value}", path=CLAMD_CONF, line=f"^{key} ",
                   replace=f"{key} {value}")

    drop_ins = [f"/etc/systemd/system/{unit}.d/mailfleet.conf"
                for unit in ("clamav-daemon.service", "clamav-daemon.socket")]
    changed = [
        put_rendered(
            name=f"{unit} starts with the signatures mailfleet installs",
            template="clamav/etc/systemd/system/clamd-conditions.conf.j2",
            dest=dest,
            database_folder=CLAMAV_DATABASES,
        )
        for unit, dest in zip(("clamav-daemon.service", "clamav-daemon.socket"), drop_ins,
                              strict=True)
    ]
    systemd.daemon_reload(name="systemd reads clamd's drop-ins",
                          _if=any_changed(*changed))
    for unit in ("clamav-daemon.socket", "clamav-daemon"):
        systemd.service(name=f"{unit} is running and starts at boot", service=unit,
                        running=True, enabled=True)
    configuration_applied(
        name="clamd runs with the current signatures",
        service="clamav-daemon",
        paths=[*drop_ins, *([TEST_SIGNATURES] if cluster.filtering.test_signatures else [])],
        # NOTE: clamd has no config check mode; it reports unreadable signatures at start.
        check="true",
        action="reload-or-restart",
    )
    # A reload reads the signatures only: new limits need a restart.
    configuration_applied(
        name="clamd runs with its current limits",
        service="clamav-daemon",
        paths=[CLAMD_CONF],
        check="true",
        action="restart",
        stamp_name="clamav-daemon-limits",
    )


def health_agent() -> None:
    """Serve HAProxy's agent check on HEALTH_PORT: "up" only while Rspamd and clamd respond."""
    files.directory(name="/usr/local/lib/mailfleet exists", path="/usr/local/lib/mailfleet")
    script = put_rendered(
        name="The filter health check asks Rspamd and clamd",
        template="filter-health/usr/local/lib/mailfleet/filter-health.j2",
        dest=HEALTH_SCRIPT,
        mode="755",
        timeout=2,
        rspamd_port=RSPAMD_PORT,
        clamd_socket=CLAMD_SOCKET,
    )
    old_units = [
        files.file(
            name=f"The per-connection health check unit is gone: {unit}",
            path=f"/etc/systemd/system/{unit}",
            present=False,
        )
        for unit in ("mailfleet-filter-health.socket", "mailfleet-filter-health@.service")
    ]
    server.shell(
        name="The per-connection health check no longer listens",
        commands=[
            "systemctl disable --now mailfleet-filter-health.socket || true",
            "systemctl reset-failed mailfleet-filter-health.socket 'mailfleet-filter-health@*'"
            " || true",
        ],
        _if=any_changed(*old_units),
    )
    unit = put_rendered(
        name="systemd runs the filter health agent",
        template=f"filter-health/etc/systemd/system/{HEALTH_UNIT}.j2",
        dest=f"/etc/systemd/system/{HEALTH_UNIT}",
        port=HEALTH_PORT,
    )
    systemd.daemon_reload(name="systemd reads the health agent's unit",
                          _if=any_changed(unit, *old_units))
    systemd.service(name="The filter health agent listens and starts at boot",
                    service=HEALTH_UNIT, running=True, enabled=True)
    systemd.service(name="The filter health agent runs its current script and unit",
                    service=HEALTH_UNIT, restarted=True, _if=any_changed(script, unit))


@deploy("Filter")
def mail_filter(cluster: Cluster, node: Node):
    clamav(cluster)

    apt.packages(name="Rspamd is installed", packages=["rspamd"])
    paths = rspamd_files(cluster) + dkim_keys(cluster)
    systemd.service(name="Rspamd is running and starts at boot", service="rspamd",
                    running=True, enabled=True)
    configuration_applied(
        name="Rspamd runs its current configuration and keys",
        service="rspamd",
        paths=paths,
        check="rspamadm configtest -q",
        action="reload-or-restart",
    )
    health_agent()
