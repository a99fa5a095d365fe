"""The floating IPs, firewall rules and shard routes that the roles compute from the model."""

from __future__ import annotations

import pytest

from mailfleet.inventory import load_cluster
from mailfleet.render import render
from roles.base import firewall_rules
from roles.keepalived import floating_addresses, instance_values
from roles.mta import shard_transports

pytestmark = pytest.mark.clause("5.1.6")


@pytest.fixture
def cluster(site):
    return load_cluster(site / "inventory.py", site / "group_data")


def test_loadbalancers_share_virtual_ip(cluster):
    lb1, lb2 = cluster.loadbalancers
    first = instance_values(floating_addresses(cluster, lb1)[0], lb1, 24)
    second = instance_values(floating_addresses(cluster, lb2)[0], lb2, 24)

    assert first["virtual_ip"] == second["virtual_ip"] == "10.0.0.10/24"
    assert first["peers"] == ["10.0.0.12"]
    assert second["peers"] == ["10.0.0.11"]
    assert first["priority"] > second["priority"]
    assert first["tracked_service"] == "haproxy"


def test_mailbox_pair_shares_shard_ip(cluster):
    mbox1 = cluster.node_named("mbox1")
    [instance] = floating_addresses(cluster, mbox1)
    values = instance_values(instance, mbox1, 24)

    assert values["virtual_ip"] == "10.0.0.30/24"
    assert values["peers"] == ["10.0.0.32"]
    assert values["tracked_service"] == "dovecot"


def test_mx_has_no_floating_ip(cluster):
    assert floating_addresses(cluster, cluster.mtas[0]) == []


def test_vrrp_admitted_from_peer_only(cluster):
    rules = firewall_rules(cluster, cluster.loadbalancers[0])
    vrrp = [rule for rule in rules if rule.get("protocol") == "vrrp"]

    assert [rule["sources"] for rule in vrrp] == [["10.0.0.12"]]


def test_firewall_renders_vrrp_rule(cluster):
    text = render("nftables/etc/nftables.conf.j2", admin_networks=["10.0.0.0/8"],
                  rules=firewall_rules(cluster, cluster.node_named("mbox2")))

    assert "ip saddr { 10.0.0.31 } ip protocol vrrp accept" in text
    assert "ip saddr { 10.0.0.31 } tcp dport { 12345 } accept" in text


def test_users_routed_to_their_shard(cluster):
    assert shard_transports(cluster) == [
        ("alice@example.test", "lmtp:inet:[10.0.0.30]:24"),
        ("bob@example.test", "lmtp:inet:[10.0.0.30]:24"),
    ]


def test_keepalived_config_renders(cluster):
    lb1 = cluster.loadbalancers[0]
    text = render(
        "keepalived/etc/keepalived/keepalived.conf.j2", node_name="lb1", interface="eth0",
        advert_interval=1,
        instances=[instance_values(instance, lb1, 24)
                   for instance in floating_addresses(cluster, lb1)],
    )

    assert "nopreempt" in text
    assert "10.0.0.10/24 dev eth0" in text
    assert "systemctl is-active --quiet haproxy" in text
