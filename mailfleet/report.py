"""Compliance report: for each clause of the standard, the settings that serve it and the tests
that proved it, from the cluster model, the clause registry and the last run's JUnit XML.

A clause is "met" only when at least one test carrying its id passed against live hosts
(tests/infra or tests/scenarios) and no test carrying its id failed or errored. Unit tests are
listed but prove nothing about the hosts. tests/conftest.py writes each test's clause ids, and
whether it ran against live hosts, into the JUnit XML as per-test properties.
"""

from __future__ import annotations

import datetime
import json
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mailfleet.clauses import Clause, Setting, declared_settings, find_clause, load_registry
from mailfleet.inventory import PROJECT, ClusterDataError, load_cluster
from mailfleet.model import Cluster
from mailfleet.report_formats import render_html, render_markdown

log = logging.getLogger("mailfleet")

SCHEMA = Path(__file__).resolve().parent / "report.schema.json"
SCHEMA_VERSION = 1
DEFAULT_INVENTORY = "inventories/local.py"
REPORT_NAME = "compliance"
# JUnit classname prefixes of tests that run against live hosts, for XML without properties.
LIVE_PREFIXES = ("tests.infra.", "tests.scenarios.")
FAILED = ("failed", "error")
# Maximum length of the failure message kept per test, which is its first line.
MESSAGE_LIMIT = 300
# Role packages not named after the roles whose hosts run their steps. NOTE: keep in step with
# deploy.py. Any other source not named after a role (group data) applies to every host.
SHARED_PACKAGES = {"roles/common": ("mta", "mailstore"), "roles/filter": ("mta",)}


class ReportError(Exception):
    """The JUnit XML cannot be read."""


@dataclass(frozen=True)
class TestResult:
    """One <testcase> of the JUnit XML."""

    classname: str
    name: str
    # "passed", "failed", "error" or "skipped".
    outcome: str
    live: bool
    clauses: tuple[str, ...]
    inventory: str | None
    message: str

    @property
    def label(self) -> str:
        return f"{self.classname}::{self.name}"


@dataclass(frozen=True)
class TestRun:
    """The tests of one JUnit XML file, with when and where they ran."""

    path: str
    found: bool
    started: str | None = None
    machine: str | None = None
    results: tuple[TestResult, ...] = ()

    @property
    def inventories(self) -> list[str]:
        return sorted({result.inventory for result in self.results if result.inventory})


def outcome_of(testcase: ET.Element) -> tuple[str, str]:
    """Return a testcase's outcome and the first line of its failure message."""
    for tag, outcome in (("error", "error"), ("failure", "failed"), ("skipped", "skipped")):
        element = testcase.find(tag)
        if element is not None:
            text = element.get("message") or element.text or ""
            lines = text.strip().splitlines()
            return outcome, (lines[0] if lines else "")[:MESSAGE_LIMIT]
    return "passed", ""


def result_of(testcase: ET.Element) -> TestResult:
    properties = [
        (item.get("name"), item.get("value") or "") for item in testcase.iter("property")
    ]
    classname = testcase.get("classname", "")
    proofs = [value for name, value in properties if name == "proof"]
    live = proofs[0] == "live" if proofs else classname.startswith(LIVE_PREFIXES)
    inventories = [value for name, value in properties if name == "inventory"]
    outcome, message = outcome_of(testcase)
    return TestResult(
        classname=classname,
        name=testcase.get("name", ""),
        outcome=outcome,
        live=live,
        clauses=tuple(value for name, value in properties if name == "clause"),
        inventory=inventories[0] if inventories else None,
        message=message,
    )


def read_junit(path: Path) -> TestRun:
    """Read pytest's JUnit XML; a missing file gives a run without tests."""
    if not path.is_file():
        return TestRun(str(path), found=False)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise ReportError(f"{path}: invalid JUnit XML ({error}): rerun pytest with"
                          " --junitxml") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    timestamps = sorted(suite.get("timestamp") for suite in suites if suite.get("timestamp"))
    machines = [suite.get("hostname") for suite in suites if suite.get("hostname")]
    return TestRun(
        path=str(path),
        found=True,
        started=timestamps[0] if timestamps else None,
        machine=machines[0] if machines else None,
        results=tuple(result_of(case) for suite in suites for case in suite.iter("testcase")),
    )


def clause_status(clause: Clause, tests: list[TestResult]) -> tuple[str, str]:
    """Decide a clause's status from its kind and its tests; return it with the reason."""
    failed = [test for test in tests if test.outcome in FAILED]
    live_passed = [test for test in tests if test.live and test.outcome == "passed"]
    if failed:
        return "failed", f"{len(failed)} of {len(tests)} tests failed or errored."
    if clause.kind == "org":
        reason = f"Out of the software's reach. The operator supplies: {clause.operator}"
        return "organisational", reason
    if clause.kind == "support":
        return "support", f"The kit provides: {clause.kit} The operator adds: {clause.operator}"
    if clause.kind == "measure":
        return "not measured", "No measurement yet: the kit has no probe for this clause."
    if live_passed:
        return "met", f"{len(live_passed)} tests passed against live hosts and none failed."
    if not tests:
        return "not proven", "No test carries this clause's id."
    if not any(test.live for test in tests):
        return "not proven", "Only unit tests carry this clause's id, and they reach no host."
    return "not proven", "Its tests against live hosts were skipped."


def hosts_of(source: str, cluster: Cluster | None) -> list[str]:
    """Return the names of the hosts that a role package or group data file configures."""
    if cluster is None:
        return []
    if source == "roles/storage":
        return [node.name for node in cluster.nodes if node.storage is not None]
    package = source.removeprefix("roles/")
    roles = SHARED_PACKAGES.get(source, (package,))
    if source.startswith("roles/") and any(cluster.nodes_with(role) for role in roles):
        return [node.name for node in cluster.nodes if node.roles & set(roles)]
    return [node.name for node in cluster.nodes]


def result_entry(test: TestResult) -> dict:
    return {
        "test": test.label,
        "outcome": test.outcome,
        "proof": "live" if test.live else "unit",
        "message": test.message or None,
    }


def clause_entry(
    clause: Clause, settings: list[Setting], tests: list[TestResult], cluster: Cluster | None
) -> dict:
    status, explanation = clause_status(clause, tests)
    return {
        "id": clause.id,
        "text": clause.text,
        "kind": clause.kind,
        "status": status,
        "explanation": explanation,
        "kit": clause.kit or None,
        "operator": clause.operator or None,
        # Measure clauses: {"value", "unit", "measured_at", "source"} once a probe exists.
        "measurement": None,
        "settings": [
            {
                "source": setting.source,
                "setting": setting.setting,
                "purpose": setting.purpose,
                "hosts": hosts_of(setting.source, cluster),
            }
            for setting in settings
        ],
        "tests": [result_entry(test) for test in tests],
    }


def inventory_entry(path: str, cluster: Cluster | None, error: str | None) -> dict:
    hosts = [
        {"name": node.name, "address": str(node.address), "roles": sorted(node.roles)}
        for node in (cluster.nodes if cluster else [])
    ]
    return {"path": path, "hosts": hosts, "error": error}


def unknown_ids(registry: list[Clause], run: TestRun, settings: list[Setting]) -> list[dict]:
    """List clause ids that tests or settings name but the registry lacks, with where."""
    places: dict[str, list[str]] = {}
    for test in run.results:
        for clause_id in test.clauses:
            places.setdefault(clause_id, []).append(test.label)
    for setting in settings:
        places.setdefault(setting.clause, []).append(f"{setting.source}: {setting.setting}")
    return [
        {"id": clause_id, "where": where}
        for clause_id, where in sorted(places.items())
        if find_clause(registry, clause_id) is None
    ]


def run_entry(run: TestRun) -> dict:
    return {
        "junit": run.path,
        "found": run.found,
        "started": run.started,
        "machine": run.machine,
        "inventories": run.inventories,
        "tests": len(run.results),
        "live_tests": sum(result.live for result in run.results),
        "outcomes": dict(Counter(result.outcome for result in run.results)),
    }


def build_report(
    registry: list[Clause],
    settings: list[Setting],
    run: TestRun,
    inventory: dict,
    cluster: Cluster | None = None,
    generated: str | None = None,
) -> dict:
    """Assemble the report as the JSON document that report.schema.json describes."""
    clauses = []
    for clause in registry:
        served_by = [setting for setting in settings if clause.covers(setting.clause)]
        tests = [
            result for result in run.results if any(clause.covers(i) for i in result.clauses)
        ]
        clauses.append(clause_entry(clause, served_by, tests, cluster))
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return {
        "schema_version": SCHEMA_VERSION,
        "generated": generated or now,
        "run": run_entry(run),
        "inventory": inventory,
        "summary": dict(Counter(entry["status"] for entry in clauses)),
        "clauses": clauses,
        "unknown_clause_ids": unknown_ids(registry, run, settings),
    }


def resolve_inventory(path: str) -> Path:
    """Find an inventory given relative to the working directory or to the project."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return PROJECT / candidate


def load_model(path: str) -> tuple[Cluster | None, str | None]:
    """Load the cluster model; on invalid data return the problems instead, so that a report
    is still written."""
    try:
        return load_cluster(resolve_inventory(path)), None
    except ClusterDataError as error:
        return None, str(error)


def generate(junit: Path, inventory: str | None, out: Path) -> list[Path]:
    """Read the model, the registry and the JUnit XML; write the report in every format.

    Without `inventory`, the report uses the inventory that the run's live tests recorded,
    or the container cluster's.
    """
    run = read_junit(junit)
    if not run.found:
        log.warning("no JUnit XML at %s: every clause is reported without tests", junit)
    inventory = inventory or next(iter(run.inventories), DEFAULT_INVENTORY)
    cluster, error = load_model(inventory)
    if error:
        log.warning("inventory %s is invalid; the report lists no hosts:\n%s", inventory, error)
    report = build_report(
        load_registry(),
        declared_settings(PROJECT),
        run,
        inventory_entry(inventory, cluster, error),
        cluster,
    )
    paths = write_report(report, out)
    log.info("compliance report: %s", ", ".join(str(path) for path in paths))
    return paths


def write_report(report: dict, out: Path) -> list[Path]:
    """Write compliance.json, compliance.md and compliance.html into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    outputs = {
        "json": json.dumps(report, indent=2, ensure_ascii=False) + "\n",
        "md": render_markdown(report),
        "html": render_html(report),
    }
    paths = []
    for suffix, text in outputs.items():
        path = out / f"{REPORT_NAME}.{suffix}"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def load_schema() -> dict:
    """Return the JSON Schema of the report, shipped as mailfleet/report.schema.json."""
    return json.loads(SCHEMA.read_text(encoding="utf-8"))
