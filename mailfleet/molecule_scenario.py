"""Render the molecule scenario's molecule.yml from the harness's own node definitions.

The scenario's platforms are the NodeSpecs that `mailfleet up` starts, moved to molecule's
names, network and subnet (see mailfleet.localsite), so the two launchers start identical nodes.
The rendered file is committed, so `molecule test -s mailfleet` works on a fresh clone. A unit
test fails when the file no longer matches the inventory and NodeSpec.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import yaml

from mailfleet import containers, harness, localsite
from mailfleet.containers import NodeSpec
from mailfleet.inventory import PROJECT, load_cluster
from mailfleet.model import Node

SCENARIO_NAME = "mailfleet"
SCENARIO = PROJECT / "molecule" / SCENARIO_NAME
INVENTORY = "inventories/local.py"
# Molecule replaces these with the environment's values when it reads molecule.yml.
SLOT_PLACEHOLDER = "${MAILFLEET_SLOT:-0}"
HOME_PLACEHOLDER = "${HOME}"
PROJECT_PLACEHOLDER = "${MOLECULE_PROJECT_DIRECTORY}"
HEADER = """\
# The molecule scenario of the default container cluster. Written by
# `mailfleet molecule-scenario` from the inventory and mailfleet.containers.NodeSpec: do not
# edit it, run that command again. MAILFLEET_SLOT (0 to 9) picks the names and the subnet.
"""


def molecule_address(address: str) -> str:
    """Move an address on this process's cluster subnet to the same host on molecule's."""
    host_number = int(ipaddress.ip_address(address)) - int(localsite.SUBNET.network_address)
    return f"{localsite.subnet_prefix(SLOT_PLACEHOLDER, 'molecule')}.{host_number}"


def disk_folder(project: Path | str, slot: int | str) -> Path:
    """Return the folder of the links to molecule's disks: its create step cannot attach loop
    devices, so the dependency step attaches them and links them from here."""
    return Path(project) / ".state" / localsite.state_folder_name(slot, "molecule") / "disks"


def node_devices(node: Node) -> tuple[str, ...]:
    """Return the --device mappings of a node: each storage device is a link in the disk
    folder, which docker follows when it starts the container."""
    if node.storage is None:
        return ()
    folder = disk_folder(PROJECT_PLACEHOLDER, SLOT_PLACEHOLDER)
    links = [
        f"{harness.disk_link(folder, node.name, device)}:{device}"
        for device in node.storage.devices
    ]
    return (*links, harness.BTRFS_CONTROL)


def scenario_specs(inventory: str = INVENTORY) -> list[NodeSpec]:
    """Return the harness's node definitions with molecule's names, network, addresses and
    disks, the slot left for molecule to fill in."""
    cluster = load_cluster(PROJECT / inventory)
    nodes = {node.name: node for node in cluster.nodes}
    cluster_name = localsite.cluster_name(SLOT_PLACEHOLDER, "molecule")
    return [
        replace(
            spec,
            cluster=cluster_name,
            network=cluster_name,
            address=molecule_address(spec.address),
            extra_hosts={
                name: molecule_address(address) for name, address in spec.extra_hosts.items()
            },
            devices=node_devices(nodes[spec.name]),
        )
        for spec in harness.node_specs(cluster, attach_disks=False)
    ]


def link_disks(inventory: str = INVENTORY) -> list[Path]:
    """Attach the loop devices of molecule's nodes in this process's slot and link them where
    molecule.yml names them."""
    folder = disk_folder(PROJECT, localsite.SLOT)
    return harness.link_disks(load_cluster(PROJECT / inventory), folder)


def unlink_disks() -> list[str]:
    """Detach the loop devices of molecule's nodes in this process's slot."""
    return harness.unlink_disks(disk_folder(PROJECT, localsite.SLOT))


def apt_cache_folder() -> str:
    """Return the harness's apt cache folder relative to the home folder that molecule reads."""
    return f"{HOME_PLACEHOLDER}/{harness.APT_CACHE.relative_to(Path.home())}"


def platform(spec: NodeSpec) -> dict:
    """Return the docker driver's platform entry that starts the node as `docker run` would.

    Each key is the docker_container option of the same `docker run` flag.
    """
    subnet = f"{localsite.subnet_prefix(SLOT_PLACEHOLDER, 'molecule')}.0/24"
    return {
        "name": spec.container,
        "hostname": spec.hostname,
        "image": spec.image,
        # The dependency step builds the image locally (`mailfleet molecule-prepare`), so molecule
        # builds none.
        "pre_build_image": True,
        "command": " ".join(spec.command),
        "capabilities": list(spec.capabilities),
        "tmpfs": list(spec.tmpfs),
        "volumes": [*spec.volumes, containers.apt_cache_volume(spec, apt_cache_folder())],
        "cgroupns_mode": spec.cgroupns,
        "stop_signal": spec.stop_signal,
        "labels": spec.all_labels,
        "etc_hosts": dict(spec.extra_hosts),
        "devices": list(spec.devices),
        "networks": [{"name": spec.network, "ipv4_address": spec.address}],
        "docker_networks": [
            {"name": spec.network, "driver": "bridge", "ipam_config": [{"subnet": subnet}]}
        ],
    }


def scenario_config(inventory: str = INVENTORY) -> dict:
    """Return the scenario's molecule.yml: molecule owns the containers, pyinfra converges
    them, and the project's testinfra checks verify them."""
    return {
        # ansible-compat's set-up would install collections from Galaxy: the `ansible` package
        # ships every collection the docker driver needs.
        "prerun": False,
        # The dependency step starts the Docker daemon, builds the local base image and attaches
        # the loop devices that stand in for the mailbox hosts' disks.
        "dependency": {"name": "shell", "command": "mailfleet molecule-prepare"},
        "driver": {"name": "docker"},
        "platforms": [platform(spec) for spec in scenario_specs(inventory)],
        "provisioner": {
            "name": "ansible",
            "env": {"MAILFLEET_LAUNCHER": "molecule"},
            "playbooks": {"converge": "converge.yml", "cleanup": "cleanup.yml"},
        },
        "verifier": {
            "name": "testinfra",
            "directory": "../../tests/infra",
            "options": {"inventory": inventory, "no-deploy": True},
        },
        # The scenario has no prepare playbook: the base image is the prepared node.
        "scenario": {
            "create_sequence": ["dependency", "create"],
            "converge_sequence": ["dependency", "create", "converge"],
            "test_sequence": [
                "dependency",
                "destroy",
                "syntax",
                "create",
                "converge",
                "idempotence",
                "verify",
                "cleanup",
                "destroy",
            ],
        },
    }


def render_scenario(inventory: str = INVENTORY) -> str:
    """Return the text of the scenario's molecule.yml."""
    body = yaml.safe_dump(scenario_config(inventory), sort_keys=False, width=100)
    return HEADER + "---\n" + body


def write_scenario(inventory: str = INVENTORY) -> Path:
    """Write the scenario's molecule.yml and return its path."""
    path = SCENARIO / "molecule.yml"
    path.write_text(render_scenario(inventory))
    return path
