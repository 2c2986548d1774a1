"""Short-lived certificates for the TLS tests, made at run time with `cryptography` (never checked in).

    ca = CA(tmp_path, "Test CA")
    server = ca.issue("server", cn="localhost", dns=["localhost"], ips=["127.0.0.1"])
    client = ca.issue("alice", cn="alice", emails=["alice@example.com"])
    ctx = client_context(ca, client)          # an ssl.SSLContext for nats-py or a raw socket
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LIFETIME = datetime.timedelta(hours=2)


@dataclass
class Issued:
    name: str
    cert_file: Path
    key_file: Path
    cert: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def spki_sha256(self) -> str:
        """nats-server's pinned_certs entry: hex SHA-256 of the DER SubjectPublicKeyInfo."""
        spki = self.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()


def _name(cn: Optional[str], extra: Sequence[tuple] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(oid, value) for oid, value in extra]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


class CA:
    def __init__(self, directory: Path, cn: str = "brokerd test CA"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = _name(cn)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.file = self.directory / f"ca-{cn.replace(' ', '_')}.pem"
        self.file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, cn: Optional[str] = None, subject: Sequence[tuple] = (),
              dns: Sequence[str] = (), ips: Sequence[str] = (), emails: Sequence[str] = (),
              uris: Sequence[str] = (), key_file: Optional[Path] = None, cert_file: Optional[Path] = None) -> Issued:
        """A leaf for server and client use; `subject` adds (NameOID, value) pairs before the CN."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, subject)).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
        )
        sans: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        sans += [x509.UniformResourceIdentifier(u) for u in uris]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = cert_file or self.directory / f"{name}.pem"
        key_path = key_file or self.directory / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Issued(name, cert_path, key_path, cert)


def client_context(ca: Optional[CA], client: Optional[Issued] = None, *, verify_server: bool = True) -> ssl.SSLContext:
    """A client-side context trusting `ca`, presenting `client`'s certificate when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify_server and ca is not None:
        ctx.load_verify_locations(cafile=str(ca.file))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client is not None:
        ctx.load_cert_chain(str(client.cert_file), str(client.key_file))
    return ctx


def server_block(server: Issued, ca: Optional[CA] = None, **options) -> str:
    """A nats-server `tls { }` block; `options` are written as given (strings quoted)."""
    lines = [f'  cert_file: "{server.cert_file}"', f'  key_file: "{server.key_file}"']
    if ca is not None:
        lines.append(f'  ca_file: "{ca.file}"')
    for key, value in options.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str):
            text = f'"{value}"'
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(f'"{v}"' for v in value) + "]"
        else:
            text = str(value)
        lines.append(f"  {key}: {text}")
    return "tls {\n" + "\n".join(lines) + "\n}\n"
