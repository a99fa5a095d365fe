"""Filtering policy of the cluster: Rspamd, ClamAV, DKIM signing, rate limits and Redis.

Clauses 2.2.4 (anti-spam as a basic service), 2.3.1 and 5.1.8 (anti-virus).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Rspamd's default action thresholds (scores), which suit most sites.
DEFAULT_ACTIONS = {"greylist": 4.0, "add_header": 6.0, "reject": 15.0}


class FilterPolicy(BaseModel):
    """Settings of the spam and virus filter on every MX; each has a production default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # True when the cluster cannot reach the internet: Rspamd's modules that query outside
    # services (RBLs, fuzzy hashes, ASN, remote maps, URL redirects) are switched off, and each
    # DNS lookup gets one try of one second. `mailfleet check` and the deploy report the mode.
    offline: bool = False

    # Score thresholds of Rspamd's actions: greylist (4xx, retried later), add_header (marked
    # as spam and delivered), rewrite_subject, soft_reject (4xx) and reject (5xx).
    actions: dict[
        Literal["greylist", "add_header", "rewrite_subject", "soft_reject", "reject"], float
    ] = DEFAULT_ACTIONS
    # Defer the first message from an unknown sender, address and network for a few minutes.
    # Rspamd never greylists senders from private networks or logged-in users.
    greylisting: bool = True

    # freshclam's PrivateMirror: the host name or URL of the operator's ClamAV signature
    # mirror. Leave it None only with test_signatures, which masks freshclam.
    clamav_mirror: str | None = Field(default=None, pattern=r"^[A-Za-z0-9.:/_-]+$")
    # Reject (5xx) a message with a file that clamd cannot scan whole, because it unpacks past
    # clamd's size, depth or file-count limits, as a compression bomb hiding a virus does.
    # False delivers such a file with only its first part scanned.
    reject_unscannable: bool = True
    # Ship a small signature file that detects only the EICAR test string, for test clusters
    # without a mirror. Production names clamav_mirror instead.
    test_signatures: bool = False

    # DKIM selector of every hosted domain; the DNS record is <selector>._domainkey.<domain>.
    dkim_selector: str = Field(default="mail", pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    # Folder, on the machine that runs the deploy, of the PEM private keys named
    # <domain>.<selector>.key. `mailfleet dkim-keys` makes missing ones (RSA, 2048 bits). The
    # test cluster keeps its own under .state, never committed.
    dkim_key_folder: Path = Path("/etc/mailfleet/dkim")
    # DMARC policy published by `mailfleet dns` for every hosted domain.
    dmarc_policy: Literal["none", "quarantine", "reject"] = "quarantine"

    # Messages a logged-in user may send in a burst, refilled at rate_limit_messages per
    # rate_limit_period ("30s", "1m", "1h", "1d"). Past it, submission gets a 4xx reply.
    rate_limit_messages: int = Field(default=100, ge=1)
    rate_limit_period: str = Field(default="1h", pattern=r"^[1-9][0-9]*[smhd]$")

    # File, on the machine that runs the deploy, with the password of the cluster's Redis
    # (one line, 32 characters or more). The test cluster generates one under .state.
    redis_password_file: Path = Path("/etc/mailfleet/redis-password")
    # Largest number of client connections of each Redis server; its open-files limit
    # follows from it.
    redis_max_clients: int = Field(default=1000, ge=16, le=10000)

    # Postfix's limits on the milter: connecting and negotiating, each command, and the
    # message content. Past one, Postfix defers the message with a 4xx (milter_default_action).
    milter_connect_timeout: int = Field(default=10, ge=1, le=300)
    milter_command_timeout: int = Field(default=30, ge=1, le=600)
    milter_content_timeout: int = Field(default=60, ge=1, le=600)

    @model_validator(mode="after")
    def _check_action_order(self) -> FilterPolicy:
        scores = [self.actions[name] for name in ("add_header", "reject") if name in self.actions]
        if "reject" not in self.actions:
            raise ValueError("actions has no reject threshold: add one, for example 15")
        if scores != sorted(scores):
            raise ValueError("actions: add_header must be lower than reject")
        return self
