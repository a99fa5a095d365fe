"""Fixtures for unit tests: a small valid inventory in a temporary folder, and a guard that
fails any test which tries to reach a host."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from pathlib import Path

import pytest
from pyinfra.connectors.docker import DockerConnector
from pyinfra.connectors.ssh import SSHConnector

from mailfleet.dns import ensure_dkim_key
from mailfleet.localsite import ensure_redis_password
from mailfleet.passwords import hash_password
from mailfleet.pki import ensure_host_certificate

MAIL_HOSTNAME = "mail.example.test"
NODES = {
    "loadbalancers": [("lb1", "10.0.0.11"), ("lb2", "10.0.0.12")],
    "mtas": [("mx1", "10.0.0.21"), ("mx2", "10.0.0.22")],
    "mailstores": [("mbox1", "10.0.0.31"), ("mbox2", "10.0.0.32")],
    "redis": [("mx1", "10.0.0.21"), ("mbox1", "10.0.0.31")],
}
ALICE_HASH = hash_password("alice's password")
BOB_HASH = hash_password("bob's password", "BLF-CRYPT")

ALL_PY = f'''\
"""Cluster-wide data of a test cluster."""

# Hosted domains.
mail_domains = ["example.test"]
mail_hostname = "{MAIL_HOSTNAME}"
postmaster = "alice@example.test"
mail_users = [
    {{
        "address": "alice@example.test",
        "password_hash": "{ALICE_HASH}",
    }},
    {{
        "address": "bob@example.test",
        "password_hash": "{BOB_HASH}",
    }},
]
message_size_limit = 25 * 1024 * 1024
allow_single_host_groups = False
# Clients use the virtual IP; the mailbox pair shares a floating IP.
cluster_network = "10.0.0.0/24"
virtual_ip = "10.0.0.10"
mailbox_shards = [
    {{"name": "shard1", "virtual_ip": "10.0.0.30", "hosts": ["mbox1", "mbox2"]}},
]
'''


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """A test CA's certificate and key for every node, made once per test session, with the
    DKIM key and Redis password that the filtering settings name beside them."""
    folder = tmp_path_factory.mktemp("tls")
    ensure_dkim_key(folder / "dkim" / "example.test.mail.key")
    ensure_redis_password(folder / "redis-password")
    return {
        name: ensure_host_certificate(
            folder, name, dns_names=[f"{name}.example.test", MAIL_HOSTNAME], addresses=[address]
        )
        for nodes in NODES.values()
        for name, address in nodes
    }


def filtering_data(certificates) -> dict:
    """Return filtering settings whose key and password files are in the certificates' folder."""
    folder = next(iter(certificates.values()))[0].parent
    return {
        "test_signatures": True,
        "dkim_key_folder": str(folder / "dkim"),
        "redis_password_file": str(folder / "redis-password"),
    }


def inventory_text(certificates, nodes=NODES, extra_host_data: str = "") -> str:
    """Return an inventory file that lists the nodes with addresses, certificate files and
    filtering settings."""
    extra_host_data = f', "filtering": {filtering_data(certificates)!r}{extra_host_data}'
    lines = ['"""A test inventory."""', ""]
    for group, members in nodes.items():
        entries = []
        for name, address in members:
            certificate, key = certificates[name]
            entries.append(
                f'    ("{name}", {{"address": "{address}", "tls_certificate": "{certificate}",'
                f' "tls_key": "{key}"{extra_host_data}}}),'
            )
        lines += [f"{group} = [", *entries, "]"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def site(tmp_path, certificates) -> Path:
    """A folder with inventory.py and group_data/all.py describing a valid cluster."""
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(ALL_PY)
    (tmp_path / "inventory.py").write_text(inventory_text(certificates))
    return tmp_path


def _refuse(*arguments, **keywords):
    raise AssertionError("a unit test tried to start a process or reach a host")


@pytest.fixture(autouse=True)
def no_host_contact(request, monkeypatch):
    """Fail the test if anything starts docker or ssh, opens a connection or connects a host.

    Tests marked `loopback` may open connections, to servers they start on 127.0.0.1.
    """
    if request.node.get_closest_marker("loopback"):
        return
    monkeypatch.setattr(subprocess, "Popen", _refuse)
    monkeypatch.setattr(subprocess, "run", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(SSHConnector, "connect", _refuse)
    monkeypatch.setattr(DockerConnector, "connect", _refuse)


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")
