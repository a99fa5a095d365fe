"""Secrets and free-form values survive rendering exactly, or the filter raises ValueError.

Each parser below reads a value back the way the daemon does (from its documentation or
source), independently of the filter that wrote it.
"""

from __future__ import annotations

import re
import shlex

from hypothesis import given, settings
from hypothesis import strategies as st

from mailfleet import render

PRINTABLE = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=40)
ANY_TEXT = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40)
LINE_BREAKS = set("\n\r\0")
# Postfix splits table lines at ASCII whitespace only.
POSTFIX_SPACE = r"[ \t\v\f]+"


def parse_passwd_field(line: str, index: int) -> str:
    return line.split(":")[index]


def parse_postfix_main(line: str) -> str:
    """Read a main.cf value: whitespace around it stripped, '$$' is '$', a lone '$' expands."""
    value = line.split("=", 1)[1].strip(" \t")
    assert "$" not in value.replace("$$", ""), "Postfix would expand a parameter"
    return value.replace("$$", "$")


def parse_postfix_table(line: str) -> tuple[str, str]:
    """Read a lookup-table line: the key up to the first whitespace, then the trimmed rest."""
    key, value = re.split(POSTFIX_SPACE, line, maxsplit=1)
    return key, value.strip(" \t\v\f")


def parse_dovecot_value(line: str) -> str:
    """Read a Dovecot value in quotes: a backslash takes the next character literally."""
    value = line.split("=", 1)[1].strip(" \t")
    assert value[0] == '"' and value[-1] == '"', "the value is not quoted"
    text, characters = "", iter(value[1:-1])
    for character in characters:
        text += next(characters, "") if character == "\\" else character
    return text


def parse_haproxy_words(line: str) -> list[str]:
    """Split a HAProxy line into words: strong quotes, weak quotes and backslash escapes."""
    words, word, quote, in_word = [], "", None, False
    characters = iter(line)
    for character in characters:
        if quote == "'":
            if character == "'":
                quote = None
            else:
                word += character
        elif character == "\\":
            word += next(characters)
            in_word = True
        elif character in "'\"" and quote is None:
            quote, in_word = character, True
        elif character == '"' and quote == '"':
            quote = None
        elif character in " \t" and quote is None:
            if in_word:
                words.append(word)
            word, in_word = "", False
        elif character == "#" and quote is None:
            break
        else:
            word += character
            in_word = True
    if in_word:
        words.append(word)
    return words


def rejected(filter_function, value: str, unrepresentable) -> bool:
    """Tell whether the filter raised, checking that the value really had no representation."""
    try:
        filter_function(value)
    except ValueError:
        assert unrepresentable(value), f"{filter_function.__name__} rejected {value!r}"
        return True
    return False


def _breaks(value: str) -> bool:
    return bool(LINE_BREAKS & set(value))


def _padded(value: str) -> bool:
    return _breaks(value) or value != value.strip()


@given(ANY_TEXT)
def test_passwd_field_round_trip(secret):
    if rejected(render.passwd_file_field, secret, lambda value: _breaks(value) or ":" in value):
        return
    line = f"user@example.test:{render.passwd_file_field(secret)}::::::"
    assert parse_passwd_field(line, 1) == secret


@given(ANY_TEXT)
def test_postfix_main_round_trip(secret):
    if rejected(render.postfix_main_value, secret, _padded):
        return
    assert parse_postfix_main(f"smtp_sasl_password = {render.postfix_main_value(secret)}") == secret


@given(ANY_TEXT, ANY_TEXT)
def test_postfix_table_round_trip(key, secret):
    key_rejected = rejected(
        render.postfix_table_key, key,
        lambda value: _breaks(value) or re.search(POSTFIX_SPACE, value) or value[0] == "#",
    )
    if key_rejected or rejected(render.postfix_table_value, secret, _padded):
        return
    line = f"{render.postfix_table_key(key)} {render.postfix_table_value(secret)}"
    assert parse_postfix_table(line) == (key, secret)


@given(ANY_TEXT)
def test_dovecot_quoted_round_trip(secret):
    if rejected(render.dovecot_quoted, secret, _breaks):
        return
    assert parse_dovecot_value(f"doveadm_password = {render.dovecot_quoted(secret)}") == secret


@given(ANY_TEXT)
def test_shell_word_round_trip(secret):
    if rejected(render.shell_word, secret, lambda value: "\0" in value):
        return
    assert shlex.split(f"echo {render.shell_word(secret)} done") == ["echo", secret, "done"]


@given(ANY_TEXT)
def test_haproxy_word_round_trip(secret):
    if rejected(render.haproxy_word, secret, _breaks):
        return
    line = f"    stats auth admin:{render.haproxy_word(secret)} # comment"
    assert parse_haproxy_words(line) == ["stats", "auth", "admin:" + secret]


@settings(max_examples=50)
@given(PRINTABLE)
def test_users_file_keeps_hash(secret):
    users = [{"address": "alice@example.test", "password_hash": secret, "extra_fields": ""}]
    try:
        text = render.render("dovecot/etc/dovecot/users.j2", users=users)
    except ValueError:
        assert ":" in secret
        return
    line = text.splitlines()[-1]
    assert parse_passwd_field(line, 0) == "alice@example.test"
    assert parse_passwd_field(line, 1) == secret


def _render_or_reject(template: str, **values) -> str | None:
    try:
        return render.render(template, **values)
    except ValueError:
        return None


MAIN_CF = {
    "myhostname": "mx1.example.test", "inet_protocols": "ipv4", "mail_domains": ["example.test"],
    "virtual_transport": "lmtp:inet:[10.0.0.31]:24", "recipient_delimiter": "+",
    "message_size_limit": 1024, "relay_networks": ["127.0.0.0/8"], "tls_min_protocol": "TLSv1.2",
    "tls_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256", "log_path": "/var/log/postfix.log",
    "milter_port": 11332, "milter_connect_timeout": 10, "milter_command_timeout": 30,
    "milter_content_timeout": 60,
}


@settings(max_examples=50)
@given(PRINTABLE)
def test_main_cf_keeps_hostname(value):
    text = _render_or_reject("postfix/etc/postfix/main.cf.j2", **{**MAIN_CF, "myhostname": value})
    if text is None:
        return
    line = next(line for line in text.splitlines() if line.startswith("myhostname ="))
    assert parse_postfix_main(line) == value


@settings(max_examples=50)
@given(PRINTABLE, PRINTABLE)
def test_alias_table_keeps_entries(alias, target):
    text = _render_or_reject("postfix/etc/postfix/virtual_aliases.j2", aliases=[(alias, target)])
    if text is None:
        return
    assert parse_postfix_table(text.splitlines()[-1]) == (alias, target)


DOVECOT_CONF = {
    "postmaster": "alice@example.test", "hostname": "mbox1.example.test",
    "tls_certificate": "/etc/dovecot/tls/mail.crt", "tls_key": "/etc/dovecot/tls/mail.key",
    "proxy_peers": ["10.0.0.11"], "vmail_uid": 5000, "recipient_delimiter": "+",
    "default_scheme": "ARGON2ID", "users_file": "/etc/dovecot/users",
    "proxied_login_ports": {"imap": 10993, "pop3": 10995},
    "mailboxes_file": "/etc/dovecot/mailboxes",
    "replica": "10.0.0.32", "doveadm_port": 12345,
    "doveadm_secret_config": "/etc/dovecot/doveadm-secret.conf",
    "mail_root": "/var/vmail", "banned_clients": "/etc/dovecot/banned-clients",
    "locked_accounts": "/etc/dovecot/locked-accounts", "log_path": "/var/log/dovecot.log",
    "tls_min_protocol": "TLSv1.2", "tls_ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "trash_retention_days": 30, "junk_retention_days": None,
}


@settings(max_examples=50)
@given(PRINTABLE)
def test_dovecot_conf_keeps_postmaster(value):
    text = _render_or_reject(
        "dovecot/etc/dovecot/dovecot.conf.j2", **{**DOVECOT_CONF, "postmaster": value}
    )
    if text is None:
        return
    line = next(line for line in text.splitlines() if line.startswith("postmaster_address"))
    assert parse_dovecot_value(line) == value


@settings(max_examples=50)
@given(PRINTABLE)
def test_haproxy_cfg_keeps_server_name(name):
    service = {
        "name": "smtp", "port": 25, "timeout": "5m", "balance": "leastconn", "check": [],
        "server_options": "", "servers": [{"name": name, "address": "10.0.0.21"}],
        "agent": "", "fallbacks": [],
    }
    text = _render_or_reject(
        "haproxy/etc/haproxy/haproxy.cfg.j2", services=[service], max_connections=10,
        check_interval="3s", check_fall=2, check_rise=2,
    )
    if text is None:
        return
    line = next(line for line in text.splitlines() if line.strip().startswith("server "))
    assert parse_haproxy_words(line)[1] == name
