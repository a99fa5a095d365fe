"""Security policy of the cluster: TLS ciphers, login throttling, firewall, log retention.

Clauses 3.2 (confidentiality) and 5.1.5 (hashed passwords, complete and secure operation logs).
"""

from __future__ import annotations

import ipaddress

from pydantic import BaseModel, ConfigDict, Field, model_validator

# TLS 1.2 cipher suites of Mozilla's "intermediate" server profile (version 5.7): forward
# secrecy and AEAD only. TLS 1.3 suites are OpenSSL's defaults, which are all strong.
INTERMEDIATE_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)


class SecurityPolicy(BaseModel):
    """Settings that a security review signs off; every one has a production-safe default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # OpenSSL cipher list for TLS 1.2 on every mail port (Postfix and Dovecot).
    tls_ciphers: str = Field(default=INTERMEDIATE_CIPHERS, pattern=r"^[A-Za-z0-9:+!@=_-]+$")

    # A client address with this many failed logins within ban_find_seconds is refused every
    # login (even with a correct password) for ban_seconds. Dovecot's auth penalty already
    # slows each failed attempt by up to 15 s before that.
    ban_max_failures: int = Field(default=10, ge=2)
    ban_find_seconds: int = Field(default=600, ge=60)
    ban_seconds: int = Field(default=3600, ge=60)

    # An account with this many failed logins within ban_find_seconds, from any addresses, is
    # locked for account_lock_seconds. Higher than ban_max_failures so that a single attacker
    # is banned by address before the owner is locked out.
    account_lock_max_failures: int = Field(default=30, ge=3)
    account_lock_seconds: int = Field(default=900, ge=60)

    # Networks allowed to reach SSH (port 22) on every host; the firewall drops the rest.
    admin_networks: list[ipaddress.IPv4Network] = [ipaddress.IPv4Network("0.0.0.0/0")]

    # Days that mail, authentication, deploy and load-balancer logs are kept, rotated daily and
    # compressed (clause 5.1.5: complete and secure operation logs).
    log_retention_days: int = Field(default=180, ge=1)
    # Group that may read the logs besides root.
    log_group: str = Field(default="adm", pattern=r"^[a-z_][a-z0-9_-]*$")

    @model_validator(mode="after")
    def _check_thresholds(self) -> SecurityPolicy:
        if self.account_lock_max_failures <= self.ban_max_failures:
            raise ValueError(
                "account_lock_max_failures must be higher than ban_max_failures, or one "
                "attacker locks the owner out before their address is banned"
            )
        return self
