#!/usr/bin/python3
"""Check a host's RAID volume, write its state as metrics and mail the postmaster on a change.

The storage role installs this file as /usr/local/sbin/mailfleet-raid-check, with the standard
library only, and reads its settings from /etc/mailfleet/raid-check.json. Run without
arguments (by a systemd timer) it checks the volume: for btrfs, missing devices, non-zero
`btrfs device stats` counters and chunks that are not RAID 1; for mdadm, the md driver's
`degraded` count. It writes the result in node_exporter's textfile format and mails the
postmaster when the volume loses or regains redundancy. mdadm --monitor runs it as its PROGRAM
with EVENT DEVICE [COMPONENT]; then it only refreshes the metrics, because mdadm mails the
MAILADDR itself.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

CONFIG = Path("/etc/mailfleet/raid-check.json")
SENDMAIL = "/usr/sbin/sendmail"
STAT_LINE = re.compile(r"^\[(?P<device>[^\]]+)\]\.(?P<counter>\w+)\s+(?P<value>\d+)$")
PROFILE_LINE = re.compile(r"^(?P<kind>Data|Metadata|System), (?P<profile>[\w]+):")
# mdadm events after which an array may have lost redundancy.
MDADM_FAILURE_EVENTS = {"Fail", "FailSpare", "DegradedArray", "SparesMissing", "DeviceDisappeared"}


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 and not result.stdout:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout


def is_mounted(mount_point: str, mountinfo: str) -> bool:
    """Tell whether /proc/self/mountinfo lists the mount point."""
    return any(
        len(fields) > 4 and fields[4] == mount_point
        for fields in (line.split() for line in mountinfo.splitlines())
    )


def parse_device_stats(output: str) -> dict[str, dict[str, int]]:
    """Parse `btrfs device stats` into device -> counter -> value.

    A missing member shows as `devid:N` instead of its path.
    """
    stats: dict[str, dict[str, int]] = {}
    for line in output.splitlines():
        match = STAT_LINE.match(line.strip())
        if match:
            stats.setdefault(match["device"], {})[match["counter"]] = int(match["value"])
    return stats


def count_missing(show_output: str) -> int:
    """Count the member lines that `btrfs filesystem show` marks MISSING."""
    return sum(
        1 for line in show_output.splitlines()
        if line.strip().startswith("devid") and "MISSING" in line
    )


def parse_profiles(df_output: str) -> dict[str, list[str]]:
    """Parse `btrfs filesystem df` into chunk type -> profiles, such as Data -> [RAID1]."""
    profiles: dict[str, list[str]] = {}
    for line in df_output.splitlines():
        match = PROFILE_LINE.match(line.strip())
        if match:
            profiles.setdefault(match["kind"], []).append(match["profile"].upper())
    return profiles


def btrfs_status(mount_point: str, mountinfo: str) -> dict:
    """Return the volume's state: mounted, missing members, error counters, chunk profiles."""
    if not is_mounted(mount_point, mountinfo):
        return {"mounted": False, "missing": 0, "errors": {}, "profiles": {}}
    return {
        "mounted": True,
        "missing": count_missing(run("btrfs", "filesystem", "show", mount_point)),
        "errors": parse_device_stats(run("btrfs", "device", "stats", mount_point)),
        "profiles": parse_profiles(run("btrfs", "filesystem", "df", mount_point)),
    }


def mdadm_status(array: str, mount_point: str, mountinfo: str, sys_block: Path) -> dict:
    """Return the md array's state from sysfs: mounted, and how many members are missing."""
    md = sys_block / Path(os.path.realpath(array)).name / "md"
    degraded = md / "degraded"
    missing = int(degraded.read_text().strip()) if degraded.exists() else -1
    return {
        "mounted": is_mounted(mount_point, mountinfo),
        "missing": missing,
        "errors": {},
        "profiles": {},
    }


def problems_of(status: dict) -> list[str]:
    """Return a sentence per way the volume lacks redundancy; empty when it is healthy."""
    problems = []
    if not status["mounted"]:
        problems.append("the volume is not mounted")
    if status["missing"] < 0:
        problems.append("the md array is not assembled")
    elif status["missing"]:
        problems.append(f"{status['missing']} member device(s) missing")
    for device, counters in sorted(status["errors"].items()):
        failed = {name: value for name, value in counters.items() if value}
        if failed:
            listed = ", ".join(f"{name} {value}" for name, value in sorted(failed.items()))
            problems.append(f"device {device} has errors: {listed}")
    for kind, profiles in sorted(status["profiles"].items()):
        single = [profile for profile in profiles if profile != "RAID1"]
        if single:
            problems.append(f"{kind} has {', '.join(single)} chunks, which have one copy only")
    return problems


def label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metrics_text(config: dict, status: dict, problems: list[str], now: float) -> str:
    """Render the state in node_exporter's textfile format (Prometheus exposition format)."""
    labels = f'kind="{config["kind"]}",mount_point="{label_value(config["mount_point"])}"'
    lines = [
        "# HELP mailfleet_raid_degraded 1 when the RAID volume lacks redundancy, else 0.",
        "# TYPE mailfleet_raid_degraded gauge",
        f"mailfleet_raid_degraded{{{labels}}} {1 if problems else 0}",
        "# HELP mailfleet_raid_mounted 1 when the RAID volume is mounted.",
        "# TYPE mailfleet_raid_mounted gauge",
        f"mailfleet_raid_mounted{{{labels}}} {1 if status['mounted'] else 0}",
        "# HELP mailfleet_raid_missing_devices Member devices that are missing.",
        "# TYPE mailfleet_raid_missing_devices gauge",
        f"mailfleet_raid_missing_devices{{{labels}}} {max(status['missing'], 0)}",
        "# HELP mailfleet_raid_device_errors btrfs error counters per member device.",
        "# TYPE mailfleet_raid_device_errors gauge",
    ]
    for device, counters in sorted(status["errors"].items()):
        for counter, value in sorted(counters.items()):
            lines.append(
                f'mailfleet_raid_device_errors{{{labels},device="{label_value(device)}",'
                f'counter="{counter}"}} {value}'
            )
    lines += [
        "# HELP mailfleet_raid_last_check_timestamp_seconds When the volume was last checked.",
        "# TYPE mailfleet_raid_last_check_timestamp_seconds gauge",
        f"mailfleet_raid_last_check_timestamp_seconds{{{labels}}} {now:.0f}",
    ]
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Replace the file in one rename, so node_exporter never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def alert_message(config: dict, problems: list[str]) -> EmailMessage:
    """Compose the mail to the postmaster about a lost or regained redundancy."""
    host, mount_point, kind = config["host"], config["mount_point"], config["kind"]
    message = EmailMessage()
    message["From"] = f"RAID monitor on {host} <{config['sender']}>"
    message["To"] = config["postmaster"]
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config["sender"].rpartition("@")[2])
    if problems:
        message["Subject"] = f"[mailfleet] RAID degraded on {host}: {mount_point}"
        listed = "\n".join(f"  - {problem}" for problem in problems)
        message.set_content(
            f"The {kind} RAID volume at {mount_point} on {host} has lost redundancy:\n"
            f"{listed}\n\n"
            "Mail is still stored on the remaining members, but a further failure loses it.\n"
            "Replace the failed member as the mailfleet README's storage section shows.\n"
            f"Metrics: {config['metrics']}\n"
        )
    else:
        message["Subject"] = f"[mailfleet] RAID redundant again on {host}: {mount_point}"
        message.set_content(
            f"The {kind} RAID volume at {mount_point} on {host} is redundant again:\n"
            "every member is present, without errors, and every chunk has two copies.\n"
        )
    return message


def send(message: EmailMessage) -> None:
    subprocess.run(
        [SENDMAIL, "-t", "-oi"], input=message.as_bytes(), check=True, capture_output=True
    )


def unit_failed(unit: str) -> bool:
    result = subprocess.run(["systemctl", "is-failed", "--quiet", unit], check=False)
    return result.returncode == 0


def read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check(config: dict) -> int:
    """Check the volume, write the metrics and mail the postmaster when the state changed."""
    mountinfo = Path("/proc/self/mountinfo").read_text()
    if config["kind"] == "btrfs":
        status = btrfs_status(config["mount_point"], mountinfo)
    else:
        status = mdadm_status(config["array"], config["mount_point"], mountinfo, Path("/sys/block"))
    problems = problems_of(status)
    write_atomically(Path(config["metrics"]), metrics_text(config, status, problems, time.time()))

    # A mount that an operator stopped is maintenance: the metrics show it, and the next check
    # of the mounted volume decides whether its redundancy changed. A mount unit that failed,
    # as after a reboot without a member, is reported like a degraded volume.
    if not status["mounted"] and not unit_failed(config["mount_unit"]):
        print(f"{config['mount_point']}: the volume is not mounted", file=sys.stderr)
        return 0

    state_path = Path(config["state"])
    previous = read_state(state_path)
    degraded = bool(problems)
    # The first check after the deploy mails only when the volume is degraded.
    changed = degraded if previous is None else previous.get("degraded") != degraded
    if changed and config["send_mail"]:
        try:
            send(alert_message(config, problems))
        except (OSError, subprocess.CalledProcessError) as error:
            # The state stays as it was, so the next run sends the alert again.
            detail = getattr(error, "stderr", b"") or b""
            print(f"mailing {config['postmaster']} failed: {error} {detail.decode().strip()}",
                  file=sys.stderr)
            return 1
    write_atomically(state_path, json.dumps({"degraded": degraded, "problems": problems}) + "\n")
    for problem in problems:
        print(f"{config['mount_point']}: {problem}", file=sys.stderr)
    return 0


def main(arguments: list[str]) -> int:
    config = json.loads(CONFIG.read_text())
    if arguments:
        # Called by mdadm --monitor as PROGRAM: EVENT DEVICE [COMPONENT].
        event = arguments[0]
        if event in MDADM_FAILURE_EVENTS:
            print(f"mdadm reported {' '.join(arguments)}", file=sys.stderr)
        # mdadm already mails MAILADDR about the event, so this run only writes metrics.
        return check({**config, "send_mail": False})
    return check(config)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
