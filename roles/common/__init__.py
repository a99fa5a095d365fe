"""Steps that several roles share: TLS files, the virtual users' passwd-file, config uploads."""

from __future__ import annotations

from io import StringIO

from pyinfra.operations import files, server

from mailfleet.model import Cluster, Node
from mailfleet.passwords import DEFAULT_SCHEME
from mailfleet.render import render

USERS_FILE = "/etc/dovecot/users"

# Clauses of the standard that these shared steps serve: clause id -> {"file: key" on the MX
# and mailbox hosts: what that setting does for the clause}. `mailfleet report` reads it.
CLAUSES = {
    "2.2.1": {
        "/etc/dovecot/users: address": "one line per account, with its password hash",
    },
    "5.1.5": {
        "/etc/dovecot/users: password": "passwords are stored as hashes only",
        "/etc/dovecot/users: mode 0640": "the hashes are readable by root and Dovecot only",
    },
}

def put_rendered(name: str, template: str, dest: str, mode: str = "644", group: str = "root",
                 **values: object):
    """Upload a rendered template; the returned operation tells whether the file changed."""
    return files.put(
        name=name,
        src=StringIO(render(template, **values)),
        dest=dest,
        user="root",
        group=group,
        mode=mode,
    )


def passdb_values(cluster: Cluster) -> dict[str, object]:
    """Values of the shared Dovecot passdb block."""
    return {
        "default_scheme": DEFAULT_SCHEME,
        "users_file": USERS_FILE,
        "mail_root": cluster.mail_root,
    }


def virtual_users(cluster: Cluster):
    """Write the passwd-file of user hashes, readable by root and Dovecot only (clause 5.1.5)."""
    users = [
        {"address": user.address, "password_hash": user.password_hash.get_secret_value()}
        for user in cluster.mail_users
    ]
    return put_rendered(
        name="Dovecot's passwd-file lists every user with a password hash",
        template="dovecot/etc/dovecot/users.j2",
        dest=USERS_FILE,
        mode="640",
        group="dovecot",
        users=users,
    )


def tls_files(node: Node, folder: str, group: str = "root"):
    """Upload the node's certificate chain and key; return both operations."""
    files.directory(
        name=f"{folder} exists and only root can enter it",
        path=folder,
        user="root",
        group=group,
        mode="750",
    )
    certificate = files.put(
        name=f"The TLS certificate chain is in {folder}",
        src=str(node.tls_certificate),
        dest=f"{folder}/mail.crt",
        user="root",
        group="root",
        mode="644",
    )
    key = files.put(
        name=f"The TLS private key is in {folder}, readable by root only",
        src=str(node.tls_key),
        dest=f"{folder}/mail.key",
        user="root",
        group="root",
        mode="600",
    )
    return certificate, key


# Owner of every maildir; a fixed id keeps file ownership stable across hosts and rebuilds.
VMAIL_UID = 5000


def vmail_account(mail_root: str) -> None:
    """Create the unprivileged account that owns the mail of every virtual user."""
    server.group(name="The vmail group exists", group="vmail", gid=VMAIL_UID, system=True)
    server.user(
        name="The vmail account owns the mail root and cannot log in",
        user="vmail",
        uid=VMAIL_UID,
        group="vmail",
        home=mail_root,
        create_home=False,
        shell="/usr/sbin/nologin",
        system=True,
    )
