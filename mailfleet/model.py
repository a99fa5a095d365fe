"""The validated description of a mail cluster: nodes and their roles, domains, users, policies.

Every value of the inventory and of group_data is parsed into these models before any host is
touched; roles read the models, never raw host data.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mailfleet.passwords import SCHEMES, split_scheme

Role = Literal["loadbalancer", "mta", "mailstore"]

# Inventory group name -> the role its hosts run.
ROLE_GROUPS: dict[str, Role] = {
    "loadbalancers": "loadbalancer",
    "mtas": "mta",
    "mailstores": "mailstore",
}

DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
LOCAL_PART_PATTERN = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def normalise_address(address: str) -> str:
    """Lower-case an address and check its form; mail to it must route to exactly one mailbox."""
    address = address.strip().lower()
    local_part, at, domain = address.rpartition("@")
    if not at or not LOCAL_PART_PATTERN.match(local_part) or len(local_part) > 64:
        raise ValueError(f"{address!r} is not a valid address of the form user@domain")
    if not DOMAIN_PATTERN.match(domain):
        raise ValueError(f"{address!r} has an invalid domain part")
    return address


class MailUser(Strict):
    """A virtual mailbox: one unique address and the hash of its password (clause 2.1, 2.2.1)."""

    address: str
    # Dovecot's `{SCHEME}hash`. Hidden from repr and errors: a hash is a secret too.
    password_hash: SecretStr

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return normalise_address(value)

    @field_validator("password_hash")
    @classmethod
    def _check_hash(cls, value: SecretStr) -> SecretStr:
        scheme, bare = split_scheme(value.get_secret_value())
        if scheme not in SCHEMES:
            raise ValueError(f"unsupported scheme {{{scheme}}}: use one of {sorted(SCHEMES)}")
        if not SCHEMES[scheme].identify(bare):
            raise ValueError(f"the hash does not have the form of a {{{scheme}}} hash")
        if any(character in bare for character in ":\n\r"):
            raise ValueError("the hash contains ':' or a line break")
        return value

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class Node(Strict):
    """One host of the cluster and the roles it runs."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    inventory_name: str
    address: ipaddress.IPv4Address
    roles: frozenset[Role]
    # Certificate (with its chain) and key on the machine that runs the deploy; uploaded to the host.
    tls_certificate: Path | None = None
    tls_key: Path | None = None

    @model_validator(mode="after")
    def _check_tls_files(self) -> Node:
        serves_tls = self.roles & {"mta", "mailstore"}
        if serves_tls and (self.tls_certificate is None or self.tls_key is None):
            raise ValueError(
                f"node {self.name} serves TLS but tls_certificate or tls_key is not set"
            )
        for path in (self.tls_certificate, self.tls_key):
            if path is not None and not path.is_file():
                raise ValueError(f"node {self.name}: file {path} not found")
        return self


class Cluster(Strict):
    """The whole cluster, as validated from the inventory and group data."""

    mail_domains: list[str] = Field(min_length=1)
    # The name clients use for SMTP, IMAP and POP3; every TLS certificate covers it.
    mail_hostname: str
    postmaster: str
    mail_users: list[MailUser]
    # Largest message accepted, in bytes; Postfix and the LMTP server use the same limit.
    message_size_limit: int = Field(default=25 * 1024 * 1024, ge=1024 * 1024)
    recipient_delimiter: str = Field(default="+", pattern=r"^[+\-_.]?$")
    # Where mail lives on the mailbox hosts, one maildir per user below <domain>/<user>.
    mail_root: str = "/var/vmail"
    nodes: list[Node] = Field(min_length=1)

    @field_validator("mail_domains")
    @classmethod
    def _check_domains(cls, domains: list[str]) -> list[str]:
        normalised = [domain.strip().lower() for domain in domains]
        for domain in normalised:
            if not DOMAIN_PATTERN.match(domain):
                raise ValueError(f"{domain!r} is not a valid domain name")
        return normalised

    @field_validator("postmaster")
    @classmethod
    def _check_postmaster(cls, value: str) -> str:
        return normalise_address(value)

    @model_validator(mode="after")
    def _check_users(self) -> Cluster:
        seen: set[str] = set()
        for user in self.mail_users:
            if user.address in seen:
                raise ValueError(f"user {user.address} is listed twice (addresses ignore case)")
            seen.add(user.address)
            if user.domain not in self.mail_domains:
                raise ValueError(f"user {user.address} is in a domain not in mail_domains")
        return self

    @model_validator(mode="after")
    def _check_roles(self) -> Cluster:
        for role in ROLE_GROUPS.values():
            if not self.nodes_with(role):
                raise ValueError(f"no host has the role {role}: add one to its inventory group")
        return self

    def nodes_with(self, role: Role) -> list[Node]:
        return [node for node in self.nodes if role in node.roles]

    @property
    def loadbalancers(self) -> list[Node]:
        return self.nodes_with("loadbalancer")

    @property
    def mtas(self) -> list[Node]:
        return self.nodes_with("mta")

    @property
    def mailstores(self) -> list[Node]:
        return self.nodes_with("mailstore")

    def node(self, inventory_name: str) -> Node:
        for node in self.nodes:
            if node.inventory_name == inventory_name:
                return node
        raise KeyError(inventory_name)
