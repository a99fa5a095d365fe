"""Secrets that hosts of the cluster share with each other, made on the machine that deploys.

Such a secret is generated at the first deploy and kept under .state/secrets (mode 0600, never
committed), so later deploys write the same value and change nothing. When the file is lost,
the next deploy generates a new secret and gives it to every host that uses it.
"""

from __future__ import annotations

from pathlib import Path

from mailfleet.passwords import generate_password

SECRETS = Path(__file__).resolve().parent.parent / ".state" / "secrets"


def shared_secret(name: str, folder: Path = SECRETS) -> str:
    """Return the secret called `name`, generating and storing it first when it is missing."""
    path = folder / name
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        # Letters and digits only: the value goes into config files unquoted.
        path.write_text(generate_password(32).translate(str.maketrans("", "", "-_.,;!%+=*")))
    return path.read_text().strip()
