"""Hash and check passwords in the schemes Dovecot verifies, using passlib."""

from __future__ import annotations

import re
import secrets

from passlib.hash import argon2, bcrypt, sha512_crypt

# Dovecot scheme prefix -> the passlib handler that makes and checks hashes of that scheme.
SCHEMES = {
    "ARGON2ID": argon2.using(type="ID"),
    "BLF-CRYPT": bcrypt,
    "SHA512-CRYPT": sha512_crypt,
}
DEFAULT_SCHEME = "ARGON2ID"

# Prefix of a bare crypt(3)-style hash -> the Dovecot scheme that verifies it.
BARE_PREFIXES = {
    "$argon2id$": "ARGON2ID",
    "$2b$": "BLF-CRYPT",
    "$2y$": "BLF-CRYPT",
    "$2a$": "BLF-CRYPT",
    "$6$": "SHA512-CRYPT",
}

# Schemes Dovecot supports but this project rejects, with the reason given to the user.
REJECTED_SCHEMES = {
    "PLAIN": "stores the password in clear text",
    "CLEARTEXT": "stores the password in clear text",
    "PLAIN-TRUNC": "stores the password in clear text",
    "CRAM-MD5": "is an unsalted MD5 digest that can be replayed",
    "DIGEST-MD5": "is an unsalted MD5 digest",
    "PLAIN-MD5": "is an unsalted MD5 digest",
    "LDAP-MD5": "is an unsalted MD5 digest",
    "MD5": "is MD5, which is fast to brute-force",
    "SMD5": "is salted MD5, which is fast to brute-force",
    "MD5-CRYPT": "is MD5-crypt, which is fast to brute-force",
    "SHA": "is an unsalted SHA-1 digest",
    "SHA1": "is an unsalted SHA-1 digest",
    "SSHA": "is a single round of salted SHA-1",
    "SHA256": "is an unsalted SHA-256 digest",
    "SSHA256": "is a single round of salted SHA-256",
    "SHA512": "is an unsalted SHA-512 digest",
    "SSHA512": "is a single round of salted SHA-512",
    "CRYPT": "is traditional DES crypt, which keeps only 8 characters",
    "DES-CRYPT": "is traditional DES crypt, which keeps only 8 characters",
    "LANMAN": "is the LAN Manager hash, broken for decades",
    "NTLM": "is an unsalted MD4 digest",
    "OTP": "is a one-time-password scheme, not a password hash",
    "SKEY": "is a one-time-password scheme, not a password hash",
    "RPA": "is an unsalted MD5 digest",
    "ARGON2I": "is Argon2i: use Argon2id, which also resists GPU attacks",
    "ARGON2D": "is Argon2d, which leaks timing through side channels",
    "SHA256-CRYPT": "is not among the accepted schemes",
    "PBKDF2": "is not among the accepted schemes",
}
REJECTED_BARE_PREFIXES = {
    "$1$": "MD5-CRYPT",
    "$5$": "SHA256-CRYPT",
    "$argon2i$": "ARGON2I",
    "$argon2d$": "ARGON2D",
    "$y$": "YESCRYPT",
    "$7$": "SCRYPT",
}

# Floors below which a hash is rejected as too cheap to brute-force. The Argon2id floor is the
# lowest setting OWASP's Password Storage Cheat Sheet lists: 19 MiB, 2 iterations.
ARGON2_MIN_MEMORY_KIB = 19456
ARGON2_MIN_TIME_COST = 2
BCRYPT_MIN_COST = 10
# 5000 is sha512-crypt's default, used when a hash names no rounds.
SHA512_CRYPT_MIN_ROUNDS = 5000

HASH_FIX = "make a new hash with `mailfleet hash-password`"
PREFIX_PATTERN = re.compile(r"^\{([A-Za-z0-9._-]+)\}")


# bcrypt reads at most this many bytes of a password; bcrypt 5 rejects longer ones.
BCRYPT_MAX_BYTES = 72


def hash_password(password: str, scheme: str = DEFAULT_SCHEME) -> str:
    """Return the password's hash in Dovecot's `{SCHEME}hash` form, with a fresh salt."""
    if not password:
        raise ValueError("the password is empty")
    if scheme == "BLF-CRYPT" and len(password.encode()) > BCRYPT_MAX_BYTES:
        raise ValueError(
            f"BLF-CRYPT (bcrypt) hashes at most {BCRYPT_MAX_BYTES} bytes of a password: use"
            " ARGON2ID or a shorter password"
        )
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


def scheme_of_bare_hash(bare: str) -> str | None:
    """Return the Dovecot scheme a bare crypt-style hash belongs to, or None when unknown."""
    for prefix, scheme in BARE_PREFIXES.items():
        if bare.startswith(prefix):
            return scheme
    return None


def normalise_hash(value: str) -> str:
    """Check a password hash and return it in `{SCHEME}hash` form.

    A bare hash gets its prefix when its format names exactly one accepted scheme. Raises
    ValueError, saying why and never quoting the value, for plaintext, unknown or rejected
    schemes, a prefix that does not match the hash, and cost parameters below the floors.
    """
    if any(character in value for character in ":\n\r\0"):
        raise ValueError(
            "the hash contains ':', a line break or a NUL byte, which the passwd-file cannot"
            f" hold: {HASH_FIX}"
        )
    match = PREFIX_PATTERN.match(value)
    if match:
        scheme, bare = match.group(1).upper(), value[match.end() :]
    else:
        scheme, bare = _infer_scheme(value), value
    _check_scheme(scheme)

    inferred = scheme_of_bare_hash(bare)
    if inferred != scheme or not SCHEMES[scheme].identify(bare):
        raise ValueError(
            f"the prefix {{{scheme}}} does not match the hash that follows it, which is not"
            f" a valid {{{scheme}}} hash: {HASH_FIX}"
        )
    _check_cost(scheme, bare)
    return "{" + scheme + "}" + bare


def _infer_scheme(bare: str) -> str:
    scheme = scheme_of_bare_hash(bare)
    if scheme is not None:
        return scheme
    for prefix, rejected in REJECTED_BARE_PREFIXES.items():
        if bare.startswith(prefix):
            return rejected
    raise ValueError(
        "the value is not a password hash of a known format (plaintext passwords are never"
        f" accepted): {HASH_FIX}"
    )


def _check_scheme(scheme: str) -> None:
    if scheme in SCHEMES:
        return
    accepted = ", ".join("{" + name + "}" for name in SCHEMES)
    if scheme in REJECTED_SCHEMES:
        reason = f"the scheme {{{scheme}}} {REJECTED_SCHEMES[scheme]}"
    else:
        reason = f"the scheme {{{scheme}}} is unknown or not accepted"
    raise ValueError(f"{reason}. Accepted schemes are {accepted}: {HASH_FIX}")


def _check_cost(scheme: str, bare: str) -> None:
    """Reject hashes whose cost parameters make them cheap to brute-force."""
    parameters = SCHEMES[scheme].parsehash(bare)
    if scheme == "ARGON2ID":
        memory = _argon2_memory_kib(bare)
        if memory < ARGON2_MIN_MEMORY_KIB or parameters["rounds"] < ARGON2_MIN_TIME_COST:
            raise ValueError(
                f"the Argon2id hash uses m={memory} KiB and t={parameters['rounds']}, below the"
                f" floor of m={ARGON2_MIN_MEMORY_KIB} and t={ARGON2_MIN_TIME_COST}: {HASH_FIX}"
            )
    elif scheme == "BLF-CRYPT" and parameters["rounds"] < BCRYPT_MIN_COST:
        raise ValueError(
            f"the bcrypt hash has cost {parameters['rounds']}, below the floor of"
            f" {BCRYPT_MIN_COST}: {HASH_FIX}"
        )
    elif scheme == "SHA512-CRYPT" and parameters["rounds"] < SHA512_CRYPT_MIN_ROUNDS:
        raise ValueError(
            f"the sha512-crypt hash has {parameters['rounds']} rounds, below the floor of"
            f" {SHA512_CRYPT_MIN_ROUNDS}: {HASH_FIX}"
        )


def _argon2_memory_kib(bare: str) -> int:
    # passlib's parsehash() leaves out the memory cost, so read `m=` from the PHC string.
    match = re.search(r"\$m=(\d+)", bare)
    return int(match.group(1)) if match else 0
