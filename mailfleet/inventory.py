"""Build the cluster model from a pyinfra inventory and its group data, without connecting."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyinfra.api.inventory import Inventory
from pyinfra.context import ctx_state
from pyinfra_cli.inventory import make_inventory_from_files

from mailfleet.model import ROLE_GROUPS, Cluster
from mailfleet.passwords import generate_password, hash_password

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_KEYS = set(Cluster.model_fields) - {"nodes"}
NODE_KEYS = ("address", "tls_certificate", "tls_key")


def load_inventory(path: str | Path) -> Inventory:
    """Load an inventory file the way the pyinfra CLI does, with group_data/ beside the project."""
    # The CLI's file loader records the file it executes on pyinfra's state, which only needs
    # that one attribute here: no deploy state exists, and no host is connected.
    with ctx_state.use(SimpleNamespace(current_exec_filename=None)):
        return make_inventory_from_files(str(path), cwd=str(PROJECT))


def short_name(inventory_name: str) -> str:
    """Derive a node name from an inventory name: `@docker/mailfleet-mx1` and `mx1.example.net`
    both become their first label."""
    return inventory_name.rsplit("/", 1)[-1].split(".", 1)[0]


def _node_data(host: Any) -> dict[str, Any]:
    roles = sorted(ROLE_GROUPS[group] for group in host.groups if group in ROLE_GROUPS)
    node: dict[str, Any] = {
        "name": host.data.get("node_name") or short_name(host.name),
        "inventory_name": host.name,
        "roles": roles,
    }
    for key in NODE_KEYS:
        if host.data.get(key) is not None:
            node[key] = host.data.get(key)
    return node


def _cluster_data(host: Any) -> dict[str, Any]:
    return {key: host.data.get(key) for key in CLUSTER_KEYS if host.data.get(key) is not None}


def cluster_from_inventory(inventory: Inventory) -> Cluster:
    """Validate the inventory's hosts and data into the cluster model."""
    hosts = list(inventory)
    data = _cluster_data(hosts[0])
    store = hosts[0].data.get("test_password_store")
    if store:
        data["mail_users"] = with_test_passwords(data.get("mail_users", []), Path(store))
    data["nodes"] = [_node_data(host) for host in hosts]
    return Cluster.model_validate(data)


def load_cluster(path: str | Path) -> Cluster:
    return cluster_from_inventory(load_inventory(path))


def read_test_passwords(store: Path) -> dict[str, dict[str, str]]:
    """Return address -> {"password", "hash"} from a test cluster's password store."""
    if not store.exists():
        return {}
    return json.loads(store.read_text())


def with_test_passwords(users: list[dict[str, Any]], store: Path) -> list[dict[str, Any]]:
    """Give each user the hash of a random password kept in the store on this machine.

    For disposable test clusters: the plaintext stays in the store (mode 0600) for the tests
    to log in with, and only the hash reaches a host. A user keeps the same password and hash
    across runs, so re-deploying changes nothing.
    """
    entries = read_test_passwords(store)
    missing = {str(user["address"]).strip().lower() for user in users} - set(entries)
    for address in missing:
        password = generate_password()
        entries[address] = {"password": password, "hash": hash_password(password)}

    if missing:
        store.parent.mkdir(parents=True, exist_ok=True)
        store.touch(mode=0o600)
        store.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return [
        {**user, "password_hash": entries[str(user["address"]).strip().lower()]["hash"]}
        for user in users
    ]
