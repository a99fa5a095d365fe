"""An example inventory for real Debian 12 hosts reached over SSH; copy it to production.py.

Each host needs its cluster address (the one the other hosts and the load balancers use) and,
for hosts that serve TLS, a certificate chain and key from your CA, as files on the machine
that runs pyinfra. The certificates must cover mail_hostname from group_data/all.py.

    pyinfra -y inventories/production.py deploy.py
    pytest --inventory inventories/production.py tests/infra
"""

_SSH = {"ssh_user": "deploy", "_sudo": True}
_TLS = "/etc/mailfleet/tls"


def _host(name: str, address: str) -> tuple[str, dict]:
    return (
        f"{name}.example.net",
        {
            **_SSH,
            "address": address,
            "tls_certificate": f"{_TLS}/{name}.fullchain.pem",
            "tls_key": f"{_TLS}/{name}.key.pem",
        },
    )


_MX1 = _host("mx1", "10.0.0.21")
_MBOX1 = _host("mbox1", "10.0.0.31")

loadbalancers = [_host("lb1", "10.0.0.11")]
mtas = [_MX1]
# Each mailbox host keeps its mail on an mdadm RAID 1 over two empty disks (clause 5.1.4). The
# deploy stops before any change if a disk holds a file system; see the README's storage section.
mailstores = ([_MBOX1], {"storage": {"kind": "mdadm", "devices": ["/dev/sdb", "/dev/sdc"]}})
# Rspamd's Redis: the first host is the primary, the others replicate it. A host may carry
# other roles too.
redis = [_MX1, _MBOX1]
