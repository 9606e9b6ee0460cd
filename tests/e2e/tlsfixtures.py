"""
tlsfixtures.py - certificates and TLS clients for the server-side TLS tests.

TestCA makes a private CA and server certificates with Debian's openssl
command (EC P-256 keys: quick to make); TLSClient is chatproto's Client over
Python's ssl module, so the tests speak real TLS to chatd.
"""

import select
import socket
import ssl
import subprocess
import time
from pathlib import Path

from chatproto import Client, Closed, DEFAULT_TIMEOUT, Timeout, scaled

EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class TestCA:
    """A CA in directory d; server() issues certificates signed by it."""

    __test__ = False  # not a pytest class

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert = self.dir / "ca.pem"
        openssl("req", "-x509", *EC_KEY, "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
                "-subj", "/CN=chatd test CA", cwd=self.dir)

    def server(self, name, cn="localhost", days=30, sans="DNS:localhost,IP:127.0.0.1"):
        """(certificate chain, key) for 127.0.0.1 and localhost, valid for days."""
        (self.dir / f"{name}.ext").write_text(f"subjectAltName={sans}\n")
        openssl("req", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
                f"/CN={cn}", cwd=self.dir)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", str(days), "-extfile",
                f"{name}.ext", cwd=self.dir)
        return self.dir / f"{name}.pem", self.dir / f"{name}.key"

    def context(self, **versions):
        """A client context trusting this CA only (host names checked)."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        for attr, value in versions.items():
            setattr(ctx, attr, value)
        return ctx


class TLSClient(Client):
    """A chat connection over TLS.  Reads never wait on the socket while
    OpenSSL holds decrypted bytes (select() would not see them)."""

    def connect_tls(self, port, ctx, host="127.0.0.1", server_hostname="localhost",
                    session=None, rcvbuf=None, timeout=DEFAULT_TIMEOUT):
        raw = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        try:
            if rcvbuf is not None:  # before connect(): the window is negotiated that small
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            raw.settimeout(scaled(timeout))
            raw.connect((host, port))
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)
        except BaseException:
            raw.close()
            raise
        self.sock.settimeout(scaled(30))
        return self

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            pending = self.buf[self.pos:self.pos + 200]
            raise Timeout(f"{self.label}: no complete line in time (pending {pending!r})")
        if self.sock.pending() == 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
            raise Closed(f"{self.label}: connection reset") from e
        except ssl.SSLWantReadError:
            return
        if not data:
            raise Closed(f"{self.label}: connection closed "
                         f"(pending {self.buf[self.pos:self.pos + 200]!r})")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0


def tls_client(chatd, ca, label="client", **kwargs):
    """A TLSClient connected to chatd's TLS port, closed with the other clients."""
    client = TLSClient(label, max_line=chatd.settings.get("max_line", 4096))
    chatd.clients.append(client)
    return client.connect_tls(chatd.tls_port, kwargs.pop("ctx", None) or ca.context(), **kwargs)


def tls_login(chatd, ca, name, password=None, **kwargs):
    client = tls_client(chatd, ca, name, **kwargs)
    client.hist = client.login(name, password or f"pw-{name.lower()}")
    return client
