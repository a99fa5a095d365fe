"""A proven property, broken on purpose, shows as a failed clause in the next compliance report.

Dovecot is stopped on the first mailbox host. The infra checks of that host then run in a
pytest subprocess that writes JUnit XML to a temporary file. The report built from that file
must show clause 5.1.7 (POP and SMTP service) failed and clause 3.2 (file permissions) still
met. The fixture's teardown always starts Dovecot again and waits until the load balancer
reaches every backend.
"""

import json
import subprocess
import sys
import time

import jsonschema
import pytest
import testinfra

from mailfleet import harness, report
from mailfleet.clauses import declared_settings, load_registry
from tests.conftest import PROJECT, uses_container_cluster
from tests.infra.conftest import backend_url

CHECKS = ["tests/infra/test_services.py", "tests/infra/test_files.py"]
# Seconds to wait for Dovecot to run and listen again after the restart.
RESTART_TIMEOUT = 60
CHECKS_TIMEOUT = 600


def dovecot_answers(host) -> bool:
    """Tell whether Dovecot runs and listens for IMAP with TLS on the host."""
    running = host.run("systemctl is-active --quiet dovecot.service").rc == 0
    return running and host.socket("tcp://0.0.0.0:993").is_listening


@pytest.fixture
def stopped_mailstore(pytestconfig, deployed, pyinfra_inventory):
    """Stop Dovecot on the first mailbox host, and start it again after the test."""
    if not uses_container_cluster(pytestconfig):
        pytest.skip("stops a service, so it runs on the container cluster only")
    node = deployed.mailstores[0]
    host = testinfra.get_host(backend_url(pyinfra_inventory.get_host(node.inventory_name)))
    assert dovecot_answers(host), f"Dovecot must run on {node.name} before the test stops it"

    # An active socket unit would start Dovecot again at the load balancer's next health check.
    socket_active = host.run("systemctl is-active --quiet dovecot.socket").rc == 0
    units = "dovecot.socket dovecot.service" if socket_active else "dovecot.service"
    try:
        host.run_expect([0], f"systemctl stop {units}")
        yield node
    finally:
        host.run_expect([0], f"systemctl start {units}")
        deadline = time.monotonic() + RESTART_TIMEOUT
        while not dovecot_answers(host):
            assert time.monotonic() < deadline, f"Dovecot did not start again on {node.name}"
            time.sleep(1)
        harness.wait_for_backends(deployed)


def run_checks(node_name: str, inventory: str, junit) -> subprocess.CompletedProcess:
    """Run the infra checks of one host in a pytest subprocess that writes JUnit XML.

    NOTE: the inventory is passed as an absolute path, which tests/conftest.py does not take for
    the container cluster's default, so the subprocess only reads the hosts and never deploys
    (a deploy would start Dovecot again).
    """
    command = [
        sys.executable, "-m", "pytest", *CHECKS,
        "-k", node_name,
        "--inventory", str(PROJECT / inventory),
        f"--junitxml={junit}",
        "-p", "no:cacheprovider",
        "-q",
    ]
    return subprocess.run(
        command, cwd=PROJECT, capture_output=True, text=True, timeout=CHECKS_TIMEOUT
    )


def test_stopped_dovecot_fails_clause(stopped_mailstore, deployed, inventory_path, tmp_path):
    junit = tmp_path / "junit.xml"

    checks = run_checks(stopped_mailstore.name, inventory_path, junit)

    # pytest exits with 1 when tests ran and some failed.
    assert checks.returncode == 1, checks.stdout[-3000:] + checks.stderr[-2000:]
    document = report.build_report(
        load_registry(),
        declared_settings(PROJECT),
        report.read_junit(junit),
        report.inventory_entry(inventory_path, deployed, None),
        deployed,
    )
    clauses = {clause["id"]: clause for clause in document["clauses"]}
    failed = [test["test"] for test in clauses["5.1.7"]["tests"] if test["outcome"] == "failed"]
    running_check = f"test_service_running[{stopped_mailstore.name}-dovecot]"

    assert clauses["5.1.7"]["status"] == "failed"
    assert f"tests.infra.test_services::{running_check}" in failed
    assert clauses["3.2"]["status"] == "met"
    report.write_report(document, tmp_path / "report")
    written = (tmp_path / "report" / "compliance.json").read_text(encoding="utf-8")
    jsonschema.validate(json.loads(written), report.load_schema())
