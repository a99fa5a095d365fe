"""DKIM keys and the DNS records that each hosted domain must publish.

The kit makes one RSA key per domain and selector on the machine that runs the deploy, and
the MX hosts get the private key. `mailfleet dns` prints the public half as a TXT record,
beside the domain's MX, SPF and DMARC records and the addresses of the mail service.
"""

from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailfleet.model import Cluster, dkim_key_path
from mailfleet.pki import write_private_key

DKIM_KEY_BITS = 2048
# RFC 1035 limits each character-string of a TXT record to 255 bytes; longer values are
# split into several strings, which DKIM verifiers join again.
TXT_STRING_BYTES = 255


def ensure_dkim_key(path: Path) -> bool:
    """Write a new RSA private key to `path` (mode 0600) unless one is there; return whether
    a key was made."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_KEY_BITS)
    write_private_key(path, key)
    return True


def dkim_public_key(path: Path) -> str:
    """Return the base64 SubjectPublicKeyInfo of a private key file: the p= tag of DKIM."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def txt_strings(value: str) -> list[str]:
    """Split a TXT value into character-strings of at most 255 bytes each."""
    data = value.encode()
    return [
        data[start:start + TXT_STRING_BYTES].decode()
        for start in range(0, len(data), TXT_STRING_BYTES)
    ] or [""]


def dns_records(cluster: Cluster) -> list[tuple[str, str, list[str]]]:
    """Return (owner name, type, values) of every record the cluster's domains need.

    A and MX values are one string each. A TXT record has one value made of strings of at
    most 255 bytes. SPF allows the MX hosts, which send the outbound mail.
    """
    policy = cluster.filtering
    hostname = cluster.mail_hostname
    records = [(f"{hostname}.", "A", [str(address)]) for address in cluster.service_addresses]
    # NOTE: SPF names the MX hosts' cluster addresses; a site whose outbound mail leaves
    # through NAT must publish the translated addresses instead.
    outbound = " ".join(f"ip4:{node.address}" for node in cluster.mtas)
    for domain in cluster.mail_domains:
        public_key = dkim_public_key(dkim_key_path(policy, domain))
        records += [
            (f"{domain}.", "MX", [f"10 {hostname}."]),
            (f"{domain}.", "TXT", txt_strings(f"v=spf1 {outbound} -all")),
            (f"{policy.dkim_selector}._domainkey.{domain}.", "TXT",
             txt_strings(f"v=DKIM1; k=rsa; p={public_key}")),
            (f"_dmarc.{domain}.", "TXT", txt_strings(
                f"v=DMARC1; p={policy.dmarc_policy}; rua=mailto:{cluster.postmaster}"
            )),
        ]
    return records


def zone_lines(records: list[tuple[str, str, list[str]]]) -> list[str]:
    """Format records as zone-file lines; a TXT record's strings are quoted, space-separated."""
    lines = []
    for name, kind, values in records:
        if kind == "TXT":
            lines.append(f"{name} IN TXT " + " ".join(f'"{value}"' for value in values))
        else:
            lines.extend(f"{name} IN {kind} {value}" for value in values)
    return lines


def parse_txt(line: str) -> str:
    """Join the quoted strings of a zone-file TXT line back into one value."""
    value = line.split(" IN TXT ", 1)[1]
    return "".join(part for index, part in enumerate(value.split('"')) if index % 2)
