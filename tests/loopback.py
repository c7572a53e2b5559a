"""The HTTP servers behind the fakes the tests own: threaded, on 127.0.0.1 at a free port,
optionally over TLS with a throwaway self-signed certificate for 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class NotRunningError(Exception):
    pass


class Loopback:
    """Serves one handler class between ``start`` and ``stop``. With ``tls``, ``ca_file`` is the
    certificate clients trust (point ``REQUESTS_CA_BUNDLE`` or an SSL context at it)."""

    def __init__(self, what: str, *, tls: bool = False) -> None:
        self.what = what
        self.tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="train-loopback-") if tls else None
        self.ca_file = os.path.join(self._dir.name, "cert.pem") if self._dir else None

    def start(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        if self._dir is not None and self.ca_file is not None:
            key_file = self_signed(self.ca_file, os.path.join(self._dir.name, "key.pem"))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self.what, daemon=True
        ).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def close(self) -> None:
        """Stop, and remove the certificate files."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        if self._server is None:
            raise NotRunningError(f"{self.what} is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"


def self_signed(cert_file: str, key_file: str) -> str:
    """A certificate for 127.0.0.1, valid for a day, and its key; returns the key file."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    with open(cert_file, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_file, "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return key_file
