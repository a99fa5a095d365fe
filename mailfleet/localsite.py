"""The default container cluster: its private network, its run-time state and its node entries."""

from __future__ import annotations

from pathlib import Path

from mailfleet.pki import ensure_host_certificate

PROJECT = Path(__file__).resolve().parent.parent
# Test certificates and passwords made at run time; git ignores the folder.
STATE = PROJECT / ".state" / "local"
NETWORK = "mailfleet"
SUBNET = "172.30.77.0/24"
# A container outside the cluster that tests send and read mail from, as a real client would.
CLIENT_NAME = "client"
CLIENT_ADDRESS = "172.30.77.100"
TEST_PASSWORD_STORE = STATE / "test-passwords.json"


def container_host(name: str, address: str, domain: str, mail_hostname: str) -> tuple[str, dict]:
    """Return the inventory entry of one node container, issuing its test certificate if needed."""
    certificate, key = ensure_host_certificate(
        STATE / "tls", name, dns_names=[f"{name}.{domain}", mail_hostname], addresses=[address]
    )
    return (
        f"@docker/mailfleet-{name}",
        {
            "node_name": name,
            "address": address,
            "tls_certificate": str(certificate),
            "tls_key": str(key),
            "test_password_store": str(TEST_PASSWORD_STORE),
        },
    )
