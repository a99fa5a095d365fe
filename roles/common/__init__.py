"""Steps that several roles share: TLS files, the virtual users' passwd-file, config uploads."""

from __future__ import annotations

from io import StringIO

from pyinfra.operations import apt, files, server, systemd

from mailfleet.model import Cluster, MailUser, Node
from mailfleet.passwords import DEFAULT_SCHEME
from mailfleet.render import render
from roles.common.services import configuration_applied

USERS_FILE = "/etc/dovecot/users"
# Dovecot passwd-files of banned client addresses and locked accounts, written by fail2ban.
BANNED_CLIENTS = "/etc/dovecot/banned-clients"
LOCKED_ACCOUNTS = "/etc/dovecot/locked-accounts"
DOVECOT_LOG = "/var/log/dovecot.log"

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


def passdb_values(cluster: Cluster, proxied_login_ports: dict[str, int] | None = None,
                  mailboxes_file: str = "") -> dict[str, object]:
    """Values of the shared Dovecot passdb block.

    `proxied_login_ports` (service -> port) turns on the routing of logins to the user's shard;
    `mailboxes_file` replaces the static userdb with a passwd-file that Dovecot can list.
    """
    return {
        "default_scheme": DEFAULT_SCHEME,
        "users_file": USERS_FILE,
        "banned_clients": BANNED_CLIENTS,
        "locked_accounts": LOCKED_ACCOUNTS,
        "mail_root": cluster.mail_root,
        "log_path": DOVECOT_LOG,
        "proxied_login_ports": proxied_login_ports or {},
        "mailboxes_file": mailboxes_file,
    }


def login_route(cluster: Cluster, user: MailUser) -> str:
    """Return the passdb fields that send the user's IMAP and POP3 logins to their shard.

    A mailbox host proxies the login to the floating IP of the user's shard, unless the login
    came in on that address: then it serves the user itself. The certificates cover the mail
    host names, not the floating IP, so the proxy accepts any certificate on that hop.
    """
    return f"proxy_maybe=y host={cluster.shard_of_user(user).virtual_ip} ssl=any-cert"


def quota_field(user: MailUser) -> str:
    """Return the userdb field that sets the user's quota, or "" for a user without one."""
    return "" if user.quota is None else f"userdb_quota_rule=*:storage={int(user.quota)}B"


def extra_fields(cluster: Cluster, user: MailUser, routed: bool) -> list[str]:
    """Return the passwd-file extra fields of a user: its lock or its route, and its quota."""
    fields = []
    if user.state == "locked":
        # A locked account keeps its mail and receives more, but every login fails.
        fields += ["nologin=y", "reason=Account_locked"]
    elif routed:
        fields.append(login_route(cluster, user))
    if user.quota is not None:
        fields.append(quota_field(user))
    return fields


def virtual_users(cluster: Cluster, routed: bool = False):
    """Write the passwd-file of user hashes, readable by root and Dovecot only (clause 5.1.5).

    With `routed`, each active user's line also routes their logins to their shard.
    """
    users = [
        {
            "address": user.address,
            "password_hash": user.password_hash.get_secret_value(),
            "extra_fields": " ".join(extra_fields(cluster, user, routed)),
        }
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


def log_file(path: str, log_group: str) -> None:
    """Create a daemon's log file readable by root and the log group only (clause 5.1.5)."""
    files.file(
        name=f"{path} is readable by root and {log_group} only",
        path=path,
        user="root",
        group=log_group,
        mode="640",
    )


def login_throttling(cluster: Cluster) -> None:
    """Block client addresses and accounts with repeated failed logins, using fail2ban.

    Dovecot's auth penalty slows each failed login first. Past the threshold, fail2ban writes
    the client address, or the account, into a passwd-file that a deny passdb reads
    (clause 5.1.5).
    """
    apt.packages(
        name="fail2ban is installed, with journal support for its sshd jail",
        packages=["fail2ban", "python3-systemd"],
    )

    for path in (BANNED_CLIENTS, LOCKED_ACCOUNTS):
        files.file(
            name=f"{path} exists for Dovecot's deny passdb",
            path=path,
            user="root",
            group="dovecot",
            mode="640",
        )

    fail2ban = "/etc/fail2ban"
    put_rendered(
        name="fail2ban recognises failed logins by client address",
        template="fail2ban/etc/fail2ban/filter.d/mailfleet-auth.conf.j2",
        dest=f"{fail2ban}/filter.d/mailfleet-auth.conf",
    )
    put_rendered(
        name="fail2ban recognises failed logins by account",
        template="fail2ban/etc/fail2ban/filter.d/mailfleet-account.conf.j2",
        dest=f"{fail2ban}/filter.d/mailfleet-account.conf",
    )
    put_rendered(
        name="fail2ban bans through Dovecot's deny passdb",
        template="fail2ban/etc/fail2ban/action.d/mailfleet-deny.conf.j2",
        dest=f"{fail2ban}/action.d/mailfleet-deny.conf",
    )
    put_rendered(
        name="fail2ban watches Dovecot's log for repeated failed logins",
        template="fail2ban/etc/fail2ban/jail.d/mailfleet.conf.j2",
        dest=f"{fail2ban}/jail.d/mailfleet.conf",
        dovecot_log=DOVECOT_LOG,
        banned_clients=BANNED_CLIENTS,
        locked_accounts=LOCKED_ACCOUNTS,
        policy=cluster.security,
        cluster_addresses=sorted(str(node.address) for node in cluster.nodes),
    )

    systemd.service(
        name="fail2ban is running and starts at boot",
        service="fail2ban",
        running=True,
        enabled=True,
    )
    configuration_applied(
        name="fail2ban runs its current jails",
        service="fail2ban",
        paths=[
            f"{fail2ban}/{folder}/mailfleet{suffix}.conf"
            for folder, suffix in (
                ("filter.d", "-auth"), ("filter.d", "-account"), ("action.d", "-deny"),
                ("jail.d", ""),
            )
        ],
        check="fail2ban-client --test > /dev/null",
    )
