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


def test_container_labelled_with_its_cluster():
    spec = NodeSpec(name="mx1", address="172.30.80.21", hostname="mx1.example.test",
                    network="mailfleet3", cluster="mailfleet3")

    arguments = spec.run_arguments()

    assert spec.container == "mailfleet3-mx1"
    assert "mailfleet.cluster=mailfleet3" in arguments
