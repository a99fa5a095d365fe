"""Make a private test CA and host certificates for the container cluster, at run time."""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


def write_private_key(path: Path, key: PrivateKeyTypes) -> None:
    """Write a private key as unencrypted PKCS#8 PEM, readable by its owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(pem)


def _load_certificate(path: Path) -> x509.Certificate | None:
    if not path.exists():
        return None
    return x509.load_pem_x509_certificate(path.read_bytes())


def ensure_ca(folder: Path, name: str = "mailfleet test CA") -> Path:
    """Create the CA key and certificate in the folder unless they exist; return the certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    certificate_path = folder / "ca.crt"
    key_path = folder / "ca.key"
    if certificate_path.exists() and key_path.exists():
        return certificate_path

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    write_private_key(key_path, key)
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate_path


def _subject_alternative_names(certificate: x509.Certificate) -> set[str]:
    extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    names = extension.value.get_values_for_type(x509.DNSName)
    addresses = extension.value.get_values_for_type(x509.IPAddress)
    return {*names, *(str(address) for address in addresses)}


def ensure_host_certificate(
    folder: Path, host: str, dns_names: list[str], addresses: list[str]
) -> tuple[Path, Path]:
    """Issue a server certificate for the host from the folder's CA; keep one that still fits.

    Returns the paths of the certificate (with the CA appended, so servers send the chain) and
    of the key.
    """
    ensure_ca(folder)
    certificate_path = folder / f"{host}.crt"
    key_path = folder / f"{host}.key"
    wanted_names = {*dns_names, *addresses}
    existing = _load_certificate(certificate_path)
    fits = existing is not None and _subject_alternative_names(existing) == wanted_names
    if fits and key_path.exists():
        return certificate_path, key_path

    ca_certificate = _load_certificate(folder / "ca.crt")
    ca_key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alternative_names = [x509.DNSName(name) for name in dns_names] + [
        x509.IPAddress(ipaddress.ip_address(address)) for address in addresses
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_private_key(key_path, key)
    chain = certificate.public_bytes(serialization.Encoding.PEM)
    chain += ca_certificate.public_bytes(serialization.Encoding.PEM)
    certificate_path.write_bytes(chain)
    return certificate_path, key_path
