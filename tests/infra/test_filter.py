"""The MX hosts' spam and virus filter: Postfix's milter, Rspamd's modules, clamd, DKIM keys."""

import json

import pytest

from roles.filter import HEALTH_PORT

ROLES = ["mta"]

SERVICES = {"mta": ["rspamd", "clamav-daemon", "mailfleet-filter-health"]}
PER_ROLE = {"service": SERVICES}


@pytest.mark.clause("2.2.4", "2.3.1", "5.1.8")
def test_filter_service_running(host, service):
    assert host.service(service).is_running
    assert host.service(service).is_enabled


@pytest.mark.clause("2.2.4")
def test_dkim_keys_private(host, deployed):
    for domain in deployed.mail_domains:
        key = host.file(f"/var/lib/rspamd/dkim/{domain}.{deployed.filtering.dkim_selector}.key")
        assert key.exists, f"the DKIM key of {domain} is missing"
        assert (key.user, key.group, key.mode) == ("root", "_rspamd", 0o640)


def postconf(host, name: str) -> str:
    return host.check_output(f"postconf -h {name}")


@pytest.mark.clause("2.2.4", "2.3.1")
def test_postfix_calls_rspamd_milter(host):
    assert postconf(host, "smtpd_milters") == "inet:127.0.0.1:11332"
    assert host.check_output("postconf -xh non_smtpd_milters") == "inet:127.0.0.1:11332"
    assert host.socket("tcp://127.0.0.1:11332").is_listening


@pytest.mark.clause("2.2.4", "5.1.8")
def test_milter_failure_defers(host):
    assert postconf(host, "milter_default_action") == "tempfail"
    for name in ("milter_connect_timeout", "milter_command_timeout", "milter_content_timeout"):
        assert postconf(host, name).endswith("s"), name


def rspamd_module(host, name: str) -> dict:
    """Return a module's effective configuration, as Rspamd reads it."""
    return json.loads(host.check_output(f"rspamadm configdump -j {name}"))


@pytest.mark.clause("2.3.1", "5.1.8")
def test_antivirus_module_uses_clamd(host):
    clamav = rspamd_module(host, "antivirus")["clamav"]

    assert clamav["type"] == "clamav"
    assert clamav["action"] == "reject"
    assert host.socket(f"unix://{clamav['servers']}").is_listening


@pytest.mark.clause("2.3.1")
def test_scan_failure_soft_rejects(host):
    rules = rspamd_module(host, "force_actions")["rules"]

    assert rules["virus_scan_failed"]["action"] == "soft reject"


@pytest.mark.clause("2.2.4")
def test_offline_mode_disables_lookups(host, deployed):
    if not deployed.filtering.offline:
        pytest.skip("the cluster is not in offline mode")
    for module in ("rbl", "fuzzy_check", "asn"):
        assert rspamd_module(host, module).get("enabled") is False, module


@pytest.mark.clause("2.3.1", "5.1.8")
def test_health_agent_reports_up(host):
    assert host.check_output("/usr/local/lib/mailfleet/filter-health") == "up"


@pytest.mark.clause("2.3.1", "5.1.8")
def test_health_agent_answers_on_port(host):
    """The agent daemon replies at once with its last result, as HAProxy reads it."""
    reply = host.check_output(
        "python3 -c 'import socket; print(socket.create_connection((\"127.0.0.1\","
        f" {HEALTH_PORT}), timeout=3).recv(64).decode().strip())'"
    )

    assert reply == "up"


def clamd_setting(host, name: str) -> str:
    """Return a setting of clamd.conf as clamconf prints it, unquoted: "26214400", "yes", or
    "disabled" for a switch that is off."""
    for line in host.check_output("clamconf").splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return value.removeprefix("= ").strip('"')
    raise AssertionError(f"clamconf does not list {name}")


@pytest.mark.clause("2.3.1", "5.1.8")
def test_clamd_flags_unscannable_files(host, deployed):
    """clamd reports a file it could not scan whole, and takes the largest message whole."""
    rules = rspamd_module(host, "force_actions")["rules"]

    assert clamd_setting(host, "AlertExceedsMax") == "yes"
    assert int(clamd_setting(host, "StreamMaxLength")) > deployed.message_size_limit
    assert int(clamd_setting(host, "MaxFileSize")) > deployed.message_size_limit
    assert rules["virus_scan_limits"]["action"] == "reject"
