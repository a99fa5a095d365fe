"""A member of a mailbox host's btrfs RAID 1 fails while mail arrives: no message is lost, the
postmaster and the metrics learn of it within a minute, and replacing the member restores
redundancy (clause 5.1.4).

The failure is staged as a disk swap on a host without hot-plug: Dovecot and the mount stop, the
member's signature is wiped, and the survivor is mounted degraded. Mail that the MX accepts
meanwhile waits in its queue. The module ends with the volume whole again, mounted by its unit.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest

from mailfleet import harness
from mailfleet.model import Cluster, Node
from mailfleet.storage import mount_unit_name
from tests.scenarios.conftest import OUTSIDE_SENDER

pytestmark = [pytest.mark.raid, pytest.mark.clause("5.1.4")]

# A bounded stream: about 20 messages over 20 to 40 seconds on a busy machine.
MESSAGES = 20
SEND_INTERVAL = 0.5
# A degraded volume must reach the postmaster and the metrics within this many seconds of the
# degraded mount.
REPORT_SECONDS = 60
# Mail deferred during the swap is delivered after a queue flush; reading it may take a while
# on a machine shared with other clusters.
DELIVERY_SECONDS = 180
METRICS = "/var/lib/mailfleet/metrics/raid.prom"
METRIC = r"^{name}\{{[^}}]*\}} (?P<value>\d+)$"
MISSING_DEVID = re.compile(r"devid\s+(?P<devid>\d+) .*MISSING")


def run(node: Node, script: str) -> str:
    """Run a shell script on the node; fail the test with its output when a command fails."""
    result = harness.run_on_node(node.inventory_name, "sh", "-ec", script)
    assert result.returncode == 0, f"{script}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def btrfs_mailbox_host(cluster: Cluster) -> Node:
    for node in cluster.mailstores:
        if node.storage is not None and node.storage.kind == "btrfs":
            return node
    pytest.skip("no mailbox host has a btrfs volume")


def metric(node: Node, name: str) -> str | None:
    """Return the value of one RAID metric on the node, or None when it is not written."""
    result = harness.run_on_node(node.inventory_name, "cat", METRICS)
    match = re.search(METRIC.format(name=name), result.stdout, re.MULTILINE)
    return match["value"] if match else None


def reports_missing_member(node: Node) -> bool:
    degraded = metric(node, "mailfleet_raid_degraded") == "1"
    return degraded and metric(node, "mailfleet_raid_missing_devices") == "1"


def flush_queues(cluster: Cluster) -> None:
    """Make every MX retry its deferred mail now, instead of at its next queue run (minutes)."""
    for mta in cluster.mtas:
        harness.run_on_node(mta.inventory_name, "postqueue", "-f")


def restart_mount_holders(mount_point: str) -> str:
    """Return a script that restarts the services that still hold a copy of the mount.

    A sandboxed service that starts after the volume is mounted (systemd-logind, whose unit
    sets ProtectSystem=strict, after a reboot) keeps a copy of the mount in its own namespace,
    which the unmount does not reach, so the members stay busy until it restarts.
    """
    return f"""
        for pid in $(grep -l " {mount_point} " /proc/[0-9]*/mountinfo | cut -d/ -f3); do
            ps -o unit= -p "$pid"
        done | grep '[.]service$' | sort -u | xargs -r systemctl restart
    """


def fail_member(node: Node, mount_point: str, unit: str) -> None:
    """Take the second member out of the volume and mount the survivor degraded."""
    survivor, member = node.storage.devices[0], node.storage.devices[1]
    run(node, f"""
        systemctl stop dovecot {unit}
        {restart_mount_holders(mount_point)}
        wipefs --all {member}
        btrfs device scan --forget {member}
        mount -t btrfs -o degraded,device={survivor} {survivor} {mount_point}
        systemctl start dovecot
    """)


def replace_member(node: Node, mount_point: str) -> None:
    """Rebuild the missing member onto its (new) device, convert the chunks written while
    degraded back to RAID 1, and reset the error counters, as an operator would."""
    show = run(node, f"btrfs filesystem show {mount_point}")
    missing = MISSING_DEVID.search(show)
    if missing:
        member = node.storage.devices[1]
        run(node, f"btrfs replace start -B -f {missing['devid']} {member} {mount_point}")
    run(node, f"""
        btrfs balance start -f -dconvert=raid1,soft -mconvert=raid1,soft -sconvert=raid1,soft \\
            {mount_point}
        btrfs device stats --reset {mount_point} > /dev/null
    """)


def remount_by_unit(node: Node, mount_point: str, unit: str) -> None:
    """Mount the volume again with its unit's options, without `degraded`."""
    options = run(node, f"findmnt -n -o OPTIONS {mount_point} || true")
    if "degraded" in options or not options.strip():
        run(node, f"systemctl stop dovecot {unit}; umount {mount_point} 2>/dev/null || true;"
                  f" systemctl start {unit} dovecot")


def restore_volume(node: Node, mount_point: str, unit: str) -> None:
    """Make the volume whole and mounted by its unit again, from whatever state a failed test
    left: unmounted, degraded or with a member missing."""
    survivor = node.storage.devices[0]
    if not run(node, f"findmnt -n {mount_point} || true").strip():
        run(node, f"systemctl start {unit} || mount -t btrfs -o degraded,device={survivor}"
                  f" {survivor} {mount_point}")
    replace_member(node, mount_point)
    remount_by_unit(node, mount_point, unit)


def messages(client, cluster: Cluster, user: str, subject: str) -> list[dict]:
    password = harness.credentials(cluster)[user]
    return client("imap_messages", user=user, password=password, subject=subject)["messages"]


def wait_for(condition, timeout: float, cluster: Cluster) -> float | None:
    """Return the seconds until condition() held, flushing the MX queues between tries."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        flush_queues(cluster)
        time.sleep(3)
    return None


@pytest.fixture(scope="module")
def raid_failure(deployed, client):
    """Fail and replace a member while a stream of messages arrives; return what was observed.

    Whatever fails, the volume is rebuilt and remounted by its unit before the module ends.
    """
    cluster = deployed
    node = btrfs_mailbox_host(cluster)
    mount_point = node.storage.mount_point(cluster.mail_root)
    unit = mount_unit_name(mount_point)
    recipient = cluster.mail_users[1].address
    subject = f"raid stream {uuid.uuid4()}"
    alert_subject = f"RAID degraded on {node.name}"
    earlier_alerts = {
        message["message_id"]
        for message in messages(client, cluster, cluster.postmaster, alert_subject)
    }
    observed: dict = {"node": node, "mount_point": mount_point}

    stream: dict = {}
    sending = threading.Thread(target=lambda: stream.update(client(
        "send_many", sender=OUTSIDE_SENDER, recipient=recipient, subject=subject,
        count=MESSAGES, interval=SEND_INTERVAL,
    )))
    sending.start()
    try:
        time.sleep(3)
        fail_member(node, mount_point, unit)
        flush_queues(cluster)

        observed["metric_seconds"] = wait_for(
            lambda: reports_missing_member(node), REPORT_SECONDS, cluster
        )

        def alert_arrived() -> bool:
            new = [message for message in messages(client, cluster, cluster.postmaster,
                                                   alert_subject)
                   if message["message_id"] not in earlier_alerts]
            observed["alerts"] = new
            return bool(new)

        # Measured from the degraded mount, like the metric: the metric wait counts too.
        waited = observed["metric_seconds"] or REPORT_SECONDS
        alert_seconds = wait_for(alert_arrived, REPORT_SECONDS - waited + 1, cluster)
        observed["alert_seconds"] = None if alert_seconds is None else waited + alert_seconds

        sending.join()
        replace_member(node, mount_point)
        remount_by_unit(node, mount_point, unit)
        observed["recovered_seconds"] = wait_for(
            lambda: metric(node, "mailfleet_raid_degraded") == "0", REPORT_SECONDS, cluster
        )

        sent = stream.get("message_ids", [])
        observed["sent"] = sent
        wait_for(lambda: len(messages(client, cluster, recipient, subject)) >= len(sent),
                 DELIVERY_SECONDS, cluster)
        observed["read"] = messages(client, cluster, recipient, subject)
        observed["show"] = run(node, f"btrfs filesystem show {mount_point}")
        observed["df"] = run(node, f"btrfs filesystem df {mount_point}")
        yield observed
    finally:
        sending.join()
        restore_volume(node, mount_point, unit)
        flush_queues(cluster)


def test_stream_was_sent(raid_failure):
    assert len(raid_failure["sent"]) == MESSAGES


def test_no_message_lost(raid_failure):
    read = {message["message_id"] for message in raid_failure["read"]}

    assert set(raid_failure["sent"]) - read == set()


def test_degraded_metric_within_a_minute(raid_failure, request):
    seconds = raid_failure["metric_seconds"]
    request.node.user_properties.append(("seconds", seconds))

    assert seconds is not None, f"{METRICS} did not report the degraded volume"
    assert seconds <= REPORT_SECONDS


def test_degraded_alert_reaches_postmaster(raid_failure, request):
    seconds = raid_failure["alert_seconds"]
    request.node.user_properties.append(("seconds", seconds))

    assert seconds is not None, "no alert reached the postmaster's INBOX"
    assert seconds <= REPORT_SECONDS


def test_alert_names_missing_member(raid_failure):
    alert = raid_failure["alerts"][0]

    assert raid_failure["mount_point"] in alert["subject"]
    assert "member device(s) missing" in alert["body"]
    assert alert["from"].startswith(f"RAID monitor on {raid_failure['node'].name}")


def test_recovery_reported(raid_failure):
    assert raid_failure["recovered_seconds"] is not None


def test_every_member_present_again(raid_failure):
    show = raid_failure["show"]

    assert "MISSING" not in show
    for device in raid_failure["node"].storage.devices:
        assert f"path {device}" in show


def test_every_chunk_raid1_again(raid_failure):
    profiles = re.findall(r"^(Data|Metadata|System), (\w+):", raid_failure["df"], re.MULTILINE)

    assert {kind for kind, _ in profiles} == {"Data", "Metadata", "System"}
    assert {profile for _, profile in profiles} == {"RAID1"}
