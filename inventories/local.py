"""The default container cluster: one load balancer, one MX and one mailbox host.

`mailfleet up` starts a container per host on a private network (172.30.77.0/24 by default,
see mailfleet.localsite); pyinfra reaches them with its @docker connector. Hosts are given by
their number on that network. Certificates come from a test CA and users get
random test passwords, both made at run time under .state/local (never committed).

NOTE: deploy with `mailfleet deploy` (or `make deploy`), which starts the containers first.
pyinfra's @docker connector commits and removes a container that is stopped when it connects.
"""

from mailfleet.localsite import LAUNCHER, container_host

_DOMAIN = "example.test"
_MAIL_HOSTNAME = "mail.example.test"

_MX1 = container_host("mx1", 21, _DOMAIN, _MAIL_HOSTNAME)
_MBOX1 = container_host("mbox1", 31, _DOMAIN, _MAIL_HOSTNAME)

loadbalancers = [container_host("lb1", 11, _DOMAIN, _MAIL_HOSTNAME)]
mtas = [_MX1]
# Every mailbox host keeps its mail on a btrfs RAID 1 over two disks. The harness backs each
# named device with a loop device on the machine that runs the containers.
_MAILBOX_STORAGE = {"kind": "btrfs", "devices": ["/dev/vdb", "/dev/vdc"]}

# Molecule's containers have no loop devices, so its mailbox hosts keep mail on the root
# file system.
mailstores = ([_MBOX1], {"storage": _MAILBOX_STORAGE} if LAUNCHER == "harness" else {})
# Rspamd's Redis: the primary beside Postfix, its replica on the mailbox host.
redis = [_MX1, _MBOX1]
