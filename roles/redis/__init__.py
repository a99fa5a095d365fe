"""Redis for Rspamd's state: a primary and replicas on the hosts of the `redis` group.

Clause 2.2.4: greylisting, rate limits and Bayes of the anti-spam service survive a restart of
any one MX, because they live here.
"""

from __future__ import annotations

from pyinfra.api import deploy
from pyinfra.operations import apt, systemd

from mailfleet.model import Cluster, Node
from roles.common import put_rendered
from roles.common.services import configuration_applied

CONFIG = "/etc/redis/redis.conf"
DROP_IN = "/etc/systemd/system/redis-server.service.d/mailfleet.conf"
PORT = 6379
# Descriptors Redis keeps besides its clients: listeners, log, data and replication files.
RESERVED_FILES = 32

# Clause id -> {"file: key" on the Redis hosts: what that setting does for the clause}.
CLAUSES = {
    "2.2.4": {
        "/etc/redis/redis.conf: replicaof": "a replica keeps a copy of the anti-spam state",
        "/etc/redis/redis.conf: requirepass": "only clients with the cluster's password connect",
    },
}


def redis_password(cluster: Cluster) -> str:
    return cluster.filtering.redis_password_file.read_text().strip()


def primary_of(cluster: Cluster, node: Node) -> str:
    """Return the address that `node` replicates, or "" when it is the primary."""
    primary = cluster.redis_servers[0]
    return "" if node == primary else str(primary.address)


@deploy("Redis")
def redis(cluster: Cluster, node: Node):
    apt.packages(
        name="Redis is installed",
        packages=["redis-server"],
        update=True,
        cache_time=86400,
    )

    drop_in = put_rendered(
        name="Redis's open-files limit follows from its connection limit",
        template="redis/etc/systemd/system/redis-server.service.d/mailfleet.conf.j2",
        dest=DROP_IN,
        open_files=cluster.filtering.redis_max_clients + RESERVED_FILES,
    )
    systemd.daemon_reload(name="systemd reads the Redis drop-in", _if=drop_in.did_change)
    put_rendered(
        name="Redis needs the cluster's password and replicates the primary",
        template="redis/etc/redis/redis.conf.j2",
        dest=CONFIG,
        mode="640",
        group="redis",
        address=str(node.address),
        max_clients=cluster.filtering.redis_max_clients,
        password=redis_password(cluster),
        primary=primary_of(cluster, node),
    )

    systemd.service(
        name="Redis is running and starts at boot",
        service="redis-server",
        running=True,
        enabled=True,
    )
    configuration_applied(
        name="Redis runs its current configuration",
        service="redis-server",
        paths=[CONFIG, DROP_IN],
        check=f"test -r {CONFIG}",
    )
