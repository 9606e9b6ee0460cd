"""
test_client_tls.py - chat --tls, --ca and --fingerprint against chatd's own
TLS listener: logging in and talking, the certificates it must refuse (exit
status 8, the reason named, nothing sent), the pin, a port that does not
speak TLS, session resumption on reconnect, and the warning before a
password goes out in clear; chatbench --tls against the same listener.

The certificates come from tlsfixtures.TestCA (a test CA, a server
certificate for 127.0.0.1 and localhost, an expired one, one for another
host) plus a self-signed one to pin.  What chatd did is read from its log:
each TLS connection is logged ("connection from ADDR (TLS)"), and one whose
handshake failed leaves a "TLS handshake failed" departure, so a refusal is
seen to have stopped at the handshake.  chatd logs nothing that tells a
resumed TLS session; chat's own "(TLS, session resumed)" note says it (true
only when chatd took the session: test_tls_server.py checks the server side).
"""

import json
import os
import re
import socket
import subprocess
import threading

import pytest

from chatclient import CHAT_BIN, EXIT_CONNECT, EXIT_OK, RunningPlain, run_plain
from chatproto import scaled, wait_until
from tlsfixtures import EC_KEY, TestCA, openssl

EXIT_TLS = 8  # chat(1): the server's certificate was not accepted


# --- the certificates -------------------------------------------------------


def fingerprint(pem):
    """'SHA256:AB:CD:...' of the certificate pem, as chat --fingerprint takes it."""
    out = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in",
                          str(pem)], check=True, capture_output=True, text=True)
    return "SHA256:" + out.stdout.strip().split("=", 1)[1]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """The test CA; in ca.dir NAME.pem/NAME.key for server (127.0.0.1 and
    localhost), expired, wronghost (chat.example.org only), all signed by the
    CA, and selfsigned (signed by nobody)."""
    ca = TestCA(tmp_path_factory.mktemp("tlsca"))
    ca.server("server")
    ca.server("expired", days=-1)
    ca.server("wronghost", cn="wronghost", sans="DNS:chat.example.org")
    openssl("req", "-x509", *EC_KEY, "-keyout", "selfsigned.key", "-out", "selfsigned.pem",
            "-days", "30", "-subj", "/CN=selfsigned",
            "-addext", "subjectAltName=DNS:elsewhere.example", cwd=ca.dir)
    return ca


@pytest.fixture(scope="module")
def pin(ca):
    """The fingerprint of selfsigned.pem."""
    return fingerprint(ca.dir / "selfsigned.pem")


# --- chatd with its TLS listener ---------------------------------------------

# The settings every chatd of these tests gets: one address, many clients.
DAEMON_SETTINGS = {"max_clients_per_address": 100, "max_logins_per_address": 100}


@pytest.fixture
def tls_chatd(chatd_factory, ca):
    """make(name="server") -> a chatd listening for TLS (its tls_port) with
    certificate NAME, and in clear on its port."""

    def make(name="server"):
        return chatd_factory(tls_cert=str(ca.dir / f"{name}.pem"),
                             tls_key=str(ca.dir / f"{name}.key"), tls_port=0,
                             **DAEMON_SETTINGS)

    return make


def tls_args(ca, daemon, *extra, host="127.0.0.1"):
    return ["--tls", "--ca", str(ca.cert), *extra, host, str(daemon.tls_port)]


def tls_log(daemon):
    """(TLS connections chatd logged, of them those whose handshake failed)."""
    text = daemon.log_text()
    return (len(re.findall(r"connection from \S+ \(TLS\)$", text, re.M)),
            text.count("TLS handshake failed"))


def wait_tls_log(daemon, connections, failed):
    """Waits until chatd's log shows exactly that many TLS connections and
    failed handshakes (a departure is logged after the client has gone)."""
    wait_until(lambda: tls_log(daemon) == (connections, failed),
               f"{connections} TLS connections, {failed} failed, in chatd's log")


def drop_tls_connections(daemon):
    """Cuts chatd's end of every TLS connection (ss -K), as a network failure would."""
    rc = subprocess.run(["ss", "-K", "-t", "state", "established", "sport", "=",
                         f":{daemon.tls_port}"], capture_output=True, timeout=30).returncode
    if rc != 0:
        pytest.skip("ss -K cannot cut connections here (needs root and INET_DIAG_DESTROY)")


# --- logging in over TLS ---------------------------------------------------------


def logins(daemon, name):
    """How many logins of name chatd logged (the first one registers it; then
    with a password or a resume token)."""
    return len(re.findall(rf"\b(?:registered|login) {name} from ", daemon.log_text()))


def test_logs_in_and_talks_over_tls(ca, tls_chatd):
    daemon = tls_chatd()
    bob = daemon.login("bob")
    res = run_plain(["--name", "alice", *tls_args(ca, daemon)], "hello over tls\n",
                    password="pw-alice")
    assert res.rc == EXIT_OK, res
    assert res.lines[0].startswith("HELLO 2 chatd/")
    assert "OK - logged in as alice" in res.lines
    assert bob.wait_for("MSG")[2:] == ["alice", "hello over tls"]
    wait_tls_log(daemon, 1, 0)      # one handshake, and alice came over it
    assert logins(daemon, "alice") == 1
    assert "warning" not in res.err, res


def test_host_name_checked_by_name_too(ca, tls_chatd):
    """localhost: SNI and the DNS name of the certificate (the address is
    checked as an IP SAN in the test above)."""
    daemon = tls_chatd()
    res = run_plain(["--name", "carol", *tls_args(ca, daemon, host="localhost")], "hi\n",
                    password="pw-carol")
    assert res.rc == EXIT_OK, res


def test_ca_flag_alone_implies_tls(ca, tls_chatd):
    daemon = tls_chatd()
    res = run_plain(["--name", "dora", "--ca", str(ca.cert), "127.0.0.1",
                     str(daemon.tls_port)], "hi\n", password="pw-dora")
    assert res.rc == EXIT_OK, res
    wait_tls_log(daemon, 1, 0)


def test_terminal_mode_over_tls(ca, tls_chatd, terminals):
    daemon = tls_chatd()
    bob = daemon.login("bob")
    term = terminals(["--name", "erin", *tls_args(ca, daemon)], password="pw-erin")
    term.wait_text("erin #lobby>")
    term.line("hi from the terminal")
    assert bob.wait_for("MSG")[2:] == ["erin", "hi from the terminal"]
    # A dropped connection comes back over TLS, resuming the session (chat
    # says so only when chatd took the session of its ticket).
    drop_tls_connections(daemon)
    term.wait_text("(TLS, session resumed); logging in", timeout=15)
    term.wait_for(lambda rows: any(r.startswith("erin #lobby>") for r in rows), "online again")
    wait_tls_log(daemon, 2, 0)
    assert logins(daemon, "erin") == 2
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


# --- certificates refused ------------------------------------------------------------


def refused(res, words, daemon, connections=1, handshake_failed=True):
    """chat refused: exit 8, the reason said, and chatd saw each of the
    connections leave before login, after a failed handshake unless
    handshake_failed is False (the pin is checked on a finished handshake):
    not the name and not the password went out."""
    assert res.rc == EXIT_TLS, res
    assert "TLS: not connecting to" in res.err and words in res.err, res
    assert res.out == "", res    # nothing came through: not even HELLO
    wait_tls_log(daemon, connections, connections if handshake_failed else 0)
    wait_until(lambda: daemon.log_text().count(" before login: ") == connections,
               f"{connections} departures before login")
    assert not re.search(r"\b(?:registered|login) \S+ from ", daemon.log_text())


def test_unknown_ca_refused_against_the_system_store(tls_chatd):
    daemon = tls_chatd()
    res = run_plain(["--name", "fred", "--tls", "127.0.0.1", str(daemon.tls_port)], "hi\n",
                    password="pw-fred")
    refused(res, "unknown certificate authority", daemon)
    assert "--fingerprint SHA256:" in res.err, res   # what to pin, once checked
    # The password never reached chatd: no account was registered.
    assert "fred" not in daemon.ctl_ok("user", "list")


def test_expired_certificate_refused(ca, tls_chatd):
    daemon = tls_chatd("expired")
    res = run_plain(["--name", "gail", *tls_args(ca, daemon)], "hi\n", password="pw-gail")
    refused(res, "has expired", daemon)


def test_wrong_host_refused(ca, tls_chatd):
    daemon = tls_chatd("wronghost")
    res = run_plain(["--name", "hugo", *tls_args(ca, daemon)], "hi\n", password="pw-hugo")
    refused(res, "is not for 127.0.0.1 (wrong host)", daemon)
    by_name = run_plain(["--name", "hugo", *tls_args(ca, daemon, host="localhost")], "hi\n",
                        password="pw-hugo")
    refused(by_name, "is not for localhost (wrong host)", daemon, connections=2)


def test_terminal_mode_refusal(ca, tls_chatd, terminals):
    daemon = tls_chatd("expired")
    term = terminals(["--name", "ivan", *tls_args(ca, daemon)], password="pw-ivan")
    assert term.wait_exit() == EXIT_TLS
    assert "has expired" in term.everything()
    wait_tls_log(daemon, 1, 1)


# --- the pin ---------------------------------------------------------------------------


def test_fingerprint_pins_a_self_signed_certificate(pin, tls_chatd):
    daemon = tls_chatd("selfsigned")
    # Any case, colons or not, the prefix optional.
    for form in (pin, pin.lower(), pin[len("SHA256:"):].replace(":", "")):
        res = run_plain(["--name", "jane", "--fingerprint", form, "127.0.0.1",
                         str(daemon.tls_port)], "hi\n", password="pw-jane")
        assert res.rc == EXIT_OK, (form, res)
    wait_tls_log(daemon, 3, 0)
    assert logins(daemon, "jane") == 3
    # Without the pin the same certificate is refused.
    res = run_plain(["--name", "jane", "--tls", "127.0.0.1", str(daemon.tls_port)], "hi\n",
                    password="pw-jane")
    assert res.rc == EXIT_TLS and "unknown certificate authority" in res.err, res
    assert "TLS: not connecting to" in res.err and pin in res.err and res.out == "", res
    wait_tls_log(daemon, 4, 1)
    assert logins(daemon, "jane") == 3


def test_wrong_fingerprint_refused(pin, tls_chatd):
    daemon = tls_chatd("server")     # a good certificate, but not the pinned one
    res = run_plain(["--name", "kate", "--fingerprint", pin, "127.0.0.1",
                     str(daemon.tls_port)], "hi\n", password="pw-kate")
    refused(res, "pin mismatch", daemon, handshake_failed=False)
    assert "kate" not in daemon.ctl_ok("user", "list")


def test_bad_fingerprint_and_conflicting_options_are_usage_errors(ca, pin):
    for args in (["--fingerprint", "SHA256:00:11"],
                 ["--fingerprint", pin, "--ca", str(ca.cert)],
                 ["--ca", str(ca.dir / "nonexistent.pem")]):
        res = run_plain(["--name", "lena", *args, "127.0.0.1", "1"], "", password="pw")
        assert res.rc == 1, (args, res)


# --- no fallback ------------------------------------------------------------------------


def test_a_port_without_tls_is_a_failed_connection_not_a_fallback(chatd):
    res = run_plain(["--name", "mona", "--tls", "127.0.0.1", str(chatd.port)], "hi\n",
                    password="pw-mona")
    assert res.rc == EXIT_CONNECT, res
    assert "TLS handshake failed" in res.err and "does not speak TLS" in res.err, res
    assert "mona" not in chatd.ctl_ok("user", "list")
    assert logins(chatd, "mona") == 0


def test_reconnect_keeps_tls_and_resumes(ca, tls_chatd):
    """--reconnect comes back over TLS and logs in with its resume token (the
    TLS session's resumption is seen in the terminal test: the script mode
    does not tell it)."""
    daemon = tls_chatd()
    chat = RunningPlain(["--name", "nina", "--reconnect", *tls_args(ca, daemon)],
                        password="pw-nina")
    try:
        chat.wait_line(lambda line: line.startswith("OK - logged in as nina"))
        # chat's first request is /token: a line answered means the token is in.
        chat.send("before the drop")
        chat.wait_line(lambda line: line.endswith(" sent"))
        drop_tls_connections(daemon)
        # The login lines of the new login are printed as the first ones were.
        chat.wait_line(lambda _: sum(line.startswith("WELCOME nina")
                                     for line in chat.lines) >= 2, timeout=15)
        chat.send("after the reconnect")
        chat.wait_line(lambda _: sum(line.endswith(" sent") for line in chat.lines) >= 2)
        rc, err = chat.finish()
    finally:
        chat.kill()
    assert rc == EXIT_OK, err
    wait_tls_log(daemon, 2, 0)
    assert logins(daemon, "nina") == 2
    assert re.search(r"login nina from \S+ with a resume token$", daemon.log_text(), re.M)


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
def test_chatbench_over_tls_loses_nothing(ca, tls_chatd):
    """Not a measurement: chatbench's TLS and chatd agree end to end."""
    daemon = tls_chatd()
    res = chatbench("-p", str(daemon.tls_port), "--ca", str(ca.cert), "-n", "20",
                    "-s", "3", "-d", "1", "--login-timeout", str(scaled(60)),
                    "--drain", str(scaled(10)))
    assert res["logged_in"] == 20, res
    assert res["sent"] > 0 and res["delivered"] == res["expected"] == res["sent"] * 19, res
    assert res["lost"] == 0 and not any(res["errors"].values()), res
    tls = res["tls"]
    assert tls["verified"] and tls["handshakes"] == 20 and tls["handshakes_per_s"] > 0, tls

    only = chatbench("-p", str(daemon.tls_port), "--tls", "--handshake-only", "-n", "10", "-s",
                     "0", "--settle", "0", "--login-timeout", str(scaled(60)))
    assert only["tls"]["handshakes"] == 10 and only["logged_in"] == 0, only
    assert not any(only["errors"].values()), only
    # A second round where each client resumes the session of its ticket.
    again = chatbench("-p", str(daemon.tls_port), "--tls", "--handshake-only", "--resume",
                      "-n", "10", "-s", "0", "--settle", "0", "--login-timeout",
                      str(scaled(60)))
    resumed = again["tls_resume"]
    assert resumed["tickets"] == 10 and resumed["handshakes"] == 10, again
    assert resumed["reused"] == 10 and resumed["no_ticket"] == 0, again
    assert not any(again["errors"].values()), again
    assert tls_log(daemon)[1] == 0  # chatd saw every handshake complete
    # A certificate the CA did not sign: every handshake fails, counted as such.
    other = tls_chatd("selfsigned")
    res = chatbench("-p", str(other.tls_port), "--ca", str(ca.cert), "-n", "3", "-s", "0",
                    "--settle", "0", "--login-timeout", str(scaled(20)))
    assert res["errors"]["tls"] == 3 and res["tls"]["handshakes"] == 0, res
    wait_tls_log(other, 3, 3)


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


def test_chatd_plain_login_deny_sends_chat_to_tls(chatd_factory, ca):
    daemon = chatd_factory(tls_cert=str(ca.dir / "server.pem"),
                           tls_key=str(ca.dir / "server.key"), tls_port=0, plain_login="deny")
    res = run_plain(["--name", "quin", "127.0.0.1", str(daemon.port)], "hi\n",
                    password="pw-quin")
    assert res.rc == 4 and "connect with --tls" in res.err, res
    over_tls = run_plain(["--name", "quin", *tls_args(ca, daemon)], "hi\n",
                         password="pw-quin")
    assert over_tls.rc == EXIT_OK, over_tls


def test_a_server_of_tls_1_1_only_is_a_failed_connection(ca, tmp_path):
    """chat speaks TLS 1.2 or 1.3 (chat(1)): a server that offers only TLS
    1.1 (openssl s_server, its security level lowered so that it may) gets
    no handshake, and chat reports a failed connection (status 3), not a
    session, and sends nothing."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-cert",
         str(ca.dir / "server.pem"), "-key", str(ca.dir / "server.key"), "-tls1_1",
         "-cipher", "DEFAULT:@SECLEVEL=0", "-quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        def listening():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, "openssl s_server listens", 10)
        res = run_plain(["--name", "tia", "--tls", "--ca", str(ca.cert), "127.0.0.1",
                         str(port)], "hi\n", password="pw-tia")
    finally:
        server.kill()
        heard = server.communicate()[0]
    assert res.rc == EXIT_CONNECT, res
    assert "TLS handshake failed" in res.err and "protocol version" in res.err, res
    assert b"tia" not in heard and b"pw-tia" not in heard, heard
