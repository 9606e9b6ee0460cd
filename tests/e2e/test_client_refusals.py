"""
test_client_refusals.py - what chat does with the refusals chatd can send
after the password of a login: ERR 409 (a new name registered by someone
else while its password was being chosen) and ERR 503 (the server filled up
while the password was checked).  A scripted stand-in for chatd sends them,
as the races that cause them cannot be timed against the real one.
"""

import functools

import pytest

from chatclient import EXIT_CONNECT, EXIT_LOGIN, EXIT_OK, FakeServer, Terminal, pong, run_plain


def scripted(replies):
    """A FakeServer whose connection i answers the password with replies[i]
    (bytes) and closes; None logs the name in and answers until /quit; a
    function is called as f(server, conn, reader, first_line) to play the
    connection.  Each first line (a name, or RESUME NAME TOKEN) goes to
    server.received."""

    def play(reply, server, conn, reader):
        conn.sendall(b"HELLO 2 chatd/0.2.0 scripted\n")
        first = reader.readline().decode().strip()
        server.received.append(first)
        if callable(reply):
            reply(server, conn, reader, first)
            return
        conn.sendall(f"PASS new {first} choose a password\n".encode())
        reader.readline()
        if reply is not None:
            conn.sendall(reply)
        else:
            welcome(conn, reader, first)

    return FakeServer(plays=[functools.partial(play, reply) for reply in replies])


def welcome(conn, reader, name, token=None):
    """Logs name in; answers until /quit, or with token, /token and then drops the connection."""
    conn.sendall(f"WELCOME {name} registered\nUSERS lobby 1 1 1 {name}\n"
                 f"OK - logged in as {name}\n".encode())
    for line in reader:
        if line.startswith(b"/quit"):
            conn.sendall(b"BYE quit bye\n")
            return
        if line.startswith(b"/token") and token:
            conn.sendall(f"OK - {token} 2099-01-01T00:00:00.000Z resume token\n".encode())
            return
        conn.sendall(pong(line) or b"OK - fine\n")


TAKEN = b"ERR 409 ann was registered by someone else just now; choose another name\n"
FULL = b"ERR 503 server is full (2 clients)\n"
THROTTLED = b"ERR 429 too many failed logins; try again later\n"


def test_plain_a_name_taken_meanwhile_says_so():
    server = scripted([TAKEN])
    res = run_plain(["--name", "ann", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert res.rc == EXIT_LOGIN, res
    assert "'ann' was registered by someone else just now" in res.err, res.err


def test_plain_full_after_the_password_is_a_full_server():
    server = scripted([FULL])
    res = run_plain(["--name", "ann", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert res.rc == EXIT_CONNECT, res
    assert "cannot take the connection now" in res.err, res.err


@pytest.fixture
def terminal():
    opened = []

    def open_terminal(args, password=None):
        opened.append(Terminal(args, password=password))
        return opened[-1]

    yield open_terminal
    for term in opened:
        term.close()


def test_tty_a_name_taken_meanwhile_asks_for_another(terminal):
    server = scripted([TAKEN, None])
    term = terminal(["127.0.0.1", str(server.port)], password="pw")
    term.wait_text("Name [")
    term.line("ann")
    term.wait_text("'ann' was registered by someone else just now")
    term.line("bea")
    term.wait_text("-- logged in as bea")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert server.received == ["ann", "bea"]


def test_tty_full_after_the_password_tries_again_later(terminal):
    server = scripted([FULL, None])
    term = terminal(["--name", "cy", "127.0.0.1", str(server.port)], password="pw")
    term.wait_text("trying again in")
    term.wait_text("-- logged in as cy")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert server.received == ["cy", "cy"]


def test_tty_too_many_failed_logins_ends_the_first_login(terminal):
    """ERR 429 after the password at the first login: status 4 (chat(1)), and
    no new connection at once with the same password (which the throttle would
    refuse again and count against the name)."""
    server = scripted([THROTTLED])
    term = terminal(["--name", "cy", "127.0.0.1", str(server.port)], password="pw")
    assert term.wait_exit() == EXIT_LOGIN
    server.join()
    assert server.received == ["cy"]
    assert "too many failed logins" in term.everything()


def test_tty_full_after_a_resume_keeps_the_token():
    """A good token answered with ERR 503 (full when the resumed login would join)
    is tried again later, not forgotten for the password."""
    token = "ab" * 32

    def issue_token(server, conn, reader, name):
        conn.sendall(f"PASS known {name} password\n".encode())
        reader.readline()
        welcome(conn, reader, name, token)

    def full(server, conn, reader, first):
        conn.sendall(FULL)

    def resumed(server, conn, reader, first):
        welcome(conn, reader, first.split()[1])

    server = scripted([issue_token, full, resumed])
    term = Terminal(["--name", "cy", "127.0.0.1", str(server.port)], password="pw")
    try:
        term.wait_text("-- logged in again as cy")
        assert "cannot take the connection now" in term.everything()
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK
        server.join()
        assert server.received == ["cy", f"RESUME cy {token}", f"RESUME cy {token}"]
    finally:
        term.close()
