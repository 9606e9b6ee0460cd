"""
ircproto.py - a raw IRC client for the IRC gateway's end-to-end tests.

Written from modern.ircdocs.horse and the ircv3.net specifications, with a
parser of its own (it shares nothing with chatd's daemon/irc_msg.c), so a
server that bends the message format fails the test that read the line.
Every read has a deadline; a failed expectation says which lines came.

Lines read while a test waits for something else are kept, in order, in a
backlog that later expectations search first: no line is lost.
"""

import base64
import itertools
import re
import select
import socket
import ssl
import time
from collections import deque

from chatproto import DEFAULT_TIMEOUT, deadline_in, scaled

# modern.ircdocs.horse: a message is at most 512 bytes with its CR LF, tags
# apart; IRCv3 message-tags: the tags (from "@" to the space) at most 8191.
BODY_MAX = 512
TAGS_MAX = 8191
CLIENT_TAGS_MAX = 4094
SASL_CHUNK = 400
TIME_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
COMMAND_RE = re.compile(r"(?:[A-Za-z]+|\d{3})\Z")
# Numerics that end registration without a welcome.
REGISTRATION_FAILURES = frozenset(("ERROR", "432", "433", "436", "451", "461", "464", "465"))
_tokens = itertools.count(1)


class IRCError(AssertionError):
    """The server said something the protocol does not allow, or not what was awaited."""


class Timeout(IRCError):
    """Nothing (or not the awaited line) arrived before the deadline."""


class Closed(IRCError):
    """The server closed or reset the connection."""


_TAG_UNESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


def unescape_tag_value(value):
    """message-tags: \\: ; \\s space \\\\ \\ \\r CR \\n LF; another escaped
    character is that character; a lone backslash at the end is dropped."""
    out = []
    chars = iter(value)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, None)
        if nxt is not None:
            out.append(_TAG_UNESCAPES.get(nxt, nxt))
    return "".join(out)


def escape_tag_value(value):
    return (value.replace("\\", "\\\\").replace(";", "\\:").replace(" ", "\\s")
            .replace("\r", "\\r").replace("\n", "\\n"))


class Message:
    """One parsed IRC line: .tags (dict, values unescaped, None for a tag
    without a value), .source (or None), .command (upper case), .params, .raw."""

    def __init__(self, raw):
        self.raw = raw
        rest = raw
        self.tags = {}
        self.tags_raw = ""
        if rest.startswith("@"):
            self.tags_raw, sep, rest = rest[1:].partition(" ")
            if not sep or not self.tags_raw:
                raise IRCError(f"tags with no message: {raw!r}")
            for item in self.tags_raw.split(";"):
                if not item:
                    continue  # a trailing ";" is tolerated by the spec's parsers
                key, eq, value = item.partition("=")
                if not key:
                    raise IRCError(f"empty tag key in {raw!r}")
                self.tags[key] = unescape_tag_value(value) if eq else None
            rest = rest.lstrip(" ")
        self.source = None
        if rest.startswith(":"):
            self.source, sep, rest = rest[1:].partition(" ")
            if not sep or not self.source:
                raise IRCError(f"source with no command: {raw!r}")
            rest = rest.lstrip(" ")
        command, _, rest = rest.partition(" ")
        if not COMMAND_RE.match(command):
            raise IRCError(f"bad command {command!r} in {raw!r}")
        self.command = command.upper()
        self.params = []
        while rest:
            rest = rest.lstrip(" ")
            if not rest:
                break
            if rest.startswith(":"):
                self.params.append(rest[1:])
                break
            param, _, rest = rest.partition(" ")
            self.params.append(param)

    @property
    def nick(self):
        """The nick of the source nick!user@host (or the whole source)."""
        return self.source.split("!", 1)[0] if self.source else None

    @property
    def user_host(self):
        if not self.source or "!" not in self.source:
            return None, None
        user, _, host = self.source.split("!", 1)[1].partition("@")
        return user, host

    def param(self, i, default=None):
        return self.params[i] if -len(self.params) <= i < len(self.params) else default

    @property
    def last(self):
        return self.params[-1] if self.params else None

    def __repr__(self):
        return f"Message({self.raw!r})"


def parse(raw):
    return Message(raw)


def matches(msg, what, pred=None):
    """what: a command or numeric, or a collection of them (None: any)."""
    if what is not None:
        wanted = (what,) if isinstance(what, str) else tuple(what)
        if msg.command not in {w.upper() for w in wanted}:
            return False
    return pred is None or bool(pred(msg))


def describe(what, pred):
    name = what if isinstance(what, str) or what is None else "|".join(what)
    return f"{name or 'any line'}" + (f" matching {getattr(pred, '__name__', pred)}"
                                       if pred else "")


def b64_chunks(payload):
    """AUTHENTICATE arguments for payload (bytes): 400-byte pieces of its
    base64, "+" for empty or after a last piece of exactly 400."""
    text = base64.b64encode(payload).decode("ascii")
    chunks = [text[i:i + SASL_CHUNK] for i in range(0, len(text), SASL_CHUNK)]
    if not chunks or len(chunks[-1]) == SASL_CHUNK:
        chunks.append("+")
    return chunks


def plain_payload(authcid, password, authzid=""):
    return f"{authzid}\0{authcid}\0{password}".encode("utf-8")


class IRCClient:
    """One connection to an IRC server."""

    def __init__(self, label="irc", strict=True):
        self.label = label
        self.strict = strict        # CR LF endings, 512-byte bodies, UTF-8
        self.sock = None
        self.buf = b""
        self.backlog = deque()      # read, not yet consumed by an expectation
        self.history = []           # every line read, for failure messages
        self.sent = []
        self.nick = None
        self.caps = set()           # acknowledged capabilities
        self.server_caps = {}       # from CAP LS: name -> value or None
        self.isupport = {}
        self.welcome = []           # registration lines up to 001, and after (sync)
        self.sasl_lines = []        # the answer to the last AUTHENTICATE exchange
        self.closed = False

    def __repr__(self):
        return f"IRCClient({self.label})"

    # --- connection ---

    def connect(self, port, host="127.0.0.1", tls=False, cafile=None,
                server_hostname="localhost", timeout=DEFAULT_TIMEOUT):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        raw = socket.socket(family, socket.SOCK_STREAM)
        try:
            raw.settimeout(scaled(timeout))
            raw.connect((host, port))
            if tls:
                ctx = ssl.create_default_context(cafile=cafile)
                raw = ctx.wrap_socket(raw, server_hostname=server_hostname)
            raw.settimeout(scaled(30))  # writes may block; reads use select()
        except BaseException:
            raw.close()
            raise
        self.sock = raw
        return self

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # --- sending ---

    def send(self, line):
        """One line; CR LF is added.  A line may not hold CR or LF itself."""
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        if b"\r" in data or b"\n" in data:
            raise ValueError(f"line with CR or LF: {line!r}")
        self.sent.append(data)
        self.sock.sendall(data + b"\r\n")

    def send_raw(self, data):
        self.sent.append(data)
        self.sock.sendall(data)

    # --- reading ---

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"{self.label}: nothing complete in time")
        pending = self.sock.pending() if isinstance(self.sock, ssl.SSLSocket) else 0
        if not pending:
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.closed = True
            raise Closed(f"{self.label}: connection reset") from e
        except ssl.SSLError as e:
            self.closed = True
            raise Closed(f"{self.label}: TLS error {e}") from e
        if not data:
            self.closed = True
            raise Closed(f"{self.label}: connection closed (pending {self.buf[:200]!r})")
        self.buf += data

    def _read_by(self, deadline):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                raw, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                msg = self._decode(raw)
                self.history.append(msg)
                return msg
            if len(self.buf) > TAGS_MAX + 1 + BODY_MAX:
                raise IRCError(f"{self.label}: server line longer than "
                               f"{TAGS_MAX + 1 + BODY_MAX} bytes: {self.buf[:200]!r}")
            self._fill(deadline)

    def _decode(self, raw):
        if self.strict and not raw.endswith(b"\r\n"):
            raise IRCError(f"{self.label}: line not ended by CR LF: {raw!r}")
        body = raw.rstrip(b"\r\n") if raw.endswith(b"\r\n") else raw[:-1]
        if b"\r" in body or b"\0" in body:
            raise IRCError(f"{self.label}: CR or NUL inside a line: {raw!r}")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            if self.strict:
                raise IRCError(f"{self.label}: invalid UTF-8 from the server: {raw!r}") from e
            text = body.decode("latin-1")
        msg = Message(text)
        if self.strict:
            tag_bytes = len(msg.tags_raw.encode("utf-8")) + 2 if msg.tags_raw else 0
            if tag_bytes > TAGS_MAX:
                raise IRCError(f"{self.label}: {tag_bytes} bytes of tags: {raw[:200]!r}")
            if len(raw) - tag_bytes > BODY_MAX:
                raise IRCError(f"{self.label}: message of {len(raw) - tag_bytes} bytes "
                               f"(most {BODY_MAX}): {raw!r}")
            if "time" in msg.tags and not TIME_RE.match(msg.tags["time"] or ""):
                raise IRCError(f"{self.label}: bad time tag in {raw!r}")
        return msg

    def _fail(self, cls, what):
        seen = "\n  ".join(m.raw for m in self.history[-60:]) or "(nothing)"
        unread = "\n  ".join(m.raw for m in self.backlog) or "(nothing)"
        return cls(f"{self.label}: {what}\nlast lines read:\n  {seen}\nunconsumed:\n  {unread}")

    def next(self, timeout=DEFAULT_TIMEOUT):
        """The next line: the oldest unconsumed one, else one read now."""
        if self.backlog:
            return self.backlog.popleft()
        try:
            return self._read_by(deadline_in(timeout))
        except Timeout:
            raise self._fail(Timeout, "no line in time") from None

    def expect(self, what, pred=None, timeout=DEFAULT_TIMEOUT):
        """The first line (unconsumed or new) with that command or numeric and
        pred(msg) true; lines passed over stay unconsumed."""
        for i, msg in enumerate(self.backlog):
            if matches(msg, what, pred):
                del self.backlog[i]
                return msg
        deadline = deadline_in(timeout)
        while True:
            try:
                msg = self._read_by(deadline)
            except Timeout:
                raise self._fail(Timeout, f"expected {describe(what, pred)}") from None
            except Closed as e:
                raise self._fail(Closed, f"expected {describe(what, pred)}: {e}") from None
            if matches(msg, what, pred):
                return msg
            self.backlog.append(msg)

    def until(self, what, pred=None, timeout=DEFAULT_TIMEOUT):
        """Every line up to and including the first match, in order, all consumed."""
        out = []
        while self.backlog:
            msg = self.backlog.popleft()
            out.append(msg)
            if matches(msg, what, pred):
                return out
        deadline = deadline_in(timeout)
        while True:
            try:
                msg = self._read_by(deadline)
            except Timeout:
                self.backlog.extend(out)
                raise self._fail(Timeout, f"expected {describe(what, pred)}") from None
            except Closed as e:
                self.backlog.extend(out)
                raise self._fail(Closed, f"expected {describe(what, pred)}: {e}") from None
            out.append(msg)
            if matches(msg, what, pred):
                return out

    def sync(self, timeout=DEFAULT_TIMEOUT):
        """A PING round trip: returns every line that came before the PONG
        (all consumed); whatever the server queued for us before is in it."""
        token = f"sync{next(_tokens)}"
        self.send(f"PING {token}")
        lines = self.until("PONG", lambda m: m.last == token, timeout)
        return lines[:-1]

    def no_more(self, what=None, pred=None, timeout=DEFAULT_TIMEOUT):
        """After a sync round trip, no line like that arrived; returns the lines."""
        lines = self.sync(timeout)
        bad = [m for m in lines if matches(m, what, pred)]
        if bad:
            raise self._fail(IRCError, f"unexpected {describe(what, pred)}: {bad}")
        return lines

    def expect_closed(self, timeout=DEFAULT_TIMEOUT):
        """Every line until the server closes the connection."""
        out = list(self.backlog)
        self.backlog.clear()
        deadline = deadline_in(timeout)
        while True:
            try:
                out.append(self._read_by(deadline))
            except Closed:
                return out
            except Timeout:
                self.backlog.extend(out)
                raise self._fail(Timeout, "expected the server to close") from None

    def drain(self):
        """Forgets the unconsumed lines."""
        lines = list(self.backlog)
        self.backlog.clear()
        return lines

    # --- capabilities ---

    def cap_ls(self, version="302", timeout=DEFAULT_TIMEOUT):
        """CAP LS [version]: {name: value or None}, multi-line replies joined."""
        self.send(f"CAP LS {version}" if version else "CAP LS")
        caps = {}
        while True:
            msg = self.expect("CAP", lambda m: m.param(1, "").upper() == "LS", timeout)
            more = len(msg.params) == 4 and msg.params[2] == "*"
            for token in msg.last.split():
                name, eq, value = token.partition("=")
                caps[name] = value if eq else None
            if not more:
                break
        self.server_caps = caps
        return caps

    def cap_req(self, caps, timeout=DEFAULT_TIMEOUT):
        """CAP REQ: ("ACK" or "NAK", the capabilities the answer names)."""
        wanted = " ".join(caps) if not isinstance(caps, str) else caps
        self.send(f"CAP REQ :{wanted}")
        msg = self.expect("CAP", lambda m: m.param(1, "").upper() in ("ACK", "NAK"), timeout)
        verb, named = msg.params[1].upper(), msg.last.split()
        if verb == "ACK":
            for cap in named:
                if cap.startswith("-"):
                    self.caps.discard(cap[1:])
                else:
                    self.caps.add(cap)
        return verb, named

    # --- SASL ---

    def authenticate_plain(self, authcid, password, authzid="", timeout=DEFAULT_TIMEOUT):
        """AUTHENTICATE PLAIN: the final numeric (903 on success, after 900)."""
        self.send("AUTHENTICATE PLAIN")
        self.expect("AUTHENTICATE", lambda m: m.params == ["+"], timeout)
        for chunk in b64_chunks(plain_payload(authcid, password, authzid)):
            self.send(f"AUTHENTICATE {chunk}")
        # 900 (logged in) and the like come first: consumed here, kept in sasl_lines.
        self.sasl_lines = self.until(("903", "904", "905", "906", "907"), None, timeout)
        return self.sasl_lines[-1]

    # --- registration ---

    def register(self, nick, password=None, sasl=False, caps=(), user=None,
                 realname="chatd irc test", sasl_user=None, cap_negotiation=True,
                 sync=True, timeout=DEFAULT_TIMEOUT):
        """CAP LS 302 / CAP REQ / AUTHENTICATE PLAIN / PASS / NICK / USER /
        CAP END; waits for 001 or a failure.  Returns the 001 (after which,
        with sync, every welcome line is in self.welcome) or the failure
        line: ERROR, a registration numeric, or 904-907 of SASL."""
        wanted = list(caps) + (["sasl"] if sasl and "sasl" not in caps else [])
        if cap_negotiation:
            self.cap_ls("302", timeout)
            if wanted:
                verb, named = self.cap_req(wanted, timeout)
                if verb != "ACK":
                    raise self._fail(IRCError, f"CAP REQ {wanted} refused: NAK {named}")
        if sasl:
            final = self.authenticate_plain(sasl_user or nick, password, timeout=timeout)
            if final.command != "903":
                return final
        elif password is not None:
            self.send(f"PASS :{password}" if " " in password else f"PASS {password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {user or nick} 0 * :{realname}")
        if cap_negotiation:
            self.send("CAP END")
        lines = self.until(("001",) + tuple(REGISTRATION_FAILURES), None, timeout)
        self.welcome = lines
        final = lines[-1]
        if final.command != "001":
            return final
        self.nick = final.params[0]
        if sync:
            self.welcome += self.sync(timeout)
            for msg in self.welcome:
                if msg.command == "005":
                    self._isupport(msg)
        return final

    def _isupport(self, msg):
        for token in msg.params[1:-1]:
            if token.startswith("-"):
                self.isupport.pop(token[1:], None)
                continue
            key, eq, value = token.partition("=")
            self.isupport[key] = (re.sub(r"\\x([0-9A-Fa-f]{2})",
                                         lambda m: chr(int(m.group(1), 16)), value)
                                  if eq else None)

    # --- conveniences ---

    def join(self, channel, timeout=DEFAULT_TIMEOUT):
        """JOIN and the lines of its answer through 366 (or the error numeric)."""
        self.send(f"JOIN {channel}")
        return self.until(("366", "403", "405", "471", "473", "474", "475", "476", "479"),
                          None, timeout)

    def privmsg(self, target, text):
        self.send(f"PRIVMSG {target} :{text}")


def batches(lines):
    """{reference: (BATCH + line, [lines tagged batch=reference], BATCH - line or None)}
    from a list of lines, in the order the batches opened."""
    out = {}
    for msg in lines:
        if msg.command == "BATCH" and msg.params and msg.params[0].startswith("+"):
            out[msg.params[0][1:]] = (msg, [], None)
        elif msg.command == "BATCH" and msg.params and msg.params[0].startswith("-"):
            ref = msg.params[0][1:]
            if ref not in out:
                raise IRCError(f"BATCH -{ref} without its start: {[m.raw for m in lines]}")
            out[ref] = (out[ref][0], out[ref][1], msg)
        elif msg.tags.get("batch") is not None:
            ref = msg.tags["batch"]
            if ref not in out or out[ref][2] is not None:
                raise IRCError(f"line of batch {ref} outside it: {msg.raw!r}")
            out[ref][1].append(msg)
    return out


def one_batch(lines, kind):
    """The inner lines of the single batch of type kind in lines; the batch
    must be closed and every other line must be outside it."""
    found = [(start, inner, end) for start, inner, end in batches(lines).values()
             if start.param(1) == kind]
    if len(found) != 1:
        raise IRCError(f"expected one {kind} batch, found {len(found)}: "
                       f"{[m.raw for m in lines]}")
    start, inner, end = found[0]
    if end is None:
        raise IRCError(f"batch {start.raw!r} never closed: {[m.raw for m in lines]}")
    return start, inner


def utc_ms(iso):
    """Milliseconds since the epoch of a time tag value (2026-12-02T10:00:00.000Z)."""
    import datetime
    dt = datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    return int(dt.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000 + 0.5)


def iso_ms(ms):
    import datetime
    dt = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def wait_clock_past(iso, margin_ms=2):
    """Waits until this machine's clock (the server's too: loopback) is past the
    time tag value iso by margin_ms, so the next event gets a later time."""
    target = utc_ms(iso) + margin_ms
    deadline = deadline_in(2)
    while time.time() * 1000 < target:
        assert time.monotonic() < deadline, f"the clock did not pass {iso}"
        time.sleep(0.001)
