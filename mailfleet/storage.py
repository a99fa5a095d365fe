"""Redundant storage for mail (clause 5.1.4): the model of a host's RAID volume, the commands
that create it, and the checks that stop a deploy from wiping data it did not write.

Everything here is computed without a host, so the mdadm path is tested on machines whose
kernel has no md driver.
"""

from __future__ import annotations

import re
import shlex
import uuid
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

POSTFIX_QUEUE = "/var/spool/postfix"
# Block device paths are written unquoted into mount units and mdadm.conf.
DEVICE_PATTERN = re.compile(r"^/dev/[A-Za-z0-9_][A-Za-z0-9_.:/-]*$")
MD_ARRAY_PATTERN = re.compile(r"^/dev/md([0-9]+|/[A-Za-z0-9_-]+)$")
# A device whose signature carries this label (btrfs) or name (md) belongs to the volume that
# an earlier deploy created.
LABELS = {"mail_root": "mailfleet-mail", "postfix_queue": "mailfleet-queue"}
# Namespace of md array UUIDs: a fixed UUID per host and volume lets mdadm.conf be rendered
# before the array exists, identically on every deploy.
ARRAY_UUID_NAMESPACE = uuid.UUID("f5425650-7c92-45dc-9adf-32057a1bef5d")


class StorageError(ValueError):
    """The deploy must not create the volume: the message names the devices and the fix."""


class Storage(BaseModel):
    """A host's RAID volume and what it holds, from the host's (or its group's) `storage` data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # btrfs: one btrfs file system with RAID 1 data and metadata over the devices.
    # mdadm: a Linux software RAID (md) array over the devices, with `filesystem` on it.
    kind: Literal["btrfs", "mdadm"]
    # Whole block devices that become the members; every one is wiped when the volume is made.
    devices: list[str]
    # raid1 mirrors every member; raid10 (mdadm only, 4 or more members) stripes over mirrors.
    level: Literal["raid1", "raid10"] = "raid1"
    # mail_root: mounted at the cluster's mail_root (mailbox hosts).
    # postfix_queue: mounted at /var/spool/postfix (MX hosts).
    holds: Literal["mail_root", "postfix_queue"] = "mail_root"
    # The md device of the array (mdadm only).
    array: str = Field(default="/dev/md0", pattern=MD_ARRAY_PATTERN.pattern)
    # File system made on the md array (mdadm only; btrfs is its own file system).
    filesystem: Literal["ext4", "xfs"] = "ext4"
    # True lets the deploy wipe devices that hold a file system or are mounted: their data is
    # lost. False (the default) stops the deploy before any change when one does.
    allow_existing_data: bool = False

    @field_validator("devices")
    @classmethod
    def _check_devices(cls, devices: list[str]) -> list[str]:
        for device in devices:
            if not DEVICE_PATTERN.match(device) or "/.." in device:
                raise ValueError(f"{device!r} is not a block device path such as /dev/sdb")
        if len(set(devices)) != len(devices):
            raise ValueError("a device is listed twice: list each member once")
        if len(devices) < 2:
            raise ValueError(
                f"a RAID volume needs at least 2 devices, {len(devices)} given: add a second"
                " disk, so that the mail outlives the loss of one"
            )
        return devices

    @model_validator(mode="after")
    def _check_level(self) -> Storage:
        if self.kind == "btrfs" and self.level != "raid1":
            raise ValueError(
                "btrfs volumes are RAID 1 here: set level = 'raid1', or kind = 'mdadm' for"
                " RAID 10"
            )
        if self.level == "raid10" and len(self.devices) < 4:
            raise ValueError(
                f"raid10 needs at least 4 devices, {len(self.devices)} given: add devices or"
                " use level = 'raid1'"
            )
        return self

    @property
    def label(self) -> str:
        return LABELS[self.holds]

    def mount_point(self, mail_root: str) -> str:
        return mail_root if self.holds == "mail_root" else POSTFIX_QUEUE

    def array_uuid(self, node_name: str) -> str:
        """Return the md array's UUID in mdadm's notation: four groups of 8 hex digits."""
        digits = uuid.uuid5(ARRAY_UUID_NAMESPACE, f"{node_name}:{self.label}").hex
        return ":".join(digits[index:index + 8] for index in range(0, 32, 8))


class DeviceState(NamedTuple):
    """A host's report on one named device (the BlockDevices fact of roles/storage)."""

    path: str
    exists: bool
    # blkid's TYPE, LABEL and UUID of the signature found on it; "" when it has none.
    type: str = ""
    label: str = ""
    uuid: str = ""
    mounted: bool = False


class VolumePlan(NamedTuple):
    """The deploy's plan for the volume: nothing when it exists, else these commands."""

    exists: bool
    commands: list[str]


def is_member(storage: Storage, node_name: str, state: DeviceState) -> bool:
    """Tell whether the device carries the signature of the volume that mailfleet made."""
    if storage.kind == "btrfs":
        return state.type == "btrfs" and state.label == storage.label
    if state.type != "linux_raid_member" or not state.uuid:
        return False
    wanted = uuid.UUID(storage.array_uuid(node_name).replace(":", ""))
    try:
        return uuid.UUID(state.uuid.replace(":", "")) == wanted
    except ValueError:
        return False


def describe_data(state: DeviceState) -> str:
    """Say what a device holds: "/dev/sdb holds a signature of type ext4 and is mounted"."""
    found = []
    if state.type:
        label = f" labelled {state.label!r}" if state.label else ""
        found.append(f"holds a signature of type {state.type}{label}")
    if state.mounted:
        found.append("is mounted")
    return f"{state.path} {' and '.join(found)}"


def plan_volume(
    storage: Storage,
    node_name: str,
    states: list[DeviceState],
    mount_point: str,
    mount_point_files: bool,
) -> VolumePlan:
    """Decide whether to create the volume, or raise StorageError before any change.

    `mount_point_files` is true when the mount point is a folder with files that is not a
    mount point yet: mounting the new volume there would hide them.
    """
    missing = [state.path for state in states if not state.exists]
    if missing:
        raise StorageError(
            f"storage.devices: {', '.join(missing)} not found on {node_name}: name block"
            " devices that exist on the host"
        )

    members = [state for state in states if is_member(storage, node_name, state)]
    if len(members) == len(states) and len({state.uuid for state in members}) == 1:
        return VolumePlan(exists=True, commands=[])
    if members:
        others = ", ".join(state.path for state in states if state not in members)
        raise StorageError(
            f"storage.devices: the volume on {node_name} is incomplete, because {others} is not"
            " one of its members: the volume is degraded, so replace the member as the README's"
            " storage section shows, then deploy again (the deploy never re-creates a volume"
            " that holds mail)"
        )

    in_use = [state for state in states if state.type or state.mounted]
    if in_use and not storage.allow_existing_data:
        found = "; ".join(describe_data(state) for state in in_use)
        raise StorageError(
            f"storage.devices: {found} on {node_name}: name empty devices, or set"
            " storage.allow_existing_data = True to wipe them (their data is lost)"
        )
    if mount_point_files:
        raise StorageError(
            f"storage.holds: {mount_point} on {node_name} already contains files on"
            " the root file system, which the new volume would hide: move them aside, deploy,"
            " then copy them onto the volume"
        )
    return VolumePlan(exists=False, commands=create_commands(storage, node_name, in_use))


def create_commands(
    storage: Storage, node_name: str, in_use: list[DeviceState] | None = None
) -> list[str]:
    """Return the shell commands that wipe the devices in `in_use` and create the volume."""
    commands = []
    for state in in_use or []:
        if state.mounted:
            commands.append(f"umount {shlex.quote(state.path)}")
        commands.append(f"wipefs --all {shlex.quote(state.path)}")

    devices = " ".join(shlex.quote(device) for device in storage.devices)
    if storage.kind == "btrfs":
        commands.append(
            f"mkfs.btrfs --force --label {storage.label} --data raid1 --metadata raid1 {devices}"
        )
        return commands

    level = storage.level.removeprefix("raid")
    commands.append(
        f"mdadm --create {storage.array} --run --level={level}"
        f" --raid-devices={len(storage.devices)} --metadata=1.2 --name={storage.label}"
        f" --uuid={storage.array_uuid(node_name)} {devices}"
    )
    commands.append(f"mkfs.{storage.filesystem} -L {storage.label} {storage.array}")
    return commands


def mount_unit_name(mount_point: str) -> str:
    """Return systemd's unit name for a mount point: /var/vmail -> var-vmail.mount.

    The mount point matches the model's path pattern (letters, digits, '.', '_', '-'), so only
    '-' needs systemd's escaping.
    """
    return mount_point.strip("/").replace("-", "\\x2d").replace("/", "-") + ".mount"


def mount_values(storage: Storage) -> dict[str, str]:
    """Return What=, Type= and Options= of the volume's mount unit.

    A multi-device btrfs names every member in `device=` options, so it mounts without a
    prior `btrfs device scan`.
    """
    if storage.kind == "btrfs":
        options = ",".join(f"device={device}" for device in storage.devices)
        return {"what": storage.devices[0], "type": "btrfs", "options": f"{options},noatime"}
    return {"what": storage.array, "type": storage.filesystem, "options": "noatime"}
