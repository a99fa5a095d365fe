"""Scenario fixtures: a client outside the cluster that talks SMTP, IMAP and POP3 to it."""

from __future__ import annotations

import pytest

from mailfleet import harness
from tests.conftest import uses_container_cluster

# The sender of mail from outside the cluster, which arrives on port 25. Streams of many
# messages come from it, because the outbound rate limit slows a logged-in sender.
OUTSIDE_SENDER = "someone@outside.test"


@pytest.fixture(scope="session")
def client(pytestconfig, deployed):
    """Send probe requests from the test client container to the cluster's service name."""
    if not uses_container_cluster(pytestconfig):
        pytest.skip("scenarios need the container cluster's client container")

    def request(action: str, **values: object) -> dict:
        return harness.probe(action, host=deployed.mail_hostname, **values)

    return request


@pytest.fixture(scope="session")
def delivered(deployed, client) -> dict:
    """One message sent from the first user to the second and read back, shared by the tests."""
    return harness.send_and_read(deployed)
