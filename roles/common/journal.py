"""The deploy journal: one line per deploy that changed a host, kept on that host.

Each line is a JSON object: when the deploy ran, who ran it from which machine, the config
revision (the project's git commit), and the names of the operations that changed the host
(clause 5.1.5: complete operation logs).
"""

from __future__ import annotations

import datetime
import getpass
import json
import shlex
import socket
import subprocess
from pathlib import Path

from pyinfra import host, state
from pyinfra.api import operation

JOURNAL_FOLDER = "/var/log/mailfleet"
JOURNAL = f"{JOURNAL_FOLDER}/deploys.log"
PROJECT = Path(__file__).resolve().parents[2]


def config_revision() -> str:
    """Return the project's git commit, marked "-modified" when the work tree has changes."""
    def git(*arguments: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(PROJECT), *arguments], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    if not commit:
        return "unknown (not a git checkout)"
    return commit + ("-modified" if git("status", "--porcelain") else "")


def changed_operations() -> list[str]:
    """Return the names of this host's operations that changed it so far in this run."""
    names = []
    for op_hash in host.op_hash_order:
        meta = state.get_op_data_for_host(host, op_hash).operation_meta
        if meta.is_complete() and meta.did_change():
            names.append(", ".join(sorted(state.get_op_meta(op_hash).names)))
    return names


@operation()
def deploy_recorded(revision: str, operator: str):
    """Append a journal line when an earlier operation of this run changed the host.

    + revision: the config revision that was deployed
    + operator: who ran the deploy, as user@machine
    """
    changed = changed_operations()
    if not changed:
        host.noop("the deploy changed nothing, so the journal gets no entry")
        return

    record = json.dumps(
        {
            "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "operator": operator,
            "revision": revision,
            "changed": changed,
        },
        sort_keys=True,
    )
    yield f"printf '%s\\n' {shlex.quote(record)} >> {JOURNAL}"


def operator() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"
