"""The compliance report: clause status from synthetic JUnit XML, its schema and its formats."""

import json
from pathlib import Path

import jsonschema
import pytest

from mailfleet import cli, report
from mailfleet.clauses import Clause, declared_settings, load_registry
from mailfleet.inventory import load_cluster
from mailfleet.report_formats import markdown_cell

PROJECT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "report_fixtures"
LIVE_RUN = FIXTURES / "live_run.xml"
GENERATED = "2026-01-05T11:00:00+00:00"


def statuses(document: dict) -> dict[str, str]:
    return {clause["id"]: clause["status"] for clause in document["clauses"]}


def clause_of(document: dict, clause_id: str) -> dict:
    return next(clause for clause in document["clauses"] if clause["id"] == clause_id)


def build(junit: Path, cluster=None) -> dict:
    inventory = report.inventory_entry("inventory.py", cluster, None)
    return report.build_report(
        load_registry(),
        declared_settings(PROJECT),
        report.read_junit(junit),
        inventory,
        cluster,
        generated=GENERATED,
    )


@pytest.fixture
def cluster(site):
    return load_cluster(site / "inventory.py", site / "group_data")


def test_junit_properties_read():
    run = report.read_junit(LIVE_RUN)
    first = run.results[0]

    assert run.found
    assert run.started == "2026-01-05T10:00:00.000000+00:00"
    assert run.machine == "ci-runner"
    assert run.inventories == ["inventories/local.py"]
    assert first.clauses == ("5.1.7",)
    assert first.live
    assert first.outcome == "passed"


def test_junit_outcomes_read():
    outcomes = [result.outcome for result in report.read_junit(LIVE_RUN).results]

    assert outcomes.count("passed") == 5
    assert outcomes.count("failed") == 2
    assert outcomes.count("error") == 1
    assert outcomes.count("skipped") == 1


def test_live_pass_is_met():
    assert statuses(build(LIVE_RUN))["3.2"] == "met"
    assert statuses(build(LIVE_RUN))["5.1.5"] == "met"


def test_one_failure_fails_clause():
    """5.1.7 has a passing and a failing live test: failed wins."""
    clause = clause_of(build(LIVE_RUN), "5.1.7")

    assert clause["status"] == "failed"
    assert clause["explanation"] == "1 of 2 tests failed or errored."
    assert {test["outcome"] for test in clause["tests"]} == {"passed", "failed"}


def test_error_fails_clause():
    clause = clause_of(build(LIVE_RUN), "5.1.6")

    assert clause["status"] == "failed"
    assert clause["tests"][0]["outcome"] == "error"
    assert "HarnessError" in clause["tests"][0]["message"]


def test_failed_unit_test_fails_clause():
    assert statuses(build(LIVE_RUN))["2.1"] == "failed"


def test_unit_pass_not_proven():
    clause = clause_of(build(LIVE_RUN), "2.2.1")

    assert clause["status"] == "not proven"
    assert clause["tests"][0]["proof"] == "unit"
    assert "unit tests" in clause["explanation"]


def test_skipped_live_test_not_proven():
    clause = clause_of(build(LIVE_RUN), "2.2.2")

    assert clause["status"] == "not proven"
    assert clause["explanation"] == "Its tests against live hosts were skipped."


def test_untested_clause_not_proven():
    clause = clause_of(build(LIVE_RUN), "5.1.4")

    assert clause["status"] == "not proven"
    assert clause["tests"] == []


def test_org_support_and_measure_never_met():
    found = statuses(build(LIVE_RUN))

    assert found["2.4.1-2.4.6"] == "organisational"
    assert found["6.1.1"] == "organisational"
    assert found["5.1.1"] == "support"
    assert found["6.1.4"] == "not measured"


def test_org_clause_names_operator_duty():
    clause = clause_of(build(LIVE_RUN), "6.1.1")

    assert clause["operator"]
    assert clause["operator"] in clause["explanation"]


def test_range_collects_inner_ids():
    """A unit test marked 2.4.3 is listed under the 2.4.1-2.4.6 entry."""
    clause = clause_of(build(LIVE_RUN), "2.4.1-2.4.6")

    assert [test["test"] for test in clause["tests"]] == [
        "tests.unit.test_passwords::test_salt_differs_per_hash"
    ]


def test_unknown_clause_id_listed():
    unknown = build(LIVE_RUN)["unknown_clause_ids"]

    assert [entry["id"] for entry in unknown] == ["9.9"]
    assert unknown[0]["where"] == ["tests.unit.test_passwords::test_salt_differs_per_hash"]


def test_classname_decides_without_properties():
    results = report.read_junit(FIXTURES / "without_properties.xml").results

    assert [result.live for result in results] == [True, False]
    assert all(result.clauses == () for result in results)
    assert "met" not in statuses(build(FIXTURES / "without_properties.xml")).values()


def test_missing_junit_proves_nothing(tmp_path):
    document = build(tmp_path / "missing.xml")

    assert document["run"]["found"] is False
    assert document["run"]["tests"] == 0
    assert "met" not in statuses(document).values()
    assert "failed" not in statuses(document).values()


def test_invalid_junit_raises(tmp_path):
    broken = tmp_path / "junit.xml"
    broken.write_text("<testsuites><testsuite>")

    with pytest.raises(report.ReportError, match="invalid JUnit XML"):
        report.read_junit(broken)


def test_settings_carry_hosts(cluster):
    clause = clause_of(build(LIVE_RUN, cluster), "5.1.5")
    hosts = {setting["setting"]: setting["hosts"] for setting in clause["settings"]}

    assert hosts["/etc/postfix/main.cf: smtpd_tls_auth_only"] == ["mx1", "mx2"]
    assert hosts["/etc/dovecot/users: password"] == ["mx1", "mx2", "mbox1", "mbox2"]
    assert len(hosts["mail_users"]) == 6


def test_inventory_hosts_listed(cluster):
    hosts = build(LIVE_RUN, cluster)["inventory"]["hosts"]

    assert [host["name"] for host in hosts] == ["lb1", "lb2", "mx1", "mx2", "mbox1", "mbox2"]
    assert hosts[0] == {"name": "lb1", "address": "10.0.0.11", "roles": ["loadbalancer"]}


def test_support_clause_never_met():
    """A passing live test does not make a support clause met: only tech clauses can be."""
    support = Clause("9.1", "a duty", "support", kit="a switch", operator="staff")
    live = report.TestResult("tests.infra.x", "test_y", "passed", True, ("9.1",), None, "")

    assert report.clause_status(support, [live])[0] == "support"


@pytest.mark.parametrize("junit", [LIVE_RUN, FIXTURES / "without_properties.xml", None])
def test_json_matches_schema(tmp_path, cluster, junit):
    document = build(junit or tmp_path / "missing.xml", cluster)
    paths = report.write_report(document, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "compliance.json").read_text(encoding="utf-8"))

    assert [path.name for path in paths] == [
        "compliance.json", "compliance.md", "compliance.html"
    ]
    jsonschema.validate(written, report.load_schema())


def test_schema_rejects_unknown_status():
    document = build(LIVE_RUN)
    document["clauses"][0]["status"] = "probably fine"

    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(document, report.load_schema())


def test_html_self_contained():
    page = report.render_html(build(LIVE_RUN))

    assert page.startswith("<!DOCTYPE html>")
    assert "<link" not in page
    assert "<script" not in page
    assert "src=" not in page
    assert "http://" not in page
    assert "https://" not in page


def test_html_escapes_test_output():
    page = report.render_html(build(LIVE_RUN))

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;markup&lt;/b&gt;" in page


def test_markdown_lists_every_clause():
    document = build(LIVE_RUN)
    text = report.render_markdown(document)

    for clause in document["clauses"]:
        assert f"### {clause['id']}: " in text
    assert "Status: **failed**. 1 of 2 tests failed or errored." in text
    assert "against `inventories/local.py`" in text


def test_markdown_escapes_table_cells():
    assert markdown_cell("a | b") == "a \\| b"


def test_cli_writes_report(tmp_path, site):
    out = tmp_path / "reports"

    status = cli.main([
        "report", "--junit", str(LIVE_RUN), "--inventory", str(site / "inventory.py"),
        "--out", str(out),
    ])

    assert status == 0
    assert sorted(path.name for path in out.iterdir()) == [
        "compliance.html", "compliance.json", "compliance.md"
    ]
    jsonschema.validate(json.loads((out / "compliance.json").read_text()), report.load_schema())


def test_cli_rejects_invalid_junit(tmp_path, capsys):
    broken = tmp_path / "junit.xml"
    broken.write_text("not xml")

    status = cli.main(["report", "--junit", str(broken), "--out", str(tmp_path / "out")])

    assert status == 1
    assert "invalid JUnit XML" in capsys.readouterr().err
