"""testinfra checks: the mail root of every mailbox host with storage data is its RAID volume,
Dovecot waits for it, and the RAID check watches it (clause 5.1.4)."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.clause("5.1.4")

ROLES = ("mailstore",)
METRICS = "/var/lib/mailfleet/metrics/raid.prom"


@pytest.fixture(scope="module")
def volume(node):
    """The node's storage data; the node's checks are skipped when it has none."""
    if node.storage is None:
        pytest.skip(f"{node.name} keeps its mail root on the root file system (no storage data)")
    return node.storage


def test_mail_root_is_mounted_volume(host, volume, cluster):
    mount = host.mount_point(cluster.mail_root)

    assert mount.exists
    assert mount.filesystem == ("btrfs" if volume.kind == "btrfs" else volume.filesystem)


def test_volume_spans_every_device(host, volume, cluster):
    if volume.kind == "mdadm":
        detail = host.check_output(f"mdadm --detail {volume.array}")
        assert re.search(rf"Raid Level : {volume.level}\b", detail)
        for device in volume.devices:
            assert re.search(rf"active sync\s+{re.escape(device)}$", detail, re.MULTILINE)
        return

    show = host.check_output(f"btrfs filesystem show {cluster.mail_root}")
    assert f"Total devices {len(volume.devices)} " in show
    assert "MISSING" not in show
    for device in volume.devices:
        assert f"path {device}" in show


def test_every_chunk_mirrored(host, volume, cluster):
    if volume.kind == "mdadm":
        pytest.skip("an md array mirrors every block; its level is checked above")

    df = host.check_output(f"btrfs filesystem df {cluster.mail_root}")
    profiles = re.findall(r"^(Data|Metadata|System), (\w+):", df, re.MULTILINE)

    assert {kind for kind, _ in profiles} == {"Data", "Metadata", "System"}
    assert {profile for _, profile in profiles} == {"RAID1"}


def test_mail_is_written_to_volume(host, volume, cluster):
    """The users' maildirs are on the volume's file system, not on the root file system below."""
    root_device = host.check_output(f"stat -c %d {cluster.mail_root}")
    assert root_device != host.check_output("stat -c %d /")
    for folder in host.check_output(f"find {cluster.mail_root} -mindepth 1 -maxdepth 2 -type d")\
            .split():
        assert host.check_output(f"stat -c %d {folder}") == root_device, folder


def test_dovecot_requires_mount(host, volume, cluster):
    requires = host.check_output("systemctl show --property RequiresMountsFor dovecot.service")

    assert cluster.mail_root in requires.split("=", 1)[1].split()


def test_raid_check_timer_running(host, volume):
    assert host.service("mailfleet-raid-check.timer").is_running
    assert host.service("mailfleet-raid-check.timer").is_enabled


def test_metric_reports_redundant_volume(host, volume):
    metrics = host.file(METRICS)

    assert metrics.exists
    assert re.search(r"^mailfleet_raid_degraded\{[^}]*\} 0$", metrics.content_string, re.MULTILINE)
