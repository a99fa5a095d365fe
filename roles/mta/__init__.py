"""Postfix MTA: postscreen on 25, authenticated submission on 587 and 465, LMTP to the mailboxes.

Clauses 2.2.2 (sending and receiving) and 5.1.7 (standard SMTP service).
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from mailfleet.model import Cluster, Node
from roles.common import (
    DOVECOT_LOG,
    log_file,
    login_throttling,
    passdb_values,
    put_rendered,
    tls_files,
    virtual_users,
    vmail_account,
)
from roles.common.services import configuration_applied
from roles.filter import MILTER_PORT

POSTFIX = "/etc/postfix"
POSTFIX_LOG = "/var/log/postfix.log"
TLS_FOLDER = f"{POSTFIX}/tls"
TLS_FILES = (f"{TLS_FOLDER}/mail.crt", f"{TLS_FOLDER}/mail.key")
# `postfix check` logs its reasons to the mail log only: show them when it fails.
POSTFIX_CHECK = f"postfix check || {{ tail -n 5 {POSTFIX_LOG} >&2; false; }}"
# Lookup tables that `postfix reload` picks up, unlike main.cf changes that need a restart.
TABLES = ("virtual_mailboxes", "virtual_aliases", "postscreen_access.cidr", "transport")
LMTP_PORT = 24
SUBMISSION_LISTENERS = (
    {"name": "submission", "port": 587, "wrappermode": False},
    {"name": "submissions", "port": 465, "wrappermode": True},
)

# Clauses of the standard this role serves: clause id -> {"file: key" on the MX host: what
# that setting does for the clause}. `mailfleet report` lists them beside each clause's tests.
CLAUSES = {
    "2.1": {
        "/etc/postfix/main.cf: virtual_mailbox_maps": "only the listed addresses have a mailbox",
        "/etc/postfix/main.cf: smtpd_recipient_restrictions": (
            "reject_unlisted_recipient rejects mail to any other address of a hosted domain"
        ),
    },
    "2.2.2": {
        "/etc/postfix/main.cf: virtual_mailbox_domains": "receives mail for the hosted domains",
        "/etc/postfix/main.cf: virtual_transport": "delivers it over LMTP to the mailbox host",
        "/etc/postfix/transport: transport": (
            "each user's mail goes to the floating IP of their shard"
        ),
        "/etc/postfix/master.cf: smtpd_sasl_auth_enable": "users log in to send on 587 and 465",
    },
    "3.2": {
        "/etc/postfix/main.cf: smtpd_tls_security_level": "TLS offered on port 25",
        "/etc/postfix/main.cf: smtpd_tls_protocols": "TLS 1.2 or later",
        "/etc/postfix/tls/mail.key: mode 0600": "the TLS private key is readable by root only",
    },
    "5.1.5": {
        "/etc/postfix/main.cf: smtpd_sasl_auth_enable": "no AUTH on port 25",
        "/etc/postfix/main.cf: smtpd_tls_auth_only": "AUTH is offered only after TLS",
        "/etc/postfix/master.cf: smtpd_tls_security_level": "STARTTLS is required on 587",
        "/etc/postfix/main.cf: smtpd_sasl_type": "Dovecot checks logins against password hashes",
        "/etc/postfix/main.cf: smtpd_relay_restrictions": "relaying only after login",
        "/etc/postfix/main.cf: maillog_file": "Postfix logs to a file of its own",
    },
    "5.1.6": {
        "/etc/postfix/main.cf: postscreen_upstream_proxy_protocol": (
            "port 25 takes the client address from the load balancer's PROXY header"
        ),
        "/etc/postfix/main.cf: transport_maps": "routes each user's mail to their mailbox shard",
        "/etc/postfix/main.cf: minimal_backoff_time": (
            "mail for a mailbox pair that is failing over stays queued and is retried soon"
        ),
        "/etc/postfix/master.cf: smtpd_upstream_proxy_protocol": "so do ports 587 and 465",
    },
    "5.1.7": {
        "/etc/postfix/master.cf: postscreen": "SMTP on port 25",
        "/etc/postfix/master.cf: smtpd_tls_wrappermode": "submission with implicit TLS on 465",
    },
}


def virtual_aliases(cluster: Cluster) -> list[tuple[str, str]]:
    """Return (alias, targets) for users' aliases and forwarding aliases, and send postmaster@
    and abuse@ of every hosted domain to the postmaster unless the data routes them already."""
    aliases = {}
    for user in cluster.mail_users:
        for alias in user.aliases:
            aliases[alias] = user.address
    for alias, targets in cluster.mail_aliases.items():
        aliases[alias] = ", ".join(targets)

    mailboxes = {user.address for user in cluster.mail_users}
    for domain in cluster.mail_domains:
        for local_part in ("postmaster", "abuse"):
            alias = f"{local_part}@{domain}"
            if alias not in aliases and alias not in mailboxes:
                aliases[alias] = cluster.postmaster
    return sorted(aliases.items())


def lmtp_transport(address: object) -> str:
    return f"lmtp:inet:[{address}]:{LMTP_PORT}"


def virtual_transport(cluster: Cluster) -> str:
    """Return the default delivery: the first shard, for mail that no transport entry routes."""
    return lmtp_transport(cluster.mailbox_shards[0].virtual_ip)


def shard_transports(cluster: Cluster) -> list[tuple[str, str]]:
    """Return (address, transport) for every user: LMTP to the floating IP of the user's shard.

    Aliases are rewritten to users before this lookup, and Postfix drops the address extension
    when the full address has no entry.
    """
    return [
        (user.address, lmtp_transport(cluster.shard_of_user(user).virtual_ip))
        for user in cluster.mail_users
    ]


def postfix_files(cluster: Cluster, node: Node) -> None:
    put_rendered(
        name="Postfix receives for the hosted domains and relays only for authenticated users",
        template="postfix/etc/postfix/main.cf.j2",
        dest=f"{POSTFIX}/main.cf",
        myhostname=f"{node.name}.{cluster.mail_domains[0]}",
        inet_protocols="all",
        mail_domains=cluster.mail_domains,
        virtual_transport=virtual_transport(cluster),
        recipient_delimiter=cluster.recipient_delimiter,
        message_size_limit=cluster.message_size_limit,
        relay_networks=["127.0.0.0/8", *(str(network) for network in cluster.relay_networks)],
        tls_min_protocol=cluster.tls_min_protocol,
        tls_ciphers=cluster.security.tls_ciphers,
        log_path=POSTFIX_LOG,
        milter_port=MILTER_PORT,
        milter_connect_timeout=cluster.filtering.milter_connect_timeout,
        milter_command_timeout=cluster.filtering.milter_command_timeout,
        milter_content_timeout=cluster.filtering.milter_content_timeout,
    )
    put_rendered(
        name="Postfix listens with postscreen on 25 and for submission on 587 and 465",
        template="postfix/etc/postfix/master.cf.j2",
        dest=f"{POSTFIX}/master.cf",
        submission_listeners=SUBMISSION_LISTENERS,
    )
    put_rendered(
        name="Postfix knows every mailbox address",
        template="postfix/etc/postfix/virtual_mailboxes.j2",
        dest=f"{POSTFIX}/virtual_mailboxes",
        addresses=[user.address for user in cluster.mail_users],
    )
    put_rendered(
        name="postscreen lets the load balancers' health checks through",
        template="postfix/etc/postfix/postscreen_access.cidr.j2",
        dest=f"{POSTFIX}/postscreen_access.cidr",
        loadbalancer_addresses=[str(lb.address) for lb in cluster.loadbalancers],
    )
    put_rendered(
        name="Postfix delivers each user's mail to the floating IP of the user's shard",
        template="postfix/etc/postfix/transport.j2",
        dest=f"{POSTFIX}/transport",
        transports=shard_transports(cluster),
    )
    put_rendered(
        name="Postfix sends postmaster and abuse mail to the postmaster",
        template="postfix/etc/postfix/virtual_aliases.j2",
        dest=f"{POSTFIX}/virtual_aliases",
        aliases=virtual_aliases(cluster),
    )


@deploy("MTA")
def mta(cluster: Cluster, node: Node):
    apt.packages(
        name="Postfix and Dovecot's auth service are installed",
        packages=["postfix", "dovecot-core"],
        update=True,
        cache_time=86400,
    )

    vmail_account(cluster.mail_root)
    log_file(POSTFIX_LOG, cluster.security.log_group)
    log_file(DOVECOT_LOG, cluster.security.log_group)
    tls_files(node, TLS_FOLDER)
    postfix_files(cluster, node)
    # Dovecot re-reads the passwd-file when it changes: new users need no restart.
    virtual_users(cluster)
    put_rendered(
        name="Dovecot serves SASL authentication to Postfix and nothing else",
        template="dovecot/etc/dovecot/dovecot-auth.conf.j2",
        dest="/etc/dovecot/dovecot.conf",
        **passdb_values(cluster),
    )

    login_throttling(cluster)

    for service in ("postfix", "dovecot"):
        systemd.service(
            name=f"{service} is running and starts at boot",
            service=service,
            running=True,
            enabled=True,
        )

    # Dovecot first: Postfix's submission ports fail, and Postfix throttles them for a minute,
    # while Dovecot's auth socket is missing.
    configuration_applied(
        name="Dovecot runs its current configuration",
        service="dovecot",
        paths=["/etc/dovecot/dovecot.conf"],
        check="doveconf -n > /dev/null",
        # A reload keeps Dovecot's sockets open: logins and Postfix's SASL never see it gone.
        action="reload-or-restart",
    )
    configuration_applied(
        name="Postfix runs its current configuration and certificate",
        service="postfix",
        paths=[f"{POSTFIX}/main.cf", f"{POSTFIX}/master.cf", *TLS_FILES],
        check=POSTFIX_CHECK,
    )
    configuration_applied(
        name="Postfix uses the current mailbox and alias tables",
        service="postfix",
        paths=[f"{POSTFIX}/{table}" for table in TABLES],
        check=POSTFIX_CHECK,
        action="reload",
        stamp_name="postfix-tables",
    )
