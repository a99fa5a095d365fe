"""The molecule scenario's molecule.yml is rendered from the harness's node definitions."""

from __future__ import annotations

import dataclasses

import pytest

from mailfleet import localsite
from mailfleet.containers import NodeSpec

yaml = pytest.importorskip("yaml", reason="the molecule extra is not installed")
molecule_scenario = pytest.importorskip("mailfleet.molecule_scenario")

# Molecule fills in the slot from the environment when it reads molecule.yml.
SLOT = "${MAILFLEET_SLOT:-0}"
# A value that differs from the default for every NodeSpec field, to prove that each one
# reaches the molecule platform.
CHANGED_FIELDS = {
    "name": "mx9",
    "address": localsite.address(99),
    "hostname": "mx9.example.test",
    "network": "othernet",
    "cluster": "othercluster",
    "image": "mailfleet/debian:trixie",
    "capabilities": ("SYS_ADMIN",),
    "tmpfs": ("/run",),
    "volumes": ("/srv:/srv",),
    "cgroupns": "private",
    "stop_signal": "SIGTERM",
    "command": ("/lib/systemd/systemd",),
    "labels": {"mailfleet.client": "1"},
    "extra_hosts": {"mail.example.test": localsite.address(11)},
    "devices": ("/dev/loop7:/dev/vdb",),
}


def base_spec() -> NodeSpec:
    return NodeSpec(
        name="mx1",
        address=localsite.address(21),
        hostname="mx1.example.test",
        network=localsite.NETWORK,
        cluster=localsite.CLUSTER,
    )


def test_committed_file_is_current():
    committed = (molecule_scenario.SCENARIO / "molecule.yml").read_text()

    assert committed == molecule_scenario.render_scenario(), (
        "molecule/mailfleet/molecule.yml differs from the inventory and NodeSpec: "
        "run `.venv/bin/mailfleet molecule-scenario` and commit the file"
    )


def test_every_node_spec_field_covered():
    fields = {field.name for field in dataclasses.fields(NodeSpec)}

    assert fields == set(CHANGED_FIELDS), (
        "NodeSpec changed: map the new field in molecule_scenario.platform() "
        "and give it a value in CHANGED_FIELDS"
    )


@pytest.mark.parametrize("field_name", sorted(CHANGED_FIELDS))
def test_node_spec_field_reaches_platform(field_name):
    spec = base_spec()
    changed = dataclasses.replace(spec, **{field_name: CHANGED_FIELDS[field_name]})

    assert molecule_scenario.platform(changed) != molecule_scenario.platform(spec)


def test_platform_matches_docker_run():
    spec = dataclasses.replace(base_spec(), extra_hosts={"mail.example.test": "172.30.77.11"})

    platform = molecule_scenario.platform(spec)

    assert platform["name"] == spec.container
    assert platform["image"] == spec.image
    assert platform["pre_build_image"] is True
    assert platform["command"] == "/sbin/init"
    assert platform["capabilities"] == ["SYS_ADMIN", "NET_ADMIN", "NET_RAW"]
    assert platform["tmpfs"] == ["/run", "/run/lock", "/tmp"]
    assert platform["cgroupns_mode"] == "host"
    assert platform["stop_signal"] == "SIGRTMIN+3"
    assert platform["labels"] == {"mailfleet.cluster": spec.cluster}
    assert platform["etc_hosts"] == {"mail.example.test": "172.30.77.11"}
    assert platform["networks"] == [{"name": spec.network, "ipv4_address": spec.address}]


def test_platform_keeps_apt_cache():
    platform = molecule_scenario.platform(base_spec())

    assert platform["volumes"] == [
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        f"${{HOME}}/.cache/mailfleet/apt/{localsite.CLUSTER}-mx1:/var/cache/apt/archives",
    ]


def test_scenario_nodes_on_molecule_site():
    platforms = yaml.safe_load(molecule_scenario.render_scenario())["platforms"]
    by_name = {platform["hostname"].split(".")[0]: platform for platform in platforms}

    mx1 = by_name["mx1"]
    assert mx1["name"] == f"mailfleet-molecule{SLOT}-mx1"
    assert mx1["networks"] == [
        {"name": f"mailfleet-molecule{SLOT}", "ipv4_address": f"172.30.9{SLOT}.21"}
    ]
    assert mx1["docker_networks"][0]["ipam_config"] == [{"subnet": f"172.30.9{SLOT}.0/24"}]


def test_scenario_verifies_with_project_checks():
    config = yaml.safe_load(molecule_scenario.render_scenario())

    assert config["verifier"]["name"] == "testinfra"
    assert config["verifier"]["directory"] == "../../tests/infra"
    assert config["verifier"]["options"]["no-deploy"] is True
    assert config["provisioner"]["env"] == {"MAILFLEET_LAUNCHER": "molecule"}
    assert "idempotence" in config["scenario"]["test_sequence"]
    assert config["prerun"] is False


def test_mailbox_hosts_get_linked_disks():
    platforms = yaml.safe_load(molecule_scenario.render_scenario())["platforms"]
    by_name = {platform["hostname"].split(".")[0]: platform for platform in platforms}
    folder = f"${{MOLECULE_PROJECT_DIRECTORY}}/.state/molecule{SLOT}/disks"

    assert by_name["mbox1"]["devices"] == [
        f"{folder}/mbox1-vdb:/dev/vdb",
        f"{folder}/mbox1-vdc:/dev/vdc",
        "/dev/btrfs-control",
    ]
    assert by_name["mx1"]["devices"] == []


def test_dependency_links_disks_and_cleanup_detaches():
    config = yaml.safe_load(molecule_scenario.render_scenario())
    sequence = config["scenario"]["test_sequence"]

    assert config["dependency"]["command"] == "mailfleet molecule-prepare"
    assert config["provisioner"]["playbooks"]["cleanup"] == "cleanup.yml"
    assert (molecule_scenario.SCENARIO / "cleanup.yml").exists()
    assert sequence.index("cleanup") == sequence.index("verify") + 1
    assert sequence[-1] == "destroy"
