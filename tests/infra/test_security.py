"""Firewall, login throttling, TLS policy, log retention and the deploy journal on each host.

Clauses 3.2 (confidentiality) and 5.1.5 (hashed passwords, complete and secure operation logs).
"""

import json

import pytest

LOG_FILES = {
    "loadbalancer": ["/var/log/mailfleet/deploys.log", "/var/log/haproxy.log"],
    "mta": ["/var/log/mailfleet/deploys.log", "/var/log/postfix.log", "/var/log/dovecot.log"],
    "mailstore": ["/var/log/mailfleet/deploys.log", "/var/log/dovecot.log"],
}
LOGROTATE_FILES = {
    "loadbalancer": ["/etc/logrotate.d/mailfleet", "/etc/logrotate.d/haproxy"],
    "mta": ["/etc/logrotate.d/mailfleet"],
    "mailstore": ["/etc/logrotate.d/mailfleet"],
}
JAILS = {role: ["mailfleet-auth", "mailfleet-account"] for role in ("mta", "mailstore")}
# The jail that bans client addresses.
ADDRESS_JAILS = {role: ["mailfleet-auth"] for role in ("mta", "mailstore")}
# (command that prints a TLS setting, expected value with {minimum} for the oldest version).
TLS_SETTINGS = {
    "mta": [
        ("postconf -h smtpd_tls_protocols", ">={minimum}"),
        ("postconf -h smtpd_tls_mandatory_protocols", ">={minimum}"),
        ("postconf -h smtpd_tls_mandatory_ciphers", "high"),
        ("postconf -h smtpd_tls_auth_only", "yes"),
    ],
    "mailstore": [
        ("doveconf -h ssl_min_protocol", "{minimum}"),
        ("doveconf -h ssl", "required"),
        ("doveconf -h disable_plaintext_auth", "yes"),
    ],
}

PER_ROLE = {
    "log_path": LOG_FILES,
    "logrotate_path": LOGROTATE_FILES,
    "jail": JAILS,
    "address_jail": ADDRESS_JAILS,
    "tls_setting": TLS_SETTINGS,
}


@pytest.mark.clause("3.2")
def test_firewall_drops_by_default(host, node):
    ruleset = host.run("nft list table inet mailfleet")

    assert ruleset.rc == 0, ruleset.stderr
    assert "policy drop" in ruleset.stdout


@pytest.mark.clause("3.2")
def test_firewall_enabled_at_boot(host, node):
    assert host.service("nftables").is_enabled


@pytest.mark.clause("5.1.5")
def test_log_file_restricted(host, log_path, cluster):
    log = host.file(log_path)

    assert log.exists
    assert log.user == "root"
    assert log.group == cluster.security.log_group
    assert log.mode == 0o640


@pytest.mark.clause("5.1.5")
def test_logs_kept_for_retention(host, logrotate_path, cluster):
    days = cluster.security.log_retention_days
    config = host.file(logrotate_path).content_string

    assert f"rotate {days}" in config
    assert f"maxage {days}" in config
    assert "compress" in config
    assert "daily" in config


@pytest.mark.clause("5.1.5")
def test_deploy_journal_records_changes(host, node):
    lines = host.file("/var/log/mailfleet/deploys.log").content_string.splitlines()

    assert lines, "no deploy was recorded"
    record = json.loads(lines[-1])
    assert record["changed"]
    assert record["revision"]
    assert "@" in record["operator"]


@pytest.mark.clause("5.1.5")
def test_login_jail_active(host, jail):
    status = host.run(f"fail2ban-client status {jail}")

    assert status.rc == 0, status.stderr
    assert "Currently banned" in status.stdout


@pytest.mark.clause("5.1.5")
def test_cluster_hosts_never_banned(host, address_jail, cluster):
    ignored = host.run(f"fail2ban-client get {address_jail} ignoreip")

    assert ignored.rc == 0, ignored.stderr
    for node in cluster.nodes:
        assert str(node.address) in ignored.stdout, node.name


@pytest.mark.clause("3.2")
def test_tls_policy_setting(host, tls_setting, cluster):
    command, expected = tls_setting
    value = host.run(command).stdout.strip()

    assert value == expected.format(minimum=cluster.tls_min_protocol)
