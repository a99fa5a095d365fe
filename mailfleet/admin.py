"""Commands that read and change the cluster's data: check, hash-password, add-user."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the data commands to the `mailfleet` parser."""
