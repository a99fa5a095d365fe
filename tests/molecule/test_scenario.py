"""The molecule scenario: molecule starts the nodes, pyinfra converges them, testinfra verifies.

Runs molecule's create, converge, idempotence, verify and destroy steps one by one beside the
harness's cluster of the same slot, and compares the containers that both launchers started.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailfleet import localsite
from mailfleet.inventory import load_cluster
from tests.conftest import DEFAULT_INVENTORY, PROJECT

pytestmark = [pytest.mark.molecule, pytest.mark.cluster]

VENV_BIN = Path(sys.executable).parent
MOLECULE = VENV_BIN / "molecule"
SCENARIO = "mailfleet"
# Seconds per step. A first converge installs every package: with empty apt caches, on 2 cores
# shared with five other clusters, it took about 10 minutes.
STEP_TIMEOUTS = {"create": 300, "converge": 1200, "idempotence": 600, "verify": 600,
                 "destroy": 300}
MOLECULE_CLUSTER = localsite.cluster_name(localsite.SLOT, "molecule")
MOLECULE_SUBNET = localsite.subnet_prefix(localsite.SLOT, "molecule")
HARNESS_SUBNET = localsite.subnet_prefix(localsite.SLOT, "harness")
# Molecule keeps which instances exist in a folder named after the checkout's folder name
# alone, so runs in other slots or other checkouts of the same name would share it.
EPHEMERAL_DIRECTORY = (
    PROJECT / ".state" / localsite.state_folder_name(localsite.SLOT, "molecule") / "ephemeral"
)
# Labels that only one launcher sets, for its own clean-up: molecule's `owner`.
LAUNCHER_LABELS = {"owner"}
NODE_NAMES = [node.name for node in load_cluster(PROJECT / DEFAULT_INVENTORY).nodes]

if not MOLECULE.exists():
    pytest.skip("molecule is not installed: pip install -e '.[molecule]'", allow_module_level=True)


def run_molecule(step: str) -> subprocess.CompletedProcess:
    """Run one molecule step of the scenario, killing its whole process group on a timeout."""
    environment = {
        **os.environ,
        # The dependency and converge steps run `mailfleet`, the verifier `pytest`, by name.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "MAILFLEET_SLOT": str(localsite.SLOT),
        "MOLECULE_EPHEMERAL_DIRECTORY": str(EPHEMERAL_DIRECTORY),
        "NO_COLOR": "1",
        "ANSIBLE_NOCOLOR": "1",
        "PY_COLORS": "0",
    }
    environment.pop("MAILFLEET_LAUNCHER", None)
    process = subprocess.Popen(
        [str(MOLECULE), step, "--scenario-name", SCENARIO],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=STEP_TIMEOUTS[step])
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        output += f"\nmolecule {step} timed out after {STEP_TIMEOUTS[step]} s"
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def tail(result: subprocess.CompletedProcess, characters: int = 6000) -> str:
    return result.stdout[-characters:]


@pytest.fixture(scope="module")
def scenario(deployed):
    """Molecule's nodes, created beside the deployed harness cluster and destroyed after the
    module, whether its tests passed or not."""
    run_molecule("destroy")
    try:
        yield run_molecule("create")
    finally:
        destroyed = run_molecule("destroy")
        assert destroyed.returncode == 0, tail(destroyed)


def inspect(kind: str, name: str) -> dict:
    output = subprocess.run(
        ["docker", kind, "inspect", name], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(output)[0]


def normalise(value, cluster: str, subnet: str):
    """Replace a launcher's cluster name and subnet in every string and key, and treat the
    empty forms that docker's CLI and its API leave (null, [], {}) as one."""
    if isinstance(value, dict):
        entries = {
            normalise(key, cluster, subnet): normalise(item, cluster, subnet)
            for key, item in value.items()
        }
        return {key: item for key, item in entries.items() if item is not None} or None
    if isinstance(value, list):
        return [normalise(item, cluster, subnet) for item in value] or None
    if isinstance(value, str):
        return re.sub(rf"(?<![\w.]){re.escape(cluster)}(?![\w/.])", "<cluster>", value).replace(
            f"{subnet}.", "<subnet>."
        )
    return value


def device_kind(path_on_host: str) -> str:
    """Return "<loop device>" for a path that is, or links to, a loop device; else the path."""
    resolved = os.path.realpath(path_on_host)
    return "<loop device>" if re.fullmatch(r"/dev/loop\d+", resolved) else resolved


def container_settings(container: str, cluster: str, subnet: str) -> dict:
    """Return what `docker run` set on a container, without what docker assigns per container."""
    details = inspect("container", container)
    host_config = dict(details["HostConfig"])
    # Capabilities read back as given: `docker run` writes CAP_NET_RAW, the API keeps NET_RAW.
    host_config["CapAdd"] = sorted(
        capability.removeprefix("CAP_") for capability in host_config["CapAdd"] or []
    )
    # A bind mount without a mode is read-write.
    host_config["Binds"] = sorted(bind.removesuffix(":rw") for bind in host_config["Binds"] or [])
    # The API's default restart policy is "", the CLI's "no": both never restart.
    if host_config["RestartPolicy"]["Name"] == "":
        host_config["RestartPolicy"]["Name"] = "no"
    # docker run leaves Init unset, the API sets false: both start no init process.
    host_config["Init"] = host_config.get("Init") or None
    # Each launcher attaches loop devices of its own, and molecule names them by links.
    host_config["Devices"] = [
        {**device, "PathOnHost": device_kind(device["PathOnHost"])}
        for device in host_config["Devices"] or []
    ]
    config = dict(details["Config"])
    config["Labels"] = {
        key: value for key, value in config["Labels"].items() if key not in LAUNCHER_LABELS
    }
    networks = {
        name: {
            "IPAddress": endpoint["IPAddress"],
            "IPPrefixLen": endpoint["IPPrefixLen"],
            "Gateway": endpoint["Gateway"],
            "IPAMConfig": endpoint["IPAMConfig"],
        }
        for name, endpoint in details["NetworkSettings"]["Networks"].items()
    }
    settings = {"HostConfig": host_config, "Config": config, "Networks": networks}
    return normalise(settings, cluster, subnet)


def network_settings(name: str, cluster: str, subnet: str) -> dict:
    details = inspect("network", name)
    settings = {key: details[key] for key in ("Driver", "EnableIPv6", "Internal", "Options")}
    settings["Subnets"] = [entry["Subnet"] for entry in details["IPAM"]["Config"]]
    return normalise(settings, cluster, subnet)


def test_create_starts_nodes(scenario):
    assert scenario.returncode == 0, tail(scenario)


@pytest.mark.parametrize("node_name", NODE_NAMES)
def test_nodes_match_harness(scenario, node_name):
    harness_node = container_settings(
        localsite.container_name(node_name), localsite.CLUSTER, HARNESS_SUBNET
    )
    molecule_node = container_settings(
        f"{MOLECULE_CLUSTER}-{node_name}", MOLECULE_CLUSTER, MOLECULE_SUBNET
    )

    assert molecule_node["Config"] == harness_node["Config"]
    assert molecule_node["HostConfig"] == harness_node["HostConfig"]
    assert molecule_node["Networks"] == harness_node["Networks"]
    # The settings that systemd as PID 1 needs are compared, not normalised away.
    assert set(harness_node["HostConfig"]["Tmpfs"]) == {"/run", "/run/lock", "/tmp"}
    assert "SYS_ADMIN" in harness_node["HostConfig"]["CapAdd"]
    assert harness_node["HostConfig"]["CgroupnsMode"] == "host"
    assert harness_node["Config"]["Cmd"] == ["/sbin/init"]


def test_networks_match_harness(scenario):
    harness_network = network_settings(localsite.NETWORK, localsite.CLUSTER, HARNESS_SUBNET)
    molecule_network = network_settings(MOLECULE_CLUSTER, MOLECULE_CLUSTER, MOLECULE_SUBNET)

    assert molecule_network == harness_network


def test_converge_deploys_nodes(scenario):
    result = run_molecule("converge")

    assert result.returncode == 0, tail(result)


def test_second_converge_changes_nothing(scenario):
    result = run_molecule("idempotence")

    assert result.returncode == 0, tail(result)
    assert "changed operations: 0" in result.stdout, tail(result)


def test_verify_runs_project_checks(scenario):
    result = run_molecule("verify")

    assert result.returncode == 0, tail(result)
    assert "passed" in result.stdout, tail(result)
