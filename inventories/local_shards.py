"""A container cluster with two mailbox shards, to prove that mail and logins reach each
user's shard: the default cluster (see local.py) plus the pair mbox3 and mbox4.

alice lives on shard1 (mbox1, mbox2), bob on shard2 (mbox3, mbox4). Deploy and test it with

    mailfleet cluster inventories/local_shards.py
    pytest --inventory inventories/local_shards.py tests/scenarios/test_shards.py
"""

import runpy as _runpy
from pathlib import Path as _Path

from mailfleet.localsite import container_host, failover_settings

_GROUP_DATA = _runpy.run_path(str(_Path(__file__).parent.parent / "group_data" / "all.py"))
_SHARD_OF_USER = {"alice@example.test": "shard1", "bob@example.test": "shard2"}
_DOMAIN = "example.test"
_MAIL_HOSTNAME = "mail.example.test"
_CLUSTER = {
    **failover_settings({"shard1": ["mbox1", "mbox2"], "shard2": ["mbox3", "mbox4"]}),
    # The users of group_data/all.py, hashes included, placed on the two shards; the harness
    # replaces the hashes with ones of run-time test passwords.
    "mail_users": [
        {**user, "shard": _SHARD_OF_USER[user["address"]]} for user in _GROUP_DATA["mail_users"]
    ],
}


def _node(name: str, host_number: int) -> tuple[str, dict]:
    return container_host(name, host_number, _DOMAIN, _MAIL_HOSTNAME, **_CLUSTER)


loadbalancers = [_node("lb1", 11), _node("lb2", 12)]
_MX1 = _node("mx1", 21)
_MX2 = _node("mx2", 22)
mtas = [_MX1, _MX2]
mailstores = [_node("mbox1", 31), _node("mbox2", 32), _node("mbox3", 33), _node("mbox4", 34)]
# Rspamd's Redis: the primary on mx1, its replica on mx2.
redis = [_MX1, _MX2]
