"""Mail and logins reach the user's mailbox shard, on a cluster with more than one shard.

Run against the two-shard container cluster: `pytest --inventory inventories/local_shards.py
tests/scenarios/test_shards.py`. With one shard there is nothing to route, and the tests skip.
"""

from __future__ import annotations

import pytest

from mailfleet import harness, health
from mailfleet.model import Cluster

pytestmark = pytest.mark.clause("5.1.6")


@pytest.fixture(scope="module")
def sharded(deployed) -> Cluster:
    if len(deployed.mailbox_shards) < 2:
        pytest.skip("the cluster has one mailbox shard: use inventories/local_shards.py")
    return deployed


@pytest.fixture(scope="module")
def roundtrips(sharded, client) -> dict[str, dict]:
    """A message to each user from the previous one, read back over IMAP and POP3: recipient ->
    the probe's report."""
    users = [user.address for user in sharded.mail_users]
    passwords = harness.credentials(sharded)
    reports = {}
    for sender, recipient in zip([users[-1], *users[:-1]], users, strict=True):
        reports[recipient] = client(
            "roundtrip", sender=sender, recipient=recipient,
            passwords={sender: passwords[sender], recipient: passwords[recipient]},
        )
    return reports


def test_every_user_reads_mail_over_imap(sharded, roundtrips):
    for user in sharded.mail_users:
        assert roundtrips[user.address]["imap_seconds"] >= 0


def test_every_user_reads_mail_over_pop3(sharded, roundtrips):
    for user in sharded.mail_users:
        assert roundtrips[user.address]["pop3_found"], user.address


def test_mail_stored_on_user_shard_only(sharded, roundtrips):
    """Each user's new message is on both hosts of their shard and on no other mailbox host.

    Only the message of this run counts: mail a user received before moving to another shard
    stays where it was.
    """
    for user in sharded.mail_users:
        home = sharded.shard_of_user(user)
        message_id = roundtrips[user.address]["message_id"]
        for node in sharded.mailstores:
            stored = health.has_message(node, user.address, message_id)
            if node.name in home.hosts:
                assert harness.wait_until(
                    lambda node=node, user=user, message_id=message_id: health.has_message(
                        node, user.address, message_id
                    ),
                    timeout=60,
                ), f"{message_id} of {user.address} is not on {node.name} of {home.name}"
            else:
                assert not stored, f"{message_id} of {user.address} is on {node.name}"
