"""RAID storage: the mail root (or the Postfix queue) on a btrfs RAID 1 or an mdadm array, and a
monitor that reports a degraded array to the postmaster and to the metrics (clause 5.1.4).

The devices are read before any operation runs: a deploy that would wipe a device holding a
file system, or a mounted one, stops before it changes any host unless the inventory allows it.
"""

from __future__ import annotations

import json
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.api.exceptions import DeployError
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from mailfleet.model import Cluster, Node
from mailfleet.storage import (
    DeviceState,
    Storage,
    StorageError,
    mount_unit_name,
    mount_values,
    plan_volume,
)
from roles.common import put_rendered

RAID_CHECK_SOURCE = Path(__file__).resolve().parents[2] / "mailfleet" / "raidcheck.py"
RAID_CHECK = "/usr/local/sbin/mailfleet-raid-check"
RAID_CHECK_CONFIG = "/etc/mailfleet/raid-check.json"
METRICS = "/var/lib/mailfleet/metrics/raid.prom"
RAID_STATE = "/var/lib/mailfleet/raid-state.json"
MDADM_CONFIG = "/etc/mdadm/mdadm.conf"
UNITS = "/etc/systemd/system"
# Seconds between two checks of the volume: a failure reaches the postmaster within a minute.
CHECK_INTERVAL = 15
# The daemon whose data the volume holds, which must start only after the mount.
DEPENDENT_UNITS = {"mail_root": "dovecot.service", "postfix_queue": "postfix@.service"}

# Clauses of the standard this role serves: clause id -> {"file: key" on the host: what that
# setting does for the clause}. `mailfleet report` lists them beside each clause's tests.
CLAUSES = {
    "5.1.4": {
        "/etc/systemd/system/dovecot.service.d/mailfleet-storage.conf: RequiresMountsFor": (
            "Dovecot starts only once the RAID volume is mounted at the mail root"
        ),
        "/etc/mdadm/mdadm.conf: ARRAY": "the md array is assembled at boot from its fixed UUID",
        "/etc/mdadm/mdadm.conf: MAILADDR": "mdadm --monitor mails the postmaster about failures",
        "/etc/systemd/system/mailfleet-raid-check.timer: OnUnitActiveSec": (
            "the volume is checked every 15 s; a lost or regained redundancy is mailed to the"
            " postmaster and written to /var/lib/mailfleet/metrics/raid.prom"
        ),
    },
}


class StorageRejected(DeployError):
    """The deploy stopped before any change, because the volume cannot be created safely."""


class BlockDevices(FactBase):
    """Per named device: whether it exists, the blkid signature on it, and whether it is
    mounted or used as swap."""

    def command(self, paths: tuple[str, ...]) -> str:
        checks = []
        for path in paths:
            quoted = shlex.quote(path)
            checks.append(
                f"if [ -b {quoted} ]; then echo 'DEVICE={path}';"
                f" blkid -p -o export {quoted} 2>/dev/null | grep -E '^(TYPE|LABEL|UUID)=';"
                f" findmnt -rn -S {quoted} >/dev/null 2>&1 && echo MOUNTED=1;"
                f" grep -q '^{path} ' /proc/swaps && echo MOUNTED=1;"
                f" else echo 'MISSING={path}'; fi"
            )
        return "; ".join(checks) + "; true"

    def process(self, output: list[str]) -> list[DeviceState]:
        return parse_block_devices(output)


def parse_block_devices(lines: list[str]) -> list[DeviceState]:
    """Turn the BlockDevices output into one DeviceState per device, in the order named."""
    states: list[dict] = []
    for line in lines:
        key, _, value = line.strip().partition("=")
        if key in ("DEVICE", "MISSING"):
            states.append({"path": value, "exists": key == "DEVICE"})
        elif key == "MOUNTED" and states:
            states[-1]["mounted"] = True
        elif key in ("TYPE", "LABEL", "UUID") and states:
            states[-1][key.lower()] = value
    return [DeviceState(**state) for state in states]


class MountPointHoldsFiles(FactBase):
    """Whether the path is a folder with files that is not a mount point."""

    def command(self, path: str) -> str:
        quoted = shlex.quote(path)
        return (
            f"if mountpoint -q {quoted}; then echo mounted;"
            f' elif [ -d {quoted} ] && [ -n "$(ls -A {quoted})" ]; then echo files;'
            " else echo empty; fi"
        )

    def process(self, output: list[str]) -> bool:
        return output == ["files"]


def check_devices(storage: Storage, node: Node, mount_point: str, source: str):
    """Read the devices and decide whether to create the volume; raise StorageRejected when
    creating it would destroy data. Runs while pyinfra prepares, so before any change."""
    states = host.get_fact(BlockDevices, paths=tuple(storage.devices))
    holds_files = host.get_fact(MountPointHoldsFiles, path=mount_point)
    try:
        return plan_volume(storage, node.name, states, mount_point, holds_files)
    except StorageError as error:
        raise StorageRejected(f"{source}: {error}") from None


def packages(storage: Storage, node: Node) -> list[str]:
    # Hosts without Postfix get msmtp as their sendmail, installed before mdadm so that mdadm
    # does not pull in a full MTA.
    needed = ["python3"] if "mta" in node.roles else ["python3", "msmtp-mta"]
    if storage.kind == "btrfs":
        return [*needed, "btrfs-progs"]
    return [*needed, "mdadm", *(["xfsprogs"] if storage.filesystem == "xfs" else [])]


def mdadm_config(cluster: Cluster, node: Node, storage: Storage):
    """Write mdadm.conf, and refresh the initramfs copy of it when it changed."""
    config = put_rendered(
        name="mdadm.conf names the array and mails the postmaster about failures",
        template="storage/etc/mdadm/mdadm.conf.j2",
        dest=MDADM_CONFIG,
        holds=storage.holds,
        devices=storage.devices,
        mailaddr=cluster.postmaster,
        mailfrom=alert_sender(cluster, node),
        program=RAID_CHECK,
        array=storage.array,
        uuid=storage.array_uuid(node.name),
        array_name=storage.label,
    )
    server.shell(
        name="The initramfs assembles the array from the current mdadm.conf",
        commands=["update-initramfs -u"],
        _if=config.did_change,
    )
    return config


def alert_sender(cluster: Cluster, node: Node) -> str:
    return f"raid-monitor@{node.name}.{cluster.mail_domains[0]}"


def mounted_volume(storage: Storage, mount_point: str):
    """Mount the volume with a systemd mount unit, and make the daemon that uses it wait for it."""
    unit = mount_unit_name(mount_point)
    mount_unit = put_rendered(
        name=f"A mount unit mounts the RAID volume at {mount_point}",
        template="storage/etc/systemd/system/mailfleet-volume.mount.j2",
        dest=f"{UNITS}/{unit}",
        unit=unit,
        holds=storage.holds,
        mount_point=mount_point,
        **mount_values(storage),
    )

    # NOTE: a sandboxed daemon that starts after this volume is mounted (systemd-logind after a
    # reboot, Redis) keeps a copy of the mount in its own namespace, so after an unmount the
    # members stay busy until that daemon restarts. Nothing here prevents it, and the
    # inventories keep Redis off the mailbox hosts.
    dependent = DEPENDENT_UNITS[storage.holds]
    files.directory(
        name=f"{dependent} has a folder for drop-ins",
        path=f"{UNITS}/{dependent}.d",
    )
    drop_in = put_rendered(
        name=f"{dependent} starts only after the RAID volume is mounted",
        template="storage/etc/systemd/system/dovecot.service.d/mailfleet-storage.conf.j2",
        dest=f"{UNITS}/{dependent}.d/mailfleet-storage.conf",
        mount_point=mount_point,
    )

    systemd.daemon_reload(
        name="systemd reads the mount unit and the drop-in",
        _if=any_changed(mount_unit, drop_in),
    )
    systemd.service(
        name=f"The RAID volume is mounted at {mount_point}, also at boot",
        service=unit,
        running=True,
        enabled=True,
    )
    return unit


def raid_monitor(cluster: Cluster, node: Node, storage: Storage, mount_point: str, unit: str):
    """Install the RAID check and its timer, and the sendmail it mails the postmaster with."""
    if "mta" not in node.roles:
        # NOTE: msmtp does not queue. While the first load balancer is down, the RAID check
        # retries on its next run, but mdadm's own mails are lost.
        put_rendered(
            name="sendmail hands local mail to the cluster's MX through the load balancer",
            template="storage/etc/msmtprc.j2",
            dest="/etc/msmtprc",
            relay=str(cluster.loadbalancers[0].address),
            sender=alert_sender(cluster, node),
        )
    files.put(
        name="The RAID check is installed",
        src=str(RAID_CHECK_SOURCE),
        dest=RAID_CHECK,
        user="root",
        group="root",
        mode="755",
    )
    files.directory(
        name="The RAID check's settings have a folder",
        path=str(Path(RAID_CHECK_CONFIG).parent),
    )
    settings = {
        "kind": storage.kind,
        "mount_point": mount_point,
        "mount_unit": unit,
        "array": storage.array,
        "host": node.name,
        "postmaster": cluster.postmaster,
        "sender": alert_sender(cluster, node),
        "metrics": METRICS,
        "state": RAID_STATE,
        # mdadm --monitor mails the postmaster itself (MAILADDR in mdadm.conf).
        "send_mail": storage.kind == "btrfs",
    }
    files.put(
        name="The RAID check knows the volume, the postmaster and the metrics file",
        src=StringIO(json.dumps(settings, indent=2, sort_keys=True) + "\n"),
        dest=RAID_CHECK_CONFIG,
        user="root",
        group="root",
        mode="644",
    )
    files.directory(
        name="node_exporter's textfile folder exists",
        path=str(Path(METRICS).parent),
        mode="755",
    )
    service = put_rendered(
        name="A service runs the RAID check",
        template="storage/etc/systemd/system/mailfleet-raid-check.service.j2",
        dest=f"{UNITS}/mailfleet-raid-check.service",
        mount_unit=unit,
        script=RAID_CHECK,
    )
    timer = put_rendered(
        name=f"A timer runs the RAID check every {CHECK_INTERVAL} s",
        template="storage/etc/systemd/system/mailfleet-raid-check.timer.j2",
        dest=f"{UNITS}/mailfleet-raid-check.timer",
        interval=CHECK_INTERVAL,
    )
    systemd.daemon_reload(
        name="systemd reads the RAID check's units",
        _if=any_changed(service, timer),
    )
    systemd.service(
        name="The RAID check's timer is running and starts at boot",
        service="mailfleet-raid-check.timer",
        running=True,
        enabled=True,
    )


@deploy("Storage")
def storage(cluster: Cluster, node: Node, source: str):
    """Put the node's mail root or Postfix queue on its RAID volume and watch the volume.

    `source` names where the node's storage data comes from, for the refusal message.
    """
    volume = node.storage
    mount_point = volume.mount_point(cluster.mail_root)
    plan = check_devices(volume, node, mount_point, source)

    apt.packages(
        name=f"The {volume.kind} tools and a sendmail are installed",
        packages=packages(volume, node),
        update=True,
        cache_time=86400,
    )
    if volume.kind == "mdadm":
        mdadm_config(cluster, node, volume)
    if not plan.exists:
        server.shell(
            name=f"A {volume.kind} {volume.level} volume is created over"
                 f" {', '.join(volume.devices)}",
            commands=plan.commands,
        )
    if volume.kind == "mdadm":
        # NOTE: this path has run only in unit tests, because the test machines' kernel has no
        # md driver. Debian starts mdmonitor from udev once an array exists.
        systemd.service(
            name="mdadm --monitor watches the array",
            service="mdmonitor.service",
            running=True,
        )

    unit = mounted_volume(volume, mount_point)
    raid_monitor(cluster, node, volume, mount_point, unit)
