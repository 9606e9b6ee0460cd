"""
chatproto.py - a strict little client for the chatd protocol (docs/PROTOCOL.md),
used by the end-to-end tests.

Strict on purpose: every server line is parsed with the field table of the
protocol, must be valid UTF-8, must fit the server line limit and must carry
well-formed times and ids, so a daemon that bends the format fails the test
that happened to read the line.  Every read has a deadline.
"""

import os
import re
import select
import socket
import struct
import time

# Sanitizer builds run several times slower; every deadline stretches with them.
SCALE = 4 if os.environ.get("CHATD_SANITIZE", "") in ("address", "thread") else 1
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_LINE = 4096
SERVER_OVERHEAD = 128


def scaled(seconds):
    return seconds * SCALE


def closed_without_reply(sock, timeout=5.0):
    """Everything the peer sends until it closes; fails if it stays open."""
    sock.settimeout(scaled(timeout))
    got = b""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return got
            got += data
    except ConnectionResetError:
        return got
    except socket.timeout:
        raise AssertionError(f"still open after {timeout} s; got {got!r}") from None


def deadline_in(seconds):
    """The monotonic time seconds (scaled) from now."""
    return time.monotonic() + scaled(seconds)


def wait_until(condition, what, timeout=5):
    """Polls: a file's contents and a reload's effect offer nothing to block on."""
    deadline = deadline_in(timeout)
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def reply(client, text):
    """(data lines as raw strings, final line raw)."""
    data, final = client.request(text)
    return [d.raw for d in data], final.raw


def ok(client, text):
    """The request's (data, final), its final line an OK."""
    data, final = client.request(text)
    assert final.tag == "OK", (text, final.raw)
    return data, final


def no_time(raw):
    """A line with its RFC 3339 time replaced by T, to compare whole lines."""
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "T", raw)


PROTO_VERSION = "2"
DEFAULT_ROOM = "lobby"
# Number of fields after the tag; the last one is free text.  For the tags
# in ROOM_TAGS the first field is the room, and for NOTICE the target
# (`*` or a room): Line keeps it apart (.room, .target) and its list holds
# the fields after it, so indices are those of protocol version 1.
FIELDS = {
    "HELLO": 3, "PASS": 3, "WELCOME": 2, "USERS": 5, "HIST": 5, "MSG": 5,
    "PRIV": 4, "JOIN": 4, "PART": 5, "NOTICE": 3, "TOPIC": 4, "ROOM": 3,
    "PONG": 1, "HELP": 1, "OK": 2, "ERR": 2, "BYE": 2,
}
ROOM_TAGS = frozenset(("USERS", "HIST", "MSG", "JOIN", "PART", "TOPIC", "ROOM"))
LIVE_TAGS = frozenset(("MSG", "PRIV", "JOIN", "PART", "NOTICE", "TOPIC"))
FINAL_TAGS = frozenset(("OK", "ERR", "BYE"))
# The time field's index (room or target left out).
TIME_FIELD = {"HIST": 1, "MSG": 1, "PRIV": 0, "JOIN": 0, "PART": 0, "NOTICE": 0}
PART_REASONS = frozenset(("quit", "lost", "timeout", "overflow", "replaced",
                          "kicked", "shutdown", "refused", "left", "deleted", "error"))
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
ROOM_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}\Z")


class ProtocolError(AssertionError):
    """The server said something the protocol does not allow here."""


class Timeout(ProtocolError):
    """Nothing (or not the awaited line) arrived before the deadline."""


class Closed(ProtocolError):
    """The server closed or reset the connection."""


class Line(list):
    """A parsed server line: a list of its fields, plus .tag and .raw."""

    def __init__(self, raw):
        tag, sep, rest = raw.partition(" ")
        if tag not in FIELDS:
            raise ProtocolError(f"unknown tag in server line {raw!r}")
        n = FIELDS[tag]
        fields = rest.split(" ", n - 1) if sep else []
        if len(fields) == n - 1:
            fields.append("")   # empty free text, its space left out
        if len(fields) != n:
            raise ProtocolError(f"{tag} needs {n} fields: {raw!r}")
        self.room = self.target = None
        if tag in ROOM_TAGS:
            self.room = fields.pop(0)
            if not ROOM_RE.match(self.room):
                raise ProtocolError(f"bad room in {raw!r}")
        elif tag == "NOTICE":
            self.target = fields.pop(0)
            if self.target != "*" and not ROOM_RE.match(self.target):
                raise ProtocolError(f"bad notice target in {raw!r}")
        super().__init__(fields)
        self.tag = tag
        self.raw = raw
        self._check_format()

    def _check_format(self):
        if self.tag in TIME_FIELD and not TIME_RE.match(self[TIME_FIELD[self.tag]]):
            raise ProtocolError(f"bad time in {self.raw!r}")
        if self.tag == "TOPIC" and not (TIME_RE.match(self[0]) or self[:3] == ["-", "-", ""]):
            raise ProtocolError(f"bad TOPIC in {self.raw!r}")
        if self.tag == "ROOM" and not self[0].isdigit():
            raise ProtocolError(f"bad member count in {self.raw!r}")
        if self.tag in ("HIST", "MSG") and not self[0].isdigit():
            raise ProtocolError(f"bad id in {self.raw!r}")
        if self.tag == "OK" and self[0] != "-" and not self[0].isdigit():
            raise ProtocolError(f"bad OK id in {self.raw!r}")
        if self.tag == "ERR" and not re.fullmatch(r"[1-5]\d\d", self[0]):
            raise ProtocolError(f"bad ERR code in {self.raw!r}")
        if self.tag in ("PART", "BYE"):
            reason = self[2] if self.tag == "PART" else self[0]
            if reason not in PART_REASONS:
                raise ProtocolError(f"unknown reason in {self.raw!r}")

    @property
    def id(self):
        return int(self[0])

    def __repr__(self):
        return f"Line({self.raw!r})"

    # A Line is a list, and lists are unhashable; keep it that way explicitly.
    __hash__ = None


class Client:
    """One TCP connection to chatd.

    Live traffic (MSG, PRIV, JOIN, PART, NOTICE) read while waiting for
    something else is kept in self.live, oldest first, so no line is lost.
    """

    def __init__(self, label="client", max_line=DEFAULT_MAX_LINE, default_room=DEFAULT_ROOM):
        self.label = label
        self.default_room = default_room  # where a login puts the user (default_room)
        self.max_server_line = max_line + SERVER_OVERHEAD
        self.sock = None
        self.buf = b""
        self.pos = 0
        self.live = []
        self.name = None
        self.users = None

    def __repr__(self):
        return f"Client({self.label})"

    # --- connection ---

    def connect(self, port, source_addr=None, rcvbuf=None, host="127.0.0.1",
                timeout=DEFAULT_TIMEOUT):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                # Before connect(), so the window is negotiated that small.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if source_addr is not None:
                sock.bind((source_addr, 0))
            sock.settimeout(scaled(timeout))
            sock.connect((host, port))
            # Writes may block while chatd is busy; reads use select() deadlines.
            sock.settimeout(scaled(30))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def abort(self):
        """Closes with SO_LINGER 0: the peer sees a reset, not an orderly close."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    # --- raw I/O ---

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_line(self, text):
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        self.sock.sendall(data + b"\n")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            pending = self.buf[self.pos:self.pos + 200]
            raise Timeout(f"{self.label}: no complete line in time (pending {pending!r})")
        ready, _, _ = select.select([self.sock], [], [], left)
        if not ready:
            return
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError as e:
            raise Closed(f"{self.label}: connection reset") from e
        if not data:
            raise Closed(f"{self.label}: connection closed "
                         f"(pending {self.buf[self.pos:self.pos + 200]!r})")
        self.buf = self.buf[self.pos:] + data
        self.pos = 0

    def read_line(self, timeout=DEFAULT_TIMEOUT):
        """The next server line as text, without its LF."""
        return self._read_line_by(deadline_in(timeout))

    def _read_line_by(self, deadline):
        while True:
            nl = self.buf.find(b"\n", self.pos)
            if nl >= 0:
                raw = self.buf[self.pos:nl]
                self.pos = nl + 1
                return self._decode(raw)
            if len(self.buf) - self.pos >= self.max_server_line:
                raise ProtocolError(f"{self.label}: server line longer than "
                                    f"{self.max_server_line} bytes")
            self._fill(deadline)

    def _decode(self, raw):
        if len(raw) + 1 > self.max_server_line:
            raise ProtocolError(f"{self.label}: server line of {len(raw) + 1} bytes "
                                f"exceeds {self.max_server_line}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{self.label}: server sent invalid UTF-8 {raw!r}") from e

    def read(self, timeout=DEFAULT_TIMEOUT):
        return Line(self.read_line(timeout))

    def _read_by(self, deadline):
        return Line(self._read_line_by(deadline))

    def expect(self, tag, *prefix, timeout=DEFAULT_TIMEOUT):
        """Reads one line; it must have this tag and start with these fields."""
        line = self.read(timeout)
        if line.tag != tag or list(line[:len(prefix)]) != list(prefix):
            want = " ".join((tag,) + prefix)
            raise ProtocolError(f"{self.label}: expected {want!r}, got {line.raw!r}")
        return line

    def read_until_closed(self, timeout=DEFAULT_TIMEOUT):
        """Every line until the server closes; raises Timeout if it does not."""
        lines = []
        deadline = deadline_in(timeout)
        while True:
            try:
                lines.append(self._read_by(deadline))
            except Closed:
                return lines

    # --- login ---

    def expect_hello(self, timeout=DEFAULT_TIMEOUT):
        hello = self.expect("HELLO", timeout=timeout)
        if hello[0] != PROTO_VERSION or not hello[1].startswith("chatd/"):
            raise ProtocolError(f"{self.label}: bad greeting {hello.raw!r}")
        return hello

    def login(self, name, password, expect_pass=None, pipeline=False,
              hello_timeout=DEFAULT_TIMEOUT):
        """HELLO -> PASS -> WELCOME/USERS/HIST.../OK; returns the HIST lines."""
        if pipeline:
            self.send_raw(f"{name}\n{password}\n".encode("utf-8"))
        self.expect_hello(hello_timeout)
        if not pipeline:
            self.send_line(name)
        self.pass_line = self.expect("PASS")
        if expect_pass is not None and self.pass_line[0] != expect_pass:
            raise ProtocolError(f"{self.label}: expected PASS {expect_pass}, "
                                f"got {self.pass_line.raw!r}")
        if not pipeline:
            self.send_line(password)
        return self.finish_login()

    def finish_login(self, timeout=DEFAULT_TIMEOUT):
        self.welcome = self.expect("WELCOME", timeout=timeout)
        self.name = self.welcome[0]
        self.users = self.expect("USERS")
        if self.users.room != self.default_room:
            raise ProtocolError(f"{self.label}: login in {self.users.raw!r}")
        hist = []
        self.topic = None
        while True:
            line = self.read()
            if line.tag == "OK":
                if line[0] != "-":
                    raise ProtocolError(f"{self.label}: login OK with an id: {line.raw!r}")
                return hist
            if line.tag == "TOPIC" and not hist and self.topic is None:
                self.topic = line
                continue
            if line.tag != "HIST":
                raise ProtocolError(f"{self.label}: {line.raw!r} inside the login reply")
            hist.append(line)

    # --- requests ---

    def collect_reply(self, timeout=DEFAULT_TIMEOUT, topic_is_data=False):
        """(data lines, final OK/ERR/BYE line); live traffic goes to self.live.

        TOPIC is a data line of /topic and /join (topic_is_data), else live.
        """
        data = []
        deadline = deadline_in(timeout)
        while True:
            line = self._read_by(deadline)
            if line.tag in LIVE_TAGS and not (topic_is_data and line.tag == "TOPIC"):
                if data:
                    raise ProtocolError(f"{self.label}: live {line.raw!r} inside a reply")
                self.live.append(line)
            elif line.tag in FINAL_TAGS:
                return data, line
            else:
                data.append(line)

    def request(self, text, timeout=DEFAULT_TIMEOUT):
        self.send_line(text)
        raw = text if isinstance(text, bytes) else text.encode("utf-8")
        return self.collect_reply(timeout, raw.startswith((b"/topic", b"/join")))

    def say(self, text, timeout=DEFAULT_TIMEOUT):
        """Sends a room message; returns the id of its OK."""
        data, final = self.request(text, timeout)
        if data or final.tag != "OK" or not final[0].isdigit():
            raise ProtocolError(f"{self.label}: message {text!r} got {data!r} {final.raw!r}")
        return final.id

    def sync(self, timeout=DEFAULT_TIMEOUT):
        """A /ping round trip: whatever was queued for us before it is now in self.live."""
        data, final = self.request("/ping sync", timeout)
        if [d.raw for d in data] != ["PONG sync"] or final.tag != "OK":
            raise ProtocolError(f"{self.label}: /ping got {data!r} {final.raw!r}")

    def wait_for(self, tag, match=None, timeout=DEFAULT_TIMEOUT):
        """The first live line with tag (and match(line) true), kept or newly read.

        Lines skipped on the way stay in self.live.
        """
        for i, line in enumerate(self.live):
            if line.tag == tag and (match is None or match(line)):
                return self.live.pop(i)
        deadline = deadline_in(timeout)
        while True:
            try:
                line = self._read_by(deadline)
            except Timeout as e:
                raise Timeout(f"{self.label}: no {tag} in time; kept {self.live!r}") from e
            if line.tag == tag and (match is None or match(line)):
                return line
            self.live.append(line)

    def live_of(self, tag):
        return [line for line in self.live if line.tag == tag]
