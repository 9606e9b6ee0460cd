"""
conftest.py - starts the real chatd for the end-to-end tests.

Each test gets its own temporary directory with a config file, a state
directory and chatd's stderr.  The fixtures wait for chatd's "listening"
line rather than sleeping, and always stop every chatd a test started:
SIGTERM first (so a sanitizer build gets to report leaks), SIGKILL if that
does not work.  A daemon that died on its own, hung on SIGTERM, exited
non-zero or printed a sanitizer report fails the test at teardown.
The terminals fixture opens chat(1) on ptys for the client tests and
closes them all at teardown.
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import grp
import pwd
from pathlib import Path

import pytest

from chatproto import Client, deadline_in, scaled
from ircproto import IRCClient
from tlsfixtures import TestCA

# Absolute: chatd runs in each test's own directory.
CHATD_BIN = os.path.abspath(os.environ.get("CHATD_BIN", "/work/main/build-e/chatd"))
CHATCTL_BIN = os.path.abspath(os.environ.get("CHATCTL_BIN",
                                             os.path.join(os.path.dirname(CHATD_BIN),
                                                          "ctl", "chatctl")))
SANITIZE = os.environ.get("CHATD_SANITIZE", "")
LISTENING_RE = re.compile(r"chatd: listening on (\S.*)\Z")
ADDRESS_RE = re.compile(r"(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d+)\Z")
KIND_RE = re.compile(r" \(([^()]+)\)\Z")
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")
STOP_TIMEOUT = 5.0


def free_port():
    """A port nobody listens on right now (chatd's port_tries covers a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Ports the fixtures chose for irc_port and tls_port, which have no port_tries:
# one another test took in between is chosen anew (Chatd.start).
_AUTO_PORTS = set()


def auto_port():
    port = free_port()
    _AUTO_PORTS.add(port)
    return port


def format_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    raise TypeError(f"no libconfig form for {value!r}")


def config_text(settings):
    """libconfig text, one setting a line (tests count on the line numbers)."""
    return "".join(f"{name} = {format_value(value)};\n" for name, value in settings.items())


def sanitizer_report(text):
    return next((marker for marker in SANITIZER_REPORTS if marker in text), None)


def parse_listeners(line):
    """[(host, port, kind)] from "chatd: listening on A:P, [B]:P, C:Q (TLS)":
    kind is the word in parentheses after an address ("TLS"...), "" for none."""
    m = LISTENING_RE.match(line)
    if not m:
        raise AssertionError(f"unexpected first line from chatd: {line!r}")
    listeners = []
    for item in re.split(r",\s*(?![^()]*\))", m.group(1).strip()):
        address, kind = item, ""
        k = KIND_RE.search(item)
        if k:
            address, kind = item[:k.start()], k.group(1)
        a = ADDRESS_RE.match(address)
        if not a:
            raise AssertionError(f"bad address {item!r} in {line!r}")
        listeners.append((a.group(1) or a.group(2), int(a.group(3)), kind))
    return listeners


def parse_listening(line, tls=False):
    """[(host, port)]: the plain native listeners, or with tls=True those marked (TLS)."""
    return [(host, port) for host, port, kind in parse_listeners(line)
            if kind == ("TLS" if tls else "")]


class Chatd:
    """One chatd process and its files."""

    def __init__(self, workdir, settings):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.settings = dict(settings)
        self.config_path = self.workdir / "chatd.conf"
        self.stderr_path = self.workdir / "stderr"
        self.proc = None
        self.stopped = False
        self.clients = []
        self.env = {}           # extra environment for chatd (NOTIFY_SOCKET...)
        # default_room as chatd started with it (a reload does not change it)
        self.default_room = self.settings.get("default_room", "lobby")

    # --- files ---

    @property
    def state_dir(self):
        return Path(self.settings["state_dir"])

    def path(self, setting, default_name):
        return Path(self.settings.get(setting, self.state_dir / default_name))

    @property
    def history_path(self):
        return self.path("history_file", "history")

    @property
    def ident_path(self):
        return self.path("ident_file", "ident")

    @property
    def log_path(self):
        return self.path("log_file", "chatd.log")

    @property
    def admin_socket(self):
        return Path(self.settings["admin_socket"])

    def log_text(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stderr_text(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def write_config(self, text=None):
        self.config_path.write_text(config_text(self.settings) if text is None else text)

    # --- process ---

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def command(self):
        """chatd's command line."""
        return [CHATD_BIN, "-c", str(self.config_path)]

    def start(self, timeout=10.0):
        """Starts chatd and waits for its listening line; sets self.port.  A port a
        fixture chose (auto_port) that another process took meanwhile is chosen anew."""
        for _ in range(3):
            try:
                return self._start(timeout)
            except AssertionError as e:
                taken = re.search(r"port (\d+): Address already in use", str(e))
                keys = [k for k, v in self.settings.items()
                        if taken and v == int(taken.group(1)) and v in _AUTO_PORTS]
                if not keys:
                    raise
                for k in keys:
                    self.settings[k] = auto_port()
        return self._start(timeout)

    def _start(self, timeout):
        self.write_config()
        self.default_room = self.settings.get("default_room", "lobby")
        with open(self.stderr_path, "a") as err:
            self.proc = subprocess.Popen(self.command(),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, bufsize=0, cwd=self.workdir,
                                         env={**os.environ, **self.env})
        self.stopped = False
        line = self._first_line(timeout)
        self.addresses = parse_listening(line)
        self.port = self.addresses[0][1] if self.addresses else None
        self.tls_addresses = parse_listening(line, tls=True)
        self.tls_port = self.tls_addresses[0][1] if self.tls_addresses else None
        self.listeners = parse_listeners(line)
        return self

    def _first_line(self, timeout):
        out = b""
        deadline = deadline_in(timeout)
        fd = self.proc.stdout.fileno()
        while b"\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError(f"chatd printed no listening line in time; "
                                     f"stdout {out!r}, stderr:\n{self.stderr_text()}")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                rc = self.proc.wait()
                self.stopped = True
                raise AssertionError(f"chatd exited with {rc} before listening; "
                                     f"stdout {out!r}, stderr:\n{self.stderr_text()}")
            out += chunk
        return out.split(b"\n", 1)[0].decode("utf-8", "replace")

    def send_signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopped = True     # its exit is the test's business now
        self.proc.send_signal(sig)

    def wait(self, timeout=STOP_TIMEOUT):
        """Exit code once chatd exits; AssertionError if it takes longer than timeout."""
        self.stopped = True
        try:
            return self.proc.wait(scaled(timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"chatd did not exit within {scaled(timeout)} s") from None
        finally:
            self.proc.stdout.close()

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Stops chatd with sig; returns its exit code."""
        self.send_signal(sig)
        return self.wait(timeout)

    def restart(self, **overrides):
        """Stops chatd (it must exit 0) and starts it again with settings changed."""
        rc = self.stop()
        assert rc == 0, f"chatd exited with {rc} on SIGTERM; stderr:\n{self.stderr_text()}"
        self.settings["port"] = self.port
        self.settings.update(overrides)
        return self.start()

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self.stopped = True

    def run_expecting_exit(self, *args, write_config=True, timeout=10.0):
        """Runs chatd ARGS -c CONFIG to its end: (exit code, stdout, stderr)."""
        if write_config:
            self.write_config()
        proc = subprocess.Popen([CHATD_BIN, *args, "-c", str(self.config_path)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.workdir)
        try:
            out, err = proc.communicate(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"chatd {' '.join(args)} did not exit; stdout {out!r}, "
                                 f"stderr {err!r}") from None
        err = err.decode("utf-8", "replace")
        report = sanitizer_report(err)
        assert report is None, f"sanitizer report ({report}):\n{err}"
        return proc.returncode, out.decode("utf-8", "replace"), err

    # --- chatctl ---

    def ctl(self, *args, input=None, user=None, socket_path=None, timeout=20.0):
        """Runs chatctl -s SOCKET ARGS: a CompletedProcess (text).  user: run as
        (uid, gid) with that user's groups, through setpriv."""
        cmd = [CHATCTL_BIN, "-s", str(socket_path or self.admin_socket), *args]
        if user is not None:
            cmd = ["setpriv", f"--reuid={user[0]}", f"--regid={user[1]}", "--init-groups",
                   *cmd]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=scaled(timeout), cwd=self.workdir)
        report = sanitizer_report(proc.stderr)
        assert report is None, f"sanitizer report ({report}) from chatctl:\n{proc.stderr}"
        return proc

    def ctl_ok(self, *args, **kwargs):
        """chatctl ARGS must exit 0; returns its stdout."""
        proc = self.ctl(*args, **kwargs)
        assert proc.returncode == 0, (f"chatctl {' '.join(args)} exited {proc.returncode}: "
                                      f"{proc.stderr}")
        return proc.stdout

    # --- clients ---

    def connect(self, label="client", **kwargs):
        client = Client(label, max_line=self.settings.get("max_line", 4096),
                        default_room=self.default_room)
        self.clients.append(client)
        return client.connect(self.port, **kwargs)

    def login(self, name, password=None, **kwargs):
        """A logged-in client; the password defaults to one derived from the name."""
        client = self.connect(name)
        client.hist = client.login(name, password or f"pw-{name.lower()}", **kwargs)
        return client

    # --- IRC (tests/e2e/ircproto.py) ---

    def listener_port(self, *kind):
        """The port of the first listener of that kind: the words in parentheses
        after its address in the listening line ("IRC", "IRC, TLS")."""
        for _, port, k in getattr(self, "listeners", []):
            if re.findall(r"[A-Z]+", k.upper()) == list(kind):
                return port
        return None

    @property
    def irc_port(self):
        """The plain IRC port: as chatd's listening line names it, else the setting."""
        return self.listener_port("IRC") or self.settings.get("irc_port")

    @property
    def irc_tls_port(self):
        return self.listener_port("IRC", "TLS") or self.settings.get("irc_tls_port")

    def irc_connect(self, label="irc", tls=False, **kwargs):
        client = IRCClient(label)
        self.clients.append(client)
        return client.connect(self.irc_tls_port if tls else self.irc_port, tls=tls, **kwargs)

    def irc_login(self, nick, password=None, caps=(), sasl=False, label=None, **kwargs):
        """A registered IRC client (PASS, or with sasl=True SASL PLAIN; both
        register an unknown nick while registration is open); the password
        defaults to the one login() uses."""
        client = self.irc_connect(label or nick)
        final = client.register(nick, password or f"pw-{nick.lower()}", sasl=sasl, caps=caps,
                                **kwargs)
        assert final.command == "001", f"{nick}: registration ended with {final.raw!r}"
        return client

    def add_user(self, name, password=None):
        """Registers name through chatctl (password as login() would use)."""
        self.ctl_ok("user", "add", name, input=(password or f"pw-{name.lower()}") + "\n")

    # --- teardown ---

    def cleanup(self):
        """Stops chatd if still running; returns a list of problems seen."""
        for client in self.clients:
            client.close()
        problems = []
        if self.proc is not None and not self.stopped:
            rc = self.proc.poll()
            if rc is not None:
                problems.append(f"chatd exited by itself with code {rc}")
            else:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    rc = self.proc.wait(scaled(STOP_TIMEOUT))
                except subprocess.TimeoutExpired:
                    self.kill()
                    problems.append("chatd did not exit on SIGTERM at teardown")
                else:
                    if rc != 0:
                        problems.append(f"chatd exited with {rc} on SIGTERM at teardown")
        if self.proc is not None:
            self.kill()
            self.proc.stdout.close()
        report = sanitizer_report(self.stderr_text())
        if report:
            problems.append(f"sanitizer report ({report}) in {self.stderr_path}")
        if problems:
            problems.append("stderr:\n" + self.stderr_text()[-4000:])
        return problems


def base_settings(state_dir, overrides):
    settings = {
        "listen": ["127.0.0.1"],
        "port": free_port(),
        "state_dir": str(state_dir),
        "hash_cost": 1,
        "login_fail_delay_ms": 50,
    }
    if SANITIZE:
        settings["stack_size"] = 1048576
    settings.update(overrides)
    return settings


@pytest.fixture
def chatd_factory(tmp_path):
    """make(start=True, **settings) -> Chatd; every one made is stopped at teardown."""
    made = []
    admin_dirs = []

    def make(start=True, **overrides):
        workdir = tmp_path / f"chatd{len(made)}"
        state_dir = workdir / "state"
        state_dir.mkdir(parents=True)
        # Short, because a socket path has at most 107 bytes; removed at teardown.
        admin_dir = tempfile.mkdtemp(prefix="chatd-admin-")
        admin_dirs.append(admin_dir)
        overrides.setdefault("admin_socket", os.path.join(admin_dir, "admin.sock"))
        daemon = Chatd(workdir, base_settings(state_dir, overrides))
        made.append(daemon)
        return daemon.start() if start else daemon

    yield make
    problems = []
    for daemon in made:
        problems += daemon.cleanup()
    for admin_dir in admin_dirs:
        shutil.rmtree(admin_dir, ignore_errors=True)
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)



# IRC: chatd's IRC gateway runs with irc = true.  A chatd built without it
# refuses that setting at start: the IRC tests are then skipped, with the reason.
_irc_probe = {}


def irc_unsupported_reason():
    """None when CHATD_BIN takes irc = true, else why not (asked once a session)."""
    if "reason" not in _irc_probe:
        workdir = Path(tempfile.mkdtemp(prefix="chatd-ircprobe-"))
        try:
            (workdir / "state").mkdir()
            settings = base_settings(workdir / "state", {
                "admin_socket": str(workdir / "admin.sock"), "irc": True,
                "irc_port": free_port()})
            (workdir / "chatd.conf").write_text(config_text(settings))
            proc = subprocess.run([CHATD_BIN, "-t", "-c", str(workdir / "chatd.conf")],
                                  capture_output=True, text=True, timeout=scaled(20),
                                  cwd=workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if proc.returncode == 0:
            _irc_probe["reason"] = None
        elif "unknown setting 'irc'" in proc.stderr:
            _irc_probe["reason"] = (f"{CHATD_BIN} has no IRC gateway (it refuses the setting "
                                    f"irc: {proc.stderr.strip()})")
        else:
            raise AssertionError(f"chatd -t refused a configuration with irc = true "
                                 f"(exit {proc.returncode}):\n{proc.stderr}")
    return _irc_probe["reason"]


@pytest.fixture
def irc_chatd(chatd_factory):
    """make(start=True, **settings) -> a Chatd with irc = true on a free irc_port
    (Chatd.irc_port, irc_connect, irc_login); skips while chatd has no IRC gateway."""
    reason = irc_unsupported_reason()
    if reason:
        pytest.skip(reason)

    def make(start=True, **overrides):
        settings = {"irc": True, "irc_port": auto_port()}
        settings.update(overrides)
        return chatd_factory(start=start, **settings)
    return make


# TLS: a test CA (tlsfixtures.TestCA) per module, its server pair, and
# tls_chatd(**settings), a chatd with a TLS port; test_client_tls.py has its own.
@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def pair(ca):
    return ca.server("server")


@pytest.fixture
def tls_chatd(chatd_factory, pair):
    def make(**overrides):
        settings = {"tls_cert": str(pair[0]), "tls_key": str(pair[1]), "tls_port": auto_port()}
        settings.update(overrides)
        return chatd_factory(**settings)
    return make


@pytest.fixture
def chatd(chatd_factory):
    """A running chatd with the default test settings."""
    return chatd_factory()


def _run(*cmd):
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def admin_users():
    """Made for the test (needs root): (group name, (uid, gid) of a user who
    is a supplementary member of it, (uid, gid) of an outsider)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create users")
    tag = uuid.uuid4().hex[:6]
    group, member, outsider = f"chtg{tag}", f"chtm{tag}", f"chto{tag}"
    _run("groupadd", group)
    try:
        _run("useradd", "--no-create-home", "--user-group", "--groups", group, member)
        _run("useradd", "--no-create-home", "--user-group", outsider)
        ids = [(pwd.getpwnam(u).pw_uid, pwd.getpwnam(u).pw_gid) for u in (member, outsider)]
        # The member's primary group is its own: the group is only a supplementary one.
        assert ids[0][1] != grp.getgrnam(group).gr_gid
        yield group, ids[0], ids[1]
    finally:
        for user in (member, outsider):
            subprocess.run(["userdel", user], capture_output=True, timeout=60)
        subprocess.run(["groupdel", group], capture_output=True, timeout=60)


@pytest.fixture
def shared_dir():
    """A directory under /tmp every user can reach (pytest's own are root's
    alone), for a chatd that drops root to one of admin_users."""
    path = tempfile.mkdtemp(prefix="chatd-shared-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def terminals():
    """open(args, password=None) -> chat(1) on a pty (chatclient.Terminal); all are
    closed at teardown."""
    from chatclient import Terminal  # only the client tests need it

    opened = []

    def open_terminal(args, password=None, **kwargs):
        term = Terminal(args, password=password, **kwargs)
        opened.append(term)
        return term

    yield open_terminal
    for term in opened:
        term.close()


def pytest_sessionstart(session):
    if not os.access(CHATD_BIN, os.X_OK):
        raise pytest.UsageError(f"chatd binary {CHATD_BIN} not found; build it or set CHATD_BIN")
