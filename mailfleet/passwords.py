"""Hash and check passwords in the schemes Dovecot verifies, using passlib."""

from __future__ import annotations

import secrets

from passlib.hash import argon2, bcrypt, sha512_crypt

# Dovecot scheme prefix -> the passlib handler that makes and checks hashes of that scheme.
SCHEMES = {
    "ARGON2ID": argon2.using(type="ID"),
    "BLF-CRYPT": bcrypt,
    "SHA512-CRYPT": sha512_crypt,
}
DEFAULT_SCHEME = "ARGON2ID"


def hash_password(password: str, scheme: str = DEFAULT_SCHEME) -> str:
    """Return the password's hash in Dovecot's `{SCHEME}hash` form, with a fresh salt."""
    if not password:
        raise ValueError("the password is empty")
    return "{" + scheme + "}" + SCHEMES[scheme].hash(password)


def split_scheme(dovecot_hash: str) -> tuple[str, str]:
    """Split `{SCHEME}hash` into the scheme and the bare hash."""
    if not dovecot_hash.startswith("{") or "}" not in dovecot_hash:
        raise ValueError("the hash has no {SCHEME} prefix")
    scheme, bare = dovecot_hash[1:].split("}", 1)
    return scheme, bare


def verify_password(password: str, dovecot_hash: str) -> bool:
    scheme, bare = split_scheme(dovecot_hash)
    return SCHEMES[scheme].verify(password, bare)


def generate_password(length: int = 24) -> str:
    """Return a random password for test accounts, drawn from letters, digits and punctuation."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.,;!%+=*"
    return "".join(secrets.choice(alphabet) for _ in range(length))
