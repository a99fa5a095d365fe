"""The clause registry matches the standard, and every clause id in tests and roles is known."""

import ast
import re
from pathlib import Path

import pytest

from mailfleet.clauses import (
    KINDS,
    declared_settings,
    find_clause,
    load_registry,
    read_standard_table,
)

PROJECT = Path(__file__).resolve().parents[2]
STANDARD = PROJECT.parent / "shared" / "standard" / "CLAUSES.md"
TEMPLATES = PROJECT / "templates"
# Host files rendered from a template whose path does not mirror them: the MTA's Dovecot,
# which serves only SASL authentication.
OTHER_TEMPLATES = {"/etc/dovecot/dovecot.conf": ["dovecot/etc/dovecot/dovecot-auth.conf.j2"]}
INCLUDE = re.compile(r'{%\s*include\s+"([^"]+)"')


def test_registry_matches_standard():
    if not STANDARD.is_file():
        pytest.skip(f"{STANDARD} is not reachable")
    expected = read_standard_table(STANDARD.read_text(encoding="utf-8"))

    registry = [(clause.id, clause.text, clause.kind) for clause in load_registry()]

    assert registry == expected


def test_registry_ids_unique():
    ids = [clause.id for clause in load_registry()]

    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("clause", load_registry(), ids=lambda clause: clause.id)
def test_registry_entry_complete(clause):
    assert clause.kind in KINDS
    assert clause.text
    if clause.kind in ("support", "org"):
        assert clause.operator, f"{clause.id} does not say what the operator supplies"
    if clause.kind == "support":
        assert clause.kit, f"{clause.id} does not say what the kit provides"


def test_range_covers_inner_ids():
    registry = load_registry()

    assert find_clause(registry, "2.4.1").id == "2.4.1-2.4.6"
    assert find_clause(registry, "2.4.6").id == "2.4.1-2.4.6"
    assert find_clause(registry, "6.2.3").id == "6.2.1-6.2.6"
    assert find_clause(registry, "2.4.7") is None
    assert find_clause(registry, "5.1.5").id == "5.1.5"
    assert find_clause(registry, "5.1") is None


def clause_marker_ids(path: Path) -> list[str]:
    """Return the string arguments of every `pytest.mark.clause(...)` call in a file."""
    ids = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "clause"
        ):
            ids += [arg.value for arg in node.args if isinstance(arg, ast.Constant)]
    return ids


def test_markers_name_known_clauses():
    registry = load_registry()
    found = {
        (path.relative_to(PROJECT).as_posix(), clause_id)
        for path in (PROJECT / "tests").rglob("*.py")
        for clause_id in clause_marker_ids(path)
    }

    assert found, "no test carries a clause marker"
    unknown = [(path, id_) for path, id_ in found if find_clause(registry, id_) is None]
    assert unknown == []


def test_settings_name_known_clauses():
    registry = load_registry()
    settings = declared_settings(PROJECT)

    unknown = [setting for setting in settings if not find_clause(registry, setting.clause)]
    assert unknown == []


@pytest.mark.parametrize(
    "source",
    ["roles/loadbalancer", "roles/mta", "roles/mailstore", "roles/common", "roles/storage",
     "group_data/all.py"],
)
def test_source_declares_clauses(source):
    assert any(setting.source == source for setting in declared_settings(PROJECT))


def template_text(relative: str) -> str:
    """Return a template's text followed by the text of the templates it includes."""
    text = (TEMPLATES / relative).read_text(encoding="utf-8")
    return "\n".join([text, *(template_text(name) for name in INCLUDE.findall(text))])


def templates_of(host_file: str) -> list[str]:
    mirrored = [
        path.relative_to(TEMPLATES).as_posix()
        for path in TEMPLATES.glob(f"*{host_file}.j2")
        if path.relative_to(TEMPLATES).as_posix().split("/", 1)[1] == host_file.lstrip("/") + ".j2"
    ]
    return mirrored + OTHER_TEMPLATES.get(host_file, [])


def role_settings():
    settings = declared_settings(PROJECT)
    return [setting for setting in settings if setting.source.startswith("roles/")]


@pytest.mark.parametrize(
    "setting", role_settings(), ids=lambda setting: f"{setting.clause}-{setting.setting}"
)
def test_role_setting_is_set(setting):
    """Each "file: key" that a role declares is in a template of that file; a "mode NNNN" key
    is an upload or folder mode in the role's code or in the shared steps."""
    host_file, key = setting.setting.split(": ", 1)

    if key.startswith("mode "):
        mode = f'mode="{int(key.removeprefix("mode "), 8):o}"'
        sources = [PROJECT / setting.source / "__init__.py", PROJECT / "roles/common/__init__.py"]
        assert any(mode in path.read_text(encoding="utf-8") for path in sources)
        return
    templates = templates_of(host_file)
    assert templates, f"no template renders {host_file}"
    assert any(key in template_text(name) for name in templates), f"{key} not in {templates}"
