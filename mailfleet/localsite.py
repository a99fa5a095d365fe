"""The default container cluster: its private network, its run-time state and its node entries.

Several container clusters can run side by side on one machine, for example one per checkout:
MAILFLEET_SLOT (0 to 9, default 0) picks one, and with it the container names, the Docker
network, the subnet and the state folder.

MAILFLEET_LAUNCHER names the program that starts the containers: `harness` (the default, for
`mailfleet up` and `make cluster`) or `molecule` (the molecule scenario). Each launcher has its
own names, network and subnet in every slot, so the molecule scenario's containers run beside
the harness's cluster of the same slot.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from mailfleet.dns import ensure_dkim_key
from mailfleet.pki import ensure_host_certificate

PROJECT = Path(__file__).resolve().parent.parent


def slot_from_environment() -> int:
    value = os.environ.get("MAILFLEET_SLOT", "0")
    if value not in {str(number) for number in range(10)}:
        raise ValueError(f"MAILFLEET_SLOT={value!r} is invalid: give a digit from 0 to 9")
    return int(value)


LAUNCHERS = ("harness", "molecule")


def launcher_from_environment() -> str:
    value = os.environ.get("MAILFLEET_LAUNCHER", "harness")
    if value not in LAUNCHERS:
        raise ValueError(
            f"MAILFLEET_LAUNCHER={value!r} is invalid: give one of {', '.join(LAUNCHERS)}"
        )
    return value


def cluster_name(slot: int | str, launcher: str) -> str:
    """Return the container name prefix of a slot's cluster.

    The slot may also be a placeholder such as "${MAILFLEET_SLOT:-0}", for files that molecule
    fills in when it reads them.
    """
    if launcher == "molecule":
        return f"mailfleet-molecule{slot}"
    return "mailfleet" if str(slot) == "0" else f"mailfleet{slot}"


def subnet_prefix(slot: int | str, launcher: str) -> str:
    """Return the first three octets of a slot's /24: 172.30.77 to 172.30.86 for the harness,
    172.30.90 to 172.30.99 for molecule, so that no two of them overlap.

    The slot may be a placeholder, as for cluster_name; molecule's prefix then still reads
    right because its slot is the last digit of the octet.
    """
    if launcher == "molecule":
        return f"172.30.9{slot}"
    return f"172.30.{77 + int(slot)}"


def state_folder_name(slot: int, launcher: str) -> str:
    if launcher == "molecule":
        return f"molecule{slot}"
    return "local" if slot == 0 else f"local{slot}"


SLOT = slot_from_environment()
LAUNCHER = launcher_from_environment()
# Prefix of the container names, and the name of the Docker network and of its label.
CLUSTER = cluster_name(SLOT, LAUNCHER)
NETWORK = CLUSTER
SUBNET = ipaddress.IPv4Network(f"{subnet_prefix(SLOT, LAUNCHER)}.0/24")
# Test certificates and passwords made at run time; git ignores the folder.
STATE = PROJECT / ".state" / state_folder_name(SLOT, LAUNCHER)
TEST_PASSWORD_STORE = STATE / "test-passwords.json"
DKIM_KEYS = STATE / "dkim"
REDIS_PASSWORD_FILE = STATE / "redis-password"
DKIM_SELECTOR = "mail"


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


def ensure_redis_password(path: Path) -> None:
    """Write a random Redis password to `path` (mode 0600) unless one is there."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32) + "\n")


def filtering_settings(domain: str) -> dict:
    """Return the test cluster's filtering settings, making its DKIM key and Redis password.

    The container cluster has no internet, so Rspamd runs offline and ClamAV has only the
    shipped test signature. The rate limit is low, so that a test can exceed it quickly.
    """
    ensure_dkim_key(DKIM_KEYS / f"{domain}.{DKIM_SELECTOR}.key")
    ensure_redis_password(REDIS_PASSWORD_FILE)
    return {
        "offline": True,
        "test_signatures": True,
        "dkim_selector": DKIM_SELECTOR,
        "dkim_key_folder": str(DKIM_KEYS),
        "redis_password_file": str(REDIS_PASSWORD_FILE),
        "rate_limit_messages": 10,
        "rate_limit_period": "1m",
    }


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
            "filtering": filtering_settings(domain),
            **data,
        },
    )
