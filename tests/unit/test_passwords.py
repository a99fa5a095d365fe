"""Password hashing in the schemes Dovecot verifies, and rejection of weak hashes."""

from __future__ import annotations

import pytest
from passlib.hash import argon2, bcrypt, md5_crypt, sha512_crypt

from mailfleet.passwords import SCHEMES, hash_password, normalise_hash, verify_password

pytestmark = pytest.mark.clause("5.1.5")


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_hash_round_trip(scheme):
    dovecot_hash = hash_password("a long passphrase", scheme)

    assert dovecot_hash.startswith("{" + scheme + "}$")
    assert verify_password("a long passphrase", dovecot_hash)
    assert not verify_password("another passphrase", dovecot_hash)
    assert normalise_hash(dovecot_hash) == dovecot_hash


def test_salt_differs_per_hash():
    assert hash_password("same") != hash_password("same")


@pytest.mark.parametrize(
    ("bare", "scheme"),
    [
        (argon2.using(type="ID").hash("x"), "ARGON2ID"),
        (bcrypt.hash("x"), "BLF-CRYPT"),
        (sha512_crypt.hash("x"), "SHA512-CRYPT"),
    ],
)
def test_bare_hash_gets_prefix(bare, scheme):
    assert normalise_hash(bare) == "{" + scheme + "}" + bare


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("hunter2", "not a password hash"),
        ("{PLAIN}hunter2", "clear text"),
        ("{CRYPT}abJnggxhB/yWI", "DES crypt"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "salted SHA-1"),
        ("{MD5-CRYPT}" + md5_crypt.hash("x"), "MD5-crypt"),
        (md5_crypt.hash("x"), "MD5-crypt"),
        ("{NOPE}abc", "unknown"),
        ("{ARGON2ID}" + bcrypt.hash("x"), "does not match"),
        (argon2.using(type="ID", memory_cost=8192, rounds=3).hash("x"), "floor"),
        (argon2.using(type="ID", rounds=1).hash("x"), "floor"),
        (argon2.using(type="I").hash("x"), "Argon2i"),
        (bcrypt.using(rounds=9).hash("x"), "cost 9"),
        ("{SHA512-CRYPT}" + sha512_crypt.using(rounds=1000).hash("x"), "1000 rounds"),
        ("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$c2FsdA:x", "':'"),
    ],
)
def test_weak_or_invalid_hash_rejected(value, reason):
    with pytest.raises(ValueError, match="hash-password") as raised:
        normalise_hash(value)

    assert reason in str(raised.value)
    assert value not in str(raised.value)


def test_empty_password_rejected():
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_long_password_rejected_for_bcrypt():
    with pytest.raises(ValueError, match="72 bytes"):
        hash_password("x" * 73, "BLF-CRYPT")
