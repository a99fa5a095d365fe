"""The RAID volume without a host: the model, the refusal to wipe data, the exact mdadm and
btrfs commands, the rendered mdadm.conf and units, and the RAID check's parsing and metrics."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from mailfleet import containers, harness, raidcheck
from mailfleet.containers import HarnessError, NodeSpec
from mailfleet.model import Cluster, Node
from mailfleet.render import render
from mailfleet.storage import (
    DeviceState,
    Storage,
    StorageError,
    create_commands,
    mount_unit_name,
    mount_values,
    plan_volume,
)
from roles.storage import parse_block_devices

pytestmark = pytest.mark.clause("5.1.4")

MDADM = Storage(kind="mdadm", devices=["/dev/sdb", "/dev/sdc"])
BTRFS = Storage(kind="btrfs", devices=["/dev/vdb", "/dev/vdc"])
EMPTY = [DeviceState("/dev/sdb", True), DeviceState("/dev/sdc", True)]


def plan(storage: Storage, states: list[DeviceState], holds_files: bool = False):
    return plan_volume(storage, "mbox1", states, "/var/vmail", holds_files)


def test_mdadm_commands_on_empty_devices():
    array_uuid = MDADM.array_uuid("mbox1")

    assert plan(MDADM, EMPTY).commands == [
        "mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2"
        f" --name=mailfleet-mail --uuid={array_uuid} /dev/sdb /dev/sdc",
        "mkfs.ext4 -L mailfleet-mail /dev/md0",
    ]


def test_mdadm_raid10_commands():
    storage = Storage(kind="mdadm", level="raid10", filesystem="xfs", array="/dev/md/mail",
                      devices=["/dev/sdb", "/dev/sdc", "/dev/sdd", "/dev/sde"])

    commands = create_commands(storage, "mbox2")

    assert commands[0].startswith("mdadm --create /dev/md/mail --run --level=10 --raid-devices=4")
    assert commands[0].endswith("/dev/sdb /dev/sdc /dev/sdd /dev/sde")
    assert commands[1] == "mkfs.xfs -L mailfleet-mail /dev/md/mail"


def test_btrfs_command_on_empty_devices():
    states = [DeviceState("/dev/vdb", True), DeviceState("/dev/vdc", True)]

    assert plan(BTRFS, states).commands == [
        "mkfs.btrfs --force --label mailfleet-mail --data raid1 --metadata raid1 /dev/vdb /dev/vdc"
    ]


def test_array_uuid_fixed_per_host():
    first = MDADM.array_uuid("mbox1")

    assert first == MDADM.array_uuid("mbox1")
    assert first != MDADM.array_uuid("mbox2")
    assert [len(group) for group in first.split(":")] == [8, 8, 8, 8]


def test_refusal_on_device_with_file_system():
    states = [DeviceState("/dev/sdb", True, "ext4", "data", "1234"), EMPTY[1]]

    with pytest.raises(StorageError) as raised:
        plan(MDADM, states)

    message = str(raised.value)
    assert "storage.devices" in message
    assert "/dev/sdb holds a signature of type ext4 labelled 'data'" in message
    assert "storage.allow_existing_data = True" in message


def test_refusal_on_mounted_device():
    states = [EMPTY[0], DeviceState("/dev/sdc", True, mounted=True)]

    with pytest.raises(StorageError, match="/dev/sdc is mounted on mbox1: name empty devices"):
        plan(MDADM, states)


def test_refusal_on_missing_device():
    with pytest.raises(StorageError, match="/dev/sdc not found on mbox1"):
        plan(MDADM, [EMPTY[0], DeviceState("/dev/sdc", False)])


def test_allowed_existing_data_is_wiped_first():
    storage = MDADM.model_copy(update={"allow_existing_data": True})
    states = [DeviceState("/dev/sdb", True, "ext4", mounted=True), EMPTY[1]]

    commands = plan(storage, states).commands

    assert commands[:2] == ["umount /dev/sdb", "wipefs --all /dev/sdb"]
    assert commands[2].startswith("mdadm --create /dev/md0")


def test_existing_volume_is_kept():
    array_uuid = str(uuid.UUID(MDADM.array_uuid("mbox1").replace(":", "")))
    states = [DeviceState(path, True, "linux_raid_member", "mbox1:mailfleet-mail", array_uuid)
              for path in MDADM.devices]

    assert plan(MDADM, states) == (True, [])


def test_existing_btrfs_volume_is_kept_while_mounted():
    states = [DeviceState("/dev/vdb", True, "btrfs", "mailfleet-mail", "u1", mounted=True),
              DeviceState("/dev/vdc", True, "btrfs", "mailfleet-mail", "u1")]

    assert plan(BTRFS, states).exists


def test_other_array_is_refused():
    states = [DeviceState(path, True, "linux_raid_member", "old:data", str(uuid.uuid4()))
              for path in MDADM.devices]

    with pytest.raises(StorageError, match="linux_raid_member"):
        plan(MDADM, states)


def test_degraded_volume_never_recreated():
    storage = BTRFS.model_copy(update={"allow_existing_data": True})
    states = [DeviceState("/dev/vdb", True, "btrfs", "mailfleet-mail", "u1"),
              DeviceState("/dev/vdc", True)]

    with pytest.raises(StorageError, match="incomplete, because /dev/vdc"):
        plan(storage, states)


def test_files_under_mount_point_refused():
    with pytest.raises(StorageError, match="/var/vmail on mbox1 already contains files"):
        plan(BTRFS, [DeviceState("/dev/vdb", True), DeviceState("/dev/vdc", True)], True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kind": "btrfs", "devices": ["/dev/vdb"]}, "at least 2 devices, 1 given"),
        ({"kind": "btrfs", "devices": ["/dev/vdb", "/dev/vdb"]}, "listed twice"),
        ({"kind": "btrfs", "devices": ["/dev/vdb", "vdc"]}, "not a block device path"),
        ({"kind": "btrfs", "devices": ["/dev/vdb", "/dev/../etc"]}, "not a block device path"),
        ({"kind": "btrfs", "level": "raid10", "devices": ["/dev/a", "/dev/b", "/dev/c",
                                                           "/dev/d"]}, "btrfs volumes are RAID 1"),
        ({"kind": "mdadm", "level": "raid10", "devices": ["/dev/a", "/dev/b"]}, "at least 4"),
        ({"kind": "zfs", "devices": ["/dev/a", "/dev/b"]}, "'btrfs' or 'mdadm'"),
        ({"kind": "mdadm", "array": "/dev/sda", "devices": ["/dev/a", "/dev/b"]}, "pattern"),
    ],
    ids=["one device", "device twice", "relative device", "dot-dot device", "btrfs raid10",
         "raid10 with two", "unknown kind", "array not md"],
)
def test_invalid_storage(values, message):
    with pytest.raises(ValidationError, match=message):
        Storage(**values)


def test_mdadm_conf_rendered():
    text = render(
        "storage/etc/mdadm/mdadm.conf.j2",
        holds="mail_root",
        devices=MDADM.devices,
        mailaddr="postmaster@example.test",
        mailfrom="raid-monitor@mbox1.example.test",
        program="/usr/local/sbin/mailfleet-raid-check",
        array="/dev/md0",
        uuid=MDADM.array_uuid("mbox1"),
        array_name="mailfleet-mail",
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]

    assert lines == [
        "DEVICE /dev/sdb /dev/sdc",
        "HOMEHOST <system>",
        "MAILADDR postmaster@example.test",
        "MAILFROM raid-monitor@mbox1.example.test",
        "PROGRAM /usr/local/sbin/mailfleet-raid-check",
        f"ARRAY /dev/md0 metadata=1.2 UUID={MDADM.array_uuid('mbox1')} name=mailfleet-mail",
    ]


def test_mount_unit_for_btrfs():
    text = render(
        "storage/etc/systemd/system/mailfleet-volume.mount.j2",
        unit="var-vmail.mount", holds="mail_root", mount_point="/var/vmail",
        **mount_values(BTRFS),
    )

    assert "What=/dev/vdb\n" in text
    assert "Options=device=/dev/vdb,device=/dev/vdc,noatime\n" in text
    assert "Type=btrfs\n" in text


def test_queue_volume_mount_point():
    storage = MDADM.model_copy(update={"holds": "postfix_queue"})

    assert storage.mount_point("/var/vmail") == "/var/spool/postfix"
    assert storage.label == "mailfleet-queue"


def test_mount_unit_for_mdadm():
    assert mount_values(MDADM) == {"what": "/dev/md0", "type": "ext4", "options": "noatime"}


@pytest.mark.parametrize(
    ("path", "unit"),
    [("/var/vmail", "var-vmail.mount"), ("/srv/mail-store", "srv-mail\\x2dstore.mount"),
     ("/var/spool/postfix", "var-spool-postfix.mount")],
)
def test_mount_unit_name(path, unit):
    assert mount_unit_name(path) == unit


def test_block_devices_parsed():
    output = ["DEVICE=/dev/vdb", "LABEL=mailfleet-mail", "UUID=u1", "TYPE=btrfs", "MOUNTED=1",
              "DEVICE=/dev/vdc", "MISSING=/dev/vdd"]

    assert parse_block_devices(output) == [
        DeviceState("/dev/vdb", True, "btrfs", "mailfleet-mail", "u1", True),
        DeviceState("/dev/vdc", True),
        DeviceState("/dev/vdd", False),
    ]


SHOW_DEGRADED = """\
Label: 'mailfleet-mail'  uuid: bcb0b7b9-a503-47ab-8e85-7ad961ddd623
\tTotal devices 2 FS bytes used 176.00KiB
\tdevid    1 size 512.00MiB used 123.19MiB path /dev/vdb
\tdevid    2 size 0 used 0 path  MISSING
"""
STATS_DEGRADED = """\
[/dev/vdb].write_io_errs    0
[/dev/vdb].read_io_errs     0
[/dev/vdb].corruption_errs  3
[devid:2].write_io_errs    0
"""
DF_AFTER_DEGRADED_WRITES = """\
Data, single: total=64.00MiB, used=0.00B
Data, RAID1: total=64.00MiB, used=0.00B
Metadata, RAID1: total=51.19MiB, used=160.00KiB
GlobalReserve, single: total=5.50MiB, used=0.00B
"""


def test_btrfs_outputs_parsed():
    assert raidcheck.count_missing(SHOW_DEGRADED) == 1
    assert raidcheck.parse_device_stats(STATS_DEGRADED) == {
        "/dev/vdb": {"write_io_errs": 0, "read_io_errs": 0, "corruption_errs": 3},
        "devid:2": {"write_io_errs": 0},
    }
    assert raidcheck.parse_profiles(DF_AFTER_DEGRADED_WRITES) == {
        "Data": ["SINGLE", "RAID1"], "Metadata": ["RAID1"],
    }


def test_degraded_status_problems():
    status = {
        "mounted": True,
        "missing": 1,
        "errors": raidcheck.parse_device_stats(STATS_DEGRADED),
        "profiles": raidcheck.parse_profiles(DF_AFTER_DEGRADED_WRITES),
    }

    assert raidcheck.problems_of(status) == [
        "1 member device(s) missing",
        "device /dev/vdb has errors: corruption_errs 3",
        "Data has SINGLE chunks, which have one copy only",
    ]


def test_healthy_status_has_no_problems():
    status = {"mounted": True, "missing": 0, "errors": {"/dev/vdb": {"write_io_errs": 0}},
              "profiles": {"Data": ["RAID1"], "Metadata": ["RAID1"], "System": ["RAID1"]}}

    assert raidcheck.problems_of(status) == []


def test_unmounted_volume_is_a_problem():
    status = {"mounted": False, "missing": 0, "errors": {}, "profiles": {}}

    assert raidcheck.problems_of(status) == ["the volume is not mounted"]


CONFIG = {"kind": "btrfs", "mount_point": "/var/vmail", "host": "mbox1",
          "postmaster": "alice@example.test", "sender": "raid-monitor@mbox1.example.test",
          "metrics": "/var/lib/mailfleet/metrics/raid.prom"}


def test_metrics_text():
    status = {"mounted": True, "missing": 1, "errors": {"devid:2": {"write_io_errs": 4}},
              "profiles": {}}

    text = raidcheck.metrics_text(CONFIG, status, ["1 member device(s) missing"], 1700000000)

    labels = 'kind="btrfs",mount_point="/var/vmail"'
    assert f"mailfleet_raid_degraded{{{labels}}} 1\n" in text
    assert f"mailfleet_raid_missing_devices{{{labels}}} 1\n" in text
    assert (f'mailfleet_raid_device_errors{{{labels},device="devid:2",counter="write_io_errs"}}'
            " 4\n") in text
    assert f"mailfleet_raid_last_check_timestamp_seconds{{{labels}}} 1700000000\n" in text


def test_alert_message_names_host_and_problems():
    message = raidcheck.alert_message(CONFIG, ["1 member device(s) missing"])

    assert message["Subject"] == "[mailfleet] RAID degraded on mbox1: /var/vmail"
    assert message["To"] == "alice@example.test"
    assert "  - 1 member device(s) missing" in message.get_content()


def test_recovery_message():
    message = raidcheck.alert_message(CONFIG, [])

    assert message["Subject"] == "[mailfleet] RAID redundant again on mbox1: /var/vmail"


def test_mdadm_degraded_from_sysfs(tmp_path):
    md = tmp_path / "md0" / "md"
    md.mkdir(parents=True)
    (md / "degraded").write_text("1\n")
    mountinfo = "36 25 9:0 / /var/vmail rw,noatime - ext4 /dev/md0 rw\n"

    status = raidcheck.mdadm_status("/dev/md0", "/var/vmail", mountinfo, tmp_path)

    assert status["mounted"]
    assert raidcheck.problems_of(status) == ["1 member device(s) missing"]


# Node's own check wants certificates of a TLS role; the harness reads only name and storage.
MBOX1 = Node.model_construct(name="mbox1", storage=BTRFS)


def test_loop_devices_passed_to_container(monkeypatch):
    attached = {}

    def attach(image, size, device=None):
        attached[image.name] = device
        return f"/dev/loop{len(attached) + 4}"

    monkeypatch.setattr(containers, "container_devices", lambda container: {})
    monkeypatch.setattr(containers, "attach_loop_device", attach)

    mappings = harness.node_disks(MBOX1)

    assert mappings == ("/dev/loop5:/dev/vdb", "/dev/loop6:/dev/vdc", "/dev/btrfs-control")
    assert attached == {"mbox1-vdb.img": None, "mbox1-vdc.img": None}


def test_existing_container_keeps_its_loop_devices(monkeypatch):
    started_with = {"/dev/vdb": "/dev/loop7", "/dev/vdc": "/dev/loop8"}
    monkeypatch.setattr(containers, "container_devices", lambda container: started_with)
    monkeypatch.setattr(containers, "attach_loop_device",
                        lambda image, size, device=None: device)

    assert harness.node_disks(MBOX1)[:2] == ("/dev/loop7:/dev/vdb", "/dev/loop8:/dev/vdc")


def test_loop_device_moved_is_an_error(monkeypatch):
    monkeypatch.setattr(containers, "container_devices",
                        lambda container: {"/dev/vdb": "/dev/loop7"})
    monkeypatch.setattr(containers, "attach_loop_device",
                        lambda image, size, device=None: "/dev/loop9")

    with pytest.raises(HarnessError, match="run `mailfleet down`"):
        harness.node_disks(MBOX1)


def test_node_spec_passes_devices():
    spec = NodeSpec(name="mbox1", address="172.30.77.31", hostname="mbox1.example.test",
                    network="mailfleet", devices=("/dev/loop5:/dev/vdb", "/dev/btrfs-control"))

    arguments = spec.run_arguments()

    assert arguments[arguments.index("/dev/loop5:/dev/vdb") - 1] == "--device"
    assert arguments[arguments.index("/dev/btrfs-control") - 1] == "--device"


def test_down_detaches_only_own_images(tmp_path, monkeypatch):
    (tmp_path / "mbox1-vdb.img").write_bytes(b"")
    (tmp_path / "mbox1-vdc.img").write_bytes(b"")
    commands = []
    monkeypatch.setattr(containers, "loop_devices_of",
                        lambda image: ["/dev/loop3"] if image.name == "mbox1-vdb.img" else [])
    monkeypatch.setattr(containers.subprocess, "run",
                        lambda command, **options: commands.append(command))

    detached = containers.detach_loop_devices(tmp_path)

    assert detached == ["/dev/loop3"]
    assert commands == [["losetup", "--detach", "/dev/loop3"]]
    assert list(tmp_path.iterdir()) == []


def test_disks_linked_to_loop_devices(tmp_path, monkeypatch):
    mx1 = Node.model_construct(name="mx1", storage=None)
    cluster = Cluster.model_construct(nodes=[MBOX1, mx1])
    attached = []

    def attach(image, size, device=None):
        attached.append(image.name)
        return f"/dev/loop{len(attached) + 4}"

    monkeypatch.setattr(containers, "attach_loop_device", attach)

    links = harness.link_disks(cluster, tmp_path)

    assert [link.name for link in links] == ["mbox1-vdb", "mbox1-vdc"]
    assert [str(link.readlink()) for link in links] == ["/dev/loop5", "/dev/loop6"]
    assert attached == ["mbox1-vdb.img", "mbox1-vdc.img"]


def test_linking_again_replaces_links(tmp_path, monkeypatch):
    cluster = Cluster.model_construct(nodes=[MBOX1])
    (tmp_path / "mbox1-vdb").symlink_to("/dev/loop1")
    monkeypatch.setattr(containers, "attach_loop_device",
                        lambda image, size, device=None: "/dev/loop2")

    links = harness.link_disks(cluster, tmp_path)

    assert str(links[0].readlink()) == "/dev/loop2"


def test_unlink_removes_links_and_images(tmp_path, monkeypatch):
    (tmp_path / "mbox1-vdb.img").write_bytes(b"")
    (tmp_path / "mbox1-vdb").symlink_to("/dev/loop3")
    monkeypatch.setattr(containers, "loop_devices_of", lambda image: ["/dev/loop3"])
    monkeypatch.setattr(containers.subprocess, "run", lambda command, **options: None)

    detached = harness.unlink_disks(tmp_path)

    assert detached == ["/dev/loop3"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("before", "after"), [("128", "1024"), ("8192", "8192")],
                         ids=["raised when low", "kept when high"])
def test_inotify_limit(tmp_path, monkeypatch, before, after):
    limit = tmp_path / "max_user_instances"
    limit.write_text(f"{before}\n")
    monkeypatch.setattr(harness, "INOTIFY_INSTANCES", limit)

    harness.raise_inotify_limit()

    assert limit.read_text() == f"{after}\n"
