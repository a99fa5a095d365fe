"""Container clusters side by side: each slot has its own names, network and subnet."""

import importlib

import pytest

from mailfleet import localsite
from mailfleet.containers import NodeSpec


@pytest.fixture
def slot(monkeypatch):
    """Reload the local site under a given MAILFLEET_SLOT, and restore the default after."""

    def reload(value: str):
        monkeypatch.setenv("MAILFLEET_SLOT", value)
        return importlib.reload(localsite)

    yield reload
    monkeypatch.delenv("MAILFLEET_SLOT", raising=False)
    monkeypatch.delenv("MAILFLEET_LAUNCHER", raising=False)
    importlib.reload(localsite)


def test_default_slot_names(slot):
    site = slot("0")

    assert site.container_name("mx1") == "mailfleet-mx1"
    assert site.NETWORK == "mailfleet"
    assert site.address(11) == "172.30.77.11"
    assert site.STATE.name == "local"


def test_other_slot_names(slot):
    site = slot("3")

    assert site.container_name("mx1") == "mailfleet3-mx1"
    assert site.NETWORK == "mailfleet3"
    assert site.address(11) == "172.30.80.11"
    assert site.CLIENTS == {"client": "172.30.80.100", "client2": "172.30.80.101"}
    assert site.STATE.name == "local3"


@pytest.mark.parametrize("value", ["10", "-1", "a", ""])
def test_invalid_slot_rejected(slot, value):
    with pytest.raises(ValueError, match="MAILFLEET_SLOT"):
        slot(value)


def test_molecule_launcher_names(slot, monkeypatch):
    monkeypatch.setenv("MAILFLEET_LAUNCHER", "molecule")
    site = slot("3")

    assert site.container_name("mx1") == "mailfleet-molecule3-mx1"
    assert site.NETWORK == "mailfleet-molecule3"
    assert site.address(11) == "172.30.93.11"
    assert site.STATE.name == "molecule3"


def test_launcher_subnets_never_overlap():
    subnets = [
        localsite.subnet_prefix(number, launcher)
        for number in range(10)
        for launcher in localsite.LAUNCHERS
    ]

    assert len(set(subnets)) == 20


def test_placeholder_slot_in_molecule_names():
    placeholder = "${MAILFLEET_SLOT:-0}"

    assert localsite.cluster_name(placeholder, "molecule") == f"mailfleet-molecule{placeholder}"
    assert localsite.subnet_prefix(placeholder, "molecule") == f"172.30.9{placeholder}"


def test_invalid_launcher_rejected(slot, monkeypatch):
    monkeypatch.setenv("MAILFLEET_LAUNCHER", "vagrant")

    with pytest.raises(ValueError, match="MAILFLEET_LAUNCHER='vagrant' is invalid"):
        slot("0")


def test_container_labelled_with_its_cluster():
    spec = NodeSpec(name="mx1", address="172.30.80.21", hostname="mx1.example.test",
                    network="mailfleet3", cluster="mailfleet3")

    arguments = spec.run_arguments()

    assert spec.container == "mailfleet3-mx1"
    assert "mailfleet.cluster=mailfleet3" in arguments
