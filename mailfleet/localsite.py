"""The default container cluster: its private network, its run-time state and its node entries."""

from __future__ import annotations

from pathlib import Path

from mailfleet.pki import ensure_host_certificate

PROJECT = Path(__file__).resolve().parent.parent
# Test certificates and passwords made at run time; git ignores the folder.
STATE = PROJECT / ".state" / "local"
NETWORK = "mailfleet"
SUBNET = "172.30.77.0/24"
# Containers outside the cluster that tests send and read mail from, as real clients would:
# name -> address. The first is the default; the second shows that a ban of one client
# address leaves other clients alone.
CLIENTS = {"client": "172.30.77.100", "client2": "172.30.77.101"}
CLIENT_NAME, CLIENT_ADDRESS = next(iter(CLIENTS.items()))
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
            # One host per role is enough for the test cluster.
            "allow_single_host_groups": True,
            # Few failures before a ban, so the brute-force test stays short.
            "security": {"ban_max_failures": 5, "ban_seconds": 600},
        },
    )
