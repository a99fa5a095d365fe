"""Render the config templates under templates/ with values computed by the roles.

Each filter writes a value so that the daemon reads back exactly that value, or raises
ValueError when the format cannot hold it: a secret is never silently changed.
"""

from __future__ import annotations

import shlex
from functools import lru_cache
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


LINE_BREAKS = "\n\r\0"


def _reject(text: str, characters: str, where: str) -> str:
    if any(character in text for character in characters):
        raise ValueError(f"{where} cannot hold a line break, a NUL byte or any of {characters!r}")
    return text


def passwd_file_field(value: object) -> str:
    """Return a value for one field of a Dovecot passwd-file line, which ':' and newlines split."""
    return _reject(str(value), ":" + LINE_BREAKS, "a passwd-file field")


def postfix_value(value: object) -> str:
    """Return a value for a Postfix main.cf or lookup-table line, which has no quoting."""
    text = str(value)
    if any(character in text for character in "\n\r") or text != text.strip():
        raise ValueError(f"{text!r} cannot be written on a Postfix config line")
    return text


def postfix_main_value(value: object) -> str:
    """Return a value for a main.cf parameter: '$' doubled, so Postfix expands no parameter.

    Postfix strips whitespace around a value and reads a line that starts with whitespace as a
    continuation, so such values are rejected.
    """
    text = postfix_value(_reject(str(value), LINE_BREAKS, "a main.cf value"))
    return text.replace("$", "$$")


def postfix_table_key(value: object) -> str:
    """Return a lookup-table key, which ends at the first whitespace and cannot start with '#'."""
    text = _reject(str(value), " \t\v\f" + LINE_BREAKS, "a lookup-table key")
    if not text or text.startswith("#"):
        raise ValueError("a lookup-table key cannot be empty or start with '#'")
    return text


def postfix_table_value(value: object) -> str:
    """Return a lookup-table value: the rest of the line, without surrounding whitespace."""
    text = postfix_value(_reject(str(value), LINE_BREAKS, "a lookup-table value"))
    if not text:
        raise ValueError("a lookup-table value cannot be empty")
    return text


def dovecot_quoted(value: object) -> str:
    """Return a Dovecot config value in double quotes, with '\\' and '"' escaped.

    Quoting also stops Dovecot from reading a leading '<' as a file name or '$' as a setting.
    It does not stop '%' expansion in settings that expand variables.
    """
    text = _reject(str(value), LINE_BREAKS, "a Dovecot config value")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def shell_word(value: object) -> str:
    """Return one word for a POSIX shell command line, quoted with shlex.quote."""
    return shlex.quote(_reject(str(value), "\0", "a shell word"))


def haproxy_word(value: object) -> str:
    """Return one HAProxy config word in strong (single) quotes, which HAProxy never expands.

    A single quote ends the quoted part, is written as \\' and the quoting resumes: HAProxy
    joins the adjacent parts into one word.
    """
    text = _reject(str(value), LINE_BREAKS, "a HAProxy word")
    return "'" + text.replace("'", "'\\''") + "'"


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
    env.filters["postfix_main"] = postfix_main_value
    env.filters["postfix_table_key"] = postfix_table_key
    env.filters["postfix_table_value"] = postfix_table_value
    env.filters["dovecot_quoted"] = dovecot_quoted
    env.filters["shell_word"] = shell_word
    env.filters["haproxy_word"] = haproxy_word
    return env


def render(template: str, **values: object) -> str:
    """Render a template, named by its path under templates/, with a "managed by" header value."""
    return environment().get_template(template).render(source=f"templates/{template}", **values)
