"""The `mailfleet` command: run the container cluster and manage the cluster's data."""

from __future__ import annotations

import argparse
import logging
import sys

from mailfleet import admin, harness
from mailfleet.containers import HarnessError

DEFAULT_INVENTORY = "inventories/local.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailfleet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start the container cluster (build the image if missing)")
    up.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    up.set_defaults(run=lambda arguments: harness.up(arguments.inventory))

    deploy = commands.add_parser(
        "deploy", help="start the container cluster if needed, then run the pyinfra deploy"
    )
    deploy.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    deploy.set_defaults(run=lambda arguments: harness.up_and_deploy(arguments.inventory))

    cluster = commands.add_parser(
        "cluster", help="start and deploy the container cluster, then send and read a test message"
    )
    cluster.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    cluster.set_defaults(run=lambda arguments: harness.cluster(arguments.inventory))

    down = commands.add_parser("down", help="remove the cluster's containers and network")
    down.set_defaults(run=lambda arguments: harness.down())

    admin.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="mailfleet: %(message)s")
    arguments = build_parser().parse_args(argv)
    try:
        return arguments.run(arguments) or 0
    except HarnessError as error:
        print(f"mailfleet: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
