"""The `mailfleet` command: run the container cluster and manage the cluster's data."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from mailfleet import admin, dns, harness, report
from mailfleet.containers import HarnessError
from mailfleet.filtering import FilterPolicy
from mailfleet.inventory import ClusterDataError, load_cluster, load_inventory
from mailfleet.model import dkim_key_path

DEFAULT_INVENTORY = "inventories/local.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailfleet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the container cluster (build the image if missing)")
    up.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    up.set_defaults(run=lambda arguments: harness.up(arguments.inventory) and 0, locked=True)

    deploy = commands.add_parser(
        "deploy", help="start the container cluster if needed, then run the pyinfra deploy"
    )
    deploy.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    deploy.set_defaults(
        run=lambda arguments: harness.up_and_deploy(arguments.inventory), locked=True
    )

    cluster = commands.add_parser(
        "cluster", help="start and deploy the container cluster, then send and read a test message"
    )
    cluster.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    cluster.set_defaults(run=lambda arguments: harness.cluster(arguments.inventory), locked=True)

    down = commands.add_parser("down", help="remove the cluster's containers and network")
    down.set_defaults(run=lambda arguments: harness.down(), locked=True)

    image = commands.add_parser(
        "image", help="start the Docker daemon if needed and build the base image if missing"
    )
    image.set_defaults(run=lambda arguments: harness.prepare_host())

    converge = commands.add_parser(
        "converge",
        help="run the pyinfra deploy on containers that are already running (molecule's"
        " converge), then print the number of operations that changed something",
    )
    converge.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    converge.set_defaults(run=lambda arguments: harness.converge(arguments.inventory), locked=True)

    scenario = commands.add_parser(
        "molecule-scenario",
        help="write molecule/mailfleet/molecule.yml from the inventory and the harness's node"
        " definition",
    )
    scenario.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    scenario.set_defaults(run=write_molecule_scenario)

    prepare = commands.add_parser(
        "molecule-prepare",
        help="molecule's dependency step: start the Docker daemon, build the base image and"
        " attach the loop devices that stand in for the molecule nodes' disks",
    )
    prepare.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    prepare.set_defaults(run=prepare_molecule_nodes)

    cleanup = commands.add_parser(
        "molecule-cleanup",
        help="molecule's cleanup step: detach the loop devices of the molecule nodes' disks",
    )
    cleanup.set_defaults(run=clean_up_molecule_nodes)

    compliance = commands.add_parser(
        "report",
        help="write the compliance report (Markdown, JSON, HTML): each clause of the standard,"
        " the settings that serve it and the tests of the last run that proved it",
    )
    compliance.add_argument(
        "--junit", type=Path, default=Path("reports/junit.xml"),
        help="pytest's JUnit XML of the last run (default: %(default)s)",
    )
    compliance.add_argument(
        "--inventory",
        help="inventory whose hosts the report names (default: the one the tests ran against)",
    )
    compliance.add_argument(
        "--out", type=Path, default=Path("reports"),
        help="folder to write compliance.md, compliance.json and compliance.html to"
        " (default: %(default)s)",
    )
    compliance.set_defaults(run=write_report)

    records = commands.add_parser(
        "dns",
        help="print the DNS records every hosted domain needs (MX, SPF, DKIM, DMARC) and the"
        " addresses of the mail service, as zone-file lines",
    )
    records.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    records.set_defaults(run=print_dns_records)

    keys = commands.add_parser(
        "dkim-keys",
        help="generate the missing DKIM private key of each hosted domain in the inventory's"
        " filtering.dkim_key_folder (mode 0600)",
    )
    keys.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    keys.set_defaults(run=generate_dkim_keys)

    admin.register(commands)
    return parser


def print_dns_records(arguments: argparse.Namespace) -> int:
    try:
        cluster = load_cluster(arguments.inventory)
    except ClusterDataError as error:
        print(f"mailfleet: {arguments.inventory}: {error}", file=sys.stderr)
        return 1
    for line in dns.zone_lines(dns.dns_records(cluster)):
        print(line)
    return 0


def generate_dkim_keys(arguments: argparse.Namespace) -> int:
    """Make the keys before validation, which rejects an inventory whose keys are missing.

    The settings are the first host's: `mailfleet check` makes sure that all hosts agree.
    """
    try:
        first_host = next(iter(load_inventory(arguments.inventory)))
    except (ClusterDataError, StopIteration) as error:
        print(f"mailfleet: {arguments.inventory}: {error or 'the inventory has no hosts'}",
              file=sys.stderr)
        return 1
    policy = FilterPolicy.model_validate(first_host.data.get("filtering") or {})
    for domain in first_host.data.get("mail_domains") or []:
        path = dkim_key_path(policy, domain)
        made = dns.ensure_dkim_key(path)
        print(f"{'generated' if made else 'kept     '} {path}")
    return 0


def write_report(arguments: argparse.Namespace) -> int:
    try:
        report.generate(arguments.junit, arguments.inventory, arguments.out)
    except report.ReportError as error:
        print(f"mailfleet: {error}", file=sys.stderr)
        return 1
    return 0


def write_molecule_scenario(arguments: argparse.Namespace) -> int:
    # PyYAML comes with the molecule extra: import it only for this command.
    from mailfleet import molecule_scenario

    path = molecule_scenario.write_scenario(arguments.inventory)
    print(f"mailfleet: wrote {path.relative_to(molecule_scenario.PROJECT)}")
    return 0


def prepare_molecule_nodes(arguments: argparse.Namespace) -> int:
    from mailfleet import molecule_scenario

    harness.prepare_host()
    links = molecule_scenario.link_disks(arguments.inventory)
    print(f"mailfleet: linked {len(links)} disks of molecule's nodes")
    return 0


def clean_up_molecule_nodes(arguments: argparse.Namespace) -> int:
    from mailfleet import molecule_scenario

    detached = molecule_scenario.unlink_disks()
    print(f"mailfleet: detached {len(detached)} loop devices of molecule's nodes")
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="mailfleet: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        if getattr(arguments, "locked", False):
            with harness.exclusive():
                return arguments.run(arguments) or 0
        return arguments.run(arguments) or 0
    except (HarnessError, ClusterDataError) as error:
        print(f"mailfleet: {error}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # A reader such as `head` closed the output early: stop without a traceback, and send
        # what Python flushes at exit to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
