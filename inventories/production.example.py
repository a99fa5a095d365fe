"""An example inventory for real Debian 12 hosts reached over SSH; copy it to production.py.

Each host needs its cluster address (the one the other hosts and the load balancers use) and,
for hosts that serve TLS, a certificate chain and key from your CA, as files on the machine
that runs pyinfra. The certificates must cover mail_hostname from group_data/all.py. Every
role group has two hosts; add a mailbox pair (a shard) with two hosts and a _CLUSTER entry.

    pyinfra -y inventories/production.py deploy.py
    pytest --inventory inventories/production.py tests/infra
"""

_SSH = {"ssh_user": "deploy", "_sudo": True}
_TLS = "/etc/mailfleet/tls"
# Cluster-wide settings that every host carries: the cluster network, the clients' virtual IP
# and each mailbox pair with its floating IP. Both virtual IPs are free addresses of the network.
_CLUSTER = {
    "cluster_network": "10.0.0.0/24",
    "virtual_ip": "10.0.0.10",
    "mailbox_shards": [
        {"name": "shard1", "virtual_ip": "10.0.0.30", "hosts": ["mbox1", "mbox2"]},
    ],
}


def _host(name: str, address: str) -> tuple[str, dict]:
    return (
        f"{name}.example.net",
        {
            **_SSH,
            **_CLUSTER,
            "address": address,
            "tls_certificate": f"{_TLS}/{name}.fullchain.pem",
            "tls_key": f"{_TLS}/{name}.key.pem",
        },
    )


_MX1 = _host("mx1", "10.0.0.21")
_MX2 = _host("mx2", "10.0.0.22")

loadbalancers = [_host("lb1", "10.0.0.11"), _host("lb2", "10.0.0.12")]
mtas = [_MX1, _MX2]
# Each mailbox host keeps its mail on an mdadm RAID 1 over two empty disks (clause 5.1.4). The
# deploy stops before any change if a disk holds a file system; see the README's storage section.
mailstores = (
    [_host("mbox1", "10.0.0.31"), _host("mbox2", "10.0.0.32")],
    {"storage": {"kind": "mdadm", "devices": ["/dev/sdb", "/dev/sdc"]}},
)
# Rspamd's Redis: the first host is the primary, the others replicate it. A host may carry
# other roles too.
redis = [_MX1, _MX2]
