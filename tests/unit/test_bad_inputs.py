"""A corpus of invalid inventories and group data: each must stop with a message that names
the file and the field, and never shows a secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from passlib.hash import bcrypt

from mailfleet.inventory import ClusterDataError, load_cluster
from mailfleet.passwords import hash_password
from tests.unit.conftest import ALICE_HASH, BOB_HASH, NODES, inventory_text

WEAK_ARGON2 = "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$" + "A" * 43
CHEAP_BCRYPT = bcrypt.using(rounds=4).hash("cheap")
MD5_CRYPT = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"


@dataclass
class Case:
    """One bad input: text replacements per file, and what the message must name."""

    name: str
    source: str
    field: str
    replace: dict[str, tuple[str, str]] = field(default_factory=dict)
    append: dict[str, str] = field(default_factory=dict)
    inventory: dict | None = None
    secrets: tuple[str, ...] = ()
    clause: str | None = None


def user_hash(old: str, new: str) -> dict[str, tuple[str, str]]:
    return {"group_data/all.py": (old, new)}


ALL = "group_data/all.py"
INVENTORY = "inventory.py"
CASES = [
    Case("misspelt cluster key", "all.py:17", "message_size_limt",
         replace={ALL: ("message_size_limit =", "message_size_limt =")}),
    Case("limit of wrong type", "all.py:17", "message_size_limit",
         replace={ALL: ("25 * 1024 * 1024", '"big"')}),
    Case("limit too small", "all.py:17", "message_size_limit",
         replace={ALL: ("25 * 1024 * 1024", "1000")}),
    Case("no domains", "all.py:4", "mail_domains",
         replace={ALL: ('["example.test"]', "[]")}),
    Case("invalid domain", "all.py:4", "mail_domains",
         replace={ALL: ('["example.test"]', '["example.test", "exa mple.test"]')}),
    Case("invalid mail hostname", "all.py:5", "mail_hostname",
         replace={ALL: ('mail_hostname = "mail.example.test"', 'mail_hostname = "mail_1"')}),
    Case("group data file for a misspelt group", "mailstore.py", "mailstores",
         append={"group_data/mailstore.py": "mail_root = '/srv/mail'\n"}),
    Case("misspelt role group in inventory", "inventory.py", "mtas",
         inventory={**NODES, "mta": [("mx3", "10.0.0.23")]}),
    Case("role group named mxs", "inventory.py", "mtas",
         inventory={**NODES, "mxs": [("mx3", "10.0.0.23")]}),
    Case("duplicate user by case", "all.py:7", "mail_users[2].address",
         append={ALL: f'mail_users.append({{"address": "Alice@Example.TEST",'
                      f' "password_hash": "{BOB_HASH}"}})\n'}, clause="2.1"),
    Case("user alias equal to a user", "all.py", "mail_users[1].aliases[0]",
         replace={ALL: ('"address": "bob@example.test",',
                        '"address": "bob@example.test", "aliases": ["ALICE@example.test"],')},
         clause="2.1"),
    Case("forwarding alias equal to a user", "all.py:25", "mail_aliases",
         append={ALL: 'mail_aliases = {"bob@example.test": ["someone@elsewhere.test"]}\n'},
         clause="2.1"),
    Case("plaintext password", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, "correct horse battery staple"),
         secrets=("correct horse battery staple",)),
    Case("PLAIN scheme", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, "{PLAIN}hunter2secret"), secrets=("hunter2secret",)),
    Case("MD5-CRYPT bare hash", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, MD5_CRYPT), secrets=(MD5_CRYPT,)),
    Case("SSHA scheme", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="),
         secrets=("W6ph5Mm5Pz8GgiULbPgzG37mj9g=",)),
    Case("prefix does not match the hash", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, "{BLF-CRYPT}" + ALICE_HASH.removeprefix("{ARGON2ID}"))),
    Case("argon2 below the floor", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, WEAK_ARGON2), secrets=(WEAK_ARGON2,)),
    Case("bcrypt cost below the floor", "all.py:14", "mail_users[1].password_hash",
         replace=user_hash(BOB_HASH, CHEAP_BCRYPT), secrets=(CHEAP_BCRYPT,)),
    Case("unknown scheme prefix", "all.py:10", "mail_users[0].password_hash",
         replace=user_hash(ALICE_HASH, "{FOO}abcdefgh"), secrets=("abcdefgh",)),
    Case("address without domain", "all.py:9", "mail_users[0].address",
         replace={ALL: ('"address": "alice@example.test"', '"address": "alice"')}),
    Case("address with a slash", "all.py:13", "mail_users[1].address",
         replace={ALL: ('"address": "bob@example.test"', '"address": "b/ob@example.test"')}),
    Case("user in a domain not hosted", "all.py:13", "mail_users[1].address",
         replace={ALL: ('"address": "bob@example.test"', '"address": "bob@other.test"')}),
    Case("postmaster is not a user", "all.py:6", "postmaster",
         replace={ALL: ('postmaster = "alice@example.test"', 'postmaster = "carol@example.test"')}),
    Case("alias to a missing user", "all.py:25", "mail_aliases['info@example.test'][0]",
         append={ALL: 'mail_aliases = {"info@example.test": ["carol@example.test"]}\n'}),
    Case("relay network holds a load balancer", "all.py:25", "relay_networks[0]",
         append={ALL: 'relay_networks = ["10.0.0.0/24"]\n'}),
    Case("relay network for the whole internet", "all.py:25", "relay_networks[0]",
         append={ALL: 'relay_networks = ["0.0.0.0/0"]\n'}),
    Case("overlapping relay networks", "all.py:25", "relay_networks[1]",
         append={ALL: 'relay_networks = ["192.168.0.0/16", "192.168.5.0/24"]\n'}),
    Case("relay network with host bits", "all.py:25", "relay_networks[0]",
         append={ALL: 'relay_networks = ["192.168.1.1/24"]\n'}),
    Case("quota below the message size limit", "all.py:9", "mail_users[0].quota",
         replace={ALL: ('"address": "alice@example.test",',
                        '"address": "alice@example.test", "quota": "10MiB",')}),
    Case("limit differs between groups", "mailstores.py", "message_size_limit",
         append={"group_data/mailstores.py": "message_size_limit = 10 * 1024 * 1024\n"}),
    Case("missing certificate file", "inventory.py (host mx1)", "tls_certificate",
         replace={"inventory.py": ("mx1.crt", "mx1-missing.crt")}),
    Case("certificate does not cover the mail host name", "inventory.py (host lb1)",
         "tls_certificate", replace={ALL: ('"mail.example.test"', '"imap.example.test"')}),
    Case("key does not match certificate", "inventory.py (host mx2)", "tls_key",
         replace={"inventory.py": ("mx2.key", "mx1.key")}),
    Case("single host group without opt-out", "inventory.py", "inventory groups",
         inventory={**NODES, "mtas": [("mx1", "10.0.0.21")]}),
    Case("PROXY peers are not the load balancers", "all.py:25", "proxy_protocol_peers",
         append={ALL: 'proxy_protocol_peers = ["10.0.0.11"]\n'}),
    Case("misspelt host key", "inventory.py (host lb1)", "adress",
         replace={"inventory.py": ('("lb1", {"address"', '("lb1", {"adress": "x", "address"')}),
    Case("misspelt user key", "all.py:9", "mail_users[0].pasword_hash",
         replace={ALL: ('"address": "alice@example.test",',
                        '"address": "alice@example.test", "pasword_hash": "x",')}),
    Case("local part contains the delimiter", "all.py:13", "mail_users[1].address",
         replace={ALL: ('"address": "bob@example.test"', '"address": "bob-smith@example.test"')},
         append={ALL: 'recipient_delimiter = "-"\n'}),
    Case("relative mail root", "all.py:25", "mail_root",
         append={ALL: 'mail_root = "var/vmail"\n'}),
    Case("two hosts with one address", "inventory.py (host mx2)", "address",
         replace={"inventory.py": ('"10.0.0.22"', '"10.0.0.21"')}),
    Case("host in no role group", "inventory.py (host spare1)", "host",
         inventory={**NODES, "spares": [("spare1", "10.0.0.41")]}),
    Case("unknown user state", "all.py:13", "mail_users[1].state",
         replace={ALL: ('"address": "bob@example.test",',
                        '"address": "bob@example.test", "state": "disabled",')}),
    Case("syntax error in group data", "all.py:25", "invalid Python syntax",
         append={ALL: "relay_networks = [\n"}),
    Case("RAID over one device", "mailstores.py:1", "storage.devices",
         append={"group_data/mailstores.py": 'storage = {"kind": "btrfs",'
                                             ' "devices": ["/dev/vdb"]}\n'},
         clause="5.1.4"),
    Case("mail root volume on an MX", "mtas.py:1", "storage.holds",
         append={"group_data/mtas.py": 'storage = {"kind": "mdadm", "devices": ["/dev/sdb",'
                                       ' "/dev/sdc"]}\n'},
         clause="5.1.4"),
    Case("misspelt storage key", "mailstores.py:1", "storage.wipe",
         append={"group_data/mailstores.py": 'storage = {"kind": "btrfs", "wipe": True,'
                                             ' "devices": ["/dev/vdb", "/dev/vdc"]}\n'},
         clause="5.1.4"),
    Case("users not a list", "all.py:7", "mail_users",
         replace={ALL: ("mail_users = [", "mail_users = 3\nunused = [")}),
    Case("no virus signature source", "inventory.py (host lb1)", "filtering.clamav_mirror",
         replace={INVENTORY: ("'test_signatures': True", "'test_signatures': False")},
         clause="2.3.1"),
    Case("two virus signature sources", "inventory.py (host lb1)", "filtering.clamav_mirror",
         replace={INVENTORY: ("'test_signatures': True",
                              "'test_signatures': True, 'clamav_mirror': 'mirror.example.test'")},
         clause="2.3.1"),
    Case("missing DKIM key", "inventory.py (host lb1)", "filtering.dkim_key_folder",
         replace={INVENTORY: ("/dkim'", "/no-dkim'")}, clause="2.2.4"),
    Case("missing Redis password file", "inventory.py (host lb1)",
         "filtering.redis_password_file",
         replace={INVENTORY: ("/redis-password'", "/no-redis-password'")}),
    Case("rate limit period without unit", "inventory.py (host lb1)",
         "filtering.rate_limit_period",
         replace={INVENTORY: ("'test_signatures': True",
                              "'test_signatures': True, 'rate_limit_period': '60'")}),
    Case("action table without reject", "inventory.py (host lb1)", "filtering",
         replace={INVENTORY: ("'test_signatures': True",
                              "'test_signatures': True, 'actions': {'add_header': 6}")}),
    Case("bad value of filtering that hosts replace", "all.py:26", "filtering.rate_limit_messages",
         append={ALL: 'filtering = {\n    "rate_limit_messages": "many",\n}\n'}),
    Case("virtual IP outside the network", "all.py:21", "virtual_ip", clause="5.1.6",
         replace={ALL: ('virtual_ip = "10.0.0.10"', 'virtual_ip = "10.0.1.10"')}),
    Case("virtual IP of a node", "all.py:21", "virtual_ip", clause="5.1.6",
         replace={ALL: ('virtual_ip = "10.0.0.10"', 'virtual_ip = "10.0.0.11"')}),
    Case("virtual IP missing", "group_data/all.py", "virtual_ip", clause="5.1.6",
         replace={ALL: ('virtual_ip = "10.0.0.10"', "")}),
    Case("node outside the cluster network", "inventory.py", "address", clause="5.1.6",
         replace={ALL: ('"10.0.0.0/24"', '"10.0.0.0/28"')}),
    Case("shard IP taken by the virtual IP", "all.py:23", "mailbox_shards[0].virtual_ip",
         clause="5.1.6", replace={ALL: ('"virtual_ip": "10.0.0.30"', '"virtual_ip": "10.0.0.10"')}),
    Case("shard of one host", "all.py:23", "mailbox_shards[0].hosts", clause="5.1.6",
         replace={ALL: ('["mbox1", "mbox2"]', '["mbox1"]')}),
    Case("shard with an MX host", "all.py:23", "mailbox_shards[0].hosts", clause="5.1.6",
         replace={ALL: ('["mbox1", "mbox2"]', '["mbox1", "mx1"]')}),
    Case("no mailbox shards", "all.py:25", "mailbox_shards", clause="5.1.6",
         append={ALL: "mailbox_shards = []\n"}),
    Case("user in an unknown shard", "all.py:13", "mail_users[1].shard", clause="5.1.6",
         replace={ALL: ('"address": "bob@example.test",',
                        '"address": "bob@example.test", "shard": "shard9",')}),
]


def build(site: Path, certificates, case: Case) -> None:
    if case.inventory is not None:
        nodes = case.inventory
        for name, address in (member for members in nodes.values() for member in members):
            certificates.setdefault(name, certificates["mx1"])
            del address
        (site / "inventory.py").write_text(inventory_text(certificates, nodes))
    for name, (old, new) in case.replace.items():
        path = site / name
        assert old in path.read_text(), f"{old!r} not in {name}"
        path.write_text(path.read_text().replace(old, new))
    for name, text in case.append.items():
        path = site / name
        path.write_text((path.read_text() if path.exists() else "") + text)


def case_marks(case: Case) -> list:
    marks = [pytest.mark.clause(case.clause)] if case.clause else []
    if "password" in case.name or "hash" in case.name or "scheme" in case.name:
        marks.append(pytest.mark.clause("5.1.5"))
    return marks


@pytest.mark.parametrize(
    "case", [pytest.param(case, id=case.name, marks=case_marks(case)) for case in CASES]
)
def test_bad_input_is_named(site, certificates, case):
    build(site, dict(certificates), case)

    with pytest.raises(ClusterDataError) as raised:
        load_cluster(site / "inventory.py", site / "group_data")

    problems = raised.value.problems
    assert any(case.source in problem and case.field in problem for problem in problems), problems
    message = str(raised.value)
    for secret in (ALICE_HASH, BOB_HASH, *case.secrets):
        assert secret not in message
    for _, key in certificates.values():
        assert key.read_text() not in message


def test_corpus_size():
    assert len(CASES) >= 30


def test_valid_site_loads(site):
    cluster = load_cluster(site / "inventory.py", site / "group_data")

    assert [node.name for node in cluster.mtas] == ["mx1", "mx2"]
    assert cluster.mail_users[1].password_hash.get_secret_value().startswith("{BLF-CRYPT}$2b$")


def test_bare_hash_gets_prefix(site):
    path = site / "group_data" / "all.py"
    path.write_text(path.read_text().replace(BOB_HASH, BOB_HASH.removeprefix("{BLF-CRYPT}")))

    cluster = load_cluster(site / "inventory.py", site / "group_data")

    assert cluster.mail_users[1].password_hash.get_secret_value() == BOB_HASH


def test_missing_inventory_file(tmp_path):
    with pytest.raises(ClusterDataError) as raised:
        load_cluster(tmp_path / "nowhere.py", tmp_path / "group_data")

    assert "nowhere.py: inventory file not found" in str(raised.value)


def test_opt_out_allows_single_hosts(site, certificates):
    nodes = {group: members[:1] for group, members in NODES.items()}
    (site / "inventory.py").write_text(inventory_text(certificates, nodes))
    path = site / "group_data" / "all.py"
    text = path.read_text().replace("groups = False", "groups = True")
    path.write_text(text.replace('["mbox1", "mbox2"]', '["mbox1"]'))

    cluster = load_cluster(site / "inventory.py", site / "group_data")

    assert len(cluster.nodes) == 3


def test_pyinfra_keys_allowed(site, certificates):
    (site / "inventory.py").write_text(
        inventory_text(certificates, extra_host_data=', "ssh_user": "deploy", "_sudo": True')
    )
    (site / "group_data" / "mtas.py").write_text('ssh_port = 2222\n_sudo_user = "root"\n')

    assert load_cluster(site / "inventory.py", site / "group_data").nodes


@pytest.mark.clause("2.1")
def test_aliases_and_forwarding_accepted(site):
    path = site / "group_data" / "all.py"
    text = path.read_text().replace(
        '"address": "bob@example.test",',
        '"address": "bob@example.test", "aliases": ["robert@example.test"], "quota": "2GiB",',
    )
    text += 'mail_aliases = {"info@example.test": ["robert@example.test", "x@outside.test"]}\n'
    path.write_text(text)

    cluster = load_cluster(site / "inventory.py", site / "group_data")

    assert cluster.mail_users[1].aliases == ["robert@example.test"]
    assert cluster.mail_users[1].quota == 2 * 1024**3
    assert cluster.mail_aliases["info@example.test"][1] == "x@outside.test"


def test_fresh_hash_is_accepted(site):
    path = site / "group_data" / "all.py"
    path.write_text(path.read_text().replace(BOB_HASH, hash_password("x", "SHA512-CRYPT")))

    assert load_cluster(site / "inventory.py", site / "group_data").mail_users


@pytest.mark.clause("5.1.5")
def test_plaintext_rejected_in_test_cluster(site, certificates, tmp_path):
    store = tmp_path / "test-passwords.json"
    (site / "inventory.py").write_text(
        inventory_text(certificates, extra_host_data=f', "test_password_store": "{store}"')
    )
    path = site / "group_data" / "all.py"
    path.write_text(path.read_text().replace(ALICE_HASH, "Sup3rSecret!"))

    with pytest.raises(ClusterDataError) as raised:
        load_cluster(site / "inventory.py", site / "group_data")

    assert "mail_users[0].password_hash" in str(raised.value)
    assert "Sup3rSecret!" not in str(raised.value)
    assert not store.exists()


def test_failing_inventory_file_named(site):
    (site / "inventory.py").write_text("mtas = [undefined_name]\n")

    with pytest.raises(ClusterDataError) as raised:
        load_cluster(site / "inventory.py", site / "group_data")

    assert "inventory.py" in str(raised.value)
    assert "NameError" in str(raised.value)


def test_replaced_typo_suggests_key(site):
    """A misspelt key is reported with the key it resembles, even when every host replaces the
    whole dict with its own."""
    (site / "group_data" / "all.py").write_text(
        (site / "group_data" / "all.py").read_text() + 'filtering = {"ofline": True}\n'
    )

    with pytest.raises(ClusterDataError) as raised:
        load_cluster(site / "inventory.py", site / "group_data")

    [problem] = raised.value.problems
    assert problem.endswith("group_data/all.py:25: filtering.ofline: unknown key"
                            " (did you mean 'offline'?): fix its name or remove it")


def test_replaced_limit_range_checked(site, certificates):
    """A group data value out of range is reported when every host replaces it."""
    (site / "inventory.py").write_text(
        inventory_text(certificates, extra_host_data=', "message_size_limit": 10485760')
    )
    all_py = site / "group_data" / "all.py"
    all_py.write_text(all_py.read_text().replace("25 * 1024 * 1024", "1000"))

    with pytest.raises(ClusterDataError) as raised:
        load_cluster(site / "inventory.py", site / "group_data")

    [problem] = raised.value.problems
    assert "all.py:17: message_size_limit: Input should be greater than or equal to" in problem
