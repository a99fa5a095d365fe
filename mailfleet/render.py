"""Render the config templates under templates/ with values computed by the roles."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def passwd_file_field(value: object) -> str:
    """Return a value for one field of a Dovecot passwd-file line, which ':' and newlines split."""
    text = str(value)
    if any(character in text for character in ":\n\r"):
        raise ValueError("a passwd-file field cannot contain ':' or a line break")
    return text


def postfix_value(value: object) -> str:
    """Return a value for a Postfix main.cf or lookup-table line, which has no quoting."""
    text = str(value)
    if any(character in text for character in "\n\r") or text != text.strip():
        raise ValueError(f"{text!r} cannot be written on a Postfix config line")
    return text


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["passwd_field"] = passwd_file_field
    env.filters["postfix"] = postfix_value
    return env


def render(template: str, **values: object) -> str:
    """Render a template, named by its path under templates/, with a "managed by" header value."""
    return environment().get_template(template).render(source=f"templates/{template}", **values)
