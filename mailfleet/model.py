"""The validated description of a mail cluster: nodes and their roles, domains, users, policies.

Every value of the inventory and of group_data is parsed into these models before any host is
touched. Roles read the models, never raw host data. Checks that span several fields report
each problem with the path of the field to fix (see `Problem`).
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from mailfleet.filtering import FilterPolicy
from mailfleet.passwords import normalise_hash
from mailfleet.security import SecurityPolicy
from mailfleet.storage import Storage

Role = Literal["loadbalancer", "mta", "mailstore", "redis"]

# Inventory group name -> the role its hosts run. A host may be in several groups: the Redis
# servers of a small cluster usually run beside Postfix or Dovecot.
ROLE_GROUPS: dict[str, Role] = {
    "loadbalancers": "loadbalancer",
    "mtas": "mta",
    "mailstores": "mailstore",
    "redis": "redis",
}

DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Any address allowed by RFC 5322's dot-atom form, for addresses outside the cluster.
LOCAL_PART_PATTERN = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
# Mailboxes of the cluster: letters, digits, '.', '_' and '-' only, because the local part
# becomes a maildir path and Dovecot expands '%' and other characters in its settings.
MAILBOX_LOCAL_PART_PATTERN = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")
# Absolute path of plain segments: it is written unquoted into Dovecot and Postfix settings.
MAIL_ROOT_PATTERN = re.compile(r"^(/[A-Za-z0-9_][A-Za-z0-9._-]*)+$")
# The Redis password is written into Redis's and Rspamd's config files, quoted or not.
REDIS_PASSWORD_PATTERN = re.compile(r"^[A-Za-z0-9+/=_-]{32,}$")
# Relay networks wider than this would open the relay to a large part of the internet.
WIDEST_RELAY_PREFIX = 8


class Problem(NamedTuple):
    """One failed check: the path of the field to fix and a message with the fix."""

    location: tuple[str | int, ...]
    message: str


def problems_error(problems: list[Problem]) -> PydanticCustomError:
    """Wrap cross-field problems so pydantic reports them, each keeping its own field path."""
    summary = "; ".join(problem.message for problem in problems)
    return PydanticCustomError(
        "cluster_check", "{summary}", {"summary": summary, "problems": tuple(problems)}
    )


class Strict(BaseModel):
    # hide_input_in_errors keeps values (hashes included) out of pydantic's own messages.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def normalise_address(address: str) -> str:
    """Lower-case an address and check its form; mail to it must route to exactly one mailbox."""
    address = address.strip().lower()
    local_part, at, domain = address.rpartition("@")
    if not at or not LOCAL_PART_PATTERN.match(local_part) or len(local_part) > 64:
        raise ValueError(f"{address!r} is not a valid address of the form user@domain")
    if not DOMAIN_PATTERN.match(domain):
        raise ValueError(f"{address!r} has an invalid domain part")
    return address


def normalise_mailbox_address(address: str) -> str:
    """Lower-case an address of this cluster and check that its local part is path-safe."""
    address = normalise_address(address)
    if not MAILBOX_LOCAL_PART_PATTERN.match(address.rpartition("@")[0]):
        raise ValueError(
            f"{address!r} has characters other than letters, digits, '.', '_' and '-' before"
            " the '@'; addresses of this cluster name maildir folders, so use only those"
        )
    return address


class MailUser(Strict):
    """A virtual mailbox: one unique address and the hash of its password (clause 2.1, 2.2.1)."""

    address: str
    # Dovecot's `{SCHEME}hash`; a bare hash gets its prefix. Hidden from repr and errors.
    password_hash: SecretStr
    # Largest total size of the user's mail, in bytes or with a unit ("2GiB"); None: no quota.
    quota: ByteSize | None = None
    # More addresses of hosted domains whose mail this mailbox receives.
    aliases: list[str] = []
    # active: logs in and receives mail. locked: receives mail, but every login is refused.
    state: Literal["active", "locked"] = "active"
    # Name of the mailbox shard that stores the user's mail; None: the first of mailbox_shards.
    shard: str | None = None

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return normalise_mailbox_address(value)

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, values: list[str]) -> list[str]:
        return [normalise_mailbox_address(value) for value in values]

    @field_validator("password_hash")
    @classmethod
    def _check_hash(cls, value: SecretStr) -> SecretStr:
        return SecretStr(normalise_hash(value.get_secret_value()))

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


class MailboxShard(Strict):
    """A mailbox pair: the hosts that replicate each other's mail, and the floating IP that the
    pair's keepalived gives to one of them, which serves every user of the shard (clause 5.1.6)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    # The address that LMTP deliveries and IMAP and POP3 logins of the shard's users go to.
    virtual_ip: ipaddress.IPv4Address
    # Node names of the pair's mailbox hosts.
    hosts: list[str] = Field(min_length=1)


class Node(Strict):
    """One host of the cluster and the roles it runs."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    inventory_name: str
    address: ipaddress.IPv4Address
    roles: frozenset[Role]
    # Certificate chain and key on the machine that runs the deploy; the roles upload them.
    tls_certificate: Path | None = None
    tls_key: Path | None = None
    # The RAID volume that holds the host's mail root or Postfix queue (clause 5.1.4); None
    # keeps them on the root file system.
    storage: Storage | None = None

    @field_validator("tls_certificate", "tls_key")
    @classmethod
    def _check_file_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"file {path} not found: give the path of an existing PEM file")
        return path

    @model_validator(mode="after")
    def _check_tls_files(self) -> Node:
        serves_tls = self.roles & {"mta", "mailstore"}
        missing = [
            key for key in ("tls_certificate", "tls_key") if getattr(self, key) is None
        ]
        if serves_tls and missing:
            raise problems_error([
                Problem((key,), f"node {self.name} serves TLS but {key} is not set: give the"
                        " path of its PEM file in the host's inventory data")
                for key in missing
            ])
        return self

    @model_validator(mode="after")
    def _check_storage_role(self) -> Node:
        """A volume holds data of a role the node runs: the mail root or the Postfix queue."""
        needed = {"mail_root": "mailstore", "postfix_queue": "mta"}
        if self.storage is None or needed[self.storage.holds] in self.roles:
            return self
        holds = self.storage.holds
        other = "postfix_queue" if holds == "mail_root" else "mail_root"
        raise problems_error([
            Problem(("storage", "holds"), f"node {self.name} has no {needed[holds]} role, so it"
                    f" has no {holds} to keep: set holds = {other!r} if it runs the"
                    f" {needed[other]} role, or remove its storage data")
        ])


class Cluster(Strict):
    """The whole cluster, as validated from the inventory and group data."""

    mail_domains: list[str] = Field(min_length=1)
    # The name clients use for SMTP, IMAP and POP3; every TLS certificate covers it.
    mail_hostname: str
    postmaster: str
    mail_users: list[MailUser]
    # Forwarding addresses of hosted domains -> where their mail goes: users of this cluster
    # or addresses outside it.
    mail_aliases: dict[str, list[str]] = {}
    # Largest message accepted, in bytes; Postfix and the LMTP server use the same limit.
    message_size_limit: int = Field(default=25 * 1024 * 1024, ge=1024 * 1024)
    recipient_delimiter: str = Field(default="+", pattern=r"^[+\-_.]?$")
    # Where mail lives on the mailbox hosts, one maildir per user below <domain>/<user>.
    mail_root: str = "/var/vmail"
    # Client networks that may relay without logging in (Postfix mynetworks, beside loopback).
    relay_networks: list[ipaddress.IPv4Network] = []
    # Oldest TLS version any service accepts.
    tls_min_protocol: Literal["TLSv1.2", "TLSv1.3"] = "TLSv1.2"
    # Days after which Dovecot expunges mail from Trash and Junk; None keeps it forever.
    trash_retention_days: int | None = Field(default=30, ge=1)
    junk_retention_days: int | None = Field(default=30, ge=1)
    # Addresses allowed to send a PROXY protocol header. When set, it must list exactly the
    # load balancers, so a changed inventory cannot silently trust another host.
    proxy_protocol_peers: list[ipaddress.IPv4Address] | None = None
    # The network of the nodes' cluster addresses; every node and virtual IP is inside it.
    cluster_network: ipaddress.IPv4Network | None = None
    # The address clients use: keepalived gives it to one load balancer at a time.
    virtual_ip: ipaddress.IPv4Address | None = None
    # The mailbox pairs and their floating IPs; users are spread over them by MailUser.shard.
    mailbox_shards: list[MailboxShard] = []
    # True lets a role group have a single host (test clusters); otherwise every role group
    # needs two hosts, so that no single host's failure stops a service.
    allow_single_host_groups: bool = False
    # TLS ciphers, login throttling, firewall and log retention.
    security: SecurityPolicy = SecurityPolicy()
    # Rspamd, ClamAV, DKIM signing, rate limits and the Redis they keep their state in.
    filtering: FilterPolicy = FilterPolicy()
    nodes: list[Node] = Field(min_length=1)

    @field_validator("mail_domains")
    @classmethod
    def _check_domains(cls, domains: list[str]) -> list[str]:
        normalised = [domain.strip().lower() for domain in domains]
        for domain in normalised:
            if not DOMAIN_PATTERN.match(domain):
                raise ValueError(f"{domain!r} is not a valid domain name")
        if len(set(normalised)) != len(normalised):
            raise ValueError("a domain is listed twice: list each domain once")
        return normalised

    @field_validator("mail_hostname")
    @classmethod
    def _check_hostname(cls, value: str) -> str:
        value = value.strip().lower()
        if not DOMAIN_PATTERN.match(value):
            raise ValueError(f"{value!r} is not a valid host name")
        return value

    @field_validator("postmaster")
    @classmethod
    def _check_postmaster(cls, value: str) -> str:
        return normalise_address(value)

    @field_validator("mail_aliases")
    @classmethod
    def _check_alias_form(cls, aliases: dict[str, list[str]]) -> dict[str, list[str]]:
        normalised = {}
        for alias, targets in aliases.items():
            if not targets:
                raise ValueError(f"alias {alias} has no target: list at least one address")
            normalised[normalise_mailbox_address(alias)] = [
                normalise_address(target) for target in targets
            ]
        return normalised

    @field_validator("mail_root")
    @classmethod
    def _check_mail_root(cls, value: str) -> str:
        if not MAIL_ROOT_PATTERN.match(value) or "/." in value:
            raise ValueError(
                f"{value!r} is not an absolute path of letters, digits, '.', '_' and '-'"
                " segments (no '..', spaces or trailing '/')"
            )
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Cluster:
        problems = [
            *self._address_problems(),
            *self._alias_problems(),
            *self._limit_problems(),
            *self._node_problems(),
            *self._relay_problems(),
            *self._redundancy_problems(),
            *self._virtual_ip_problems(),
            *self._shard_problems(),
            *self._certificate_problems(),
            *self._filter_problems(),
        ]
        if problems:
            raise problems_error(problems)
        return self

    def _address_problems(self) -> list[Problem]:
        """Check that each address is unique across users, user aliases and forwarding aliases."""
        problems = []
        owners: dict[str, tuple[str | int, ...]] = {}
        for location, address in self._addresses():
            if address in owners:
                problems.append(Problem(location, f"{address} is already used at"
                                        f" {format_location(owners[address])} (addresses ignore"
                                        " case): remove one of them"))
                continue
            owners[address] = location
            domain = address.rpartition("@")[2]
            if domain not in self.mail_domains:
                problems.append(Problem(location, f"{address} is in {domain}, which is not in"
                                        " mail_domains: add the domain or fix the address"))
            delimiter = self.recipient_delimiter
            if delimiter and delimiter in address.rpartition("@")[0]:
                problems.append(Problem(location, f"{address} contains the recipient_delimiter"
                                        f" {delimiter!r}, so part of it would be read as an"
                                        " address extension: rename it or change the delimiter"))
        if self.postmaster not in {user.address for user in self.mail_users}:
            problems.append(Problem(("postmaster",), f"{self.postmaster} is not the address of"
                                    " a user in mail_users: name one of them"))
        return problems

    def _addresses(self) -> list[tuple[tuple[str | int, ...], str]]:
        addresses: list[tuple[tuple[str | int, ...], str]] = []
        for index, user in enumerate(self.mail_users):
            addresses.append((("mail_users", index, "address"), user.address))
            for alias_index, alias in enumerate(user.aliases):
                addresses.append((("mail_users", index, "aliases", alias_index), alias))
        addresses.extend((("mail_aliases", alias), alias) for alias in self.mail_aliases)
        return addresses

    def _alias_problems(self) -> list[Problem]:
        """Forwarding aliases reach a user of the cluster or an outside address, never a loop."""
        mailboxes = {user.address for user in self.mail_users}
        mailboxes |= {alias for user in self.mail_users for alias in user.aliases}
        problems = []
        for alias, targets in self.mail_aliases.items():
            for index, target in enumerate(targets):
                hosted = target.rpartition("@")[2] in self.mail_domains
                if hosted and target not in mailboxes:
                    problems.append(Problem(("mail_aliases", alias, index), f"{target} is in a"
                                            " hosted domain but is not a user or a user's alias:"
                                            " add the user or point the alias at one"))
        return problems

    def _limit_problems(self) -> list[Problem]:
        """Reject quotas below the message size limit, which accept mail they can never store."""
        problems = []
        for index, user in enumerate(self.mail_users):
            if user.quota is not None and user.quota < self.message_size_limit:
                problems.append(Problem(("mail_users", index, "quota"), f"the quota of"
                                        f" {user.address} ({user.quota} bytes) is smaller than"
                                        f" message_size_limit ({self.message_size_limit} bytes):"
                                        " raise the quota or lower the limit"))
        return problems

    def _node_problems(self) -> list[Problem]:
        """Node names, inventory names and addresses are each unique."""
        problems = []
        for key in ("name", "inventory_name", "address"):
            seen: set[object] = set()
            for index, node in enumerate(self.nodes):
                value = getattr(node, key)
                if value in seen:
                    problems.append(Problem(("nodes", index, key), f"{key} {value} is used by"
                                            " another host: give each host its own"))
                seen.add(value)
        if self.proxy_protocol_peers is not None:
            expected = {node.address for node in self.loadbalancers}
            if set(self.proxy_protocol_peers) != expected:
                listed = ", ".join(sorted(str(address) for address in expected))
                problems.append(Problem(("proxy_protocol_peers",), "must list exactly the load"
                                        f" balancers' addresses ({listed}): fix the list or"
                                        " remove it to use the load balancers"))
        return problems

    def _relay_problems(self) -> list[Problem]:
        """Relay networks are narrow, disjoint and hold no node of the cluster.

        A load balancer inside a relay network would let every client it forwards relay
        without logging in, and a node inside one hides a mistake in the inventory.
        """
        problems = []
        for index, network in enumerate(self.relay_networks):
            location = ("relay_networks", index)
            if network.prefixlen < WIDEST_RELAY_PREFIX:
                problems.append(Problem(location, f"{network} would let most of the internet"
                                        f" relay mail: use a prefix of /{WIDEST_RELAY_PREFIX} or"
                                        " longer"))
            for other in self.relay_networks[:index]:
                if network.overlaps(other):
                    problems.append(Problem(location, f"{network} overlaps {other}: merge them"
                                            " or remove one"))
            for node in self.nodes:
                if node.address in network:
                    problems.append(Problem(location, f"{network} contains the address of node"
                                            f" {node.name} ({node.address}): cluster nodes never"
                                            " relay by address, so narrow the network"))
        return problems

    def _redundancy_problems(self) -> list[Problem]:
        problems = []
        for group, role in ROLE_GROUPS.items():
            count = len(self.nodes_with(role))
            if count == 0:
                problems.append(Problem(("nodes",), f"no host has the role {role}: add one to"
                                        f" the inventory group {group}"))
            elif count == 1 and not self.allow_single_host_groups:
                problems.append(Problem(("nodes",), f"the group {group} has one host, so its"
                                        " service stops when that host does: add a second host,"
                                        " or set allow_single_host_groups = True for a test"
                                        " cluster"))
        return problems

    def _virtual_ip_problems(self) -> list[Problem]:
        """Check that the cluster network contains every node and that the clients' virtual IP
        is a free address in it."""
        if self.cluster_network is None:
            return [Problem(("cluster_network",), "is not set: give the network of the nodes'"
                            " cluster addresses, such as 10.0.0.0/24")]
        problems = []
        for index, node in enumerate(self.nodes):
            if node.address not in self.cluster_network:
                problems.append(Problem(("nodes", index, "address"), f"{node.address} of node"
                                        f" {node.name} is outside cluster_network"
                                        f" {self.cluster_network}: fix the address or the"
                                        " network"))
        if self.virtual_ip is None:
            problems.append(Problem(("virtual_ip",), "is not set: give the free address of the"
                                    " cluster network that clients connect to"))
        else:
            problems += self._free_address_problems(("virtual_ip",), self.virtual_ip)
        return problems

    def _free_address_problems(
        self, location: tuple[str | int, ...], address: ipaddress.IPv4Address
    ) -> list[Problem]:
        """Check that a floating address is a host address of the cluster network that no node
        and no other floating address uses."""
        network = self.cluster_network
        if address not in network or address in (network.network_address,
                                                  network.broadcast_address):
            return [Problem(location, f"{address} is not a host address of cluster_network"
                            f" {network}: pick a free address inside it")]
        users = [node.name for node in self.nodes if node.address == address]
        if location != ("virtual_ip",) and address == self.virtual_ip:
            users.append("virtual_ip")
        users += [
            f"mailbox shard {shard.name}" for index, shard in enumerate(self.mailbox_shards)
            if shard.virtual_ip == address and location != ("mailbox_shards", index, "virtual_ip")
        ]
        if users:
            return [Problem(location, f"{address} is already used by {', '.join(users)}: give"
                            " each floating address an address of its own")]
        return []

    def _shard_problems(self) -> list[Problem]:
        """Check that each mailbox host is in exactly one shard of two hosts, and each user in a
        shard that exists."""
        if not self.mailbox_shards:
            return [Problem(("mailbox_shards",), "is empty: list each pair of mailbox hosts"
                            " with its floating IP, such as [{'name': 'shard1', 'virtual_ip':"
                            " '10.0.0.30', 'hosts': ['mbox1', 'mbox2']}]")]
        problems = []
        mailstores = {node.name for node in self.mailstores}
        placed: dict[str, str] = {}
        size = "one or two" if self.allow_single_host_groups else "two"
        for index, shard in enumerate(self.mailbox_shards):
            location: tuple[str | int, ...] = ("mailbox_shards", index)
            if shard.name in [other.name for other in self.mailbox_shards[:index]]:
                problems.append(Problem((*location, "name"), f"the shard name {shard.name} is"
                                        " used twice: give each shard its own"))
            if len(shard.hosts) != 2 and not (self.allow_single_host_groups
                                              and len(shard.hosts) == 1):
                count = f"{len(shard.hosts)} host" + ("" if len(shard.hosts) == 1 else "s")
                problems.append(Problem((*location, "hosts"), f"shard {shard.name} has {count}:"
                                        f" a shard is a pair, so list {size} mailbox hosts"))
            for name in shard.hosts:
                if name not in mailstores:
                    problems.append(Problem((*location, "hosts"), f"{name} is not a host of the"
                                            " group mailstores: list only mailbox hosts"))
                elif name in placed:
                    problems.append(Problem((*location, "hosts"), f"{name} is already in shard"
                                            f" {placed[name]}: put each host in one shard"))
                placed.setdefault(name, shard.name)
            if self.cluster_network is not None:
                problems += self._free_address_problems((*location, "virtual_ip"),
                                                        shard.virtual_ip)
        for name in sorted(mailstores - set(placed)):
            problems.append(Problem(("mailbox_shards",), f"mailbox host {name} is in no shard:"
                                    " add it to the hosts of one"))
        names = {shard.name for shard in self.mailbox_shards}
        for index, user in enumerate(self.mail_users):
            if user.shard is not None and user.shard not in names:
                problems.append(Problem(("mail_users", index, "shard"), f"{user.shard} is not"
                                        f" the name of a mailbox shard: use one of"
                                        f" {', '.join(sorted(names))}"))
        return problems

    def _certificate_problems(self) -> list[Problem]:
        problems = []
        for index, node in enumerate(self.nodes):
            if node.tls_certificate is None or node.tls_key is None:
                continue
            for key, message in certificate_problems(node, self.mail_hostname):
                problems.append(Problem(("nodes", index, key), message))
        return problems

    def _filter_problems(self) -> list[Problem]:
        """Check the signature source, the DKIM keys and the Redis password file."""
        policy = self.filtering
        problems = []
        if (policy.clamav_mirror is None) == (not policy.test_signatures):
            message = ("ClamAV needs exactly one signature source: name your signature mirror"
                       " in clamav_mirror, or set test_signatures = True for a test cluster")
            problems.append(Problem(("filtering", "clamav_mirror"), message))
        for domain in self.mail_domains:
            path = dkim_key_path(policy, domain)
            if not path.is_file():
                problems.append(Problem(("filtering", "dkim_key_folder"), f"the DKIM key {path}"
                                        f" of {domain} is missing: run `mailfleet dkim-keys"
                                        " INVENTORY` to generate it, then publish the record"
                                        " that `mailfleet dns` prints"))
        password_file = policy.redis_password_file
        if not password_file.is_file():
            problems.append(Problem(("filtering", "redis_password_file"), f"{password_file} is"
                                    " missing: write a random password of 32 characters or"
                                    " more to it, for example with `openssl rand -hex 32 >"
                                    f" {password_file}`"))
        elif not REDIS_PASSWORD_PATTERN.match(password_file.read_text().strip()):
            problems.append(Problem(("filtering", "redis_password_file"), f"{password_file}"
                                    " must hold one password of 32 or more letters, digits,"
                                    " '+', '/', '=', '_' or '-': write such a random one"))
        return problems

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

    @property
    def redis_servers(self) -> list[Node]:
        """The Redis hosts: the first is the primary, the others replicate it."""
        return self.nodes_with("redis")

    @property
    def service_addresses(self) -> list[ipaddress.IPv4Address]:
        """Addresses that clients reach the mail service on, which mail_hostname resolves to:
        the virtual IP, or the load balancers' own addresses when there is none."""
        if self.virtual_ip is not None:
            return [self.virtual_ip]
        return [node.address for node in self.loadbalancers]

    @property
    def proxy_peers(self) -> list[ipaddress.IPv4Address]:
        """Addresses that may send a PROXY protocol header: the load balancers."""
        return [node.address for node in self.loadbalancers]

    def shard_of_user(self, user: MailUser) -> MailboxShard:
        """Return the shard that stores the user's mail: the named one, or the first."""
        for shard in self.mailbox_shards:
            if shard.name == user.shard:
                return shard
        return self.mailbox_shards[0]

    def shard_of_node(self, node: Node) -> MailboxShard:
        for shard in self.mailbox_shards:
            if node.name in shard.hosts:
                return shard
        raise KeyError(node.name)

    def node_named(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def node(self, inventory_name: str) -> Node:
        for node in self.nodes:
            if node.inventory_name == inventory_name:
                return node
        raise KeyError(inventory_name)


def dkim_key_path(policy: FilterPolicy, domain: str) -> Path:
    """Return where the deploy machine keeps the private DKIM key of a domain."""
    return policy.dkim_key_folder / f"{domain}.{policy.dkim_selector}.key"


def certificate_problems(node: Node, mail_hostname: str) -> list[tuple[str, str]]:
    """Check that a node's certificate is current, covers mail_hostname and matches its key.

    Returns (field, message) pairs; the messages name files, never their contents.
    """
    try:
        certificate = x509.load_pem_x509_certificate(node.tls_certificate.read_bytes())
    except ValueError:
        message = (f"{node.tls_certificate} is not a PEM certificate: give the certificate"
                   " chain, server certificate first")
        return [("tls_certificate", message)]
    try:
        key = serialization.load_pem_private_key(node.tls_key.read_bytes(), password=None)
    except (ValueError, TypeError):
        message = (f"{node.tls_key} is not an unencrypted PEM private key: give the key"
                   " without a passphrase")
        return [("tls_key", message)]

    problems = []
    expiry = certificate.not_valid_after_utc
    if expiry < datetime.datetime.now(datetime.UTC):
        message = f"{node.tls_certificate} expired on {expiry:%Y-%m-%d}: renew it"
        problems.append(("tls_certificate", message))
    if not certificate_covers(certificate, mail_hostname):
        message = (f"{node.tls_certificate} does not cover {mail_hostname}: add that name to"
                   " the certificate's DNS names")
        problems.append(("tls_certificate", message))
    if public_key_bytes(key.public_key()) != public_key_bytes(certificate.public_key()):
        message = f"{node.tls_key} is not the key of {node.tls_certificate}: give the matching pair"
        problems.append(("tls_key", message))
    return problems


def public_key_bytes(public_key: object) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate_covers(certificate: x509.Certificate, hostname: str) -> bool:
    """Tell whether a DNS name of the certificate matches the host name (one-label wildcards)."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    for name in extension.value.get_values_for_type(x509.DNSName):
        name = name.lower()
        if name == hostname:
            return True
        if name.startswith("*.") and hostname.partition(".")[2] == name[2:]:
            return True
    return False


def format_location(location: tuple[str | int, ...]) -> str:
    """Write a field path as in Python: mail_users[1].aliases[0]."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif text and ("@" in part or "." in part):
            text += f"[{part!r}]"
        else:
            text += f".{part}" if text else part
    return text
