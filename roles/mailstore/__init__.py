"""Dovecot mailbox host: IMAP and POP3 behind the load balancers, LMTP delivery, maildirs, and
dsync replication with the other host of its mailbox pair.

Clauses 2.2.2 and 2.2.3 (server-side storage), 5.1.6 (replicated shards) and 5.1.7 (POP3).
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from mailfleet.model import Cluster, Node
from mailfleet.secrets import shared_secret
from roles.common import (
    DOVECOT_LOG,
    VMAIL_UID,
    log_file,
    login_throttling,
    passdb_values,
    put_rendered,
    quota_field,
    tls_files,
    virtual_users,
    vmail_account,
)
from roles.common.services import configuration_applied
from roles.keepalived import keepalived

DOVECOT_CONFIG = "/etc/dovecot/dovecot.conf"
TLS_FOLDER = "/etc/dovecot/tls"
TLS_FILES = (f"{TLS_FOLDER}/mail.crt", f"{TLS_FOLDER}/mail.key")
# The users Dovecot lists for replication, without their hashes.
MAILBOXES_FILE = "/etc/dovecot/mailboxes"
# The doveadm password that the two hosts of a pair share, readable by root only.
DOVEADM_SECRET_CONFIG = "/etc/dovecot/doveadm-secret.conf"
# doveadm's TCP port, which dsync replication between the hosts of a pair uses.
DOVEADM_PORT = 12345
# Service -> port on which a mailbox host accepts logins that another one proxies (with TLS).
PROXIED_LOGIN_PORTS = {"imap": 10993, "pop3": 10995}

# Clauses of the standard this role serves: clause id -> {"file: key" on the mailbox host: what
# that setting does for the clause}. `mailfleet report` lists them beside each clause's tests.
CLAUSES = {
    "2.2.2": {
        "/etc/dovecot/dovecot.conf: protocols": "IMAP and POP3 to read mail, LMTP to deliver it",
    },
    "2.2.3": {
        "/etc/dovecot/dovecot.conf: mail_location": "a maildir per user on the mailbox host",
    },
    "3.2": {
        "/etc/dovecot/dovecot.conf: ssl": "TLS is required on every client port",
        "/etc/dovecot/dovecot.conf: ssl_min_protocol": "TLS 1.2 or later",
        "/etc/dovecot/tls/mail.key: mode 0600": "the TLS private key is readable by root only",
        "/var/vmail: mode 0700": "the mail root (mail_root) is readable by the vmail account only",
    },
    "5.1.5": {
        "/etc/dovecot/dovecot.conf: disable_plaintext_auth": "no login before TLS",
        "/etc/dovecot/dovecot.conf: passdb": "logins are checked against a file of password hashes",
    },
    "5.1.6": {
        "/etc/dovecot/dovecot.conf: haproxy_trusted_networks": (
            "the PROXY header, with the client's address, is accepted from the load balancers only"
        ),
        "/etc/dovecot/dovecot.conf: mail_replica": (
            "dsync replicates every change to the other host of the mailbox pair"
        ),
        "/etc/dovecot/dovecot.conf: imaps_proxied": (
            "IMAP and POP3 logins are proxied to the floating IP of the user's shard"
        ),
    },
    "5.1.7": {
        "/etc/dovecot/dovecot.conf: service pop3-login": "POP3 on 110, and with TLS on 995",
        "/etc/dovecot/dovecot.conf: service imap-login": "IMAP on 143, and with TLS on 993",
    },
}

def replica_address(cluster: Cluster, node: Node) -> str:
    """Return the address of the other host of the node's pair, or "" for a single host."""
    shard = cluster.shard_of_node(node)
    partners = [name for name in shard.hosts if name != node.name]
    return str(cluster.node_named(partners[0]).address) if partners else ""


@deploy("Mailbox store")
def mailstore(cluster: Cluster, node: Node):
    apt.packages(
        name="Dovecot with IMAP, POP3 and LMTP is installed",
        packages=["dovecot-core", "dovecot-imapd", "dovecot-pop3d", "dovecot-lmtpd"],
        update=True,
        cache_time=86400,
    )

    vmail_account(cluster.mail_root)
    files.directory(
        name="The mail root belongs to vmail and no one else can read it",
        path=cluster.mail_root,
        user="vmail",
        group="vmail",
        mode="700",
    )

    log_file(DOVECOT_LOG, cluster.security.log_group)
    tls_files(node, TLS_FOLDER)
    # Dovecot re-reads the passwd-files when they change: new users need no restart.
    virtual_users(cluster, routed=True)
    put_rendered(
        name="Dovecot lists every mailbox, for replication",
        template="dovecot/etc/dovecot/users.j2",
        dest=MAILBOXES_FILE,
        users=[{"address": user.address, "password_hash": "", "extra_fields": quota_field(user)}
               for user in cluster.mail_users],
    )
    put_rendered(
        name="The doveadm password of the mailbox pair is readable by root only",
        template="dovecot/etc/dovecot/doveadm-secret.conf.j2",
        dest=DOVEADM_SECRET_CONFIG,
        mode="600",
        doveadm_password=shared_secret("doveadm-password"),
    )
    put_rendered(
        name="Dovecot serves IMAP, POP3 and LMTP with TLS and replicates to its pair",
        template="dovecot/etc/dovecot/dovecot.conf.j2",
        dest=DOVECOT_CONFIG,
        postmaster=cluster.postmaster,
        hostname=f"{node.name}.{cluster.mail_domains[0]}",
        tls_certificate=TLS_FILES[0],
        tls_key=TLS_FILES[1],
        proxy_peers=[str(address) for address in cluster.proxy_peers],
        tls_min_protocol=cluster.tls_min_protocol,
        tls_ciphers=cluster.security.tls_ciphers,
        trash_retention_days=cluster.trash_retention_days,
        junk_retention_days=cluster.junk_retention_days,
        vmail_uid=VMAIL_UID,
        recipient_delimiter=cluster.recipient_delimiter,
        replica=replica_address(cluster, node),
        doveadm_port=DOVEADM_PORT,
        doveadm_secret_config=DOVEADM_SECRET_CONFIG,
        **passdb_values(cluster, PROXIED_LOGIN_PORTS, MAILBOXES_FILE),
    )

    login_throttling(cluster)

    systemd.service(
        name="Dovecot is running and starts at boot",
        service="dovecot",
        running=True,
        enabled=True,
    )

    configuration_applied(
        name="Dovecot runs its current configuration and certificate",
        service="dovecot",
        paths=[DOVECOT_CONFIG, DOVEADM_SECRET_CONFIG, *TLS_FILES],
        check="doveconf -n > /dev/null",
        # A reload keeps Dovecot's sockets open: logins and Postfix's SASL never see it gone.
        action="reload-or-restart",
    )

    keepalived(cluster, node)
