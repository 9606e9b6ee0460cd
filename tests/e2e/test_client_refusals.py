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
    closes; None logs the name in and answers until /quit."""

    def __init__(self, replies):
        self.replies = list(replies)
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
                with conn:
                    conn.settimeout(scaled(20))
                    reader = conn.makefile("rb")
                    conn.sendall(b"HELLO 1 chatd/0.1.0 scripted\n")
                    name = reader.readline().decode().strip()
                    self.names.append(name)
                    conn.sendall(f"PASS new {name} choose a password\n".encode())
                    reader.readline()
                    if reply is not None:
                        conn.sendall(reply)
                        continue
                    conn.sendall(f"WELCOME {name} registered\nUSERS 1 1 1 {name}\n"
                                 f"OK - logged in as {name}\n".encode())
                    for line in reader:
                        if line.startswith(b"/quit"):
                            conn.sendall(b"BYE quit bye\n")
                            break
                        conn.sendall(b"OK - fine\n")
        except OSError as e:
            self.error = e
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(scaled(20))
        assert not self.thread.is_alive()


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
