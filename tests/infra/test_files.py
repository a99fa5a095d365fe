"""Configs, keys, password hashes and mail are owned and protected as each role needs."""

import pytest

# (path, owner, group, mode) per role. Keys and the password hashes are readable by root and
# by the daemon that needs them only; the mail root by the vmail account only.
FILES = {
    "loadbalancer": [
        ("/etc/haproxy/haproxy.cfg", "root", "root", 0o644),
    ],
    "mta": [
        ("/etc/postfix/main.cf", "root", "root", 0o644),
        ("/etc/postfix/master.cf", "root", "root", 0o644),
        ("/etc/postfix/tls", "root", "root", 0o750),
        ("/etc/postfix/tls/mail.crt", "root", "root", 0o644),
        ("/etc/postfix/tls/mail.key", "root", "root", 0o600),
        ("/etc/dovecot/dovecot.conf", "root", "root", 0o644),
        ("/etc/dovecot/users", "root", "dovecot", 0o640),
        # The DKIM keys and the Redis password are readable by root and Rspamd only.
        ("/var/lib/rspamd/dkim", "root", "_rspamd", 0o750),
        ("/etc/rspamd/local.d/redis.conf", "root", "_rspamd", 0o640),
    ],
    "redis": [
        ("/etc/redis/redis.conf", "root", "redis", 0o640),
    ],
    "mailstore": [
        ("/etc/dovecot/dovecot.conf", "root", "root", 0o644),
        ("/etc/dovecot/tls", "root", "root", 0o750),
        ("/etc/dovecot/tls/mail.crt", "root", "root", 0o644),
        ("/etc/dovecot/tls/mail.key", "root", "root", 0o600),
        ("/etc/dovecot/users", "root", "dovecot", 0o640),
        ("/var/vmail", "vmail", "vmail", 0o700),
    ],
}

USERS_FILES = {"mta": ["/etc/dovecot/users"], "mailstore": ["/etc/dovecot/users"]}

PER_ROLE = {"expected": FILES, "users_file": USERS_FILES}


@pytest.mark.clause("3.2")
def test_file_permissions(host, expected):
    path, owner, group, mode = expected
    target = host.file(path)

    assert target.exists, f"{path} is missing"
    assert target.user == owner
    assert target.group == group
    assert target.mode == mode, f"{path} has mode {target.mode:o}, expected {mode:o}"


@pytest.mark.clause("5.1.5")
def test_users_file_holds_only_hashes(host, users_file):
    lines = host.file(users_file).content_string.splitlines()
    entries = [line for line in lines if line and not line.startswith("#")]

    assert entries
    for entry in entries:
        address, password = entry.split(":")[:2]
        assert password.startswith("{ARGON2ID}$argon2id$"), f"{address} has no Argon2id hash"
