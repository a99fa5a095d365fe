"""The cluster relays to outside domains only for authenticated users."""

import pytest

OUTSIDE = "someone@outside.invalid"

STRANGER = "stranger@outside.invalid"

# (port, STARTTLS first, envelope sender, recipient) for each unauthenticated attempt.
ATTEMPTS = [
    pytest.param(25, False, STRANGER, OUTSIDE, id="25-plain"),
    pytest.param(25, True, STRANGER, OUTSIDE, id="25-starttls"),
    pytest.param(25, False, "alice@example.test", OUTSIDE, id="25-forged-local-sender"),
    pytest.param(25, False, STRANGER, "@example.test:someone@outside.invalid",
                 id="25-source-route"),
    pytest.param(25, False, STRANGER, "someone%outside.invalid@example.test",
                 id="25-percent-hack"),
    pytest.param(25, False, STRANGER, "outside.invalid!someone@example.test",
                 id="25-bang-path"),
    pytest.param(587, True, "alice@example.test", OUTSIDE, id="587-without-auth"),
]


@pytest.mark.security
@pytest.mark.clause("5.1.5")
@pytest.mark.parametrize(("port", "starttls", "sender", "recipient"), ATTEMPTS)
def test_unauthenticated_relay_rejected(client, port, starttls, sender, recipient):
    reply = client("relay", port=port, starttls=starttls, sender=sender, recipient=recipient)

    assert 500 <= reply["rcpt"][0] < 600, reply


@pytest.mark.clause("2.1")
def test_unknown_local_recipient_rejected(client):
    reply = client(
        "relay", port=25, sender="stranger@outside.invalid", recipient="nobody@example.test"
    )

    assert reply["rcpt"][0] == 550, reply
