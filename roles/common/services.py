"""Apply a daemon's changed configuration durably: check it, reload or restart, record it.

Restarting only when an upload reports a change (`_if=op.did_change`) misses the restart for
good when a run fails between the upload and the restart: the next run sees no change. Here
the host keeps a stamp per service, touched after every successful check and restart; any
config file newer than the stamp means the running daemon has not applied it yet.
"""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase, operation

STAMPS = "/var/lib/mailfleet/applied"


class FilesNewerThanStamp(FactBase):
    """Files among `paths` modified after `stamp`; every path when the stamp is missing."""

    def command(self, stamp: str, paths: tuple[str, ...]) -> str:
        quoted = " ".join(shlex.quote(path) for path in paths)
        stamp = shlex.quote(stamp)
        return f'for f in {quoted}; do [ -e {stamp} ] && [ ! "$f" -nt {stamp} ] || echo "$f"; done'

    def process(self, output: list[str]) -> list[str]:
        return [line for line in output if line]


@operation()
def configuration_applied(
    service: str, paths: list[str], check: str, action: str = "restart", stamp_name: str = ""
):
    """Reload or restart `service` when any of `paths` changed since it last applied them.

    + service: systemd unit to reload or restart
    + paths: the config files, certificates and keys the service reads at start
    + check: shell command that validates the config first (`postfix check`, `haproxy -c ...`)
    + action: ``restart``, ``reload`` or ``reload-or-restart``
    + stamp_name: name of the stamp, when one service applies several sets of files differently
    """
    stamp = f"{STAMPS}/{stamp_name or service}"
    stale = host.get_fact(FilesNewerThanStamp, stamp=stamp, paths=tuple(paths))
    if not stale:
        host.noop(f"{service} runs its current configuration")
        return

    yield (
        f"{check} && systemctl {action} {shlex.quote(service)} "
        f"&& mkdir -p {STAMPS} && touch {shlex.quote(stamp)}"
    )
