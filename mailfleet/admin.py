"""Commands that read and change the cluster's data: check, hash-password, add-user."""

from __future__ import annotations

import argparse
import ast
import getpass
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from mailfleet.inventory import ClusterDataError, load_cluster, validation_problems
from mailfleet.model import (
    ROLE_GROUPS,
    Cluster,
    MailUser,
    format_location,
    normalise_mailbox_address,
)
from mailfleet.passwords import DEFAULT_SCHEME, SCHEMES, hash_password

# Users listed by name in the summary; the rest are counted, so it fits on one screen.
SUMMARY_USERS = 12


class AdminError(Exception):
    """A data command failed; the message gives the reason and the fix."""


def register(commands: argparse._SubParsersAction) -> None:
    """Add the data commands to the `mailfleet` parser."""
    check = commands.add_parser(
        "check", help="validate an inventory and its group data, and print a summary"
    )
    check.add_argument("inventory", help="the pyinfra inventory file, e.g. inventories/local.py")
    check.add_argument("--group-data", help="the group data folder (default: the project's"
                       " group_data/, the one `mailfleet deploy` reads)")
    check.set_defaults(run=run_check)

    hasher = commands.add_parser(
        "hash-password", help="read a password and print its hash for mail_users"
    )
    hasher.add_argument("--scheme", choices=sorted(SCHEMES), default=DEFAULT_SCHEME,
                        help=f"the Dovecot password scheme (default: {DEFAULT_SCHEME})")
    hasher.set_defaults(run=run_hash_password)

    add_user = commands.add_parser(
        "add-user", help="read a password and add a user with its hash to a group data file"
    )
    add_user.add_argument("address", help="the new user's address, in a hosted domain")
    add_user.add_argument("--data", default="group_data/all.py",
                          help="the group data file with mail_users (default: %(default)s)")
    add_user.add_argument("--scheme", choices=sorted(SCHEMES), default=DEFAULT_SCHEME,
                          help=f"the Dovecot password scheme (default: {DEFAULT_SCHEME})")
    add_user.set_defaults(run=run_add_user)


def run_check(arguments: argparse.Namespace) -> int:
    try:
        cluster = load_cluster(arguments.inventory, arguments.group_data)
    except ClusterDataError as error:
        print(f"mailfleet: {arguments.inventory}: {error}", file=sys.stderr)
        return 1
    print(summary(cluster, arguments.inventory))
    return 0


def run_hash_password(arguments: argparse.Namespace) -> int:
    try:
        password = read_password(sys.stdin)
        dovecot_hash = hash_password(password, arguments.scheme)
    except (AdminError, ValueError) as error:
        print(f"mailfleet: {error}", file=sys.stderr)
        return 1
    print(dovecot_hash)
    return 0


def run_add_user(arguments: argparse.Namespace) -> int:
    try:
        address = add_user(Path(arguments.data), arguments.address, sys.stdin, arguments.scheme)
    except AdminError as error:
        print(f"mailfleet: {error}", file=sys.stderr)
        return 1
    print(f"added {address} to {arguments.data}; run `mailfleet check INVENTORY` to validate"
          " the whole cluster")
    return 0


def read_password(stream: TextIO) -> str:
    """Read a password: typed twice without echo on a terminal, else one line of the stream."""
    if stream.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat the password: ") != password:
            raise AdminError("the passwords differ: run the command again")
    else:
        password = stream.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise AdminError("the password is empty: give one on standard input or at the prompt")
    return password


def add_user(data_file: Path, address: str, stream: TextIO, scheme: str = DEFAULT_SCHEME) -> str:
    """Append a user with a fresh hash to mail_users in a group data file; return the address.

    The file is edited as text, so its comments and layout stay, and replaced only after the
    edited file runs and every user in it validates.
    """
    if not data_file.is_file():
        raise AdminError(f"{data_file}: file not found: give the group data file with --data")
    values = _run_data_file(data_file)
    try:
        address = normalise_mailbox_address(address)
    except ValueError as error:
        raise AdminError(f"{error}") from None
    _check_new_address(data_file, values, address)

    password = read_password(stream)
    try:
        entry = {"address": address, "password_hash": hash_password(password, scheme)}
    except ValueError as error:
        raise AdminError(str(error)) from None
    text = insert_user(data_file.read_text(), entry, data_file)
    _replace_checked(data_file, text, address)
    return address


def _run_data_file(data_file: Path) -> dict[str, object]:
    try:
        return runpy.run_path(str(data_file))
    except Exception as error:  # noqa: BLE001 - the data file is user code that may raise anything
        raise AdminError(f"{data_file}: running the file failed with {type(error).__name__}:"
                         f" {error}") from None


def _check_new_address(data_file: Path, values: dict[str, object], address: str) -> None:
    domains = [str(domain).lower() for domain in values.get("mail_domains") or []]
    domain = address.rpartition("@")[2]
    if domain not in domains:
        raise AdminError(f"{data_file}: mail_domains: {domain} is not a hosted domain: add it to"
                         " mail_domains first")
    users = values.get("mail_users")
    if not isinstance(users, list):
        raise AdminError(f"{data_file}: mail_users: missing or not a list: define mail_users = []")
    taken = set()
    for user in users:
        if isinstance(user, dict):
            taken.add(str(user.get("address", "")).lower())
            taken.update(str(alias).lower() for alias in user.get("aliases") or [])
    taken.update(str(alias).lower() for alias in values.get("mail_aliases") or {})
    if address in taken:
        raise AdminError(f"{data_file}: mail_users: {address} already exists (addresses ignore"
                         " case): choose another address")


def insert_user(text: str, entry: dict[str, str], data_file: Path) -> str:
    """Return the text with the entry appended to the `mail_users = [...]` list literal."""
    listing = _mail_users_literal(text, data_file)
    data = text.encode()
    line_starts = [0]
    for line in data.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))

    def offset(line: int, column: int) -> int:
        return line_starts[line - 1] + column

    indent, inner = _indentation(listing)
    lines = [f"{indent}{{"]
    lines += [f"{inner}{json.dumps(key)}: {json.dumps(value)}," for key, value in entry.items()]
    lines.append(f"{indent}}},")
    block = ("\n".join(lines) + "\n").encode()

    closing = offset(listing.end_lineno, listing.end_col_offset) - 1
    if listing.elts:
        last = listing.elts[-1]
        after_last = offset(last.end_lineno, last.end_col_offset)
        if data[after_last:closing].lstrip()[:1] != b",":
            data = data[:after_last] + b"," + data[after_last:]
            closing += 1
    line_start = data.rfind(b"\n", 0, closing) + 1
    if data[line_start:closing].strip():
        data = data[:closing] + b"\n" + block + data[closing:]
    else:
        data = data[:line_start] + block + data[line_start:]
    return data.decode()


def _mail_users_literal(text: str, data_file: Path) -> ast.List:
    for statement in ast.parse(text).body:
        targets = statement.targets if isinstance(statement, ast.Assign) else []
        names = {target.id for target in targets if isinstance(target, ast.Name)}
        named = "mail_users" in names
        if named and isinstance(statement.value, ast.List):
            return statement.value
    raise AdminError(f"{data_file}: mail_users is not assigned a list literal, so it cannot be"
                     " edited safely: add the user by hand")


def _indentation(listing: ast.List) -> tuple[str, str]:
    """Return the indentation of the list's items and of the keys inside a dict item."""
    if not listing.elts:
        return " " * 4, " " * 8
    last = listing.elts[-1]
    indent = " " * last.col_offset
    if isinstance(last, ast.Dict) and last.keys and last.keys[0].lineno != last.lineno:
        return indent, " " * last.keys[0].col_offset
    return indent, indent + " " * 4


def _replace_checked(data_file: Path, text: str, address: str) -> None:
    """Write the edited text beside the file, check it, and only then replace the file."""
    descriptor, temporary = tempfile.mkstemp(dir=data_file.parent, suffix=".py")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        os.chmod(temporary, data_file.stat().st_mode & 0o7777)
        users = _run_data_file(Path(temporary)).get("mail_users") or []
        _validate_users(data_file, users, address)
        os.replace(temporary, data_file)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _validate_users(data_file: Path, users: list, address: str) -> None:
    problems = []
    for index, user in enumerate(users):
        try:
            MailUser.model_validate(user)
        except ValidationError as error:
            problems += validation_problems(
                error, lambda location, index=index: (
                    str(data_file), format_location(("mail_users", index, *location))
                )
            )
    found = [user for user in users if isinstance(user, dict) and user.get("address") == address]
    if len(found) != 1:
        problems.append(f"{data_file}: mail_users: the edit did not add {address} exactly once")
    if problems:
        raise AdminError("the edited file is invalid, so it was left unchanged:\n"
                         + "\n".join(f"  - {problem}" for problem in problems))


def summary(cluster: Cluster, inventory: str) -> str:
    """Describe the cluster on one screen: hosts per role, domains, users and policies."""
    heading = (f"{inventory}: valid. Mail for {', '.join(cluster.mail_domains)} at"
               f" {cluster.mail_hostname}.")
    lines = [heading, "", "Hosts:"]
    for group, role in ROLE_GROUPS.items():
        nodes = ", ".join(f"{node.name} ({node.address})" for node in cluster.nodes_with(role))
        lines.append(f"  {group:<14} {nodes}")

    users = [user.address + ("" if user.state == "active" else f" [{user.state}]")
             for user in cluster.mail_users]
    shown = ", ".join(users[:SUMMARY_USERS])
    if len(users) > SUMMARY_USERS:
        shown += f", and {len(users) - SUMMARY_USERS} more"
    lines += ["", f"Users ({len(users)}): {shown}"]
    if cluster.mail_aliases:
        lines.append(f"Forwarding aliases: {len(cluster.mail_aliases)}")

    lines += ["", "Policies:", *_policy_lines(cluster)]
    return "\n".join(lines)


def _policy_lines(cluster: Cluster) -> list[str]:
    relay = ", ".join(str(network) for network in cluster.relay_networks)
    retention = (f"Trash {_days(cluster.trash_retention_days)},"
                 f" Junk {_days(cluster.junk_retention_days)}")
    redundancy = {
        True: "one host per role group allowed (allow_single_host_groups = True)",
        False: "at least two hosts per role group",
    }[cluster.allow_single_host_groups]
    policies = {
        "postmaster": cluster.postmaster,
        "message size limit": f"{cluster.message_size_limit} bytes"
                              f" ({cluster.message_size_limit / 2**20:g} MiB)",
        "recipient delimiter": repr(cluster.recipient_delimiter),
        "TLS": f"{cluster.tls_min_protocol} or later",
        "relay networks": relay or "none: only logged-in users relay",
        "PROXY protocol from": ", ".join(str(address) for address in cluster.proxy_peers),
        "retention": retention,
        "mail root": cluster.mail_root,
        "redundancy": redundancy,
        **_filter_policies(cluster),
    }
    return [f"  {name:<20} {value}" for name, value in policies.items()]


def _filter_policies(cluster: Cluster) -> dict[str, str]:
    policy = cluster.filtering
    offline = {
        True: "on: Rspamd makes no outside lookups (offline = True)",
        False: "off: Rspamd queries DNS blocklists and rspamd.com",
    }[policy.offline]
    signatures = (f"ClamAV from the mirror {policy.clamav_mirror}" if policy.clamav_mirror
                  else "ClamAV with the EICAR test signature only (test_signatures = True)")
    return {
        "offline mode": offline,
        "virus signatures": signatures,
        "DKIM selector": policy.dkim_selector,
        "user rate limit": f"{policy.rate_limit_messages} messages per"
                           f" {policy.rate_limit_period}",
    }


def _days(days: int | None) -> str:
    return "kept forever" if days is None else f"{days} days"
