"""The DNS records that `mailfleet dns` prints, and the DKIM keys behind them."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from mailfleet.cli import main
from mailfleet.dns import (
    TXT_STRING_BYTES,
    dns_records,
    ensure_dkim_key,
    parse_txt,
    txt_strings,
    zone_lines,
)
from mailfleet.inventory import load_cluster


@given(st.text(alphabet=st.characters(codec="ascii", exclude_characters='"\\'), max_size=2000))
def test_txt_strings_split_and_join(value):
    strings = txt_strings(value)

    assert all(len(part.encode()) <= TXT_STRING_BYTES for part in strings)
    assert "".join(strings) == value


def test_dkim_key_made_once(tmp_path):
    path = tmp_path / "keys" / "example.test.mail.key"

    assert ensure_dkim_key(path) is True
    first = path.read_bytes()
    assert ensure_dkim_key(path) is False
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.clause("2.2.4")
def test_dkim_record_holds_public_key(site):
    cluster = load_cluster(site / "inventory.py", site / "group_data")
    lines = zone_lines(dns_records(cluster))

    dkim_line = next(line for line in lines if line.startswith("mail._domainkey.example.test. "))
    value = parse_txt(dkim_line)
    assert value.startswith("v=DKIM1; k=rsa; p=")
    assert all(len(part) <= TXT_STRING_BYTES for part in dkim_line.split('"')[1::2])
    public_key = serialization.load_der_public_key(base64.b64decode(value.split("p=", 1)[1]))
    key_file = cluster.filtering.dkim_key_folder / "example.test.mail.key"
    private_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert public_key.public_numbers() == private_key.public_key().public_numbers()


def test_records_name_service_and_policies(site):
    cluster = load_cluster(site / "inventory.py", site / "group_data")
    lines = zone_lines(dns_records(cluster))

    assert "mail.example.test. IN A 10.0.0.10" in lines
    assert "mail.example.test. IN A 10.0.0.11" not in lines
    assert "example.test. IN MX 10 mail.example.test." in lines
    assert 'example.test. IN TXT "v=spf1 ip4:10.0.0.21 ip4:10.0.0.22 -all"' in lines
    assert any(line.startswith('_dmarc.example.test. IN TXT "v=DMARC1; p=quarantine;')
               for line in lines)


def test_dkim_keys_command_generates_missing(site, tmp_path, capsys):
    inventory = site / "inventory.py"
    folder = tmp_path / "new-keys"
    text = inventory.read_text()
    old_folder = next(line for line in text.split("'") if line.endswith("/dkim"))
    inventory.write_text(text.replace(old_folder, str(folder)))

    assert main(["dkim-keys", str(inventory)]) == 0

    assert (folder / "example.test.mail.key").is_file()
    assert "generated" in capsys.readouterr().out
