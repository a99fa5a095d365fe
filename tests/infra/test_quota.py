"""Each user's quota from the data is the limit Dovecot enforces on the mailbox hosts."""

import shlex

import pytest

ROLES = ("mailstore",)


def storage_limit_kib(host, address: str) -> str:
    """Return the STORAGE limit that `doveadm quota get` reports, in KiB ("-" for none)."""
    result = host.run(f"doveadm -f tab quota get -u {shlex.quote(address)}")
    assert result.rc == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    header, *values = rows
    storage = next(row for row in values if row[header.index("Type")] == "STORAGE")
    return storage[header.index("Limit")]


@pytest.mark.clause("2.2.3")
def test_quota_limit_matches_data(host, cluster):
    for user in cluster.mail_users:
        expected = str(int(user.quota) // 1024) if user.quota is not None else "-"

        assert storage_limit_kib(host, user.address) == expected, user.address
