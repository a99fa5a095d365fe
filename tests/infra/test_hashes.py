"""Hashes made by mailfleet verify with the deployed Dovecot, in every accepted scheme."""

import shlex

import pytest

from mailfleet.passwords import SCHEMES, generate_password, hash_password

ROLES = ("mailstore",)
PER_ROLE = {"scheme": {"mailstore": sorted(SCHEMES)}}


@pytest.mark.clause("5.1.5")
def test_hash_verifies_with_doveadm(host, scheme):
    # A throwaway password: no user's plaintext ever reaches a host.
    password = generate_password()
    dovecot_hash = hash_password(password, scheme)

    result = host.run(f"doveadm pw -t {shlex.quote(dovecot_hash)} -p {shlex.quote(password)}")

    assert result.rc == 0, result.stderr
    assert "(verified)" in result.stdout + result.stderr
