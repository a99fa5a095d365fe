"""No test user's plaintext password is stored anywhere on any host (clause 5.1.5)."""

import base64

import pytest

from mailfleet import localsite
from mailfleet.inventory import read_test_passwords

# Folders searched on each host; the apt archive of downloaded packages is skipped for speed.
SEARCHED = "/etc /var /root /home /srv /opt /tmp /usr/local /run"

@pytest.mark.clause("5.1.5")
def test_no_plaintext_password_on_host(host, cluster):
    passwords = [
        entry["password"] for entry in read_test_passwords(localsite.TEST_PASSWORD_STORE).values()
    ]
    if not passwords:
        pytest.skip("no test passwords: the inventory's users have no known plaintext")

    # The passwords reach grep as base64 patterns, so they are never written on the host.
    patterns = base64.b64encode("\n".join(passwords).encode()).decode()
    command = (
        f"echo {patterns} | base64 -d | "
        f"grep -rlF --devices=skip --exclude-dir=archives -f - {SEARCHED} 2>/dev/null"
    )
    # grep exits with 2 when some file cannot be read; the list of matching files decides.
    found = host.run(command)

    assert found.stdout.split() == []
