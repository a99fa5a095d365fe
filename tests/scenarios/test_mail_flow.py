"""Mail goes from one user to another through the load balancer, as a real client sends it."""

import pytest

from mailfleet import localsite


@pytest.mark.clause("2.2.2")
def test_message_readable_over_imap(delivered):
    assert delivered["imap_seconds"] < 30


@pytest.mark.clause("5.1.7")
def test_message_readable_over_pop3(delivered):
    assert delivered["pop3_found"]


@pytest.mark.clause("5.1.6")
def test_mx_sees_real_client_address(delivered, cluster):
    """The PROXY protocol carries the client's address through the load balancer."""
    submission = delivered["received"][-1]
    balancer = str(cluster.loadbalancers[0].address)

    assert f"[{localsite.CLIENT_ADDRESS}]" in submission
    assert f"[{balancer}]" not in submission


@pytest.mark.clause("5.1.5")
def test_submission_offers_no_auth_before_tls(client):
    features = client("ehlo", port=587, starttls=True)

    assert "auth" not in features["plain"]
    assert "starttls" in features["plain"]
    assert "auth" in features["tls"]


@pytest.mark.clause("5.1.5")
def test_port_25_never_offers_auth(client):
    features = client("ehlo", port=25, starttls=True)

    assert "auth" not in features["plain"]
    assert "auth" not in features["tls"]


@pytest.mark.clause("5.1.5")
def test_implicit_tls_submission_offers_auth(client):
    assert "auth" in client("ehlo", port=465)["plain"]


@pytest.mark.clause("5.1.5")
def test_imap_refuses_login_without_tls(client):
    capabilities = client("imap_capabilities")["capabilities"]

    assert "LOGINDISABLED" in capabilities
    assert "STARTTLS" in capabilities


@pytest.mark.clause("5.1.5")
def test_wrong_password_rejected(client, cluster):
    reply = client("smtp_login", user=cluster.mail_users[0].address, password="not-the-password")

    assert reply["code"] == 535
