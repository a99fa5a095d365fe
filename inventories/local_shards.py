"""A container cluster with two mailbox shards, to prove that mail and logins reach each
user's shard: the default cluster (see local.py) plus the pair mbox3 and mbox4.

alice lives on shard1 (mbox1, mbox2), bob on shard2 (mbox3, mbox4). Deploy and test it with

    mailfleet cluster inventories/local_shards.py
    pytest --inventory inventories/local_shards.py tests/scenarios/test_shards.py
"""

from mailfleet.localsite import container_host, failover_settings

_DOMAIN = "example.test"
_MAIL_HOSTNAME = "mail.example.test"
_CLUSTER = {
    **failover_settings({"shard1": ["mbox1", "mbox2"], "shard2": ["mbox3", "mbox4"]}),
    # The users of group_data/all.py, placed on the two shards; test passwords replace hashes.
    "mail_users": [
        {"address": "alice@example.test", "shard": "shard1"},
        {"address": "bob@example.test", "shard": "shard2"},
    ],
}


def _node(name: str, host_number: int) -> tuple[str, dict]:
    return container_host(name, host_number, _DOMAIN, _MAIL_HOSTNAME, **_CLUSTER)


loadbalancers = [_node("lb1", 11), _node("lb2", 12)]
mtas = [_node("mx1", 21), _node("mx2", 22)]
mailstores = [_node("mbox1", 31), _node("mbox2", 32), _node("mbox3", 33), _node("mbox4", 34)]
