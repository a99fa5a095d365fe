"""Spam and virus filtering through the load balancer: verdicts, DKIM, rate limits, failures.

The destructive tests at the end stop or freeze Rspamd and clamd on every MX, and restore them
whatever the outcome: with one MX broken, the load balancer rightly sends mail to a healthy one.
"""

from __future__ import annotations

import contextlib
import email
import functools
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import dkim
import pytest

from mailfleet import harness
from mailfleet.dns import parse_txt
from mailfleet.eicar import eicar
from roles.filter import clamd_limits
from tests.conftest import PROJECT
from tests.scenarios.conftest import OUTSIDE_SENDER

pytestmark = pytest.mark.filtering

# The GTUBE test string: Rspamd rejects every message that contains it.
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# Waits for the filter to come back, generous because the machine may be busy.
RECOVERY_SECONDS = 180
# Read the Redis password on the host itself, so it never appears on a command line here.
REDIS_CLI = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) redis-cli"


@pytest.fixture(scope="module")
def passwords(deployed) -> dict[str, str]:
    return harness.credentials(deployed)


@pytest.fixture(scope="module")
def recipient(deployed) -> str:
    return deployed.mail_users[1].address


def send(client, recipient: str, **request) -> dict:
    """Send one message from outside the cluster to port 25; return the SMTP reply."""
    report = client("send", sender=OUTSIDE_SENDER, recipient=recipient, **request)
    return report["replies"][-1]


def fetch(client, user: str, password: str, message_id: str, wait: float = 60) -> str | None:
    """Return the message with this Message-ID from the user's INBOX, or None after `wait`."""
    report = client("fetch", user=user, password=password, message_id=message_id, wait=wait)
    assert report["copies"] <= 1, f"{message_id} was delivered {report['copies']} times"
    return report["message"]


def on_node(node, command: str) -> subprocess.CompletedProcess:
    return harness.run_on_node(node.inventory_name, "sh", "-c", command)


@pytest.mark.clause("2.2.4")
def test_gtube_rejected(client, recipient):
    reply = send(client, recipient, body=f"{GTUBE}\n")

    assert reply["code"] == 554, reply


@pytest.mark.clause("2.3.1", "5.1.8")
def test_eicar_attachment_rejected(client, recipient):
    reply = send(client, recipient, attachment=eicar().decode())

    assert 500 <= reply["code"] < 600, reply
    assert "virus" in reply["text"], reply


def eicar_behind_padding(padding_mib: int) -> str:
    """Return a zip archive, as latin-1 text for the probe: members of zeros that unpack to
    `padding_mib` MiB, then the EICAR file, which a scan stopped at a size limit never reaches.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for number in range(padding_mib // 20):
            archive.writestr(f"padding{number}.bin", bytes(20 * 1024 * 1024))
        archive.writestr("eicar.com", eicar())
    return buffer.getvalue().decode("latin-1")


@pytest.mark.clause("2.3.1", "5.1.8")
def test_virus_behind_scan_limit_rejected(deployed, client, recipient):
    """A virus that clamd cannot reach, past the data it scans per message, is not delivered."""
    scan_limit_mib = int(clamd_limits(deployed)["MaxScanSize"].removesuffix("M"))
    reply = send(client, recipient, attachment=eicar_behind_padding(scan_limit_mib + 40))

    assert reply["code"] == 554, reply
    assert "too large or too deeply packed" in reply["text"], reply


@pytest.mark.clause("2.2.4", "2.3.1")
def test_clean_message_has_rspamd_headers(client, recipient, passwords):
    reply = send(client, recipient)
    assert reply["code"] == 250, reply

    message = fetch(client, recipient, passwords[recipient], reply["message_id"])

    assert message is not None
    headers = email.message_from_string(message)
    assert headers["X-Spamd-Result"] is not None
    assert headers["X-Rspamd-Server"] is not None
    assert headers["X-Rspamd-Action"] == "no action"


def dns_record(name: str) -> str:
    """Return the TXT value that `mailfleet dns` prints for a record name."""
    output = subprocess.run(
        [str(Path(sys.executable).with_name("mailfleet")), "dns"],
        cwd=PROJECT, env=os.environ, capture_output=True, text=True, check=True,
    ).stdout
    line = next(line for line in output.splitlines() if line.startswith(f"{name} IN TXT "))
    return parse_txt(line)


@pytest.mark.clause("2.2.4")
def test_outbound_mail_carries_valid_dkim(deployed, client, passwords):
    sender, recipient = deployed.mail_users[0].address, deployed.mail_users[1].address
    report = client("send", port=587, sender=sender, recipient=recipient,
                    password=passwords[sender])
    reply = report["replies"][-1]
    assert reply["code"] == 250, reply
    message = fetch(client, recipient, passwords[recipient], reply["message_id"])
    assert message is not None
    domain = sender.rpartition("@")[2]
    selector = deployed.filtering.dkim_selector
    record = dns_record(f"{selector}._domainkey.{domain}.")

    def resolve(name: bytes, timeout: int = 5) -> bytes:
        assert name.decode().rstrip(".") == f"{selector}._domainkey.{domain}"
        return record.encode()

    signature = email.message_from_string(message)["DKIM-Signature"]
    assert signature is not None
    assert f"d={domain}" in signature
    assert dkim.verify(message.encode("latin-1"), dnsfunc=resolve)


def clear_rate_limits(deployed) -> None:
    """Delete the rate limit buckets in the Redis primary, so that every user starts afresh."""
    primary = deployed.redis_servers[0]
    result = on_node(primary, f"{REDIS_CLI} --scan --pattern 'RL*' | while read -r key; do"
                              f' {REDIS_CLI} del "$key" >/dev/null; done')
    assert result.returncode == 0, result.stderr


@pytest.fixture
def fresh_rate_limits(deployed):
    clear_rate_limits(deployed)
    yield
    clear_rate_limits(deployed)


@pytest.mark.clause("2.2.4")
def test_rate_limit_exceeded_gives_4xx(deployed, client, passwords, fresh_rate_limits):
    sender, recipient = deployed.mail_users[0].address, deployed.mail_users[1].address
    burst = deployed.filtering.rate_limit_messages
    # The bucket refills while the messages go out, so a few more than the burst get through.
    count = 3 * burst

    report = client("send", port=587, sender=sender, recipient=recipient,
                    password=passwords[sender], count=count)

    codes = [reply["code"] for reply in report["replies"]]
    assert codes[:burst] == [250] * burst, report
    assert 400 <= codes[-1] < 500, report


# The ways a filter fails: (service, how it is broken, how it is restored).
FAULTS = {
    "rspamd-stopped": ("systemctl stop rspamd", "systemctl start rspamd"),
    "rspamd-frozen": ("systemctl kill --signal=SIGSTOP rspamd",
                      "systemctl kill --signal=SIGCONT rspamd"),
    "clamd-stopped": ("systemctl stop clamav-daemon.socket clamav-daemon",
                      "systemctl start clamav-daemon.socket clamav-daemon"),
    "clamd-frozen": ("systemctl kill --signal=SIGSTOP clamav-daemon",
                     "systemctl kill --signal=SIGCONT clamav-daemon"),
}
HEALTH_CHECK = "/usr/local/lib/mailfleet/filter-health"


def filter_healthy(node) -> bool:
    return on_node(node, HEALTH_CHECK).stdout.strip() == "up"


def balancer_status(balancer, backend: str, server: str) -> str:
    """Return HAProxy's status of a server in a backend: "UP", "DOWN" and so on."""
    return harness.balancer_statuses(balancer)[backend, server]


def smtp_server_down(balancer, server: str) -> bool:
    return balancer_status(balancer, "smtp", server).startswith("DOWN")


@contextlib.contextmanager
def broken_filter(node, fault: str):
    """Break the filter of `node` as named in FAULTS, and restore it when the block ends."""
    breaking, restoring = FAULTS[fault]
    assert filter_healthy(node), f"the filter of {node.name} was unhealthy before the test"
    result = on_node(node, breaking)
    assert result.returncode == 0, result.stderr
    try:
        yield
    finally:
        on_node(node, restoring)
        assert harness.wait_until(lambda: filter_healthy(node), RECOVERY_SECONDS), (
            f"the filter of {node.name} did not recover from {fault}"
        )


@contextlib.contextmanager
def broken_filters(nodes, fault: str):
    """Break the filter of every node in `nodes`, and restore them all when the block ends."""
    with contextlib.ExitStack() as stack:
        for node in nodes:
            stack.enter_context(broken_filter(node, fault))
        yield


@pytest.mark.clause("2.2.4", "2.3.1", "5.1.8")
@pytest.mark.parametrize("fault", list(FAULTS))
def test_broken_filter_defers_then_delivers(deployed, client, passwords, recipient, fault):
    message_id = f"<filter-{fault}-{os.getpid()}@client.invalid>"
    balancer = deployed.loadbalancers[0]

    with broken_filters(deployed.mtas, fault):
        deferred = send(client, recipient, message_id=message_id)
        assert 400 <= deferred["code"] < 500, deferred
        assert fetch(client, recipient, passwords[recipient], message_id, wait=5) is None
        # The agent check takes every MX out of rotation; their backup entries still accept
        # and defer too.
        for mx in deployed.mtas:
            taken_out = functools.partial(smtp_server_down, balancer, mx.name)
            assert harness.wait_until(taken_out, 60), balancer_status(balancer, "smtp", mx.name)
        still_deferred = send(client, recipient, message_id=message_id)
        assert 400 <= still_deferred["code"] < 500, still_deferred

    # The client retries, as a sending server does after a 4xx.
    delivered = send(client, recipient, message_id=message_id)
    assert delivered["code"] == 250, delivered
    message = fetch(client, recipient, passwords[recipient], message_id)
    assert message is not None
    assert email.message_from_string(message)["X-Spamd-Result"] is not None
