"""The default container cluster: two load balancers, two MX hosts and one mailbox pair.

`mailfleet up` starts a container per host on a private network (172.30.77.0/24 by default,
see mailfleet.localsite); pyinfra reaches them with its @docker connector. Hosts are given by
their number on that network: clients use the virtual IP .10, which keepalived gives to lb1 or
lb2, and the MX hosts deliver to the mailbox pair's floating IP .30. Certificates come from a
test CA and users get random test passwords, both made at run time under .state/local (never
committed).

NOTE: deploy with `mailfleet deploy` (or `make deploy`), which starts the containers first.
pyinfra's @docker connector commits and removes a container that is stopped when it connects.
"""

from mailfleet.localsite import container_host, failover_settings

_DOMAIN = "example.test"
_MAIL_HOSTNAME = "mail.example.test"
_CLUSTER = failover_settings({"shard1": ["mbox1", "mbox2"]})



def _node(name: str, host_number: int) -> tuple[str, dict]:
    return container_host(name, host_number, _DOMAIN, _MAIL_HOSTNAME, **_CLUSTER)


_MX1 = _node("mx1", 21)
_MX2 = _node("mx2", 22)
# Every mailbox host keeps its mail on a btrfs RAID 1 over two disks, each a loop device on the
# machine that runs the containers: the harness attaches them, and for molecule's nodes the
# scenario's dependency step does.
_MAILBOX_STORAGE = {"kind": "btrfs", "devices": ["/dev/vdb", "/dev/vdc"]}

loadbalancers = [_node("lb1", 11), _node("lb2", 12)]
mtas = [_MX1, _MX2]
mailstores = (
    [_node("mbox1", 31), _node("mbox2", 32)],
    {"storage": _MAILBOX_STORAGE},
)
# Rspamd's Redis: the primary on mx1, its replica on mx2.
redis = [_MX1, _MX2]
