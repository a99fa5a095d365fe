"""Bring the container cluster up, deploy it, prove that mail flows, and take it down."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from mailfleet import containers, localsite
from mailfleet.containers import HarnessError, NodeSpec
from mailfleet.inventory import PROJECT, load_cluster, read_test_passwords
from mailfleet.model import Cluster, Node

log = logging.getLogger("mailfleet")

PROBE = Path(__file__).resolve().parent / "probe.py"
PROBE_IN_CLIENT = "/usr/local/bin/mailfleet-probe"
APT_CACHE = containers.CACHE_DIR / "apt"
# Fragments of IMAP, POP3 and SMTP replies that reject a login.
AUTHENTICATION_FAILURES = ("AUTHENTICATIONFAILED", "[AUTH]", "535")
# Sparse disk images that stand in for a node's storage devices, one loop device each.
DISKS = localsite.STATE / "disks"
DISK_SIZE = "1G"
# Lets btrfs in a container scan for the members of a multi-device volume.
BTRFS_CONTROL = "/dev/btrfs-control"
# Shell command that prints HAProxy's statistics as CSV, from its admin socket.
HAPROXY_STATS = "echo 'show stat' | socat stdio /run/haproxy/admin.sock"
# HAProxy's statuses of a server that takes connections: health checks pass, or none is run.
SERVING = ("UP", "no check")


@contextlib.contextmanager
def exclusive():
    """Hold the container cluster's lock, so that two commands never start or deploy it at once.

    A command that finds the lock held waits until the other one ends.
    """
    localsite.STATE.mkdir(parents=True, exist_ok=True)
    lock_path = localsite.STATE / "harness.lock"
    with lock_path.open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another mailfleet command to release %s", lock_path)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def disk_image(node_name: str, device: str) -> Path:
    return DISKS / f"{node_name}-{Path(device).name}.img"


def node_disks(node: Node) -> tuple[str, ...]:
    """Attach a loop device for each storage device of the node; return the --device mappings.

    Each loop device appears in the container under the device name that the inventory gives,
    such as /dev/vdb. A container that exists keeps the loop devices it was started with.
    """
    if node.storage is None:
        return ()
    started_with = containers.container_devices(localsite.container_name(node.name))
    mappings = []
    for device in node.storage.devices:
        loop = containers.attach_loop_device(
            disk_image(node.name, device), DISK_SIZE, started_with.get(device)
        )
        if started_with.get(device, loop) != loop:
            raise HarnessError(
                f"{disk_image(node.name, device)} is attached to {loop}, but the container of"
                f" {node.name} uses {started_with[device]}: run `mailfleet down`, then bring"
                " the cluster up again"
            )
        mappings.append(f"{loop}:{device}")
    return (*mappings, BTRFS_CONTROL)


def disk_link(folder: Path, node_name: str, device: str) -> Path:
    return folder / f"{node_name}-{Path(device).name}"


def link_disks(cluster: Cluster, folder: Path) -> list[Path]:
    """Attach a loop device for each storage device of the cluster's nodes, link it from
    `folder`, and return the links.

    A launcher that cannot attach loop devices itself, such as molecule, names these links as
    its containers' devices: docker follows a link when it starts a container. Linking again
    keeps each disk's loop device.
    """
    links = []
    for node in cluster.nodes:
        for device in node.storage.devices if node.storage else ():
            link = disk_link(folder, node.name, device)
            image = link.with_name(f"{link.name}.img")
            loop = containers.attach_loop_device(image, DISK_SIZE)
            link.unlink(missing_ok=True)
            link.symlink_to(loop)
            links.append(link)
    return links


def unlink_disks(folder: Path) -> list[str]:
    """Detach the loop devices that link_disks attached, delete their images and links, and
    return the devices.

    A device still in use, by a container's mount for example, is freed when its last user
    closes it."""
    detached = containers.detach_loop_devices(folder)
    for link in folder.glob("*"):
        if link.is_symlink():
            link.unlink()
    return detached


def node_specs(cluster: Cluster, attach_disks: bool = True) -> list[NodeSpec]:
    """Return a container definition for every node that the inventory reaches over @docker.

    Attaches the loop devices of nodes that have storage, so their containers can start;
    without `attach_disks` the definitions name no devices.
    """
    specs = []
    for node in cluster.nodes:
        expected = f"@docker/{localsite.container_name(node.name)}"
        if node.inventory_name != expected:
            raise HarnessError(
                f"{node.inventory_name} is not a container of the test cluster: "
                f"`mailfleet up` starts only hosts named like {expected}"
            )
        specs.append(
            NodeSpec(
                name=node.name,
                address=str(node.address),
                hostname=f"{node.name}.{cluster.mail_domains[0]}",
                network=localsite.NETWORK,
                cluster=localsite.CLUSTER,
                devices=node_disks(node) if attach_disks else (),
            )
        )
    return specs


def client_specs(cluster: Cluster) -> list[NodeSpec]:
    """Return the test clients' containers, which reach the cluster by its service name: the
    load balancers' virtual IP."""
    return [
        NodeSpec(
            name=name,
            address=address,
            hostname=f"{name}.invalid",
            network=localsite.NETWORK,
            cluster=localsite.CLUSTER,
            labels={"mailfleet.client": "1"},
            extra_hosts={cluster.mail_hostname: str(cluster.virtual_ip)},
        )
        for name, address in localsite.CLIENTS.items()
    ]


# Each container's systemd and its services take inotify instances. The kernel's default of
# 128 per user runs out with a dozen containers, and systemd in them then fails to start units.
INOTIFY_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")
MIN_INOTIFY_INSTANCES = 1024


def raise_inotify_limit() -> None:
    """Raise the machine's inotify instance limit to MIN_INOTIFY_INSTANCES if it is lower."""
    current = int(INOTIFY_INSTANCES.read_text())
    if current < MIN_INOTIFY_INSTANCES:
        INOTIFY_INSTANCES.write_text(f"{MIN_INOTIFY_INSTANCES}\n")
        log.info("raised fs.inotify.max_user_instances from %d to %d for the containers' systemd",
                 current, MIN_INOTIFY_INSTANCES)


def prepare_host() -> None:
    """Start the Docker daemon if none is running, build the base image if it is missing, and
    raise the inotify limit that many systemd containers need."""
    containers.ensure_docker_daemon()
    containers.build_base_image()
    raise_inotify_limit()


def up(inventory: str) -> Cluster:
    """Start a container per inventory host, plus the test client, on the private network."""
    if localsite.LAUNCHER != "harness":
        raise HarnessError(
            f"MAILFLEET_LAUNCHER={localsite.LAUNCHER}: these containers are molecule's, so start "
            "them with `molecule create -s mailfleet`, or unset MAILFLEET_LAUNCHER to use the "
            "harness's cluster"
        )
    cluster = load_cluster(inventory)
    prepare_host()
    containers.ensure_network(localsite.NETWORK, str(localsite.SUBNET))

    clients = client_specs(cluster)
    specs = [*node_specs(cluster), *clients]
    stopped = [spec for spec in specs if containers.container_state(spec.container) != "running"]
    if stopped:
        log.info("starting %d containers: %s", len(stopped),
                 ", ".join(spec.name for spec in stopped))
    else:
        log.info("all %d containers are running", len(specs))
    for spec in stopped:
        containers.start_node(spec, APT_CACHE)
    for spec in specs:
        containers.wait_until_booted(spec.container)

    ca_certificate = localsite.STATE / "tls" / "ca.crt"
    for client in clients:
        containers.docker("cp", str(PROBE), f"{client.container}:{PROBE_IN_CLIENT}")
        containers.docker("cp", str(ca_certificate), f"{client.container}:/etc/mailfleet-ca.crt")
    return cluster


def run_pyinfra(inventory: str) -> subprocess.CompletedProcess:
    """Run the deploy with pyinfra's own progress output, and return the finished process."""
    command = [str(Path(sys.executable).with_name("pyinfra")), "-y", inventory, "deploy.py"]
    return subprocess.run(command, cwd=PROJECT, text=True, capture_output=True, env=os.environ)


def deploy(inventory: str) -> subprocess.CompletedProcess:
    """Run the deploy, pass on pyinfra's output, and return the finished process if it passed."""
    log.info("deploying %s with pyinfra", inventory)
    result = run_pyinfra(inventory)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        raise HarnessError(f"pyinfra failed with exit status {result.returncode}")
    return result


def changed_operations(pyinfra_output: str) -> int:
    """Return the number of operations that changed something, from pyinfra's results table
    (which pyinfra logs to stderr)."""
    match = re.search(r"Grand total\s+(\d+)\s+(\d+|-)\s+(\d+|-)\s+(\d+|-)", pyinfra_output)
    if match is None:
        raise HarnessError("pyinfra printed no results table (no \"Grand total\" line)")
    changed = match.group(2)
    return 0 if changed == "-" else int(changed)


def converge(inventory: str) -> int:
    """Deploy hosts that are already running, then print how many operations changed something.

    Molecule's converge runs this: molecule owns the containers, so nothing is started here,
    and the scenario reads the last line to tell Ansible whether the deploy changed anything.
    """
    result = deploy(inventory)
    print(f"changed operations: {changed_operations(result.stderr)}")
    return 0


def up_and_deploy(inventory: str) -> int:
    """Deploy the container cluster, starting its containers first.

    pyinfra's @docker connector commits and then removes a container that was stopped when
    the deploy began, so the containers must be running before pyinfra connects.
    """
    up(inventory)
    deploy(inventory)
    return 0


def probe(action: str, client: str = localsite.CLIENT_NAME, **request: object) -> dict:
    """Run the mail probe in a client container and return its JSON report.

    The request, passwords included, travels on stdin, never on a command line.
    """
    container = localsite.container_name(client)
    result = subprocess.run(
        ["docker", "exec", "-i", container, "python3", PROBE_IN_CLIENT],
        input=json.dumps({"action": action, **request}),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        message = f"mail probe {action} failed: {result.stderr.strip()}"
        if any(marker in result.stderr for marker in AUTHENTICATION_FAILURES):
            message += (
                f"\nIf fail2ban banned the client {localsite.CLIENTS.get(client)} after failed"
                " logins, lift the ban with `fail2ban-client unban --all` on the MX and mailbox"
                " hosts"
            )
        raise HarnessError(message)
    return json.loads(result.stdout)


def probe_in_background(action: str, client: str = localsite.CLIENT_NAME,
                        **request: object) -> subprocess.Popen:
    """Start the mail probe in a client container and return at once; `probe_result` waits."""
    container = localsite.container_name(client)
    process = subprocess.Popen(
        ["docker", "exec", "-i", container, "python3", PROBE_IN_CLIENT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    process.stdin.write(json.dumps({"action": action, **request}))
    process.stdin.close()
    return process


def probe_result(process: subprocess.Popen, timeout: float) -> dict:
    """Wait for a probe started by `probe_in_background` and return its JSON report."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise HarnessError(f"the mail probe did not finish within {timeout:.0f} s") from None
    output, errors = process.stdout.read(), process.stderr.read()
    if process.returncode != 0:
        raise HarnessError(f"mail probe failed: {errors.strip()}")
    return json.loads(output)


def run_on_node(inventory_name: str, *command: str) -> subprocess.CompletedProcess:
    """Run a command in a node's container, for test set-up and clean-up."""
    container = inventory_name.removeprefix("@docker/")
    return subprocess.run(
        ["docker", "exec", container, *command], capture_output=True, text=True, check=False
    )


def wait_until(condition, timeout: float, interval: float = 1) -> bool:
    """Call condition() until it returns true or the timeout passes; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def credentials(cluster: Cluster) -> dict[str, str]:
    """Return address -> test password for the users of the container cluster."""
    entries = read_test_passwords(localsite.TEST_PASSWORD_STORE)
    return {user.address: entries[user.address]["password"] for user in cluster.mail_users}


def wait_for_backends(cluster: Cluster, timeout: float = 150) -> None:
    """Wait until every port of the load balancer reaches a backend.

    The timeout covers Postfix's one-minute throttle of a listener whose process failed.
    """
    deadline = time.monotonic() + timeout
    report: dict = {}
    while time.monotonic() < deadline:
        report = probe("banners", host=cluster.mail_hostname)
        if all(report.values()):
            return
        time.sleep(2)
    raise HarnessError(f"the load balancer did not reach every backend in time: {report}")


def server_statuses(haproxy_stats: str) -> dict[tuple[str, str], str]:
    """Return the status of every server in HAProxy's CSV statistics, by (backend, server):
    "UP", "DOWN 1/2" (down, one of two passing checks seen) and so on."""
    rows = csv.DictReader(haproxy_stats.lstrip("# ").splitlines())
    return {
        (row["pxname"], row["svname"]): row["status"]
        for row in rows if row["svname"] not in ("FRONTEND", "BACKEND")
    }


def balancer_statuses(balancer: Node) -> dict[tuple[str, str], str]:
    """Return HAProxy's status of every server on a load balancer, by (backend, server)."""
    output = run_on_node(balancer.inventory_name, "sh", "-c", HAPROXY_STATS).stdout
    return server_statuses(output)


def servers_not_serving(cluster: Cluster) -> dict[str, str]:
    """Return "balancer backend/server" -> status for every server that HAProxy does not use."""
    return {
        f"{balancer.name} {backend}/{server}": status
        for balancer in cluster.loadbalancers
        for (backend, server), status in balancer_statuses(balancer).items()
        if status not in SERVING
    }


def wait_for_health_checks(cluster: Cluster, timeout: float = 120) -> None:
    """Wait until every load balancer uses every server, and log the ones it still does not.

    The banners arrive once one server of each port is up. A server whose services are still
    starting passes HAProxy's checks a few seconds later.
    """
    if not wait_until(lambda: not servers_not_serving(cluster), timeout, interval=2):
        log.warning("HAProxy still marks servers down after %.0f s: %s",
                    timeout, servers_not_serving(cluster))


def send_and_read(cluster: Cluster) -> dict:
    """Send a message from the first user to the second through the virtual IP; read it back
    over IMAP and POP3."""
    sender, recipient = cluster.mail_users[0].address, cluster.mail_users[1].address
    passwords = credentials(cluster)
    return probe(
        "roundtrip",
        host=cluster.mail_hostname,
        sender=sender,
        recipient=recipient,
        passwords={sender: passwords[sender], recipient: passwords[recipient]},
    )


def cluster(inventory: str) -> int:
    """Bring the cluster up, deploy it and prove that a message goes from one user to another."""
    model = up(inventory)
    deploy(inventory)
    log.info("verifying: submission, IMAP and POP3 through the load balancer")
    wait_for_backends(model)
    wait_for_health_checks(model)
    report = send_and_read(model)
    print_summary(model, report)
    return 0


def print_summary(cluster: Cluster, report: dict) -> None:
    lb = cluster.virtual_ip
    print()
    print(f"mailfleet cluster is up: {len(cluster.nodes)} nodes, virtual IP {lb}")
    for node in cluster.nodes:
        print(f"  {node.name:<8} {node.address!s:<15} {', '.join(sorted(node.roles))}")
    print(f"message {report['message_id']}")
    print(f"  sent     {report['sender']} -> {report['recipient']} via {lb}:587 (STARTTLS, AUTH)")
    print(f"  IMAP     found in INBOX after {report['imap_seconds']:.1f} s via {lb}:993")
    print(f"  POP3     {'found' if report['pop3_found'] else 'NOT FOUND'} via {lb}:995")
    client = f"[{localsite.CLIENT_ADDRESS}]"
    seen = any(client in header for header in report["received"])
    print(f"  Received header names the client {client}: {'yes' if seen else 'NO'}")
    offline = "on" if cluster.filtering.offline else "off"
    print(f"filter   Rspamd and ClamAV on every MX, offline mode {offline}")
    print("`make test` runs the test suite; `make down` removes the cluster.")


def down() -> int:
    containers.ensure_docker_daemon()
    removed = containers.remove_containers(localsite.CLUSTER)
    containers.remove_network(localsite.NETWORK)
    # Only the images under this cluster's state folder: other clusters' loop devices stay.
    detached = containers.detach_loop_devices(DISKS)
    log.info(
        "removed %d containers, the network %s and %d loop devices",
        len(removed), localsite.NETWORK, len(detached),
    )
    return 0
