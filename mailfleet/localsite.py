"""The default container cluster: its private network, its run-time state and its node entries.

Several container clusters can run side by side on one machine, for example one per checkout:
MAILFLEET_SLOT (0 to 9, default 0) picks one, and with it the container names, the Docker
network, the subnet and the state folder.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from mailfleet.pki import ensure_host_certificate

PROJECT = Path(__file__).resolve().parent.parent


def slot_from_environment() -> int:
    value = os.environ.get("MAILFLEET_SLOT", "0")
    if value not in {str(number) for number in range(10)}:
        raise ValueError(f"MAILFLEET_SLOT={value!r} is invalid: give a digit from 0 to 9")
    return int(value)


SLOT = slot_from_environment()
# Prefix of the container names, and the name of the Docker network and of its label.
CLUSTER = "mailfleet" if SLOT == 0 else f"mailfleet{SLOT}"
NETWORK = CLUSTER
SUBNET = ipaddress.IPv4Network(f"172.30.{77 + SLOT}.0/24")
# Test certificates and passwords made at run time; git ignores the folder.
STATE = PROJECT / ".state" / ("local" if SLOT == 0 else f"local{SLOT}")
TEST_PASSWORD_STORE = STATE / "test-passwords.json"


def address(host_number: int) -> str:
    """Return the address of a host number on the cluster's subnet: 11 -> 172.30.77.11."""
    return str(SUBNET.network_address + host_number)


def container_name(name: str) -> str:
    return f"{CLUSTER}-{name}"


# Containers outside the cluster that tests send and read mail from, as real clients would:
# name -> address. The first is the default. The second shows that a ban of one client
# address leaves other clients alone.
CLIENTS = {"client": address(100), "client2": address(101)}
CLIENT_NAME, CLIENT_ADDRESS = next(iter(CLIENTS.items()))


# Host numbers of the floating addresses: the load balancers' virtual IP, then one per shard.
VIRTUAL_IP_NUMBER = 10


def shard_virtual_ip_number(shard_index: int) -> int:
    """Return the host number of a mailbox shard's floating IP: 30 for the first, 40, 50 ..."""
    return 30 + 10 * shard_index


def failover_settings(shards: dict[str, list[str]]) -> dict:
    """Return the cluster network, the clients' virtual IP and the mailbox shards, as data that
    every host of a container inventory carries: shard name -> its two mailbox hosts."""
    return {
        "cluster_network": str(SUBNET),
        "virtual_ip": address(VIRTUAL_IP_NUMBER),
        "mailbox_shards": [
            {"name": name, "virtual_ip": address(shard_virtual_ip_number(index)), "hosts": hosts}
            for index, (name, hosts) in enumerate(shards.items())
        ],
    }


def container_host(
    name: str, host_number: int, domain: str, mail_hostname: str, **data: object
) -> tuple[str, dict]:
    """Return the inventory entry of one node container, issuing its test certificate if needed.

    `data` adds host data, such as the cluster-wide failover settings every host must share.
    """
    node_address = address(host_number)
    certificate, key = ensure_host_certificate(
        STATE / "tls", name, dns_names=[f"{name}.{domain}", mail_hostname], addresses=[node_address]
    )
    return (
        f"@docker/{container_name(name)}",
        {
            "node_name": name,
            "address": node_address,
            "tls_certificate": str(certificate),
            "tls_key": str(key),
            "test_password_store": str(TEST_PASSWORD_STORE),
            # Few failures before a ban, so the brute-force test stays short.
            "security": {"ban_max_failures": 5, "ban_seconds": 600},
            **data,
        },
    )
