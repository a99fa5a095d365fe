"""Validate the cluster data inside a pyinfra run, before pyinfra connects to any host.

pyinfra executes `config.py` before it loads the inventory, then loads the inventory, calls
`state.init` and connects to every host. `config.py` makes `state.init` validate the loaded
inventory and group data against the cluster model, so bad input ends the run with every
problem listed and no host contacted.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

from pyinfra.api.exceptions import PyinfraError

from mailfleet.inventory import ClusterDataError, DataSources, cluster_from_inventory


def inventory_file(arguments: list[str]) -> Path | None:
    """Return the inventory file of a pyinfra command line: its first existing `.py` argument.

    pyinfra takes the inventory before the deploy files, and keeps no record of its file name.
    """
    for argument in arguments[1:]:
        path = Path(argument)
        if path.suffix == ".py" and path.is_file():
            return path
    return None


def validate(inventory) -> None:
    """Raise PyinfraError listing every problem of the inventory and its group data."""
    path = inventory_file(sys.argv)
    sources = DataSources.find(path, None)
    try:
        cluster_from_inventory(inventory, sources, path.stem if path else None)
    except ClusterDataError as error:
        raise PyinfraError(str(error)) from None


def validate_before_connect(state) -> None:
    """Make a pyinfra state validate its inventory at the end of `state.init`.

    pyinfra offers no hook between loading the inventory and the first connection, so the
    state's own `init` is wrapped.
    """
    initialise = state.init

    @functools.wraps(initialise)
    def initialise_and_validate(inventory, *args, **kwargs):
        initialise(inventory, *args, **kwargs)
        validate(inventory)

    state.init = initialise_and_validate
