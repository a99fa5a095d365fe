"""The data commands: check, hash-password and add-user, run through the `mailfleet` CLI."""

from __future__ import annotations

import io

import pytest

from mailfleet.cli import main
from mailfleet.inventory import load_cluster
from mailfleet.passwords import verify_password
from tests.unit.conftest import ALICE_HASH


class Stdin(io.StringIO):
    """Standard input that is not a terminal, as in a pipe."""

    def isatty(self) -> bool:
        return False


@pytest.fixture
def stdin(monkeypatch):
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", Stdin(text))

    return feed


@pytest.mark.clause("5.1.5")
@pytest.mark.parametrize("scheme", ["ARGON2ID", "BLF-CRYPT", "SHA512-CRYPT"])
def test_hash_password_from_stdin(stdin, capsys, scheme):
    stdin("  spaces kept  \n")

    assert main(["hash-password", "--scheme", scheme]) == 0

    output = capsys.readouterr().out.strip()
    assert output.startswith("{" + scheme + "}$")
    assert verify_password("  spaces kept  ", output)
    assert "spaces kept" not in output


def test_hash_password_rejects_empty(stdin, capsys):
    stdin("\n")

    assert main(["hash-password"]) == 1
    assert "empty" in capsys.readouterr().err


def test_check_prints_summary(site, capsys):
    code = main(["check", str(site / "inventory.py"), "--group-data", str(site / "group_data")])

    output = capsys.readouterr().out
    assert code == 0
    assert "mx1 (10.0.0.21), mx2 (10.0.0.22)" in output
    assert "Users (2): alice@example.test, bob@example.test" in output
    assert "26214400 bytes" in output
    assert ALICE_HASH not in output


def test_check_fails_on_bad_data(site, capsys):
    path = site / "group_data" / "all.py"
    path.write_text(path.read_text() + "mail_domian = ['x.test']\n")

    code = main(["check", str(site / "inventory.py"), "--group-data", str(site / "group_data")])

    error = capsys.readouterr().err
    assert code == 1
    assert "all.py:25: mail_domian: unknown key (did you mean 'mail_domains'?)" in error


@pytest.mark.clause("5.1.5")
def test_add_user_appends_hash(site, stdin, capsys):
    path = site / "group_data" / "all.py"
    before = path.read_text()
    stdin("carol's password\n")

    assert main(["add-user", "Carol@example.test", "--data", str(path)]) == 0

    after = path.read_text()
    assert after.startswith(before.split("]\nmessage_size_limit")[0])
    assert after.count("# Hosted domains.") == 1
    assert "carol's password" not in after + capsys.readouterr().out
    cluster = load_cluster(site / "inventory.py", site / "group_data")
    carol = cluster.mail_users[-1]
    assert carol.address == "carol@example.test"
    assert verify_password("carol's password", carol.password_hash.get_secret_value())


@pytest.mark.clause("2.1")
def test_add_user_rejects_existing_address(site, stdin, capsys):
    path = site / "group_data" / "all.py"
    before = path.read_text()
    stdin("password\n")

    assert main(["add-user", "ALICE@example.test", "--data", str(path)]) == 1

    assert "already exists" in capsys.readouterr().err
    assert path.read_text() == before


def test_add_user_rejects_foreign_domain(site, stdin, capsys):
    path = site / "group_data" / "all.py"
    stdin("password\n")

    assert main(["add-user", "carol@other.test", "--data", str(path)]) == 1

    assert "not a hosted domain" in capsys.readouterr().err


def test_add_user_to_empty_list(tmp_path, stdin):
    path = tmp_path / "all.py"
    path.write_text('mail_domains = ["example.test"]\nmail_users = []  # none yet\n')
    stdin("password\n")

    assert main(["add-user", "dan@example.test", "--data", str(path)]) == 0

    text = path.read_text()
    assert text.startswith('mail_domains = ["example.test"]\nmail_users = [\n    {\n')
    assert text.endswith("    },\n]  # none yet\n")


def test_add_user_to_one_line_list(tmp_path, stdin):
    path = tmp_path / "all.py"
    path.write_text(
        'mail_domains = ["example.test"]\n'
        f'mail_users = [{{"address": "a@example.test", "password_hash": "{ALICE_HASH}"}}]\n'
    )
    stdin("password\n")

    assert main(["add-user", "dan@example.test", "--data", str(path)]) == 0

    namespace: dict = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - test data
    assert [user["address"] for user in namespace["mail_users"]] == [
        "a@example.test",
        "dan@example.test",
    ]
