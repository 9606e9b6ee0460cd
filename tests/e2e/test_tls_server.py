"""
test_tls_server.py - chatd's TLS listener end to end, spoken to with Python's
ssl module and certificates from a test CA (tlsfixtures.py): login, rooms and
history over TLS; old versions and plaintext refused on the TLS port; a
handshake that never ends dropped at handshake_timeout; a TLS-only server;
plain_login; session resumption; many members getting traffic through the
write-through (SSL_write on the publisher's thread), which the TSan build
checks for races; and a certificate renewed by SIGHUP while clients talk.
"""

import signal
import socket
import ssl
import time
import warnings

import pytest

from chatproto import Client, Closed, closed_without_reply, deadline_in, scaled, wait_until
from conftest import SANITIZE, free_port
from tlsfixtures import TLSClient, tls_client, tls_login



def test_login_rooms_and_history_over_tls(tls_chatd, ca):
    chatd = tls_chatd()
    alice = tls_login(chatd, ca, "alice")
    assert alice.sock.version() == "TLSv1.3"
    first = alice.say("hello over TLS")
    data, final = alice.request("/join den")
    assert final.tag == "OK" and final.raw == "OK - joined den"
    alice.say("in the den")

    bob = tls_login(chatd, ca, "bob")
    assert [h.id for h in bob.hist] == [first]
    assert bob.hist[0][2:] == ["alice", "hello over TLS"]
    data, final = bob.request("/join den")
    assert any(line.tag == "HIST" and line.raw.endswith("alice in the den") for line in data)
    bob.say("hi alice")
    msg = alice.wait_for("MSG", lambda m: m[2:] == ["bob", "hi alice"])
    assert msg.room == "den"
    data, final = bob.request("/history den 10")
    assert final.tag == "OK"
    assert "handshake" not in chatd.log_text()


def test_tls_1_2_still_accepted_unless_1_3_is_the_minimum(tls_chatd, ca):
    chatd = tls_chatd()
    ctx = ca.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    c = tls_client(chatd, ca, "old", ctx=ctx)
    assert c.sock.version() == "TLSv1.2"
    c.expect_hello()

    strict = tls_chatd(tls_min_version="1.3")
    with pytest.raises(ssl.SSLError, match="(?i)protocol.version|unsupported"):
        tls_client(strict, ca, "old", ctx=ca.context(maximum_version=ssl.TLSVersion.TLSv1_2))


def test_tls_1_0_and_1_1_refused(tls_chatd, ca):
    chatd = tls_chatd()
    for version in ("TLSv1", "TLSv1_1"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = getattr(ssl.TLSVersion, version)
            ctx.maximum_version = getattr(ssl.TLSVersion, version)
        raw = socket.create_connection(("127.0.0.1", chatd.tls_port))
        # The server's alert, not a client that could not offer the version.
        with pytest.raises(ssl.SSLError, match="(?i)protocol.version|unsupported.protocol"):
            ctx.wrap_socket(raw, server_hostname="localhost")
        raw.close()
    wait_until(lambda: chatd.log_text().count("TLS handshake failed") >= 2,
               "two failed handshakes logged")


def test_plaintext_on_the_tls_port_is_closed_without_a_plain_line(tls_chatd):
    chatd = tls_chatd()
    with socket.create_connection(("127.0.0.1", chatd.tls_port)) as s:
        s.sendall(b"alice\npw-alice\n")
        got = closed_without_reply(s)
    assert b"HELLO" not in got and b"ERR" not in got
    wait_until(lambda: "TLS handshake failed" in chatd.log_text(), "the failure logged")


def test_a_handshake_that_never_ends_is_dropped_at_the_deadline(tls_chatd, ca):
    chatd = tls_chatd(handshake_timeout=1)
    silent = socket.create_connection(("127.0.0.1", chatd.tls_port))
    trickle = socket.create_connection(("127.0.0.1", chatd.tls_port))
    trickle.sendall(b"\x16\x03\x01")  # the start of a ClientHello record, never finished
    start = time.monotonic()
    # Meanwhile a real client is served.
    tls_login(chatd, ca, "alice")
    for s in (silent, trickle):
        closed_without_reply(s, timeout=5)
        s.close()
    assert time.monotonic() - start < scaled(4)
    wait_until(lambda: chatd.log_text().count("TLS handshake took too long") == 2,
               "both timeouts logged")


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class MemoryTLS:
    """TLS over a plain socket through ssl.MemoryBIO, so a test can send a
    record in pieces."""

    def __init__(self, port, ctx):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.settimeout(scaled(10))
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.sock.sendall(self.out.read())
                self.inc.write(self.sock.recv(65536))
        self.sock.sendall(self.out.read())

    def record(self, data):
        self.obj.write(data)
        return self.out.read()

    def read_until(self, marker):
        got = b""
        while marker not in got:
            try:
                got += self.obj.read(65536)
            except ssl.SSLWantReadError:
                data = self.sock.recv(65536)
                assert data, f"closed; got {got!r}"
                self.inc.write(data)
        return got


def test_half_a_record_does_not_make_the_thread_spin(tls_chatd, ca):
    chatd = tls_chatd()
    conn = MemoryTLS(chatd.tls_port, ca.context())
    assert b"HELLO" in conn.read_until(b"\n")
    record = conn.record(b"alice\n")
    conn.sock.sendall(record[:len(record) // 2])
    before = cpu_ticks(chatd.pid)
    time.sleep(1)  # what is measured is how much CPU a second of waiting costs
    spent = cpu_ticks(chatd.pid) - before
    assert spent < 20, f"chatd used {spent} ticks waiting for the rest of a record"
    conn.sock.sendall(record[len(record) // 2:])
    assert b"PASS new alice" in conn.read_until(b"alice\n")
    conn.sock.close()


def test_tls_only_server(tls_chatd, ca):
    chatd = tls_chatd(port=-1)
    assert chatd.addresses == [] and chatd.port is None
    assert chatd.tls_addresses == [("127.0.0.1", chatd.tls_port)]
    alice = tls_login(chatd, ca, "alice")
    alice.say("only TLS here")
    status = chatd.ctl_ok("status")
    assert f"listening: 127.0.0.1:{chatd.tls_port} (TLS)" in status


def test_no_listener_at_all_is_a_config_error(chatd_factory):
    chatd = chatd_factory(start=False, port=-1)
    rc, out, err = chatd.run_expecting_exit()
    assert rc != 0
    assert f"{chatd.config_path}:2: 'port' is -1" in err


def test_a_broken_certificate_stops_chatd_with_the_file_named(chatd_factory, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    chatd = chatd_factory(start=False, tls_cert=str(bad), tls_port=free_port())
    rc, out, err = chatd.run_expecting_exit()
    assert rc != 0
    assert f"tls_cert {bad}:" in err
    # "chatd -t" checks the pair too, before a reload would refuse it.
    rc, out, err = chatd.run_expecting_exit("-t")
    assert rc == 1 and f"tls_cert {bad}:" in err


def test_plain_login_deny_names_the_tls_port(tls_chatd, ca):
    chatd = tls_chatd(plain_login="deny")
    plain = chatd.connect("plain")
    plain.expect_hello()
    plain.send_line("alice")
    err = plain.expect("ERR")
    assert err.raw == (f"ERR 426 no passwords in clear here: log in over TLS on port "
                       f"{chatd.tls_port}")
    bye = plain.read()
    assert bye.tag == "BYE" and bye[0] == "refused"
    # A token is a secret too.
    plain = chatd.connect("resume")
    plain.expect_hello()
    plain.send_line("RESUME alice " + "0" * 64)
    assert plain.expect("ERR")[0] == "426"
    tls_login(chatd, ca, "alice")


def test_plain_login_loopback_and_allow(tls_chatd):
    chatd = tls_chatd(plain_login="loopback")
    chatd.login("alice")  # from 127.0.0.1
    allow = tls_chatd(plain_login="allow")
    allow.login("bob")


def test_plain_login_loopback_refuses_another_address(tls_chatd):
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("no address but loopback on this machine")
    chatd = tls_chatd(listen=["0.0.0.0"], plain_login="loopback")
    plain = Client("remote")
    chatd.clients.append(plain)
    plain.connect(chatd.port, host=addr)
    plain.expect_hello()
    plain.send_line("alice")
    assert plain.expect("ERR")[0] == "426"


def non_loopback_address():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") else addr


def test_tls_session_resumed(tls_chatd, ca):
    chatd = tls_chatd()
    ctx = ca.context()
    first = tls_login(chatd, ca, "alice", ctx=ctx)
    first.sync()  # the tickets came with the handshake; reading took them in
    session = first.sock.session
    assert session is not None and session.has_ticket
    again = tls_client(chatd, ca, "alice2", ctx=ctx, session=session)
    again.expect_hello()
    assert again.sock.session_reused


SMALLEST_STACK = {} if SANITIZE else {"stack_size": 65536}


@pytest.mark.parametrize("settings", [{}, {"history_sync_ms": 20, **SMALLEST_STACK}],
                         ids=["durable", "relaxed-small-stack"])
def test_write_through_to_many_tls_members(tls_chatd, ca, settings):
    """Idle members get room traffic written by the publisher's thread
    (SSL_write under the room lock) while they sleep: the commit thread, or
    with history_sync_ms the sender's own thread (on the smallest stack a
    client thread may have, where handshakes run too); a mix of TLS and
    plain members, a burst from one sender, every line in order for
    everyone."""
    chatd = tls_chatd(send_queue_limit=4194304, **settings)
    members = [tls_login(chatd, ca, f"t{i}") for i in range(12)]
    plain = [chatd.login(f"p{i}") for i in range(4)]
    sender = tls_login(chatd, ca, "sender")
    for m in members + plain:
        m.sync()
    count = 300
    ids = []
    for i in range(count):
        sender.send_line(f"burst {i} " + "x" * (i % 200))
    for _ in range(count):
        line = sender.read(timeout=30)
        while line.tag != "OK":
            line = sender.read(timeout=30)
        ids.append(line.id)
    for m in members + plain:
        got = []
        deadline = deadline_in(60)
        while len(got) < count:
            line = m._read_by(deadline)
            if line.tag == "MSG" and line[2] == "sender":
                got.append(line.id)
        assert got == ids, f"{m.label} got them out of order"
    # Members talk back over TLS too.
    members[0].say("done")


def test_a_tls_member_that_reads_slowly_gets_everything_in_order(tls_chatd, ca):
    """Its socket fills up: SSL_write says "again" in the write-through and in
    the thread's own flushes, which must retry with the same bytes first; it
    reads late and still gets every line, in order, nobody dropped."""
    chatd = tls_chatd(send_queue_limit=8388608)
    slow = tls_login(chatd, ca, "slow", rcvbuf=4096)
    quick = tls_login(chatd, ca, "quick")
    sender = tls_login(chatd, ca, "sender")
    count, ids = 6000, []
    for i in range(count):
        sender.send_line(f"line {i} " + "y" * 1000)
        if i % 50 == 49:  # pipelined in steps, as the server paces a backed-up room
            while len(ids) < i + 1:
                line = sender.read(timeout=60)
                if line.tag == "OK":
                    ids.append(line.id)
    while len(ids) < count:
        line = sender.read(timeout=60)
        if line.tag == "OK":
            ids.append(line.id)
    for member in (quick, slow):
        got, deadline = [], deadline_in(120)
        while len(got) < count:
            line = member._read_by(deadline)
            if line.tag == "MSG" and line[2] == "sender":
                got.append(line.id)
        assert got == ids, f"{member.label} lost or reordered lines"
    slow.say("still here")
    assert "overflow" not in chatd.log_text()


def test_sighup_renews_the_certificate_while_clients_talk(tls_chatd, ca, pair, tmp_path):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(pair[0].read_bytes())
    key.write_bytes(pair[1].read_bytes())
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    assert "subject: CN=localhost" in tls_status(chatd)
    talkers = [tls_login(chatd, ca, f"u{i}") for i in range(4)]
    for t in talkers:
        t.say("before")

    # A broken pair: logged, the old one stays.
    cert.write_text("garbage\n")
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: "keeping the TLS certificate loaded before" in chatd.log_text(),
               "the broken pair logged")
    old = tls_client(chatd, ca, "old")
    assert old.sock.getpeercert()["subject"] == ((("commonName", "localhost"),),)

    # A renewal (another key and name), while everyone talks.
    new_cert, new_key = ca.server("renewed", cn="chat.test")
    cert.write_bytes(new_cert.read_bytes())
    key.write_bytes(new_key.read_bytes())
    chatd.send_signal(signal.SIGHUP)
    for i, t in enumerate(talkers):
        t.say(f"during {i}")
    wait_until(lambda: "CN=chat.test" in tls_status(chatd), "the new certificate in use")
    for t in talkers:
        t.say("after")  # nobody was dropped
    fresh = tls_client(chatd, ca, "fresh")
    assert fresh.sock.getpeercert()["subject"] == ((("commonName", "chat.test"),),)
    fresh.expect_hello()
    old.expect_hello()  # the connection from before the renewal goes on


def tls_status(chatd):
    return next((line for line in chatd.ctl_ok("status").splitlines()
                 if line.startswith("tls:")), "")


def test_status_and_expiry_warning(tls_chatd, ca):
    cert, key = ca.server("soon", days=3)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    line = tls_status(chatd)
    assert line.startswith("tls: subject: CN=localhost, expires ")
    wait_until(lambda: "expires in 2 days" in chatd.log_text()
               or "expires in 3 days" in chatd.log_text(), "the expiry warning")


def test_tls_client_closed_by_shutdown_gets_bye(tls_chatd, ca):
    chatd = tls_chatd()
    alice = tls_login(chatd, ca, "alice")
    assert chatd.stop() == 0
    bye = alice.read()
    assert bye.tag == "BYE" and bye[0] == "shutdown"
    with pytest.raises(Closed):
        alice.read()
    assert isinstance(alice, TLSClient)


def test_pause_and_resume_the_tls_listener_too(tls_chatd, ca):
    chatd = tls_chatd()
    alice = tls_login(chatd, ca, "alice")
    assert chatd.ctl_ok("pause") == "paused\n"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", chatd.tls_port)).close()
    alice.say("still talking while paused")
    assert chatd.ctl_ok("resume") == (f"listening on 127.0.0.1:{chatd.port}, "
                                      f"127.0.0.1:{chatd.tls_port} (TLS)\n")
    tls_login(chatd, ca, "bob").say("in again")


def test_server_full_is_said_inside_tls(tls_chatd, ca):
    """max_clients reached at WELCOME: the refusal goes through the session,
    not as a plain line on the socket (which would break the TLS stream)."""
    chatd = tls_chatd(max_clients=1)
    bob = tls_client(chatd, ca, "bob")  # in before alice: refused only at its WELCOME
    bob.expect_hello()
    tls_login(chatd, ca, "alice")
    bob.send_line("bob")
    bob.expect("PASS")
    bob.send_line("pw-bob")
    err = bob.expect("ERR")
    assert err.raw == "ERR 503 server is full (1 clients)"
