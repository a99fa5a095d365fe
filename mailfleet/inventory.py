"""Build the cluster model from a pyinfra inventory and its group data, without connecting.

Every problem found is collected into one `ClusterDataError`, each naming the file the value
came from, the field and the fix, and never the value of a secret.
"""

from __future__ import annotations

import ast
import difflib
import json
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any, get_args

from pydantic import BaseModel, TypeAdapter, ValidationError
from pyinfra.api.arguments import all_global_arguments
from pyinfra.api.connectors import get_all_connectors
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.inventory import Inventory
from pyinfra.context import ctx_state
from pyinfra_cli.exceptions import UnexpectedExternalError
from pyinfra_cli.inventory import make_inventory_from_files

from mailfleet.model import ROLE_GROUPS, Cluster, format_location
from mailfleet.passwords import generate_password, hash_password

PROJECT = Path(__file__).resolve().parent.parent
CLUSTER_KEYS = set(Cluster.model_fields) - {"nodes"}
# Host data key -> the Node field it fills.
NODE_KEYS = {"node_name": "name", "address": "address", "tls_certificate": "tls_certificate",
             "tls_key": "tls_key", "storage": "storage"}
# Keys mailfleet reads beside the model: where test clusters keep their generated passwords.
EXTRA_KEYS = {"test_password_store"}
# Misspellings of role groups that difflib does not find close enough to suggest.
GROUP_TYPOS = {
    "mx": "mtas", "mxs": "mtas", "mxes": "mtas", "smtp": "mtas", "postfix": "mtas",
    "lb": "loadbalancers", "lbs": "loadbalancers", "haproxy": "loadbalancers",
    "mbox": "mailstores", "mboxes": "mailstores", "imap": "mailstores", "dovecot": "mailstores",
}


class ClusterDataError(ValueError):
    """The inventory or group data is invalid; `problems` lists each one as a sentence.

    A value of group data shared by several hosts is one problem, however many hosts have it.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems = list(dict.fromkeys(problems))
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"invalid cluster data ({count}):\n" + "\n".join(
            f"  - {problem}" for problem in problems
        ))


@dataclass
class DataSources:
    """The files that values come from: the inventory file and each group's group_data file."""

    inventory_file: str = "the inventory file"
    group_files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def find(cls, inventory_file: Path | None, group_data: Path | None) -> DataSources:
        folder = group_data or Path.cwd() / "group_data"
        files = sorted(folder.glob("*.py")) if folder.is_dir() else []
        shown = display_path(inventory_file) if inventory_file else cls.inventory_file
        return cls(shown, {path.stem: path for path in files})

    def describe(self, group: str, location: tuple[str | int, ...]) -> str:
        """Name the file, and the line when known, that sets `location` in a group's data."""
        path = self.group_files.get(group)
        if path is None:
            return f"{self.inventory_file} (data of group {group})"
        line = locate(path, location)
        return display_path(path) if line is None else f"{display_path(path)}:{line}"


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def locate(path: Path, location: tuple[str | int, ...]) -> int | None:
    """Return the line of a group data file that assigns `location`, as deep as literals go."""
    node = top_level_assignments(path).get(str(location[0]))
    if node is None:
        return None
    for part in location[1:]:
        if isinstance(part, int) and isinstance(node, ast.List | ast.Tuple):
            if part >= len(node.elts):
                break
            node = node.elts[part]
        elif isinstance(part, str) and isinstance(node, ast.Dict):
            values = [
                value for key, value in zip(node.keys, node.values, strict=True)
                if isinstance(key, ast.Constant) and str(key.value).lower() == part.lower()
            ]
            if not values:
                break
            node = values[0]
        else:
            break
    return node.lineno


def top_level_assignments(path: Path) -> dict[str, ast.expr]:
    """Return each name a Python file assigns at its top level, with the assigned expression."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError):
        return {}
    assignments: dict[str, ast.expr] = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    assignments[target.id] = statement.value
        elif (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and statement.value is not None
        ):
            assignments[statement.target.id] = statement.value
    return assignments


def load_inventory(path: str | Path, group_data: str | Path | None = None) -> Inventory:
    """Load an inventory file the way the pyinfra CLI does, with its group data.

    `group_data` is the group data folder, by default the project's group_data/. pyinfra also
    reads group_data/ beside the inventory file. Raises ClusterDataError when a file is
    missing or fails to run.
    """
    path = Path(path)
    if not path.is_file():
        raise ClusterDataError([f"{path}: inventory file not found: give the path of a .py file"])
    folder = Path(group_data or PROJECT / "group_data").resolve()
    if folder.name == "group_data":
        location = {"cwd": str(folder.parent)}
    else:
        location = {"group_data_directories": [str(folder)]}

    # The CLI's file loader records the file it executes on pyinfra's state, which only needs
    # that one attribute here: no deploy state exists, and no host is connected.
    try:
        with ctx_state.use(SimpleNamespace(current_exec_filename=None)):
            return make_inventory_from_files(str(path), **location)
    except UnexpectedExternalError as error:
        raise ClusterDataError([_loading_problem(error)]) from None
    except SyntaxError as error:
        where = display_path(Path(error.filename or path))
        problem = f"{where}:{error.lineno}: invalid Python syntax: {error.msg}"
        raise ClusterDataError([problem]) from None
    except PyinfraError as error:
        raise ClusterDataError([f"{display_path(path)}: {error}"]) from None


def _loading_problem(error: UnexpectedExternalError) -> str:
    # pyinfra 3 names the wrapped exception `exception`; earlier releases named it `e`.
    cause = getattr(error, "exception", None) or getattr(error, "e", None)
    where = display_path(Path(error.filename))
    if isinstance(cause, SyntaxError):
        return f"{where}:{cause.lineno}: invalid Python syntax: {cause.msg}"
    return f"{where}: running the file failed with {type(cause).__name__}: {cause}"


def short_name(inventory_name: str) -> str:
    """Derive a node name from an inventory name: `@docker/mailfleet-mx1` and `mx1.example.net`
    both become their first label."""
    return inventory_name.rsplit("/", 1)[-1].split(".", 1)[0]


@cache
def pyinfra_keys() -> frozenset[str]:
    """Host data keys pyinfra itself reads: connector settings and operation arguments."""
    keys = {name for name, _ in all_global_arguments() if name.startswith("_")}
    for connector in get_all_connectors().values():
        keys |= set(getattr(connector, "data_meta", {}))
    return frozenset(keys)


def known_keys() -> set[str]:
    return CLUSTER_KEYS | set(NODE_KEYS) | EXTRA_KEYS | pyinfra_keys()


def suggestion(word: str, candidates: set[str] | list[str]) -> str:
    matches = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f" (did you mean {matches[0]!r}?)" if matches else ""


class _Reader:
    """Read one inventory into model input, collecting problems with their sources."""

    def __init__(self, inventory: Inventory, sources: DataSources, file_group: str | None):
        self.inventory = inventory
        self.sources = sources
        self.file_group = file_group
        self.hosts = list(inventory)
        self.problems: list[str] = []

    def origin(self, host: Any, key: str, location: tuple[str | int, ...] = ()) -> str:
        """Name the file that gives `host` its value of `key`, following pyinfra's precedence."""
        if key in self.inventory.get_host_data(host.name):
            return f"{self.sources.inventory_file} (host {host.name})"
        for group in reversed(host.groups):
            if key in self.inventory.get_group_data(group):
                return self.sources.describe(group, (key, *location))
        return self.sources.describe("all", (key, *location))

    def check_groups(self) -> None:
        for group in sorted(set(self.inventory.groups) | set(self.sources.group_files)):
            if group in ROLE_GROUPS or group in {"all", self.file_group} or group[0] == "@":
                continue
            expected = GROUP_TYPOS.get(group.lower()) or next(
                iter(difflib.get_close_matches(group.lower(), list(ROLE_GROUPS), n=1)), None
            )
            if expected:
                where = self.sources.group_files.get(group)
                source = display_path(where) if where else self.sources.inventory_file
                self.problems.append(f"{source}: group {group!r} is not a role group: rename"
                                     f" it to {expected!r}")

    def group_datas(self) -> list[tuple[str, dict[str, Any]]]:
        """Return the data of group "all" and of every other group, with the group's name."""
        datas = [("all", self.inventory.get_data())]
        return datas + [(group, self.inventory.get_group_data(group))
                        for group in self.inventory.groups]

    def check_keys(self) -> None:
        allowed = known_keys()
        for group, data in self.group_datas():
            for key in sorted(set(data) - allowed):
                source = self.sources.describe(group, (key,))
                self.problems.append(f"{source}: {key}: unknown key{suggestion(key, allowed)}:"
                                     " fix its name or remove it")
        for host in self.hosts:
            for key in sorted(set(self.inventory.get_host_data(host.name)) - allowed):
                self.problems.append(f"{self.sources.inventory_file} (host {host.name}): {key}:"
                                     f" unknown key{suggestion(key, allowed)}: fix its name or"
                                     " remove it")

    def check_replaced_values(self) -> None:
        """Check cluster-wide values of group data that every host replaces with its own.

        The container inventories give each host test values of `security` and `filtering`, so
        the group data's values are not deployed there. A mistake in them would reach real
        hosts, so it is reported all the same.
        """
        for group, data in self.group_datas():
            for key in sorted(CLUSTER_KEYS & set(data)):
                if all(host.data.get(key) == data[key] for host in self.hosts):
                    continue
                try:
                    field_adapter(key).validate_python(data[key])
                except ValidationError as error:
                    describe = partial(self.describe_in_group, group)
                    self.problems.extend(validation_problems(error, describe, prefix=(key,)))

    def describe_in_group(self, group: str, location: tuple[str | int, ...]) -> tuple[str, str]:
        """Return the source and the field of a location in one group's data."""
        return self.sources.describe(group, location), format_location(location)

    def cluster_data(self) -> dict[str, Any]:
        """Return the cluster-wide values, checking that every host has the same ones."""
        first = self.hosts[0]
        data = {}
        for key in sorted(CLUSTER_KEYS):
            value = first.data.get(key)
            differing = [host for host in self.hosts if host.data.get(key) != value]
            if differing:
                origins = sorted({self.origin(host, key) for host in [first, *differing]})
                self.problems.append(f"{'; '.join(origins)}: {key}: the value differs between"
                                     " hosts, but it applies to the whole cluster: set it once,"
                                     " in group_data/all.py")
            if value is not None:
                data[key] = value
        return data

    def node_data(self, host: Any) -> dict[str, Any]:
        roles = sorted(ROLE_GROUPS[group] for group in set(host.groups) if group in ROLE_GROUPS)
        if not roles:
            self.problems.append(f"{self.sources.inventory_file} (host {host.name}): the host is"
                                 f" in no role group: add it to one of {', '.join(ROLE_GROUPS)}")
        node: dict[str, Any] = {
            "name": host.data.get("node_name") or short_name(host.name),
            "inventory_name": host.name,
            "roles": roles,
        }
        for key, node_field in NODE_KEYS.items():
            if host.data.get(key) is not None:
                node[node_field] = host.data.get(key)
        return node

    def describe_error(self, location: tuple[str | int, ...]) -> tuple[str, str]:
        """Return the source and the field, as the user writes it, of a model error location."""
        if not location:
            return self.sources.inventory_file, "cluster"
        if location[0] != "nodes":
            return self.origin(self.hosts[0], str(location[0]), location[1:]), format_location(
                location
            )
        if len(location) < 2 or not isinstance(location[1], int):
            return self.sources.inventory_file, "inventory groups"
        host = self.hosts[location[1]]
        node_field = str(location[2]) if len(location) > 2 else ""
        key = {value: key for key, value in NODE_KEYS.items()}.get(node_field, node_field)
        if key in NODE_KEYS:
            return self.origin(host, key), format_location((key, *location[3:]))
        return f"{self.sources.inventory_file} (host {host.name})", key or "host"


def cluster_from_inventory(
    inventory: Inventory, sources: DataSources | None = None, file_group: str | None = None
) -> Cluster:
    """Validate the inventory's hosts and data into the cluster model.

    Raises ClusterDataError listing every problem. `sources` names the files in messages;
    without it, group data files are looked up in ./group_data as the pyinfra CLI does.
    """
    reader = _Reader(inventory, sources or DataSources.find(None, None), file_group)
    if not reader.hosts:
        raise ClusterDataError([f"{reader.sources.inventory_file}: the inventory has no hosts"])
    reader.check_groups()
    reader.check_keys()
    reader.check_replaced_values()
    data = reader.cluster_data()
    data["nodes"] = [reader.node_data(host) for host in reader.hosts]

    cluster = _validated(data, reader)
    store = reader.hosts[0].data.get("test_password_store")
    if store and isinstance(data.get("mail_users"), list) and not reader.problems:
        # A test cluster swaps every hash for one of a run-time password, after the data as
        # written passed: a plaintext password in it is rejected all the same.
        data["mail_users"] = with_test_passwords(data["mail_users"], Path(store))
        cluster = _validated(data, reader)
    if reader.problems:
        raise ClusterDataError(reader.problems)
    return cluster


def _validated(data: dict[str, Any], reader: _Reader) -> Cluster | None:
    """Validate data into the cluster model, adding any problems to the reader's list."""
    try:
        return Cluster.model_validate(data)
    except ValidationError as error:
        reader.problems.extend(validation_problems(error, reader.describe_error))
        return None


def load_cluster(path: str | Path, group_data: str | Path | None = None) -> Cluster:
    """Load an inventory file and its group data, and validate them into the cluster model."""
    folder = Path(group_data or PROJECT / "group_data")
    sources = DataSources.find(Path(path), folder)
    return cluster_from_inventory(load_inventory(path, folder), sources, Path(path).stem)


def data_source(inventory: Inventory, host_name: str, key: str) -> str:
    """Name the file that gives a host its value of `key`, for messages about that value."""
    reader = _Reader(inventory, DataSources.find(None, None), None)
    return reader.origin(inventory.get_host(host_name), key)


@cache
def field_adapter(key: str) -> TypeAdapter:
    """Return a validator of one cluster-wide key's value, with the model's constraints."""
    field_info = Cluster.model_fields[key]
    return TypeAdapter(Annotated[field_info.annotation, field_info])


def validation_problems(
    error: ValidationError, describe: Any, prefix: tuple[str, ...] = ()
) -> list[str]:
    """Turn pydantic's errors into sentences, without the input values pydantic keeps.

    `prefix` is the location of the validated value in the cluster model, when only part of the
    model was validated.
    """
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        item["loc"] = location = (*prefix, *item["loc"])
        if item["type"] == "cluster_check":
            entries = [(location + problem.location, problem.message)
                       for problem in item["ctx"]["problems"]]
        else:
            entries = [(location, plain_message(item))]
        for entry_location, message in entries:
            source, field_name = describe(entry_location)
            problems.append(f"{source}: {field_name}: {message}")
    return problems


def plain_message(item: dict[str, Any]) -> str:
    """Word one of pydantic's errors as a sentence that ends with the fix."""
    kind = item["type"]
    if kind == "missing":
        return "this required key is missing: add it"
    if kind == "extra_forbidden":
        key = str(item["loc"][-1])
        fields = _sibling_fields(item["loc"])
        return f"unknown key{suggestion(key, fields)}: fix its name or remove it"
    message = item["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    return f"{message}: fix the value"


def _sibling_fields(location: tuple[str | int, ...]) -> set[str]:
    """Return the keys of the model that contains the last key of `location`, to suggest one."""
    model: type[BaseModel] = Cluster
    for part in location[:-1]:
        if isinstance(part, int):
            continue
        field_info = model.model_fields.get(part)
        inner = _model_in(field_info.annotation) if field_info else None
        if inner is None:
            break
        model = inner
    return set(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """Return the model in an annotation, as in `list[MailUser]` or `Storage | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        model = _model_in(argument)
        if model is not None:
            return model
    return None


def read_test_passwords(store: Path) -> dict[str, dict[str, str]]:
    """Return address -> {"password", "hash"} from a test cluster's password store."""
    if not store.exists():
        return {}
    return json.loads(store.read_text())


def with_test_passwords(users: list[dict[str, Any]], store: Path) -> list[dict[str, Any]]:
    """Give each user the hash of a random password kept in the store on this machine.

    For disposable test clusters: the plaintext stays in the store (mode 0600) for the tests
    to log in with, and only the hash reaches a host. A user keeps the same password and hash
    across runs, so re-deploying changes nothing.
    """
    entries = read_test_passwords(store)
    addresses = [
        str(user.get("address", "")).strip().lower() if isinstance(user, dict) else ""
        for user in users
    ]
    missing = set(addresses) - set(entries) - {""}
    for address in missing:
        password = generate_password()
        entries[address] = {"password": password, "hash": hash_password(password)}

    if missing:
        store.parent.mkdir(parents=True, exist_ok=True)
        store.touch(mode=0o600)
        store.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return [
        {**user, "password_hash": entries[address]["hash"]} if address else user
        for user, address in zip(users, addresses, strict=True)
    ]
