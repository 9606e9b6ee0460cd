"""
chatclient.py - drives the chat client in the end-to-end tests.

- run_plain() / start_plain(): chat in its plain (script) mode, over pipes.
- Terminal: chat in its terminal mode inside a detached tmux server with a
  screen of its own; the tests type with send-keys, read the screen with
  capture-pane and get every byte chat wrote to the terminal from
  pipe-pane, so they check both what a person sees and what reached the
  terminal.
- FakeServer: a scripted stand-in for chatd, for what the real one never
  sends (escape sequences, over-long lines, answers never asked for) and
  for races the real one cannot be timed into: the client must not trust
  it.

Every wait polls for its condition with a deadline; nothing sleeps blindly.
"""

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
from pathlib import Path

from chatproto import deadline_in, scaled
from conftest import CHATD_BIN, sanitizer_report

CHAT_BIN = os.path.abspath(os.environ.get(
    "CHAT_BIN", os.path.join(os.path.dirname(CHATD_BIN), "client", "chat")))
TMUX = shutil.which("tmux") or "/usr/bin/tmux"

# What chat(1) documents.
EXIT_OK, EXIT_USAGE, EXIT_RESOLVE, EXIT_CONNECT, EXIT_LOGIN, EXIT_LOST, EXIT_REFUSED = range(7)


def client_env(password=None, **extra):
    """The environment for chat: UTF-8, no inherited password unless given."""
    env = {k: v for k, v in os.environ.items() if k != "CHAT_PASSWORD"}
    env["LANG"] = "C.UTF-8"
    env.pop("LC_ALL", None)
    if password is not None:
        env["CHAT_PASSWORD"] = password
    env.update(extra)
    return env


class Plain:
    """The result of a plain-mode run."""

    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        self.lines = out.splitlines()

    def tagged(self, tag):
        return [line for line in self.lines if line.split(" ", 1)[0] == tag]

    def __repr__(self):
        return f"Plain(rc={self.rc}, out={self.out[-2000:]!r}, err={self.err!r})"


def check_stderr(err):
    report = sanitizer_report(err)
    assert report is None, f"sanitizer report ({report}) from chat:\n{err}"


def run_plain(args, input_text="", password=None, env=None, timeout=20.0):
    """Runs chat ARGS with input_text on a pipe to its end; returns a Plain."""
    proc = subprocess.run([CHAT_BIN, *args], input=input_text.encode("utf-8"),
                          capture_output=True, timeout=scaled(timeout),
                          env=env or client_env(password))
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    check_stderr(err)
    return Plain(proc.returncode, out, err)


class RunningPlain:
    """chat in plain mode with its stdin kept open, read line by line."""

    def __init__(self, args, password=None):
        self.proc = subprocess.Popen([CHAT_BIN, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=client_env(password))
        self.lines = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def send(self, text):
        self.proc.stdin.write(text.encode("utf-8") + b"\n")
        self.proc.stdin.flush()

    def wait_line(self, match, timeout=10.0, since=0):
        """The first printed line from index since on for which match(line) is true."""
        deadline = deadline_in(timeout)
        with self._cond:
            while True:
                for line in self.lines[since:]:
                    if match(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"chat printed no such line; got {self.lines!r}")
                self._cond.wait(left)

    def finish(self, close_input=True, timeout=10.0):
        """(exit code, stderr) once chat exits."""
        if close_input:
            self.proc.stdin.close()
        try:
            rc = self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("chat did not exit") from None
        self._reader.join(scaled(timeout))
        err = self.proc.stderr.read().decode("utf-8", "replace")
        self.proc.stderr.close()
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        check_stderr(err)
        return rc, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Terminal:
    """chat on a tmux screen of width x height, in the locale lang."""

    def __init__(self, args, password=None, width=100, height=30, lang="C.UTF-8",
                 shell=False):
        # A short directory: a unix socket path is limited to 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="chat-tty-"))
        self.sock = str(self.dir / "tmux")
        self.raw_path = self.dir / "raw"
        self.san_prefix = str(self.dir / "san")
        self.status_path = self.dir / "status"
        conf = self.dir / "tmux.conf"
        # remain-on-exit keeps the pane, and what chat left on it, after chat ends.
        conf.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
        env = ["env", "-u", "CHAT_PASSWORD", "-u", "LC_ALL", f"LANG={lang}",
               f"ASAN_OPTIONS=log_path={self.san_prefix}",
               f"TSAN_OPTIONS=log_path={self.san_prefix}",
               f"UBSAN_OPTIONS=log_path={self.san_prefix}"]
        if password is not None:
            env.append(f"CHAT_PASSWORD={password}")
        # chat starts only after pipe-pane is on, so the log has every byte.  Its
        # exit status goes to a file: tmux does not always reap a sanitizer build.
        # The shell outlives a Ctrl-C meant for chat (a trap, unlike an ignored
        # signal, is not inherited).
        script = 'trap : INT; read go; "$@"; echo $? > "$0"'
        command = ["sh", "-c", script, str(self.status_path), *env, CHAT_BIN, *args]
        if shell:
            # shell=True: typed at an interactive bash, with its job control
            # (Ctrl-Z, fg), as a person starts chat: chat is the job, a child
            # of bash.  Its status is written at the first prompt after it
            # ended (none while it is stopped: a job is left then).
            status = shlex.quote(str(self.status_path))
            prompt_command = (f's=$?; if [ -n "$started" ] && ! jobs %% >/dev/null 2>&1; '
                              f'then echo $s > {status}; fi')
            command = ["sh", "-c", 'read go; exec "$@"', "sh", *env, "HISTFILE=/dev/null",
                       "PS1=$ ", f"PROMPT_COMMAND={prompt_command}", "bash", "--norc",
                       "--noprofile", "-i"]
        self._tmux("-f", str(conf), "new-session", "-d", "-x", str(width), "-y", str(height),
                   shlex.join(command))
        self._tmux("pipe-pane", "-o", f"cat >> {shlex.quote(str(self.raw_path))}")
        self._tmux("send-keys", "Enter")
        if shell:
            self.line("started=1; " + shlex.join([CHAT_BIN, *args]))

    def _tmux(self, *args):
        proc = subprocess.run([TMUX, "-S", self.sock, *args], capture_output=True,
                              timeout=scaled(10))
        if proc.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {proc.stderr.decode()!r}")
        return proc.stdout.decode("utf-8", "replace")

    # --- input ---

    def type(self, text):
        """Types text literally (no Enter)."""
        self._tmux("send-keys", "-l", text)

    def keys(self, *keys):
        """Presses keys by tmux name: Enter, C-c, C-d..."""
        self._tmux("send-keys", *keys)

    def line(self, text):
        self.type(text)
        self.keys("Enter")

    def paste(self, text):
        """Pastes text as a terminal does (bracketed paste: line ends included)."""
        self._tmux("set-buffer", "--", text)
        self._tmux("paste-buffer", "-p")

    # --- output ---

    def screen(self):
        """The visible screen, one string per row, trailing blanks cut."""
        return [row.rstrip() for row in self._tmux("capture-pane", "-p").split("\n")]

    def everything(self):
        """Scrollback and screen, wrapped rows joined."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-")

    def raw(self):
        """Every byte chat wrote to the terminal so far."""
        return self.raw_path.read_bytes() if self.raw_path.exists() else b""

    def wait_for(self, predicate, what, timeout=10.0):
        """Polls the screen until predicate(rows) is true; returns the rows."""
        deadline = deadline_in(timeout)
        while True:
            rows = self.screen()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"screen never showed {what}:\n" + "\n".join(rows))
            time.sleep(0.05)

    def wait_text(self, text, timeout=10.0):
        """Waits until text is somewhere in the scrollback or on the screen."""
        deadline = deadline_in(timeout)
        while True:
            everything = self.everything()
            if text in everything:
                return everything
            if time.monotonic() > deadline:
                raise AssertionError(f"terminal never showed {text!r}:\n{everything[-3000:]}")
            time.sleep(0.05)

    def input_row(self):
        """The last non-empty row: where the prompt and the typed text are."""
        rows = [row for row in self.screen() if row]
        return rows[-1] if rows else ""

    # --- the end ---

    def exit_status(self):
        """chat's exit code, or None while it runs."""
        try:
            text = self.status_path.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") else None

    def wait_exit(self, timeout=10.0):
        deadline = deadline_in(timeout)
        while (status := self.exit_status()) is None:
            if time.monotonic() > deadline:
                raise AssertionError("chat did not exit:\n" + "\n".join(self.screen()))
            time.sleep(0.05)
        return status

    def tty_lflag(self):
        """The local modes (termios c_lflag) of the pane's terminal now."""
        tty = self._tmux("display", "-p", "#{pane_tty}").strip()
        fd = os.open(tty, os.O_RDONLY | os.O_NOCTTY)
        try:
            return termios.tcgetattr(fd)[3]
        finally:
            os.close(fd)

    def sanitizer_reports(self):
        return [p.read_text(errors="replace") for p in self.dir.glob("san*")]

    def _pane_processes(self):
        """The pane's shell and its children (chat), by pid."""
        proc = subprocess.run([TMUX, "-S", self.sock, "display", "-p", "#{pane_pid}"],
                              capture_output=True, text=True, timeout=scaled(10))
        pids = [int(p) for p in proc.stdout.split() if p.isdigit()]
        for pid in list(pids):
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    pids += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return pids

    def close(self):
        """Ends tmux (and chat with it); fails on a sanitizer report."""
        reports = self.sanitizer_reports()
        pids = self._pane_processes()
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], capture_output=True,
                       timeout=scaled(10))
        # A sanitizer build's exit-time leak check stops the process's threads
        # with ptrace; where ptrace is not allowed it can spin instead of
        # exiting after the hang-up.  Never leave such a process behind.
        deadline = deadline_in(5)
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if running(p)]
            time.sleep(0.05)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
        assert not reports, "sanitizer report from chat:\n" + "\n".join(reports)


def running(pid):
    """Is pid a live process (not gone, not a zombie)?"""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


FAKE_HELLO = b"HELLO 2 chatd/0.2.0 fake server\n"


def fake_login(server, conn, reader, welcome=None, room=b"lobby", hello=FAKE_HELLO, then=b""):
    """Plays chatd's login to any name and password (the password line goes to
    server.received), with the server's choice of HELLO, WELCOME name and
    default room, and bytes then sent in the same write as the login's OK
    (so the client reads them with it); returns the name the client sent."""
    conn.sendall(hello)
    name = reader.readline().decode().strip()
    conn.sendall(f"PASS known {name} password\n".encode())
    server.received.append(reader.readline())
    who = welcome if welcome is not None else name.encode()
    conn.sendall(b"WELCOME " + who + b" welcome back\nUSERS " + room + b" 1 1 1 " + who +
                 b"\nOK - logged in as " + who + b"\n" + then)
    return name


def pong(line):
    """chatd's answer to a /ping line (PONG TEXT, OK - pong), None for another line."""
    if line.rstrip(b"\r\n") != b"/ping" and not line.startswith(b"/ping "):
        return None
    return b"PONG " + line[6:].rstrip(b"\r\n") + b"\nOK - pong\n"


def answer_until_quit(server, conn, reader, reply=b"OK - fine\n", bye=b"BYE quit bye\n"):
    """Answers each line (kept in server.received) with reply, or reply(line)
    when it is a function; /ping as chatd does (pong()); /quit with bye and
    the end (bye None: as any line, until the client goes)."""
    for line in reader:
        server.received.append(line)
        if bye is not None and line.startswith(b"/quit"):
            conn.sendall(bye)
            return
        answer = pong(line)
        if answer is None:
            answer = reply(line) if callable(reply) else reply
        conn.sendall(answer)


def answer_by_check(server, conn, reader, reply=b"OK - fine\n", extra=b""):
    """Answers as chatd does when messages wait for the disk: the requests
    before a /ping are answered only when the /ping comes (each with reply,
    then extra once, or extra(requests) when it is a function, then the
    PONG); server.batches keeps the requests of each check, in order; /quit
    gets BYE quit and the end."""
    pending = []
    for line in reader:
        server.received.append(line)
        if line.startswith(b"/quit"):
            conn.sendall(b"BYE quit bye\n")
            return
        answer = pong(line)
        if answer is None:
            pending.append(line)
            continue
        server.batches.append(pending)
        more = extra(pending) if callable(extra) else extra
        conn.sendall(reply * len(pending) + more + answer)
        pending = []


class FakeServer:
    """A scripted stand-in for chatd on 127.0.0.1, for what the real one never
    sends: the client must not trust it.

    FakeServer(script): one connection: logs anyone in, sends script (bytes,
    no LF added) with the login's OK, then answers until /quit.
    FakeServer(play=f): one connection, played by f(server, conn, reader)
    from the accept on (fake_login() and answer_until_quit() help).
    FakeServer(plays=[f, g, ...]): one connection after the other, each
    played by its function.

    received: what the plays kept of the client's lines (the password, the
    requests); error: the OSError that ended the plays, if one did.
    """

    def __init__(self, script=b"", play=None, plays=None):
        if plays is None:
            plays = [play if play is not None else self._scripted]
        self.script = script
        self.plays = list(plays)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(len(self.plays))
        self.port = self.listener.getsockname()[1]
        self.received = []
        self.batches = []
        self.error = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _scripted(server, conn, reader):
        fake_login(server, conn, reader, then=server.script)
        answer_until_quit(server, conn, reader)

    def _serve(self):
        try:
            self.listener.settimeout(scaled(20))
            for play in self.plays:
                conn, _ = self.listener.accept()
                # The reader holds the socket open too: both are closed after each connection.
                with conn, conn.makefile("rb") as reader:
                    conn.settimeout(scaled(20))
                    play(self, conn, reader)
        except OSError as e:
            self.error = e
        finally:
            self.listener.close()

    def join(self):
        self.thread.join(scaled(20))
        assert not self.thread.is_alive()
