"""Rspamd's Redis: a password-protected primary and its replicas, with a sane open-files limit."""

import pytest

ROLES = ["redis"]
# Read the password on the host, so it never appears on a command line.
REDIS_CLI = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /etc/redis/redis.conf) redis-cli"


@pytest.mark.clause("2.2.4")
def test_redis_running(host):
    assert host.service("redis-server").is_running
    assert host.service("redis-server").is_enabled


def test_redis_open_files_limit(host, deployed):
    limit = host.check_output("systemctl show -P LimitNOFILE redis-server")

    assert int(limit) > deployed.filtering.redis_max_clients


@pytest.mark.clause("2.2.4", "3.2")
def test_redis_requires_password(host):
    assert "NOAUTH" in host.run("redis-cli ping").stdout


@pytest.mark.clause("2.2.4")
def test_redis_replication(host, node, deployed):
    replication = host.check_output(f"{REDIS_CLI} info replication")

    if node == deployed.redis_servers[0]:
        assert "role:master" in replication
    else:
        assert "role:slave" in replication
        assert "master_link_status:up" in replication
