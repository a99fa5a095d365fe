"""Dovecot mailbox host: IMAP and POP3 behind the load balancers, LMTP delivery, maildirs.

Clauses 2.2.2 and 2.2.3 (server-side storage) and 5.1.7 (POP3 service).
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from mailfleet.model import Cluster, Node
from roles.common import (
    VMAIL_UID,
    passdb_values,
    put_rendered,
    tls_files,
    virtual_users,
    vmail_account,
)
from roles.common.services import configuration_applied

DOVECOT_CONFIG = "/etc/dovecot/dovecot.conf"
TLS_FOLDER = "/etc/dovecot/tls"
TLS_FILES = (f"{TLS_FOLDER}/mail.crt", f"{TLS_FOLDER}/mail.key")


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

    tls_files(node, TLS_FOLDER)
    # Dovecot re-reads the passwd-file when it changes: new users need no restart.
    virtual_users(cluster)
    put_rendered(
        name="Dovecot serves IMAP, POP3 and LMTP with TLS and the PROXY protocol",
        template="dovecot/etc/dovecot/dovecot.conf.j2",
        dest=DOVECOT_CONFIG,
        postmaster=cluster.postmaster,
        hostname=f"{node.name}.{cluster.mail_domains[0]}",
        tls_certificate=TLS_FILES[0],
        tls_key=TLS_FILES[1],
        haproxy_trusted_networks=[str(lb.address) for lb in cluster.loadbalancers],
        vmail_uid=VMAIL_UID,
        recipient_delimiter=cluster.recipient_delimiter,
        lmtp_address=str(node.address),
        **passdb_values(cluster),
    )

    systemd.service(
        name="Dovecot is running and starts at boot",
        service="dovecot",
        running=True,
        enabled=True,
    )

    configuration_applied(
        name="Dovecot runs its current configuration and certificate",
        service="dovecot",
        paths=[DOVECOT_CONFIG, *TLS_FILES],
        check="doveconf -n > /dev/null",
    )
