"""The standard's clauses (clauses.toml), and the roles and settings that declare they serve one.

A role package declares the clauses it serves in a module-level dict in its `__init__.py`::

    CLAUSES = {"5.1.5": {"/etc/postfix/main.cf: smtpd_tls_auth_only": "AUTH only after TLS"}}

that is, clause id -> {host-side setting, as "file: key": what it does for the clause}. A group
data file does the same with `__clauses__`, keyed by its data keys. pyinfra drops names that
start with "__" from group data, so the dict never becomes host data. Both are read from the
source with `ast.literal_eval`, without importing the role (which needs pyinfra's deploy
state) or running the data file, so each must be a plain literal.
"""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

REGISTRY = Path(__file__).resolve().parent / "clauses.toml"
KINDS = ("tech", "measure", "support", "org")
ROLE_CONSTANT = "CLAUSES"
GROUP_DATA_CONSTANT = "__clauses__"
# A clause id: numbers joined by dots, or a range of them such as "2.4.1-2.4.6".
ID_PATTERN = re.compile(r"^\d+(\.\d+)*(-\d+(\.\d+)*)?$")


@dataclass(frozen=True)
class Clause:
    """One entry of the registry: a clause, or a range of clauses that share text and kind."""

    id: str
    text: str
    kind: str
    # Support clauses: what the kit provides. Support and org clauses: what the operator adds.
    kit: str = ""
    operator: str = ""

    def covers(self, clause_id: str) -> bool:
        """Tell whether `clause_id` is this entry's id or a clause inside its range."""
        if clause_id == self.id:
            return True
        if "-" not in self.id:
            return False
        first, last = (split_id(part) for part in self.id.split("-"))
        wanted = split_id(clause_id)
        return (
            len(wanted) == len(first) == len(last)
            and wanted[:-1] == first[:-1] == last[:-1]
            and first[-1] <= wanted[-1] <= last[-1]
        )


@dataclass(frozen=True)
class Setting:
    """A setting that serves a clause, as its source declares it."""

    clause: str
    # The declaring role package or data file: "roles/mta" or "group_data/all.py".
    source: str
    # The setting: "file: key" on the host, or a data key for group data.
    setting: str
    purpose: str


def split_id(clause_id: str) -> tuple[int, ...]:
    return tuple(int(part) for part in clause_id.split("."))


def load_registry() -> list[Clause]:
    """Read the clauses shipped in mailfleet/clauses.toml, in the standard's order."""
    entries = tomllib.loads(REGISTRY.read_text(encoding="utf-8"))["clause"]
    registry = [Clause(**entry) for entry in entries]
    for clause in registry:
        if clause.kind not in KINDS or not ID_PATTERN.match(clause.id):
            raise ValueError(f"clauses.toml: clause {clause.id!r} has an invalid id or kind")
    return registry


def find_clause(registry: list[Clause], clause_id: str) -> Clause | None:
    """Return the registry entry for `clause_id`, which may lie inside a range entry."""
    return next((clause for clause in registry if clause.covers(clause_id)), None)


def read_standard_table(markdown: str) -> list[tuple[str, str, str]]:
    """Parse the (id, text, kind) rows of the standard's Markdown clause table.

    Ranges written with an en dash ("2.4.1–2.4.6") get a hyphen, and code backticks are
    dropped, as in clauses.toml.
    """
    rows = []
    for line in markdown.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0][:1].isdigit():
            continue
        clause_id = cells[0].replace("–", "-")
        rows.append((clause_id, cells[1].replace("`", ""), cells[2]))
    return rows


def read_literal(path: Path, name: str) -> dict | None:
    """Return the literal value a Python file assigns to `name` at its top level, if any."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in statement.targets
        ):
            return ast.literal_eval(statement.value)
    return None


def settings_of(source: str, declared: dict[str, dict[str, str]]) -> list[Setting]:
    return [
        Setting(clause_id, source, setting, purpose)
        for clause_id, settings in declared.items()
        for setting, purpose in settings.items()
    ]


def declared_settings(project: Path) -> list[Setting]:
    """Collect the settings that roles/*/__init__.py and group_data/*.py declare per clause."""
    settings = []
    for init in sorted(project.glob("roles/*/__init__.py")):
        declared = read_literal(init, ROLE_CONSTANT)
        if declared:
            settings += settings_of(f"roles/{init.parent.name}", declared)
    for data_file in sorted(project.glob("group_data/*.py")):
        declared = read_literal(data_file, GROUP_DATA_CONSTANT)
        if declared:
            settings += settings_of(f"group_data/{data_file.name}", declared)
    return settings
