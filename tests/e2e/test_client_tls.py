"""
test_client_tls.py - chat --tls, --ca and --fingerprint against a server
speaking TLS: logging in and talking, the certificates it must refuse (exit
status 8, the reason named, nothing sent), the pin, a port that does not
speak TLS, session resumption on reconnect, and the warning before a
password goes out in clear.

The certificates are made here with the openssl command (a test CA, a
server certificate for 127.0.0.1 and localhost, an expired one, one for
another host, a self-signed one to pin).

The TLS server (the tls_front fixture) is chatd's own TLS listener when
the chatd under test has one (CHATD_SERVES_TLS: conftest.py reads the TLS
port from the listening line), else TlsFront, a small TLS terminating
proxy in front of a plain chatd; the tests are the same for both.  Only
the proxy counts handshakes and resumed sessions (None with chatd's own:
the terminal test then sees the resumption in chat's own note).
TODO(integrator): once the server branch is merged, CHATD_SERVES_TLS is
true by itself; TlsFront may then go (or stay as the reference server).
"""

import inspect
import json
import os
import select
import socket
import ssl
import subprocess
import threading

import pytest

import conftest
from chatclient import CHAT_BIN, EXIT_CONNECT, EXIT_OK, RunningPlain, run_plain
from chatproto import scaled

EXIT_TLS = 8  # chat(1): the server's certificate was not accepted

# chatd has its own TLS listener (the e2e fixtures know its port).
CHATD_SERVES_TLS = "tls" in inspect.signature(conftest.parse_listening).parameters


# --- the certificates -------------------------------------------------------


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_key_and_csr(d, name, subject):
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)


def sign(d, name, days, san):
    """name.pem: name.csr signed by the test CA, valid for days (-1: expired)."""
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", str(days), "-extfile", f"{name}.ext",
            "-out", f"{name}.pem", cwd=d)


def fingerprint(d, name):
    """'SHA256:AB:CD:...' of name.pem, as chat --fingerprint takes it."""
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                          f"{name}.pem"], cwd=d, check=True, capture_output=True, text=True)
    return "SHA256:" + out.stdout.strip().split("=", 1)[1]


class Certs:
    """certs / "ca.pem": the files; certs.pin: selfsigned's fingerprint."""

    def __init__(self, directory, pin):
        self.dir, self.pin = directory, pin

    def __truediv__(self, name):
        return self.dir / name


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A directory with ca.pem and NAME.pem/NAME.key for server (127.0.0.1 and
    localhost), expired, wronghost (chat.example.org only) and selfsigned; and
    the fingerprint of selfsigned."""
    d = tmp_path_factory.mktemp("tlsca")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=chatd test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    for name, days, san in (("server", 30, "IP:127.0.0.1,DNS:localhost"),
                            ("expired", -1, "IP:127.0.0.1,DNS:localhost"),
                            ("wronghost", 30, "DNS:chat.example.org")):
        make_key_and_csr(d, name, f"/CN={name}")
        sign(d, name, days, san)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "selfsigned.key", "-out", "selfsigned.pem", "-days", "30",
            "-subj", "/CN=selfsigned", "-addext", "subjectAltName=DNS:elsewhere.example", cwd=d)
    return Certs(d, fingerprint(d, "selfsigned"))


# --- the TLS server: a terminating proxy in front of a plain chatd ------------


class TlsFront:
    """Accepts TLS on 127.0.0.1 with cert/key and pipes the plaintext to
    daemon's plain port, one thread per connection (one thread only ever uses
    an SSL object).  Counts handshakes and resumed sessions."""

    def __init__(self, daemon, cert, key):
        self.daemon = daemon
        self.backend_port = daemon.port
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(str(cert), str(key))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self.resumed = 0
        self.lock = threading.Lock()
        self.open = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        sock.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(sock, server_side=True)
        except (OSError, ssl.SSLError):
            sock.close()        # the client refused the certificate, or spoke no TLS
            return
        with self.lock:
            self.handshakes += 1
            self.resumed += bool(tls.session_reused)
            self.open.append(tls)
        try:
            with socket.create_connection(("127.0.0.1", self.backend_port)) as plain:
                self._pipe(tls, plain)
        except (OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                if tls in self.open:
                    self.open.remove(tls)
            tls.close()

    def _pipe(self, tls, plain):
        tls.settimeout(None)
        while not self.stopping:
            ready = [tls] if tls.pending() else select.select([tls, plain], [], [], 0.2)[0]
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                (plain if s is tls else tls).sendall(data)

    def drop_all(self):
        """Cuts every connection, as a network failure would."""
        with self.lock:
            for tls in self.open:
                try:
                    tls.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopping = True
        self.listener.close()
        self.drop_all()


class ChatdTls:
    """chatd's own TLS listener, with TlsFront's interface."""

    handshakes = resumed = None     # not counted

    def __init__(self, daemon):
        self.daemon = daemon
        self.port = daemon.tls_port

    def drop_all(self):
        """Cuts chatd's end of every TLS connection (ss -K), as a network failure would."""
        rc = subprocess.run(["ss", "-K", "-t", "state", "established", "sport", "=",
                             f":{self.port}"], capture_output=True, timeout=30).returncode
        if rc != 0:
            pytest.skip("ss -K cannot cut connections here (needs root and INET_DIAG_DESTROY)")

    def close(self):
        pass


# The settings every chatd of these tests gets: one address, many clients.
DAEMON_SETTINGS = {"max_clients_per_address": 100, "max_logins_per_address": 100}


@pytest.fixture
def tls_front(chatd_factory, certs):
    """make(name="server") -> a TLS server with certificate NAME (certs) before
    a chatd of its own (front.daemon, the same chatd for the plain port).
    TODO(integrator): the fixture that switches between chatd's own TLS
    listener and the proxy (CHATD_SERVES_TLS, module docstring)."""
    fronts = []

    def make(name="server"):
        cert, key = certs / f"{name}.pem", certs / f"{name}.key"
        if CHATD_SERVES_TLS:
            daemon = chatd_factory(tls_cert=str(cert), tls_key=str(key), tls_port=0,
                                   **DAEMON_SETTINGS)
            front = ChatdTls(daemon)
        else:
            front = TlsFront(chatd_factory(**DAEMON_SETTINGS), cert, key)
        fronts.append(front)
        return front

    yield make
    for front in fronts:
        front.close()


def tls_args(certs, front, *extra, host="127.0.0.1"):
    return ["--tls", "--ca", str(certs / "ca.pem"), *extra, host, str(front.port)]


# --- logging in over TLS ---------------------------------------------------------


def test_logs_in_and_talks_over_tls(certs, tls_front):
    front = tls_front()
    bob = front.daemon.login("bob")
    res = run_plain(["--name", "alice", *tls_args(certs, front)], "hello over tls\n",
                    password="pw-alice")
    assert res.rc == EXIT_OK, res
    assert res.lines[0].startswith("HELLO 2 chatd/")
    assert "OK - logged in as alice" in res.lines
    assert bob.wait_for("MSG")[2:] == ["alice", "hello over tls"]
    assert front.handshakes in (1, None)
    assert "warning" not in res.err, res


def test_host_name_checked_by_name_too(certs, tls_front):
    """localhost: SNI and the DNS name of the certificate (the address is
    checked as an IP SAN in the test above)."""
    front = tls_front()
    res = run_plain(["--name", "carol", *tls_args(certs, front, host="localhost")], "hi\n",
                    password="pw-carol")
    assert res.rc == EXIT_OK, res


def test_ca_flag_alone_implies_tls(certs, tls_front):
    front = tls_front()
    res = run_plain(["--name", "dora", "--ca", str(certs / "ca.pem"), "127.0.0.1",
                     str(front.port)], "hi\n", password="pw-dora")
    assert res.rc == EXIT_OK, res


def test_terminal_mode_over_tls(certs, tls_front, terminals):
    front = tls_front()
    bob = front.daemon.login("bob")
    term = terminals(["--name", "erin", *tls_args(certs, front)], password="pw-erin")
    term.wait_text("erin #lobby>")
    term.line("hi from the terminal")
    assert bob.wait_for("MSG")[2:] == ["erin", "hi from the terminal"]
    # A dropped connection comes back over TLS, resuming the session.
    front.drop_all()
    term.wait_text("(TLS, session resumed); logging in", timeout=15)
    term.wait_for(lambda rows: any(r.startswith("erin #lobby>") for r in rows), "online again")
    assert front.resumed is None or front.resumed >= 1
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


# --- certificates refused ------------------------------------------------------------


def refused(res, words):
    assert res.rc == EXIT_TLS, res
    assert "TLS: not connecting to" in res.err and words in res.err, res
    assert res.out == "", res    # nothing came through: not even HELLO


def test_unknown_ca_refused_against_the_system_store(certs, tls_front):
    front = tls_front()
    res = run_plain(["--name", "fred", "--tls", "127.0.0.1", str(front.port)], "hi\n",
                    password="pw-fred")
    refused(res, "unknown certificate authority")
    assert "--fingerprint SHA256:" in res.err, res   # what to pin, once checked
    # The password never reached chatd: no account was registered.
    assert front.handshakes in (0, None)
    assert "fred" not in front.daemon.ctl_ok("user", "list")


def test_expired_certificate_refused(certs, tls_front):
    front = tls_front("expired")
    res = run_plain(["--name", "gail", *tls_args(certs, front)], "hi\n", password="pw-gail")
    refused(res, "has expired")


def test_wrong_host_refused(certs, tls_front):
    front = tls_front("wronghost")
    res = run_plain(["--name", "hugo", *tls_args(certs, front)], "hi\n", password="pw-hugo")
    refused(res, "is not for 127.0.0.1 (wrong host)")
    by_name = run_plain(["--name", "hugo", *tls_args(certs, front, host="localhost")], "hi\n",
                        password="pw-hugo")
    refused(by_name, "is not for localhost (wrong host)")


def test_terminal_mode_refusal(certs, tls_front, terminals):
    front = tls_front("expired")
    term = terminals(["--name", "ivan", *tls_args(certs, front)], password="pw-ivan")
    assert term.wait_exit() == EXIT_TLS
    assert "has expired" in term.everything()


# --- the pin ---------------------------------------------------------------------------


def test_fingerprint_pins_a_self_signed_certificate(certs, tls_front):
    front = tls_front("selfsigned")
    pin = certs.pin
    # Any case, colons or not, the prefix optional.
    for form in (pin, pin.lower(), pin[len("SHA256:"):].replace(":", "")):
        res = run_plain(["--name", "jane", "--fingerprint", form, "127.0.0.1",
                         str(front.port)], "hi\n", password="pw-jane")
        assert res.rc == EXIT_OK, (form, res)
    # Without the pin the same certificate is refused.
    res = run_plain(["--name", "jane", "--tls", "127.0.0.1", str(front.port)], "hi\n",
                    password="pw-jane")
    refused(res, "unknown certificate authority")
    assert pin in res.err


def test_wrong_fingerprint_refused(certs, tls_front):
    front = tls_front("server")     # a good certificate, but not the pinned one
    res = run_plain(["--name", "kate", "--fingerprint", certs.pin, "127.0.0.1",
                     str(front.port)], "hi\n", password="pw-kate")
    refused(res, "pin mismatch")
    assert "kate" not in front.daemon.ctl_ok("user", "list")


def test_bad_fingerprint_and_conflicting_options_are_usage_errors(certs):
    for args in (["--fingerprint", "SHA256:00:11"],
                 ["--fingerprint", certs.pin, "--ca", str(certs / "ca.pem")],
                 ["--ca", str(certs / "nonexistent.pem")]):
        res = run_plain(["--name", "lena", *args, "127.0.0.1", "1"], "", password="pw")
        assert res.rc == 1, (args, res)


# --- no fallback ------------------------------------------------------------------------


def test_a_port_without_tls_is_a_failed_connection_not_a_fallback(chatd):
    res = run_plain(["--name", "mona", "--tls", "127.0.0.1", str(chatd.port)], "hi\n",
                    password="pw-mona")
    assert res.rc == EXIT_CONNECT, res
    assert "TLS handshake failed" in res.err and "does not speak TLS" in res.err, res
    assert "mona" not in chatd.ctl_ok("user", "list")


def test_reconnect_keeps_tls_and_resumes(certs, tls_front):
    front = tls_front()
    chat = RunningPlain(["--name", "nina", "--reconnect", *tls_args(certs, front)],
                        password="pw-nina")
    try:
        chat.wait_line(lambda line: line.startswith("OK - logged in as nina"))
        front.drop_all()
        # The login lines of the new login are printed as the first ones were.
        chat.wait_line(lambda _: sum(line.startswith("WELCOME nina")
                                     for line in chat.lines) >= 2, timeout=15)
        chat.send("after the reconnect")
        chat.wait_line(lambda line: line.endswith(" sent"))
        rc, err = chat.finish()
    finally:
        chat.kill()
    assert rc == EXIT_OK, err
    if front.handshakes is not None:
        assert front.handshakes >= 2 and front.resumed >= 1, (front.handshakes, front.resumed)


# --- the warning before a password in clear --------------------------------------------


def test_no_warning_for_loopback_in_clear(chatd):
    res = run_plain(["--name", "olga", "127.0.0.1", str(chatd.port)], "hi\n",
                    password="pw-olga")
    assert res.rc == EXIT_OK, res
    assert "not encrypted" not in res.err, res
    # Which addresses count as loopback: tests/unit/test_chat_tls.c.


# --- chatbench --tls ----------------------------------------------------------------------

CHATBENCH_BIN = os.path.abspath(os.environ.get(
    "CHATBENCH_BIN", os.path.join(os.path.dirname(CHAT_BIN), "..", "bench", "chatbench")))


def chatbench(*args):
    proc = subprocess.run([CHATBENCH_BIN, *args], capture_output=True, text=True,
                          timeout=scaled(120))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.skipif(not os.access(CHATBENCH_BIN, os.X_OK), reason="chatbench not built")
def test_chatbench_over_tls_loses_nothing(certs, tls_front):
    """Not a measurement: chatbench's TLS and chatd agree end to end."""
    front = tls_front()
    res = chatbench("-p", str(front.port), "--ca", str(certs / "ca.pem"), "-n", "20",
                    "-s", "3", "-d", "1", "--login-timeout", str(scaled(60)),
                    "--drain", str(scaled(10)))
    assert res["logged_in"] == 20, res
    assert res["sent"] > 0 and res["delivered"] == res["expected"] == res["sent"] * 19, res
    assert res["lost"] == 0 and not any(res["errors"].values()), res
    tls = res["tls"]
    assert tls["verified"] and tls["handshakes"] == 20 and tls["handshakes_per_s"] > 0, tls

    only = chatbench("-p", str(front.port), "--tls", "--handshake-only", "-n", "10", "-s",
                     "0", "--settle", "0", "--login-timeout", str(scaled(60)))
    assert only["tls"]["handshakes"] == 10 and only["logged_in"] == 0, only
    assert not any(only["errors"].values()), only
    # A second round where each client resumes the session of its ticket.
    again = chatbench("-p", str(front.port), "--tls", "--handshake-only", "--resume", "-n", "10",
                      "-s", "0", "--settle", "0", "--login-timeout", str(scaled(60)))
    resumed = again["tls_resume"]
    assert resumed["tickets"] == 10 and resumed["handshakes"] == 10, again
    assert resumed["reused"] == 10 and resumed["no_ticket"] == 0, again
    assert not any(again["errors"].values()), again
    # A certificate the CA did not sign: every handshake fails, counted as such.
    other = tls_front("selfsigned")
    res = chatbench("-p", str(other.port), "--ca", str(certs / "ca.pem"), "-n", "3", "-s", "0",
                    "--settle", "0", "--login-timeout", str(scaled(20)))
    assert res["errors"]["tls"] == 3 and res["tls"]["handshakes"] == 0, res


def test_a_server_that_wants_tls_gets_no_password(tmp_path):
    """chatd's plain_login refuses the name with ERR 426 (before any secret):
    chat says to use --tls and never sends the password."""
    listener = socket.create_server(("127.0.0.1", 0))
    received = []

    def serve():
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(scaled(10))
            reader = conn.makefile("rb")
            conn.sendall(b"HELLO 2 chatd/0.2.0 fake\n")
            received.append(reader.readline())
            conn.sendall(b"ERR 426 no passwords in clear here: log in over TLS on port 7778\n")
            received.append(reader.read())      # until chat closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        res = run_plain(["--name", "pia", "127.0.0.1", str(listener.getsockname()[1])], "hi\n",
                        password="secret-pw")
        thread.join(scaled(10))
    finally:
        listener.close()
    assert res.rc == 4, res
    assert "connect with --tls" in res.err and "port 7778" in res.err, res
    assert received[0] == b"pia\n" and b"secret-pw" not in b"".join(received), received


@pytest.mark.skipif(not CHATD_SERVES_TLS, reason="this chatd has no TLS listener")
def test_chatd_plain_login_deny_sends_chat_to_tls(chatd_factory, certs):
    daemon = chatd_factory(tls_cert=str(certs / "server.pem"), tls_key=str(certs / "server.key"),
                           tls_port=0, plain_login="deny")
    res = run_plain(["--name", "quin", "127.0.0.1", str(daemon.port)], "hi\n",
                    password="pw-quin")
    assert res.rc == 4 and "connect with --tls" in res.err, res
    over_tls = run_plain(["--name", "quin", *tls_args(certs, ChatdTls(daemon))], "hi\n",
                         password="pw-quin")
    assert over_tls.rc == EXIT_OK, over_tls
