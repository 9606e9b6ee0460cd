"""
test_client_refusals.py - what chat does with the refusals chatd can send
after the password of a login: ERR 409 (a new name registered by someone
else while its password was being chosen) and ERR 503 (the server filled up
while the password was checked).  A scripted stand-in for chatd sends them,
as the races that cause them cannot be timed against the real one.
"""

import socket
import threading

import pytest

from chatclient import EXIT_CONNECT, EXIT_LOGIN, EXIT_OK, Terminal, run_plain, scaled


class ScriptedServer:
    """Answers the password of connection i with replies[i] (bytes) and
    closes; None logs the name in and answers until /quit; a function is
    called as f(server, conn, reader, first_line) to play the connection."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.firsts = []
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.names = []
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            self.listener.settimeout(scaled(20))
            for reply in self.replies:
                conn, _ = self.listener.accept()
                # The reader holds the socket open too: both are closed after each connection.
                with conn, conn.makefile("rb") as reader:
                    conn.settimeout(scaled(20))
                    self._play(reply, conn, reader)
        except OSError as e:
            self.error = e
        finally:
            self.listener.close()

    def _play(self, reply, conn, reader):
        conn.sendall(b"HELLO 2 chatd/0.2.0 scripted\n")
        first = reader.readline().decode().strip()
        self.firsts.append(first)
        if callable(reply):
            reply(self, conn, reader, first)
            return
        self.names.append(first)
        conn.sendall(f"PASS new {first} choose a password\n".encode())
        reader.readline()
        if reply is not None:
            conn.sendall(reply)
        else:
            welcome(conn, reader, first)

    def join(self):
        self.thread.join(scaled(20))
        assert not self.thread.is_alive()


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
        conn.sendall(b"OK - fine\n")


TAKEN = b"ERR 409 ann was registered by someone else just now; choose another name\n"
FULL = b"ERR 503 server is full (2 clients)\n"


def test_plain_a_name_taken_meanwhile_says_so():
    server = ScriptedServer([TAKEN])
    res = run_plain(["--name", "ann", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert res.rc == EXIT_LOGIN, res
    assert "'ann' was registered by someone else just now" in res.err, res.err


def test_plain_full_after_the_password_is_a_full_server():
    server = ScriptedServer([FULL])
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
    server = ScriptedServer([TAKEN, None])
    term = terminal(["127.0.0.1", str(server.port)], password="pw")
    term.wait_text("Name [")
    term.line("ann")
    term.wait_text("'ann' was registered by someone else just now")
    term.line("bea")
    term.wait_text("-- logged in as bea")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert server.names == ["ann", "bea"]


def test_tty_full_after_the_password_tries_again_later(terminal):
    server = ScriptedServer([FULL, None])
    term = terminal(["--name", "cy", "127.0.0.1", str(server.port)], password="pw")
    term.wait_text("trying again in")
    term.wait_text("-- logged in as cy")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    assert server.names == ["cy", "cy"]


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

    server = ScriptedServer([issue_token, full, resumed])
    term = Terminal(["--name", "cy", "127.0.0.1", str(server.port)], password="pw")
    try:
        term.wait_text("-- logged in again as cy")
        assert "cannot take the connection now" in term.everything()
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK
        server.join()
        assert server.firsts == ["cy", f"RESUME cy {token}", f"RESUME cy {token}"]
    finally:
        term.close()
