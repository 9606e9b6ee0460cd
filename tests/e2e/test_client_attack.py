"""
test_client_attack.py - chat against a hostile or broken server: a scripted
stand-in for chatd on 127.0.0.1 speaks just enough of the protocol, then
misbehaves (escape sequences in the fields the server controls, lines
without an end, silence, answers never asked for).  chat must not crash,
must not wait without a bound, must keep the server's bytes off the
terminal and its standard error, and must exit with the status chat(1)
documents.
"""

import os
import socket
import subprocess
import threading
import time

import pytest

from chatclient import (EXIT_CONNECT, EXIT_LOGIN, EXIT_LOST, EXIT_OK, EXIT_REFUSED, FAKE_HELLO,
                        FakeServer, answer_until_quit, fake_login, pong, run_plain, scaled)
from conftest import CHATCTL_BIN

# An OSC title, a clear screen, a C1 CSI, a bidi override and a stray byte: none
# may reach the terminal (chat(1), TEXT FROM THE NETWORK).
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e".encode() + b"\xff"
FORBIDDEN = (b"\x1b]", b"\x07", b"\x1b[2J", b"\xc2\x9b", "\u202e".encode(), b"\xff")


def assert_clean(data, where):
    """No byte sequence of EVIL in data (bytes or str)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    for bad in FORBIDDEN:
        assert bad not in data, f"{bad!r} reached {where}: {data[-2000:]!r}"


def plain(server, input_text="", args=()):
    return run_plain(["--name", "lee", *args, "127.0.0.1", str(server.port)], input_text,
                     password="pw")


def tty(terminals, server, args=("--color", "never"), **kwargs):
    """chat's terminal mode, logged in as jo to the stand-in."""
    return terminals(["--name", "jo", *args, "127.0.0.1", str(server.port)], password="pw",
                     **kwargs)


# --- plain mode: what reaches standard output and standard error ---------------


def test_plain_a_protocol_version_with_escapes_is_not_echoed_raw():
    """The HELLO's version field is quoted in the refusal: sanitized like the rest."""
    server = FakeServer(play=lambda s, c, r: (c.sendall(b"HELLO 9" + EVIL + b" x\n"),
                                              r.readline()))
    res = plain(server)
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "speaks protocol version" in res.err
    assert_clean(res.err, "standard error")


def test_plain_a_bye_reason_with_escapes_is_not_echoed_raw():
    def play(s, c, r):
        fake_login(s, c, r)
        r.readline()
        c.sendall(b"BYE " + EVIL + b" goodbye\n")

    server = FakeServer(play=play)
    res = plain(server, "hello\n")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "the server ended the session" in res.err
    assert_clean(res.out, "standard output")
    assert_clean(res.err, "standard error")


def silent(server, conn, reader):
    """Accepts and never speaks; returns when the client goes."""
    reader.read()


def test_plain_a_server_that_never_speaks_is_given_up_within_the_timeout():
    server = FakeServer(play=silent)
    start = time.monotonic()
    res = plain(server, "hi\n", args=("--timeout", "1"))
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "no answer from the server during login" in res.err
    assert time.monotonic() - start < scaled(8)


def test_plain_a_login_reply_that_never_ends_is_given_up_within_the_timeout():
    """After the password the server trickles HIST lines, each well within
    --timeout, and never the login's OK: the timeout is for the reply, not
    for each of its lines."""

    def play(s, c, r):
        c.sendall(FAKE_HELLO)
        r.readline()
        c.sendall(b"PASS known lee password\n")
        r.readline()
        c.sendall(b"WELCOME lee welcome back\nUSERS lobby 1 1 1 lee\n")
        try:
            for i in range(40):  # 8 s at most: the hostile server's pace, not a wait
                c.sendall(b"HIST lobby %d 2026-11-21T09:30:00.000Z eve old\n" % (i + 1))
                time.sleep(0.2)
        except OSError:
            pass  # chat hung up, as it should

    server = FakeServer(play=play)
    start = time.monotonic()
    res = plain(server, "hi\n", args=("--timeout", "1"))
    took = time.monotonic() - start
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "no answer from the server during login" in res.err, res
    assert took < scaled(5), took


def test_plain_a_silent_tls_port_is_a_failed_connection_within_the_timeout():
    """A server that accepts and never answers the ClientHello: the handshake's
    own deadline, status 3 (chat(1): a handshake that fails is a failed
    connection), and no password went out."""
    server = FakeServer(play=silent)
    start = time.monotonic()
    res = plain(server, "hi\n", args=("--timeout", "1", "--tls"))
    server.join()
    assert res.rc == EXIT_CONNECT, res
    assert "TLS handshake timed out" in res.err, res
    assert time.monotonic() - start < scaled(8)


def test_plain_endless_data_without_a_newline_ends_the_session():
    """1 MiB and more with no LF: the line is over the protocol's length at once."""

    def play(s, c, r):
        fake_login(s, c, r)
        try:
            for _ in range(64):
                c.sendall(b"x" * 65536)
        except OSError:
            pass  # chat hung up, as it should

    server = FakeServer(play=play)
    res = plain(server)
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "longer than the protocol allows" in res.err


def test_plain_a_close_in_the_middle_of_a_line_prints_no_half_line():
    def play(s, c, r):
        fake_login(s, c, r)
        r.readline()
        c.sendall(b"MSG lobby 7 2026-11-21T09:30:00.000Z eve half a li")
        # A close, not a reset: what chat sent after the line is read to its end.
        c.shutdown(socket.SHUT_WR)
        r.read()

    server = FakeServer(play=play)
    res = plain(server, "hello\n")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "the server closed the connection" in res.err
    assert "half a li" not in res.out


def test_plain_a_name_with_a_line_end_is_refused_before_anything_is_sent():
    """--name goes out as a protocol line: "lee\\nhunter2" would log in with
    hunter2 for a password, and the real password would then go out as a
    message to the room.  chat refuses an invalid name itself (status 4)."""

    def play(s, c, r):
        fake_login(s, c, r)
        answer_until_quit(s, c, r)

    server = FakeServer(play=play)
    res = run_plain(["--name", "lee\nhunter2", "127.0.0.1", str(server.port)], "",
                    password="secret-pw")
    if server.thread.is_alive():  # nothing connected: end the stand-in's wait
        socket.create_connection(("127.0.0.1", server.port)).close()
    server.join()
    assert res.rc == EXIT_LOGIN, res
    assert "invalid name" in res.err
    assert b"secret-pw\n" not in server.received, server.received


# --- terminal mode: what reaches the terminal -----------------------------------

EVIL_ROOM = b"r\x1b]0;pwned\x07\x1b[2J\xc2\x9b31m\xe2\x80\xae"


def test_tty_a_room_name_with_escapes_never_reaches_the_prompt(terminals):
    """The prompt shows the current room: the login's default room, a room
    joined, a JOIN of our own name; none of them may carry the server's
    escapes to the terminal through readline."""

    def play(s, c, r):
        fake_login(s, c, r, room=EVIL_ROOM)
        c.sendall(b"JOIN " + EVIL_ROOM + b"x 2026-11-21T09:30:00.000Z jo joined\n")
        for line in r:
            s.received.append(line)
            if line.startswith(b"/quit"):
                c.sendall(b"BYE quit bye\n")
                return
            c.sendall(pong(line) or b"OK - joined " + EVIL_ROOM + b"y\n")

    server = FakeServer(play=play)
    term = tty(terminals, server)
    term.wait_text("logged in")
    term.line("/join other")
    term.wait_text("joined")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert_clean(term.raw(), "the terminal")


def test_tty_a_welcome_of_another_name_is_refused_and_never_reaches_the_prompt(terminals):
    """The WELCOME names who we are logged in as (the prompt shows it): a name
    that is not the one sent (here with escapes) is a broken protocol, not
    a session under a name nobody asked for."""
    server = FakeServer(play=lambda s, c, r: (fake_login(s, c, r, welcome=b"jo" + EVIL),
                                              answer_until_quit(s, c, r)))
    term = tty(terminals, server)
    assert term.wait_exit() == EXIT_LOST
    server.join()
    assert "welcomed another name than 'jo'" in term.everything()
    assert_clean(term.raw(), "the terminal")


def test_tty_completion_candidates_with_escapes_never_reach_the_terminal(terminals):
    """Tab lists the rooms and the users the server named: the list is printed."""
    script = (b"ROOM a" + EVIL + b" 1 \nROOM a" + EVIL + b"2 1 \n"
              b"USERS lobby 3 1 1 jo b" + EVIL + b" b" + EVIL + b"2\n")

    server = FakeServer(script)
    term = tty(terminals, server)
    term.wait_text("logged in")
    term.type("/join a")
    term.keys("Tab", "Tab")
    term.keys("C-u")
    term.type("/msg b")
    term.keys("Tab", "Tab")
    term.keys("C-u")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    # Readline rings the bell for an ambiguous completion: that BEL is chat's own.
    assert_clean(term.raw().replace(b"\x07", b""), "the terminal")


# --- chatctl against a fake admin socket ----------------------------------------


class FakeAdmin:
    """A Unix socket that plays one connection: play(conn, request_line)."""

    def __init__(self, directory, play):
        self.path = str(directory / "admin.sock")
        self.play = play
        self.requests = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.listener.settimeout(scaled(20))
            conn, _ = self.listener.accept()
            with conn, conn.makefile("rb") as reader:
                conn.settimeout(scaled(20))
                request = reader.readline()
                self.requests.append(request)
                self.play(conn, request)
        except OSError:
            pass
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(scaled(20))
        assert not self.thread.is_alive()


def chatctl(path, *args, timeout=20.0, input_text=None):
    return subprocess.run([CHATCTL_BIN, "-s", path, *args], capture_output=True,
                          timeout=scaled(timeout),
                          input=input_text.encode() if input_text is not None else None)


def test_chatctl_escapes_in_every_reply_line_are_shown_escaped(tmp_path):
    """A user list or log line, the OK summary and an ERR text: what could steer
    the admin's terminal is escaped (\\xNN), whichever line carries it."""
    for reply, rc in ((b"- bob" + EVIL + b"\n- " + EVIL + b"\nOK 2 users\n", 0),
                      (b"OK " + EVIL + b"\n", 0),
                      (b"ERR 404 no user " + EVIL + b"\n", 1),
                      (EVIL + b"\n", 3)):
        admin = FakeAdmin(tmp_path, lambda conn, req, reply=reply: conn.sendall(reply))
        proc = chatctl(admin.path, "users")
        admin.join()
        assert proc.returncode == rc, (reply, proc)
        assert_clean(proc.stdout + proc.stderr, "chatctl's output")
        assert b"\\x1b]0;pwned\\x07" in proc.stdout + proc.stderr, proc
        os.unlink(admin.path)


def test_chatctl_a_silent_socket_is_given_up_within_the_timeout(tmp_path):
    admin = FakeAdmin(tmp_path, lambda conn, req: conn.recv(1))
    start = time.monotonic()
    proc = chatctl(admin.path, "-t", "1", "status")
    assert proc.returncode == 3, proc
    assert time.monotonic() - start < scaled(8)
    assert b"no answer from chatd within 1 s" in proc.stderr
    admin.join()


def test_chatctl_a_reply_cut_short_is_unreachable_not_success(tmp_path):
    admin = FakeAdmin(tmp_path, lambda conn, req: conn.sendall(b"- half a list\n- bo"))
    proc = chatctl(admin.path, "users")
    admin.join()
    assert proc.returncode == 3, proc
    assert b"chatd closed the connection" in proc.stderr


def test_chatctl_an_overlong_line_is_cut_and_the_reply_goes_on(tmp_path):
    reply = b"- " + b"x" * (1 << 20) + b"\n- after\nOK\n"
    admin = FakeAdmin(tmp_path, lambda conn, req: conn.sendall(reply))
    proc = chatctl(admin.path, "users")
    admin.join()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"after\n"
    assert b"longer than" in proc.stderr



def test_tty_messages_from_ever_new_rooms_keep_costing_the_same(terminals):
    """chat remembers the last message id shown from each room (for the
    replays after a reconnect); a server naming ever new rooms must not make
    that record, and the time each line takes, grow without a bound."""
    rooms = 150000
    flood = b"".join(b"MSG r%d %d 2026-11-21T09:30:00.000Z eve x\n" % (i, i + 1)
                     for i in range(rooms))

    server = FakeServer(flood +
                        b"MSG lobby %d 2026-11-21T09:30:00.000Z eve THE-END\n" % (rooms + 1))
    term = tty(terminals, server, height=5)
    # About 2 s once bounded; over a minute when each line searched every room seen.
    # (The flood pushes "logged in" out of the 5,000 lines of scrollback: not waited for.)
    term.wait_text("THE-END", timeout=20)
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()


def test_tty_the_same_users_named_over_and_over_keep_costing_the_same(terminals):
    """chat remembers the users it sees (Tab after /msg), each once: a server
    naming the same thousands of users in line after line must cost chat the
    time of its bytes, not that times every user kept."""
    kept = [b"u%d" % i for i in range(4095)]
    again = b"USERS lobby 10000 1 1 " + b" ".join([kept[-1]] * 10000) + b"\n"
    server = FakeServer(b"USERS lobby 4095 1 1 " + b" ".join(kept) + b"\n" + again * 150 +
                        b"MSG lobby 1 2026-11-21T09:30:00.000Z eve THE-END\n")
    term = tty(terminals, server, height=5)
    # About a second with a hash index; 40 s when each name searched the whole list.
    # (The USERS lines push "logged in" out of the scrollback: not waited for.)
    term.wait_text("THE-END", timeout=15)
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()


def test_chatctl_log_show_and_users_keep_what_users_chose_off_the_terminal(chatd):
    """Names, rooms, topics and lines a user crafted with escapes (all refused by
    chatd): nothing of them reaches the admin's terminal through chatctl."""
    evil = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e".encode() + b"\xff"
    probe = chatd.connect("probe")
    probe.expect_hello()
    probe.send_raw(b"mal" + evil + b"\n")
    probe.expect("ERR")
    probe.send_raw(b"mallory\n")
    probe.expect("PASS")
    probe.send_raw(b"pw-" + evil + b"\n")
    probe.close()
    mal = chatd.login("mallory2")
    for line in (b"/join r" + evil, b"/topic lobby " + evil, b"/msg bob" + evil + b" hi",
                 b"/who " + evil, evil, b"/" + evil):
        mal.send_raw(line + b"\n")
        mal.collect_reply()
    for args in (("log", "show", "200"), ("users",), ("room", "list"), ("user", "list")):
        proc = subprocess.run([CHATCTL_BIN, "-s", str(chatd.admin_socket), *args],
                              capture_output=True, timeout=scaled(20))
        assert proc.returncode == 0, proc
        assert_clean(proc.stdout + proc.stderr, f"chatctl {' '.join(args)}")


ALL_FIELDS = (
    b"HIST lobby 1 2026-11-21T09:30:00.000Z eve" + EVIL + b" old " + EVIL + b"\n"
    b"MSG lobby 2 2026-11-21T09:30:00.000Z eve" + EVIL + b" new " + EVIL + b"\n"
    b"PRIV 2026-11-21T09:30:00.000Z eve" + EVIL + b" jo psst " + EVIL + b"\n"
    b"JOIN lobby 2026-11-21T09:30:00.000Z eve" + EVIL + b" joined " + EVIL + b"\n"
    b"PART lobby 2026-11-21T09:30:00.000Z eve" + EVIL + b" kicked" + EVIL + b" " + EVIL + b"\n"
    b"NOTICE * 2026-11-21T09:30:00.000Z " + EVIL + b"\n"
    b"TOPIC lobby 2026-11-21T09:30:00.000Z eve" + EVIL + b" " + EVIL + b"\n"
    b"TOPIC lobby x" + EVIL + b" eve " + EVIL + b"\n"
    b"ROOM lobby 3" + EVIL + b" " + EVIL + b"\n"
    b"USERS lobby 3" + EVIL + b" 2" + EVIL + b" 9" + EVIL + b" a b" + EVIL + b"\n"
    b"PONG " + EVIL + b"\n"
    b"HELP " + EVIL + b"\n"
    b"OK - " + EVIL + b"\n"
    b"ERR 400" + EVIL + b" " + EVIL + b"\n"
    b"BOGUS " + EVIL + b"\n"
    b"MSG lobby 3 2026-11-21T09:30:00.000Z eve THE-END\n")


# The final replies with escapes, as answers to requests: one never asked for breaks the protocol.
ANSWERS = [line for line in ALL_FIELDS.splitlines(keepends=True)
           if line.startswith((b"OK", b"ERR"))]
LIVE = b"".join(line for line in ALL_FIELDS.splitlines(keepends=True) if line not in ANSWERS)


def test_tty_escapes_in_every_field_of_every_line_never_reach_the_terminal(terminals):
    """Every tag with the server's escapes in each of its fields, colours on."""
    answers = iter(ANSWERS)

    def play(s, c, r):
        fake_login(s, c, r)
        c.sendall(LIVE)
        answer_until_quit(s, c, r, reply=lambda line: next(answers)
                          if line.startswith(b"/ping") else b"OK - fine\n")

    server = FakeServer(play=play)
    term = tty(terminals, server, ("--color", "always"))
    term.wait_text("THE-END")
    for _ in ANSWERS:
        term.line("/ping")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert b"pwned" in term.raw()  # the answers were shown, without their escapes
    assert_clean(term.raw(), "the terminal")


def test_plain_escapes_in_every_field_of_every_line_never_reach_the_output():
    # No OK or ERR but the reply to the line sent, and no line the protocol does not know.
    lines = LIVE.replace(b"BOGUS " + EVIL + b"\n", b"")

    def play(s, c, r):
        fake_login(s, c, r)
        c.sendall(lines)
        answer_until_quit(s, c, r, reply=b"ERR 400" + EVIL + b" " + EVIL + b"\n")

    server = FakeServer(play=play)
    res = plain(server, "hi\n")
    server.join()
    assert res.rc == EXIT_REFUSED, res
    assert "THE-END" in res.out
    assert_clean(res.out, "standard output")
    assert_clean(res.err, "standard error")


def test_chatctl_a_line_end_in_an_argument_is_refused_not_a_second_command(chatd):
    """chatctl joins its arguments into one request line: a TEXT holding a line
    end (a notice, a kick reason, a topic, pasted or from a script) must not
    become a second command, here "stop"."""
    bob = chatd.login("bob")
    for args in (("notice", "hello\nstop"), ("kick", "bob", "bye\r\nstop"),
                 ("room", "topic", "lobby", "news\nstop")):
        proc = subprocess.run([CHATCTL_BIN, "-s", str(chatd.admin_socket), *args],
                              capture_output=True, timeout=scaled(20))
        assert proc.returncode == 2, proc
        assert chatd.alive()
    assert "pid:" in chatd.ctl_ok("status")
    bob.sync()  # neither noticed nor kicked: nothing was sent
    assert not [line for line in bob.live if line.tag in ("NOTICE", "BYE", "TOPIC")], bob.live


def test_tty_a_bye_quit_never_asked_for_is_not_a_normal_end(terminals):
    """BYE quit answers /quit; sent unasked, the session did not end as the user
    wanted: status 5 (chat(1): the server ended the session), as in the plain
    mode, not 0."""

    def play(s, c, r):
        fake_login(s, c, r)
        c.sendall(b"BYE quit bye\n")
        r.read()

    server = FakeServer(play=play)
    term = tty(terminals, server)
    assert term.wait_exit() == EXIT_LOST
    server.join()


def test_tty_an_overlong_line_is_dropped_and_the_session_goes_on(terminals):
    server = FakeServer(b"MSG lobby 1 2026-11-21T09:30:00.000Z eve " + b"y" * (1 << 20) +
                        b"\nMSG lobby 2 2026-11-21T09:30:00.000Z eve THE-END\n")
    term = tty(terminals, server)
    term.wait_text("THE-END")
    assert "longer than the protocol allows" in term.everything()
    assert "yyyy" not in term.everything()
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()


def test_tty_endless_data_does_not_hold_quit_up(terminals):
    """Bytes without end and never a BYE: /quit still ends chat, after its wait for the BYE."""
    def play(s, c, r):
        fake_login(s, c, r)
        try:
            while True:
                c.sendall(b"z" * 65536)
        except OSError:
            pass

    server = FakeServer(play=play)
    term = tty(terminals, server)
    term.wait_text("longer than the protocol allows")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()


def test_tty_a_server_that_never_speaks_is_given_up_within_the_timeout(terminals):
    server = FakeServer(play=silent)
    term = tty(terminals, server, ("--timeout", "1"))
    assert term.wait_exit(timeout=8) == EXIT_LOST
    assert "no answer from the server" in term.everything()
    server.join()


# --- answers never asked for ------------------------------------------------------
#
# chatd answers each request with exactly one OK or ERR, in order, and sends
# neither unasked (docs/PROTOCOL.md "After login"); chat matches them to its
# requests by order, so one more would be taken for the answer to the next.

UNASKED = b"ERR 507 message not stored " + EVIL + b"\n"


def test_plain_an_answer_when_no_line_is_out_is_a_broken_protocol():
    """It comes with the login's OK, before any line is sent."""
    server = FakeServer(UNASKED)
    res = plain(server, "")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "the server broke the protocol" in res.err, res
    assert "answers no request" in res.err, res
    assert_clean(res.out, "standard output")
    assert_clean(res.err, "standard error")


def test_plain_an_ok_for_quit_is_a_broken_protocol_not_a_reason_to_quit_again():
    """BYE answers /quit: an OK for it answers nothing (and chat used to send
    /quit again for every such OK)."""

    def play(s, c, r):
        fake_login(s, c, r)
        for _ in range(20):
            line = r.readline()
            if not line:
                return
            s.received.append(line)
            c.sendall(pong(line) or b"OK - fine\n")

    server = FakeServer(play=play)
    res = plain(server, "hi\n")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "the server broke the protocol" in res.err, res
    assert server.received == [b"pw\n", b"hi\n", b"/ping chat-check-1\n", b"/quit\n"]


def chatd_like(line):
    """What chatd answers to a request line (besides /ping and /quit)."""
    return b"OK - fine\n" if line.startswith(b"/") else b"OK 7 sent\n"


def test_plain_a_late_second_answer_is_never_taken_for_the_next_lines():
    """An ERR that answers nothing arrives after the next line went out, and
    that line's own answer after it: taken for the answer of "two", it made
    chat send "three" before "two" was dealt with (and every answer after
    it went to the line before).  Two answers to one line break the protocol;
    now the three lines of the pipe go together behind one check, and four
    answers before its PONG are one too many."""

    def play(s, c, r):
        fake_login(s, c, r)
        held = b""
        for line in r:
            s.received.append(line)
            c.sendall(held)
            held = b""
            if line.startswith(b"/quit"):
                c.sendall(b"BYE quit bye\n")
                return
            if line == b"two\n":
                c.sendall(UNASKED)
                held = chatd_like(line)  # its own answer, once the next line came
                continue
            c.sendall(pong(line) or chatd_like(line))

    server = FakeServer(play=play)
    res = plain(server, "one\ntwo\nthree\n")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "the server broke the protocol" in res.err, res
    assert server.received[1:5] == [b"one\n", b"two\n", b"three\n", b"/ping chat-check-1\n"]
    assert not res.tagged("BYE"), res
    assert_clean(res.out, "standard output")
    assert_clean(res.err, "standard error")


def test_plain_an_err_arriving_after_the_room_join_went_out_is_not_its_refusal():
    """--room's /join is out when an ERR that answers nothing arrives, then the
    join's own answer: the ERR is not the join refused (status 7), the two
    answers break the protocol (status 5)."""

    def play(s, c, r):
        fake_login(s, c, r)
        s.received.append(r.readline())
        c.sendall(UNASKED)
        c.sendall(b"USERS ops 1 1 1 lee\nOK - joined ops\n")
        answer_until_quit(s, c, r)

    server = FakeServer(play=play)
    res = plain(server, "hello\n", args=("--room", "ops"))
    server.join()
    assert server.received[:2] == [b"pw\n", b"/join ops\n"], server.received
    assert res.rc == EXIT_LOST, res
    assert "the server broke the protocol" in res.err, res
    assert b"hello\n" not in server.received, server.received


@pytest.mark.parametrize("typed, reply", [
    # An ERR 507 after the OK of a message: taken for the answer to the next
    # line sent, it would say a message reached nobody that everyone got.
    ("hello", lambda line: b"OK - fine\n" if line.startswith(b"/") else b"OK 7 sent\n" + UNASKED),
    # BYE answers /quit, not OK.
    ("/quit", lambda line: b"OK - fine\n"),
], ids=["a second answer to a message", "an OK for /quit"])
def test_tty_an_answer_to_no_request_is_a_broken_protocol(terminals, typed, reply):
    server = FakeServer(play=lambda s, c, r: (fake_login(s, c, r),
                                              answer_until_quit(s, c, r, reply, bye=None)))
    term = tty(terminals, server)
    term.wait_text("logged in")
    term.line(typed)
    assert term.wait_exit() == EXIT_LOST
    server.join()
    assert "the server broke the protocol" in term.everything()
    assert "answers no request" in term.everything()
    assert_clean(term.raw(), "the terminal")


def test_tty_a_late_second_answer_is_never_taken_for_the_next_lines(terminals):
    """An ERR that answers nothing comes after the next request went out,
    before that one's own answer: taken for it, chat said "second" was not
    sent though the server took it."""

    def play(s, c, r):
        fake_login(s, c, r)
        late = False
        for line in r:
            s.received.append(line)
            if line.startswith(b"/quit"):
                c.sendall(b"BYE quit bye\n")
                return
            if late:
                c.sendall(UNASKED)
            late = line == b"hello\n"
            c.sendall(pong(line) or chatd_like(line))

    server = FakeServer(play=play)
    term = tty(terminals, server)
    term.wait_text("logged in")
    term.line("hello")
    term.line("second")
    assert term.wait_exit() == EXIT_LOST
    server.join()
    assert "the server broke the protocol" in term.everything()
    assert "not sent" not in term.everything()
    assert_clean(term.raw(), "the terminal")
