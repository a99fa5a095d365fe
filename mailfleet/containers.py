"""Run the test cluster as Docker containers with systemd as PID 1, on a private network."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("mailfleet")

BASE_IMAGE = "mailfleet/debian:bookworm"
DEBIAN_SUITE = "bookworm"
# Packages baked into the base image: systemd to boot the node, iproute2 for `ss` (testinfra's
# socket checks), python3 for the probe that sends and reads test mail.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "iproute2", "python3", "ca-certificates")
DOCKERD_LOG = Path("/var/log/mailfleet-dockerd.log")
CACHE_DIR = Path.home() / ".cache" / "mailfleet"


class HarnessError(RuntimeError):
    """A step of the container harness failed; the message names the step and the fix."""


def docker(*arguments: str, check: bool = True, capture: bool = True) -> str:
    """Run one docker command and return its standard output, or "" when it failed unchecked."""
    result = subprocess.run(["docker", *arguments], capture_output=capture, text=True)
    if result.returncode != 0:
        if check:
            raise HarnessError(f"docker {' '.join(arguments[:2])} failed: {result.stderr.strip()}")
        return ""
    return result.stdout.strip() if capture else ""


def docker_is_running() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_docker_daemon(timeout: float = 60) -> None:
    """Start dockerd in the background when no daemon responds, then wait until one does."""
    if docker_is_running():
        return

    if shutil.which("dockerd") is None:
        raise HarnessError("dockerd is not installed: run `make setup` (apt-get install docker.io)")

    log.info("starting the Docker daemon (log: %s)", DOCKERD_LOG)
    with DOCKERD_LOG.open("ab") as daemon_log:
        subprocess.Popen(
            ["dockerd"], stdout=daemon_log, stderr=daemon_log, start_new_session=True
        )

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker_is_running():
            return
        time.sleep(1)
    raise HarnessError(
        f"the Docker daemon did not respond within {timeout:.0f} s: see {DOCKERD_LOG}"
    )


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0


def build_base_image(name: str = BASE_IMAGE) -> None:
    """Bootstrap a minimal Debian into a folder and import it as an image, unless it exists."""
    if image_exists(name):
        return

    if shutil.which("debootstrap") is None:
        raise HarnessError("debootstrap is not installed: run `make setup`")

    log.info("building the base image %s with debootstrap (about a minute)", name)
    with tempfile.TemporaryDirectory(prefix="mailfleet-rootfs-") as rootfs:
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                DEBIAN_SUITE,
                rootfs,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", "--change", "CMD /sbin/init", "-", name],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise HarnessError("packing the bootstrapped root file system failed")


@dataclass(frozen=True)
class NodeSpec:
    """Everything `docker run` needs to start one cluster node with systemd as PID 1.

    This is the single definition of a node: other launchers (molecule) derive theirs from it.
    """

    name: str
    address: str
    hostname: str
    network: str
    # The container cluster the node belongs to: its container name prefix and label.
    cluster: str = "mailfleet"
    image: str = BASE_IMAGE
    # SYS_ADMIN lets systemd mount its file systems, NET_ADMIN and NET_RAW serve VRRP and nftables.
    # NOTE: --privileged fails on kernels that withhold CAP_SYS_RESOURCE, so capabilities are
    # listed one by one.
    capabilities: tuple[str, ...] = ("SYS_ADMIN", "NET_ADMIN", "NET_RAW")
    tmpfs: tuple[str, ...] = ("/run", "/run/lock", "/tmp")
    volumes: tuple[str, ...] = ("/sys/fs/cgroup:/sys/fs/cgroup:rw",)
    cgroupns: str = "host"
    # systemd shuts down cleanly on SIGRTMIN+3, not on docker's default SIGTERM.
    stop_signal: str = "SIGRTMIN+3"
    command: tuple[str, ...] = ("/sbin/init",)
    labels: dict[str, str] = field(default_factory=dict)
    # name -> address entries for the container's /etc/hosts.
    extra_hosts: dict[str, str] = field(default_factory=dict)
    # Host devices passed in, as "HOST_PATH:CONTAINER_PATH" (docker run --device).
    devices: tuple[str, ...] = ()

    @property
    def container(self) -> str:
        return f"{self.cluster}-{self.name}"

    @property
    def all_labels(self) -> dict[str, str]:
        """The container's labels: its cluster's, which `mailfleet down` selects by, and its own."""
        return {"mailfleet.cluster": self.cluster, **self.labels}

    def run_arguments(self) -> list[str]:
        arguments = [
            "run", "--detach",
            "--name", self.container,
            "--hostname", self.hostname,
            "--network", self.network,
            "--ip", self.address,
            f"--cgroupns={self.cgroupns}",
            "--stop-signal", self.stop_signal,
        ]
        for capability in self.capabilities:
            arguments += ["--cap-add", capability]
        for path in self.tmpfs:
            arguments += ["--tmpfs", path]
        for volume in self.volumes:
            arguments += ["--volume", volume]
        for key, value in sorted(self.all_labels.items()):
            arguments += ["--label", f"{key}={value}"]
        for name, address in sorted(self.extra_hosts.items()):
            arguments += ["--add-host", f"{name}:{address}"]
        for device in self.devices:
            arguments += ["--device", device]
        return [*arguments, self.image, *self.command]


def apt_cache_volume(spec: NodeSpec, apt_cache: Path | str) -> str:
    """Return the bind mount of the node's own apt cache, a folder named after its container.

    Each container keeps its own cache, so that clusters running side by side never share
    apt's lock, and the cache outlives the container so that packages are fetched once.
    """
    return f"{apt_cache}/{spec.container}:/var/cache/apt/archives"


def loop_devices_of(backing_file: Path) -> list[str]:
    """Return the loop devices attached to a file: losetup reports each by its backing file."""
    result = subprocess.run(
        ["losetup", "--list", "--noheadings", "--output", "NAME", "--associated",
         str(backing_file)],
        capture_output=True, text=True, check=False,
    )
    return result.stdout.split()


def attach_loop_device(backing_file: Path, size: str, device: str | None = None) -> str:
    """Attach a sparse disk image to a loop device, creating the image when it is missing.

    Loop devices belong to the whole machine, so a disk is known by its backing file, never by
    its device number. `device` asks for a given free loop device, such as the one a stopped
    container was started with. Returns the loop device.
    """
    attached = loop_devices_of(backing_file)
    if attached:
        return attached[0]

    if not backing_file.exists():
        backing_file.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["truncate", "--size", size, str(backing_file)], check=True)
    command = ["losetup", device, str(backing_file)] if device else [
        "losetup", "--find", "--show", str(backing_file)
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise HarnessError(
            f"attaching {backing_file} to {device or 'a loop device'} failed:"
            f" {result.stderr.strip()}: run `mailfleet down`, then bring the cluster up again"
        )
    return device or result.stdout.strip()


def detach_loop_devices(folder: Path) -> list[str]:
    """Detach the loop devices of every disk image in the folder and delete the images."""
    detached = []
    for image in sorted(folder.glob("*.img")):
        for device in loop_devices_of(image):
            subprocess.run(["losetup", "--detach", device], check=False)
            detached.append(device)
        image.unlink()
    return detached


def container_devices(container: str) -> dict[str, str]:
    """Return container path -> host path of the devices a container was started with."""
    output = docker("container", "inspect", "--format", "{{json .HostConfig.Devices}}",
                    container, check=False)
    entries = json.loads(output) if output and output != "null" else []
    return {entry["PathInContainer"]: entry["PathOnHost"] for entry in entries or []}


def ensure_network(name: str, subnet: str) -> None:
    """Create the cluster's bridge network, or check that the existing one has the same subnet."""
    existing = docker("network", "inspect", name, check=False)
    if not existing:
        docker("network", "create", "--driver", "bridge", "--subnet", subnet, name)
        return

    subnets = [entry["Subnet"] for entry in json.loads(existing)[0]["IPAM"]["Config"]]
    if subnet not in subnets:
        raise HarnessError(
            f"docker network {name} exists with subnet {subnets}, expected {subnet}: "
            "run `mailfleet down` to remove it"
        )


def container_state(container: str) -> str | None:
    """Return the container's state ("running", "exited", ...) or None when there is none."""
    output = docker("container", "inspect", "--format", "{{.State.Status}}", container, check=False)
    return output or None


def start_node(spec: NodeSpec, apt_cache: Path) -> None:
    """Start the node's container with its apt cache, reusing a container that exists."""
    state = container_state(spec.container)
    if state == "running":
        return
    if state is not None:
        docker("start", spec.container)
        return

    (apt_cache / spec.container).mkdir(parents=True, exist_ok=True)
    arguments = spec.run_arguments()
    arguments[2:2] = ["--volume", apt_cache_volume(spec, apt_cache)]
    docker(*arguments)


def wait_until_booted(container: str, timeout: float = 180, restarts: int = 3) -> None:
    """Wait until systemd in the container reports that it finished booting.

    A container whose systemd exits at once is started again, at most `restarts` times.
    NOTE: on a machine that runs many systemd containers, systemd can exit at start when the
    host's fs.inotify.max_user_instances (128 by default) is used up; a later start succeeds
    once other containers released theirs.
    """
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        if container_state(container) == "exited" and restarts > 0:
            log.warning("%s exited while booting: starting it again", container)
            restarts -= 1
            docker("start", container)
            time.sleep(2)
            continue
        # is-system-running exits non-zero when degraded, so its output decides, not its status.
        result = subprocess.run(
            ["docker", "exec", container, "systemctl", "is-system-running"],
            capture_output=True, text=True, check=False,
        )
        status = result.stdout.strip()
        if status == "running":
            return
        if status == "degraded":
            failed = docker("exec", container, "systemctl", "--failed", "--plain", "--no-legend",
                            check=False)
            log.warning("%s booted with failed units: %s", container, failed or "unknown")
            return
        time.sleep(1)
    raise HarnessError(f"{container} did not finish booting within {timeout:.0f} s: {status!r}")


def remove_containers(cluster: str) -> list[str]:
    """Remove every container of the named cluster, and return their names."""
    label = f"mailfleet.cluster={cluster}"
    names = docker("ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}")
    containers = names.split()
    if containers:
        docker("rm", "--force", "--volumes", *containers)
    return containers


def remove_network(name: str) -> None:
    if docker("network", "inspect", name, check=False):
        docker("network", "rm", name)
