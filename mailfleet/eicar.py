"""The EICAR anti-virus test file, built from parts so that no scanner flags this repository.

The test cluster's ClamAV has one signature: the MD5 and size of this string. Tests attach
it to a message and expect a 5xx reply.
"""

from __future__ import annotations

import hashlib

# The 68 bytes of the EICAR test file, split where no scanner matches either half.
_PARTS = (
    "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
    "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
)
SIGNATURE_NAME = "Mailfleet.Test.EICAR"


def eicar() -> bytes:
    return "".join(_PARTS).encode()


def signature_line() -> str:
    """Return the ClamAV hash signature (.hdb line) of the EICAR test file."""
    data = eicar()
    return f"{hashlib.md5(data).hexdigest()}:{len(data)}:{SIGNATURE_NAME}"
