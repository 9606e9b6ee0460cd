"""
test_irc_attack.py - the IRC gateway (irc = true) under attack: hostile
nicks, channel names, tags, labels, SASL chunks, long lines and floods
against a real chatd on loopback.

Every line the server sends an IRC client is held to IRC's framing (CRLF
ends it and appears nowhere else, no NUL, at most 512 bytes after the
tags); native clients (chatproto.Client) hold their lines to the native
protocol's.  The daemon's stderr is checked for sanitizer reports at
teardown (conftest.py).
"""

import base64
import os
import select
import socket
import ssl
import time

import pytest

from chatproto import Closed, ProtocolError, Timeout, deadline_in, scaled, wait_until
from conftest import free_port

IRC_BODY_MAX = 512          # bytes after the tags, CRLF included
IRC_TAGS_MAX = 8191         # a server's tags, '@' and the space included


class Irc:
    """A raw IRC connection that checks the framing of every line it reads."""

    def __init__(self, port, label="irc", host="127.0.0.1", tls_ca=None, timeout=5.0):
        self.label = label
        sock = socket.create_connection((host, port), timeout=scaled(timeout))
        if tls_ca is not None:
            ctx = ssl.create_default_context(cafile=str(tls_ca))
            ctx.check_hostname = False
            sock = ctx.wrap_socket(sock)
        sock.settimeout(scaled(30))
        self.sock = sock
        self.buf = b""
        self.seen = []

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self, line):
        data = line if isinstance(line, bytes) else line.encode("utf-8")
        self.sock.sendall(data + b"\r\n")

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Timeout(f"{self.label}: no complete line in time (pending {self.buf[:200]!r})")
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError) as e:
            raise Closed(f"{self.label}: connection reset") from e
        if not data:
            raise Closed(f"{self.label}: connection closed (pending {self.buf[:200]!r})")
        self.buf += data

    @staticmethod
    def check_framing(raw, label="irc"):
        """raw: one line with its CRLF.  Raises ProtocolError if it breaks IRC's framing."""
        if not raw.endswith(b"\r\n"):
            raise ProtocolError(f"{label}: line without CRLF {raw!r}")
        body = raw[:-2]
        if b"\r" in body or b"\n" in body or b"\0" in body:
            raise ProtocolError(f"{label}: CR, LF or NUL inside {raw!r}")
        if body.startswith(b"@"):
            tags, sep, body = body.partition(b" ")
            if not sep or len(tags) + 1 > IRC_TAGS_MAX:
                raise ProtocolError(f"{label}: bad tags in {raw!r}")
        if len(body) + 2 > IRC_BODY_MAX:
            raise ProtocolError(f"{label}: {len(body) + 2} bytes without tags: {raw[:120]!r}...")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"{label}: invalid UTF-8 {raw!r}") from e

    def read(self, timeout=5.0):
        """The next line, framing checked, as text without CRLF."""
        deadline = deadline_in(timeout)
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                raw, self.buf = self.buf[:nl + 1], self.buf[nl + 1:]
                self.check_framing(raw, self.label)
                line = raw[:-2].decode("utf-8")
                self.seen.append(line)
                return line
            if len(self.buf) > IRC_TAGS_MAX + IRC_BODY_MAX:
                raise ProtocolError(f"{self.label}: no line end in {len(self.buf)} bytes")
            self._fill(deadline)

    def expect(self, pred, what, timeout=5.0):
        """Reads until a line for which pred(line) holds; returns it (and what came before)."""
        deadline = deadline_in(timeout)
        before = []
        while True:
            left = (deadline - time.monotonic()) / (4 if os.environ.get("CHATD_SANITIZE") else 1)
            try:
                line = self.read(max(left, 0.001))
            except Timeout as e:
                raise Timeout(f"{self.label}: no {what}; got {before[-20:]!r}") from e
            if pred(line):
                self.before = before
                return line
            before.append(line)

    def numeric(self, num, timeout=5.0):
        return self.expect(lambda l: command(l) == num, f"numeric {num}", timeout)

    def read_until_closed(self, timeout=5.0):
        lines = []
        deadline = deadline_in(timeout)
        while True:
            try:
                lines.append(self.read(max(deadline - time.monotonic(), 0.001) / 4
                                       if os.environ.get("CHATD_SANITIZE") else
                                       max(deadline - time.monotonic(), 0.001)))
            except Closed:
                return lines

    def sync(self, token="sync", timeout=5.0):
        """A PING round trip: lines before its PONG are in self.before."""
        self.send(f"PING {token}")
        return self.expect(lambda l: command(l) == "PONG" and l.endswith(token), "PONG", timeout)

    def register(self, nick, password=None, caps=(), sasl=None):
        """Registers (PASS, SASL PLAIN (authcid, password), or neither); returns after 376/422."""
        if caps or sasl:
            self.send("CAP LS 302")
            want = list(caps) + (["sasl"] if sasl else [])
            self.send("CAP REQ :" + " ".join(want))
        if password is not None:
            self.send(f"PASS :{password}")
        self.send(f"NICK {nick}")
        self.send(f"USER {nick} 0 * :{nick}")
        if sasl:
            self.expect(lambda l: " ACK " in l, "CAP ACK")
            self.send("AUTHENTICATE PLAIN")
            self.expect(lambda l: l == "AUTHENTICATE +", "AUTHENTICATE +")
            blob = base64.b64encode(b"\0" + sasl[0].encode() + b"\0" + sasl[1].encode())
            self.send(b"AUTHENTICATE " + blob)
            self.numeric("903")
        if caps or sasl:
            self.send("CAP END")
        self.numeric("001")
        self.expect(lambda l: command(l) in ("376", "422"), "end of MOTD")
        self.sync("welcome")
        return self


def command(line):
    """The command (or numeric) of a server line."""
    words = line.split(" ")
    if words[0].startswith("@"):
        words = words[1:]
    if words and words[0].startswith(":"):
        words = words[1:]
    return words[0] if words else ""


def params(line):
    """The parameters of a server line (the trailing one with its spaces)."""
    if line.startswith("@"):
        line = line.split(" ", 1)[1]
    if line.startswith(":"):
        line = line.split(" ", 1)[1]
    head, sep, trailing = line.partition(" :")
    out = head.split(" ")[1:]
    return out + [trailing] if sep else out


@pytest.fixture
def irc_attack(irc_chatd):
    """make(**settings) -> a running chatd with the IRC gateway (conftest's irc_chatd, no
    IRC TLS port unless given); .irc(label) connects a checked Irc client (closed at
    teardown)."""
    opened = []

    def make(**overrides):
        settings = {"irc_tls_port": -1}
        settings.update(overrides)
        daemon = irc_chatd(**settings)

        def irc(label="irc", **kwargs):
            client = Irc(daemon.irc_port, label, **kwargs)
            opened.append(client)
            return client

        daemon.irc = irc
        return daemon

    yield make
    for client in opened:
        client.close()


# ---- replies that carry what the client sent ----

def test_echoed_parameters_keep_irc_framing(irc_attack):
    """A client's own long or invalid parameter, echoed in a numeric, is cut to
    512 bytes and made valid UTF-8 (005 says UTF8ONLY)."""
    daemon = irc_attack()
    pre = daemon.irc("pre")
    pre.send(b"NICK \xff\xfe")
    assert params(pre.numeric("432"))[1] == "??"
    pre.send("NICK " + "n" * 480)
    pre.numeric("432")
    pre.close()

    a = daemon.irc("a").register("alice", password="pw-alice")
    for line, num in (("NICK " + "x" * 480, "432"), ("X" * 500, "421"),
                      ("CAP " + "q" * 490, "410"), ("WHOIS " + "k" * 480, "401"),
                      ("WHO " + "k" * 490, "315"), ("NAMES " + "#" * 490, "366")):
        a.send(line)
        a.numeric(num)
    a.send("CHATHISTORY " + "w" * 480)
    a.expect(lambda l: l.startswith(":chatd FAIL CHATHISTORY INVALID_PARAMS w"), "FAIL")
    a.send("PART #lobby :" + "r" * 490)
    part = a.expect(lambda l: command(l) == "PART", "PART")
    assert params(part)[1] == "r" * 127      # as the others see it (REASON_TEXT_MAX)
    a.sync()


# ---- replies that would not fit whole ----

def test_ping_token_comes_back_whole_or_417(irc_attack):
    """PONG carries the PING's token whole (a token cut short matches no PING: a lag
    check would never end); a token too long for that, with ":chatd PONG chatd :"
    before it in 512 bytes, gets 417 instead.  Before registration and after."""
    daemon = irc_attack()
    pre = daemon.irc("pre")
    a = daemon.irc("a").register("alice", password="pw-alice")
    fits = 510 - len(":chatd PONG chatd :")
    for conn in (pre, a):
        for token in ("p" * fits, "é" * (fits // 2), "with spaces " * 20, ":colon"):
            conn.send("PING :" + token)
            pong = conn.expect(lambda l: command(l) in ("PONG", "417"), "PONG")
            assert command(pong) == "PONG" and params(pong)[1] == token, pong
        for token in ("q" * (fits + 1), "r" * (510 - len("PING :"))):
            conn.send("PING :" + token)
            got = conn.expect(lambda l: command(l) in ("PONG", "417"), "PONG or 417")
            assert command(got) == "417", got
        conn.sync("after")


def test_chathistory_of_a_target_that_is_no_nick(irc_attack):
    """CHATHISTORY of a target that is neither a channel nor a nick (~490 bytes the
    client sent) is FAIL INVALID_TARGET, not a BATCH line that names it cut; a nick
    gets its empty batch, named whole."""
    daemon = irc_attack()
    a = daemon.irc("a").register("alice", password="pw-alice",
                                 caps=["batch", "draft/chathistory"])
    target = "n" * (510 - len("CHATHISTORY LATEST ") - len(" * 10"))
    a.send(f"CHATHISTORY LATEST {target} * 10")
    fail = a.expect(lambda l: command(l) in ("FAIL", "BATCH"), "FAIL")
    assert params(fail)[:3] == ["CHATHISTORY", "INVALID_TARGET", "LATEST"], fail
    a.send("CHATHISTORY LATEST bob * 10")
    start = a.expect(lambda l: command(l) == "BATCH", "BATCH")
    assert params(start)[1:] == ["chathistory", "bob"], start
    end = a.expect(lambda l: command(l) == "BATCH", "end of the batch")
    assert params(end)[0] == "-" + params(start)[0][1:], end
    a.sync()


def test_name_lists_fit_whole_with_the_longest_names(irc_attack):
    """With a 63-byte server name, 32-byte nicks and a 32-byte room, NAMES (353) and
    ISON (303) take as many lines as they need: every name comes whole, none cut at
    512 bytes."""
    server = "irc." + "s" * 59
    room = "r" * 32
    daemon = irc_attack(guests=True, server_name=server, default_room=room,
                        max_clients_per_address=32)
    nicks = [f"{i:02d}" + "n" * 30 for i in range(14)]
    conns = [daemon.irc(f"c{i}").register(nick) for i, nick in enumerate(nicks)]
    w = conns[0]
    w.sync("all")
    w.send(f"NAMES #{room}")
    w.numeric("366")
    named = [n for l in w.before if command(l) == "353" for n in params(l)[3].split()]
    assert sorted(named) == sorted(nicks), w.before
    assert len([l for l in w.before if command(l) == "353"]) == 2, w.before
    w.send("ISON " + " ".join(nicks))
    first = w.numeric("303")
    w.sync("ison")
    lines = [first] + [l for l in w.before if command(l) == "303"]
    online = [n for l in lines for n in params(l)[1].split()]
    assert sorted(online) == sorted(nicks), lines
    w.send("ISON nobody")
    assert params(w.numeric("303"))[1] == ""
    w.sync("empty")


# ---- lines longer than IRC's 512 bytes ----

def privmsg_texts(lines, target):
    """The texts of the PRIVMSG lines to target, in order."""
    return [params(l)[1] for l in lines if command(l) == "PRIVMSG" and params(l)[0] == target]


def test_long_messages_reach_irc_in_lines_that_fit(irc_attack):
    """A message that does not fit one IRC line (an IRC client's 510-byte PRIVMSG gets a
    prefix; a native line may be max_line long) goes out as several lines, cut between
    characters, msgid on the first; so does its replay, and a long topic is cut."""
    daemon = irc_attack(max_topic=1024)
    native = daemon.login("carol")
    bob = daemon.irc("bob").register("bob", password="pw-bob",
                                     caps=["message-tags", "batch", "draft/chathistory"])
    alice = daemon.irc("alice").register("alice", password="pw-alice")

    short = "y" * (510 - len("PRIVMSG #lobby :"))
    alice.send("PRIVMSG #lobby :" + short)
    first = bob.expect(lambda l: command(l) == "PRIVMSG", "alice's PRIVMSG")
    got = privmsg_texts([first] + [bob.sync("a")] + bob.before, "#lobby")
    assert "".join(got) == short and len(got) == 2, got
    assert "msgid=" in first and "msgid=" not in bob.before[0]

    long_text = "é" * 1000 + " and some words after it" + "ü" * 700
    native.say(long_text)
    native.say("//me " + "waves " * 300)
    native.request("/msg bob " + "private " * 400)
    bob.sync("b")
    texts = privmsg_texts(bob.before, "#lobby")
    actions = [t for t in texts if t.startswith("\x01ACTION ")]
    assert "".join(t for t in texts if not t.startswith("\x01")) == long_text
    assert all(t.endswith("\x01") for t in actions) and len(actions) > 1
    assert "".join(t[8:-1] for t in actions) in ("waves " * 300, ("waves " * 300).rstrip())
    assert "".join(privmsg_texts(bob.before, "bob")) == "private " * 400

    bob.send("CHATHISTORY LATEST #lobby * 10")
    bob.expect(lambda l: l.startswith(":chatd BATCH -"), "end of the chathistory batch")
    replay = [l for l in bob.before if command(l) == "PRIVMSG"]
    assert all(l.startswith("@batch=") for l in replay)
    assert long_text in "".join(privmsg_texts(replay, "#lobby"))

    native.request("/topic lobby " + "t" * 1000)
    topic = bob.expect(lambda l: command(l) == "TOPIC", "TOPIC")
    assert params(topic)[1] == "t" * len(params(topic)[1])


def isupport_token(conn, key):
    """The value of key in the 005 lines conn has read; None when absent."""
    for line in conn.seen:
        if command(line) == "005":
            for token in params(line)[1:-1]:
                name, _, value = token.partition("=")
                if name == key:
                    return value
    return None


def test_topiclen_tells_how_much_of_a_topic_irc_clients_see(irc_attack):
    """TOPICLEN (005) is what fits: with a 63-byte server name, 32-byte nicks and room
    and max_topic = 1024, a topic shown in 332, 322 (any member count) and TOPIC (from
    a user or the server) must fit 512 bytes, so TOPICLEN is less than max_topic.  An
    IRC client's longer TOPIC is cut to TOPICLEN, and a longer topic set natively or by
    the operator reaches IRC clients as its first TOPICLEN bytes, cut between characters:
    the same text live, in 332 (TOPIC and JOIN), in 322 and in replayed history."""
    server = "irc." + "s" * 59
    room = "r" * 32
    daemon = irc_attack(server_name=server, max_topic=1024)
    head_322 = len(f":{server} 322 {'n' * 32} #{room} {'9' * 20} :")
    head_topic = len(f":{'n' * 32}!~{'n' * 32}@chatd TOPIC #{room} :")   # a guest's
    topiclen = IRC_BODY_MAX - 2 - max(head_322, head_topic)
    caps = ["batch", "draft/chathistory", "draft/event-playback"]
    alice, bob = ("a" * 32, "b" * 32)
    a = daemon.irc("a").register(alice, password=f"pw-{alice}")
    b = daemon.irc("b").register(bob, password=f"pw-{bob}", caps=caps)
    assert isupport_token(a, "TOPICLEN") == str(topiclen), [l for l in a.seen if "005" in l]
    native = daemon.login("c" * 32)
    native.request(f"/join {room}")
    for conn in (a, b):
        conn.send(f"JOIN #{room}")
        conn.numeric("366")

    def shown(text):
        """text as IRC clients see it: its longest start of at most TOPICLEN bytes."""
        cut = text.encode()[:topiclen]
        return cut.decode("utf-8", "ignore")

    def replayed_topic():
        """The last topic in bob's CHATHISTORY of the room (None: no TOPIC there)."""
        b.send(f"CHATHISTORY LATEST #{room} * 20")
        b.expect(lambda l: command(l) == "BATCH" and params(l)[0].startswith("-"), "batch end")
        topics = [params(l)[1] for l in b.before if command(l) == "TOPIC"]
        return topics[-1] if topics else None

    def every_form(text):
        """The topic in a TOPIC, a 332 (TOPIC and JOIN), a 322 and history, for bob."""
        topic = b.expect(lambda l: command(l) == "TOPIC", "TOPIC")
        assert params(topic)[1] == text, topic
        b.send(f"TOPIC #{room}")
        assert params(b.numeric("332"))[2] == text
        b.send(f"PART #{room}")
        b.send(f"JOIN #{room}")
        assert params(b.numeric("332"))[2] == text
        b.numeric("366")
        b.send("LIST")
        b.numeric("323")
        listed = [params(l) for l in b.before if command(l) == "322"]
        assert [p[3] for p in listed if p[1] == f"#{room}"] == [text], listed
        # a topic is stored a moment after it is shown (docs/IRC.md, "CHATHISTORY")
        wait_until(lambda: replayed_topic() == text, "the topic in CHATHISTORY")

    # An IRC client's topic longer than TOPICLEN: cut to it, between characters.
    said = "x" + "\u00e9" * 234                     # 469 bytes: what a TOPIC line holds
    a.send(f"TOPIC #{room} :{said}")
    stored = shown(said)
    assert len(stored.encode()) == topiclen - 1, len(stored.encode())
    assert params(a.expect(lambda l: command(l) == "TOPIC", "TOPIC"))[1] == stored
    assert native.wait_for("TOPIC")[2] == stored
    every_form(stored)

    # A native topic and an operator's, up to max_topic bytes: shown shortened.
    long_topic = "y" + "\u00fc" * 499                # 999 bytes
    native.request(f"/topic {room} {long_topic}")
    every_form(shown(long_topic))
    daemon.ctl_ok("room", "topic", room, "o" + long_topic)
    every_form(shown("o" + long_topic))
    a.sync()


def test_topiclen_with_the_default_server_name(irc_attack):
    """With server_name "chatd" every topic line has room for 395 bytes (docs/IRC.md;
    a guest's TOPIC, NICK!~NICK@chatd, is the longest): TOPICLEN is max_topic up to that."""
    a = irc_attack(max_topic=1024).irc("a").register("alice", password="pw-alice")
    assert isupport_token(a, "TOPICLEN") == "395", [l for l in a.seen if "005" in l]


def test_label_is_sent_back_whole_or_not_at_all(irc_attack):
    """labeled-response: a label whose escaped form would not fit is dropped, never cut
    into another command's label."""
    daemon = irc_attack()
    a = daemon.irc("a").register("alice", password="pw-alice", caps=["labeled-response"])
    label = "a\\sb\\:c\\\\" + "d" * 58    # 64 bytes unescaped, 67 escaped
    a.send(f"@label={label} PING x")
    pong = a.expect(lambda l: command(l) == "PONG", "PONG")
    assert not pong.startswith("@") or pong.startswith(f"@label={label} "), pong
    a.send("@label=" + "L" * 64 + " PING y")
    assert a.expect(lambda l: command(l) == "PONG", "PONG").startswith("@label=" + "L" * 64 + " ")


def test_a_label_that_is_no_text_is_not_sent_back(irc_attack):
    """A label with bytes that are no UTF-8 went back as it came, in the tags of a line
    (005 says UTF8ONLY, and tag values are UTF-8): one that is not text chatd would
    store is dropped as a too long one is, the command answered without it; its echo
    (echo-message) too."""
    daemon = irc_attack()
    a = daemon.irc("a").register("alice", password="pw-alice",
                                 caps=["labeled-response", "echo-message", "message-tags"])
    for raw in (b"\xff\xfe", b"ok\xc3", b"bell\x07"):
        a.send(b"@label=" + raw + b" PING x")
        pong = a.expect(lambda l: command(l) == "PONG", "PONG")     # framing checked
        assert not pong.startswith("@label="), pong
    a.send(b"@label=\xff PRIVMSG #lobby :labelled")
    echo = a.expect(lambda l: command(l) == "PRIVMSG", "echo")
    assert "label=" not in echo.split(" ")[0], echo
    a.send("@label=caf\u00e9 PING y")
    assert a.expect(lambda l: command(l) == "PONG", "PONG").startswith("@label=caf\u00e9 ")


# ---- floods ----

def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_many_targets_are_not_many_messages_for_one_line(irc_attack):
    """PRIVMSG to many targets: at most TARGMAX (4) are served, 407 for the rest; a line
    to 20 targets was 20 messages for one flood-control token."""
    daemon = irc_attack()
    carol = daemon.login("carol")
    a = daemon.irc("a").register("alice", password="pw-alice")
    a.send("PRIVMSG " + ",".join(["carol"] * 20) + " :hi")
    a.sync("privmsg")
    carol.sync()
    assert len(carol.live_of("PRIV")) == 4
    assert [params(l)[1] for l in a.before if command(l) == "407"] == ["carol"]
    a.send("NOTICE " + ",".join(["carol"] * 20) + " :note")
    a.sync("notice")
    assert not [l for l in a.before if command(l) == "407"]
    carol.sync()
    assert len(carol.live_of("PRIV")) == 8
    assert "TARGMAX=PRIVMSG:4,NOTICE:4" in " ".join(a.seen)


def test_one_join_line_of_many_rooms_costs_a_token_a_room(irc_attack):
    """JOIN (and PART) take a list with no bound of its own: 15 rooms made by one line were
    15 room creations for one flood-control token. Each room after the first takes a token
    of its own, so the line after it waits as if 15 lines had come."""
    burst, rate, rooms = 5, 10, 15
    daemon = irc_attack(irc_flood_burst=burst, irc_flood_rate=rate)
    a = daemon.irc("a").register("alice", password="pw-alice")
    time.sleep(burst / rate + 0.2)  # the welcome's lines cost tokens: let the bucket fill
    t0 = time.monotonic()
    a.send("JOIN " + ",".join(f"#many{i}" for i in range(rooms)))
    a.sync("after-join", timeout=10)
    took = time.monotonic() - t0
    joined = [l for l in a.before if command(l) == "JOIN"]
    assert len(joined) == rooms, a.before
    # rooms + 1 (the PING) lines' worth of tokens against a bucket of `burst`
    assert took >= (rooms + 1 - burst - 1) / rate * 0.8, f"answered after {took:.2f} s"
    t0 = time.monotonic()
    a.send("PART " + ",".join(f"#many{i}" for i in range(rooms)))
    a.sync("after-part", timeout=10)
    assert len([l for l in a.before if command(l) == "PART"]) == rooms, a.before
    assert time.monotonic() - t0 >= (rooms - 1) / rate * 0.8


def test_flood_is_slowed_not_dropped_and_does_not_spin(irc_attack):
    """Past irc_flood_burst, lines wait for tokens (irc_flood_rate a second): every one
    arrives, none early, the client stays, and chatd sleeps meanwhile."""
    daemon = irc_attack(irc_flood_burst=5, irc_flood_rate=10)
    carol = daemon.login("carol")
    a = daemon.irc("a").register("alice", password="pw-alice")
    time.sleep(0.6)                 # the welcome's lines cost tokens: let the bucket fill
    cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
    a.send_raw(b"".join(b"PRIVMSG #lobby :flood %d\r\n" % i for i in range(40)))
    for i in range(40):
        carol.wait_for("MSG", lambda l: l[-1] == f"flood {i}", timeout=10)
    took, cpu = time.monotonic() - t0, cpu_seconds(daemon.pid) - cpu0
    assert took >= (40 - 5) / 10 * 0.9, took
    assert cpu < took / 4, (cpu, took)
    a.sync()


def expect_cut_reply(conn, request, item, end, total, what):
    """conn's request gets some of its total item lines but not all, and the end
    numeric says how many it left out ("N more WHAT")."""
    conn.send(request)
    last = conn.numeric(end)
    got = [l for l in conn.before if command(l) == item]
    assert 0 < len(got) < total, len(got)
    assert f"{total - len(got)} more {what}" in last, last


def test_a_list_of_more_rooms_than_the_send_queue_holds(irc_attack):
    """LIST sent every room at once: enough rooms with long topics (any registered user
    can make them, and they stay room_expiry) passed send_queue_limit, and every IRC
    client that asked for the list was disconnected for overflow.  The reply holds what
    fits in half the send queue, its 323 says how many rooms it left out, and LIST #a,#b
    gets those rooms."""
    daemon = irc_attack(send_queue_limit=16384, irc_flood_burst=1000, irc_flood_rate=1000)
    a = daemon.irc("a").register("alice", password="pw-alice")
    n, topic = 60, "t" * 300
    for i in range(n):
        a.send(f"JOIN #r{i:02d}")
        a.send(f"TOPIC #r{i:02d} :{topic}")
        a.send(f"PART #r{i:02d}")
        if i % 10 == 9:
            a.sync(f"rooms{i}")
    b = daemon.irc("b").register("bob", password="pw-bob")
    expect_cut_reply(b, "LIST", "322", "323", n + 1, "rooms")
    b.send("LIST #r59,#r00")
    b.numeric("323")
    assert sorted(params(l)[1] for l in b.before if command(l) == "322") == ["#r00", "#r59"]
    b.sync("after")


def test_who_of_a_crowd_bigger_than_the_send_queue(irc_attack):
    """WHO #room sent every member at once: a crowd's 352 lines passed a small
    send_queue_limit and ended the asking session for overflow.  As LIST, the reply
    holds what fits in half the send queue and its 315 says how many members it left
    out."""
    daemon = irc_attack(guests=True, send_queue_limit=4096, room_notice_limit=5,
                        max_logins=256, max_logins_per_address=256,
                        max_clients_per_address=256)
    n = 70
    crowd = [daemon.irc(f"g{i}") for i in range(n)]
    for i, g in enumerate(crowd):
        g.send_raw(f"NICK crowd{i:02d}\r\nUSER g 0 * :g\r\n".encode())
        g.numeric("001", timeout=30)
    w = daemon.irc("w").register("watcher", password="pw-watcher")
    expect_cut_reply(w, "WHO #lobby", "352", "315", n + 1, "members")
    w.sync("after")


# ---- SASL ----

def sasl_start(daemon, label="s"):
    c = daemon.irc(label)
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.send("NICK bob")
    c.send("USER bob 0 * :bob")
    c.send("AUTHENTICATE PLAIN")
    c.expect(lambda l: l == "AUTHENTICATE +", "AUTHENTICATE +")
    return c


def test_sasl_first_chunk_too_long(irc_attack):
    """A first AUTHENTICATE chunk over 400 bytes is 905; it once passed a null pointer
    to explicit_bzero() (no buffer yet): undefined behaviour, which UBSan stops on."""
    daemon = irc_attack()
    c = sasl_start(daemon)
    c.send("AUTHENTICATE " + "A" * 401)
    c.numeric("905")
    c.send("AUTHENTICATE *")                    # nothing to abort: 906 all the same
    c.numeric("906")
    c.sync()


def test_login_attempts_hold_for_sasl_and_pass_on_one_connection(irc_attack):
    """SECURITY.md: SASL and PASS go through the native login's checks, login_attempts
    included: a client retrying AUTHENTICATE after each 904, or PASS after SASL, has
    login_attempts wrong passwords on one connection, then it is closed; no further
    guess is checked, and the name is not locked for its owner elsewhere."""
    daemon = irc_attack(login_attempts=3, login_fail_delay_ms=0)
    daemon.login("carol").close()                 # registered, password pw-carol

    def guess(c, password):
        c.send("AUTHENTICATE PLAIN")
        c.expect(lambda l: l == "AUTHENTICATE +" or command(l) == "904", "AUTHENTICATE +")
        c.send("AUTHENTICATE " + base64.b64encode(b"\0carol\0" + password).decode())

    c = daemon.irc("sasl-guesser")
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    c.send("NICK carol")
    c.send("USER carol 0 * :carol")
    for i in range(3):
        guess(c, b"wrong-%d" % i)
        c.numeric("904")
    lines = c.read_until_closed()
    assert any(command(l) == "ERROR" for l in lines), lines
    assert "login failed for carol" in daemon.log_text()
    assert daemon.log_text().count("login failed for carol") == 3

    # Two wrong over SASL, then PASS with a third: the count is the connection's.
    c = daemon.irc("mixed-guesser")
    c.send("CAP LS 302")
    c.send("CAP REQ :sasl")
    for i in range(2):
        guess(c, b"again-%d" % i)
        c.numeric("904")
    c.send("PASS wrong-pass")
    c.send("NICK carol")
    c.send("USER carol 0 * :carol")
    c.send("CAP END")
    lines = c.read_until_closed()
    assert any(command(l) == "464" for l in lines) and command(lines[-1]) == "ERROR", lines
    assert not any(command(l) == "001" for l in lines), lines
    assert daemon.log_text().count("login failed for carol") == 6
    owner = daemon.irc("owner")
    assert owner.register("carol", password="pw-carol")


def test_sasl_plain_edges(irc_attack):
    """Chunk boundaries, lengths, malformed and mismatched messages: each answered with
    its numeric, none logs in; then a message of exactly 400 bytes and "+" does."""
    daemon = irc_attack()
    carol = daemon.login("carol")           # registered, password pw-carol
    carol.close()

    def b64(raw):
        return base64.b64encode(raw).decode()

    for chunks, num in (
            (["A" * 400] * 3 + ["AAAA"], "905"),                 # over 1200 in all
            (["!!!!"], "904"),                                    # not base64
            (["QUJD" * 100, "+"], "904"),                         # 400 bytes, no NULs
            ([b64(b"dave\0carol\0pw-carol")], "904"),             # authzid != authcid
            ([b64(b"\0carol\0")], "904"),                         # empty password
            ([b64(b"\0carol\0pw-\0carol")], "904"),               # a NUL in the password
            ([b64(b"\0" + b"c" * 33 + b"\0pw")], "904"),          # not a name
            ([b64(b"\0carol\0pw-carol")[:-1]], "904"),            # cut short
            (["+"], "904")):                                      # empty message
        c = sasl_start(daemon, f"sasl{num}")
        for chunk in chunks:
            c.send("AUTHENTICATE " + chunk)
        c.numeric(num)
        c.close()

    # 400 bytes exactly: the client must send "+" after it.
    password = "p" * (300 - len("\0carol\0")) 
    blob = b64(b"\0carol\0" + password.encode())
    assert len(blob) == 400
    c = sasl_start(daemon, "exact")
    c.send("AUTHENTICATE " + blob)
    c.send("AUTHENTICATE +")
    c.numeric("904")                                    # wrong password, well-formed
    c.send("AUTHENTICATE PLAIN")
    c.expect(lambda l: l == "AUTHENTICATE +", "AUTHENTICATE +")
    c.send("AUTHENTICATE " + b64(b"carol\0carol\0pw-carol"))
    c.numeric("903")
    c.send("AUTHENTICATE PLAIN")
    c.numeric("907")
    c.send("CAP END")
    assert params(c.numeric("001"))[0] == "carol"       # the account, not NICK bob


def test_plain_login_keeps_passwords_off_the_plain_irc_port(irc_attack, pair):
    """With TLS on and plain_login = deny, SASL PLAIN and PASS on the plain IRC port are
    refused before any password is sent, naming irc_tls_port."""
    daemon = irc_attack(tls_cert=str(pair[0]), tls_key=str(pair[1]), tls_port=free_port(),
                       irc_tls_port=free_port(), plain_login="deny")
    for first in ("CAP REQ :sasl", "PASS :secret"):
        c = daemon.irc("plain")
        c.send(first)
        c.send("NICK bob")
        c.send("USER bob 0 * :bob")
        c.send("AUTHENTICATE PLAIN")
        c.send("CAP END")
        lines = c.read_until_closed()
        assert any(f"connect with TLS to port {daemon.irc_tls_port}" in l for l in lines), lines
        assert not any(command(l) in ("001", "900", "AUTHENTICATE") for l in lines), lines


def test_irc_over_tls(irc_attack, pair, ca):
    """irc_tls_port: SASL over TLS; a peer that never completes its handshake (or speaks
    plain IRC to the TLS port) holds nobody up."""
    daemon = irc_attack(tls_cert=str(pair[0]), tls_key=str(pair[1]), tls_port=free_port(),
                       irc_tls_port=free_port())
    stuck = socket.create_connection(("127.0.0.1", daemon.irc_tls_port))
    plain = socket.create_connection(("127.0.0.1", daemon.irc_tls_port))
    plain.sendall(b"NICK x\r\nUSER x 0 * :x\r\n")
    try:
        t = Irc(daemon.irc_tls_port, "tls", tls_ca=ca.cert)
        t.register("tlsuser", password="pw-tlsuser", caps=["message-tags"])
        t2 = Irc(daemon.irc_tls_port, "tls2", tls_ca=ca.cert)
        t2.register("other", sasl=("other", "pw-other"))     # registers other
        t.send("PRIVMSG #lobby :over TLS")
        line = t2.expect(lambda l: command(l) == "PRIVMSG", "PRIVMSG")
        assert params(line) == ["#lobby", "over TLS"]
        t.close()
        t2.close()
    finally:
        stuck.close()
        plain.close()


def test_flood_before_registration_is_slowed_too(irc_attack):
    """The token bucket holds from the first line: before registration a client could
    send lines as fast as the network takes them (PING, CAP LS, ...), each answered, and
    keep a core busy without ever logging in."""
    daemon = irc_attack(irc_flood_burst=5, irc_flood_rate=10)
    c = daemon.irc("pre")
    cpu0, t0 = cpu_seconds(daemon.pid), time.monotonic()
    c.send_raw(b"PING x\r\n" * 2000)
    pongs = 0
    while time.monotonic() - t0 < 2:
        try:
            pongs += command(c.read(0.1)) == "PONG"
        except Timeout:
            pass
    took = time.monotonic() - t0
    assert 5 <= pongs <= 5 + 10 * took + 2, (pongs, took)
    assert cpu_seconds(daemon.pid) - cpu0 < took / 4


@pytest.mark.parametrize("how", ["flood", "ping-pong"])
def test_login_timeout_ends_a_registration_that_only_sends_lines(irc_attack, how):
    """login_timeout holds while lines keep coming before registration, paced by flood
    control (a flood) or not (PING, PONG, PING...): ERROR, then the connection closes."""
    daemon = irc_attack(login_timeout=2, irc_flood_burst=5, irc_flood_rate=10)
    c = daemon.irc("pre")
    t0 = time.monotonic()
    if how == "flood":
        c.send_raw(b"PING x\r\n" * 2000)
    # The server's ERROR comes before its close, so a read sees it before a send fails.
    with pytest.raises((Closed, BrokenPipeError, ConnectionResetError)):
        while time.monotonic() - t0 < scaled(6):
            if how == "ping-pong":
                c.send("PING x")
            try:
                c.read(0.5)
            except Timeout:
                pass
    assert any(l.startswith("ERROR ") and "too long" in l for l in c.seen), c.seen[-3:]
    assert time.monotonic() - t0 < 2 + scaled(1.5)


# ---- names: guests, registered users, both protocols ----

def test_guests_cannot_take_a_name_in_use_or_registered(irc_attack):
    """guests = true: a guest may not take a registered name (any case) or one online
    (IRC or native, any case); a login with the password replaces a session of that name,
    from either protocol to the other."""
    daemon = irc_attack(guests=True)
    daemon.login("bob").close()                          # registers bob
    g = daemon.irc("g").register("guest1")
    for nick, num in (("BOB", "464"), ("GUEST1", "433"), ("guest1", "433")):
        c = daemon.irc(f"try-{nick}")
        c.send(f"NICK {nick}")
        c.send(f"USER {nick} 0 * :{nick}")
        c.numeric(num)
        c.close()
    native = daemon.connect("native-guest1")
    native.expect_hello()
    native.send_line("Guest1")
    native.expect("PASS")
    native.send_line("")
    assert native.read().tag == "ERR"

    # native bob, then IRC bob with the password: the native one is replaced; and back.
    nbob = daemon.login("bob")
    ibob = daemon.irc("ibob").register("bob", password="pw-bob")
    assert nbob.expect("BYE")[0] == "replaced"
    nbob2 = daemon.login("bob")
    lines = ibob.read_until_closed()
    assert any(l.startswith("ERROR :Closing link: replaced") for l in lines), lines
    nbob2.sync()
    g.sync()


def users_online(daemon):
    """chatctl users as {name: True if a guest}."""
    out = {}
    for line in daemon.ctl_ok("users").splitlines():
        words = line.split()
        if words:
            out[words[0]] = words[-1] == "guest"
    return out


def test_a_guest_that_loses_the_race_for_its_name_replaces_nobody(irc_attack):
    """A guest's name is checked by its front-end, then it goes online: another login of
    the name may come in between (the slow-guest fault makes the gap 500 ms).  Neither a
    second guest of the name nor a registered session is replaced by the late guest, and a
    name registered meanwhile by someone who has left again is no guest's: the late guest
    gets ERROR and never goes online; chatctl users and WHOIS say who is who."""
    daemon = irc_attack(guests=True, start=False)
    daemon.env["CHATD_TEST_FAULT"] = "slow-guest"
    daemon.start()

    # Two guests of one nick at once: the first online stays, the second is refused.
    first, second = daemon.irc("first"), daemon.irc("second")
    first.send_raw(b"NICK Twin\r\nUSER t 0 * :t\r\n")
    wait_until(lambda: "login Twin from 127.0.0.1 as a guest" in daemon.log_text(),
               "the first guest's look-up")
    second.send_raw(b"NICK twin\r\nUSER t 0 * :t\r\n")
    # The first's wait began first, so it is online first, unless a loaded machine
    # runs the second's thread sooner: either way the one online stays.
    try:
        first.numeric("001")
        winner, loser, nick, other = first, second, "Twin", "twin"
    except Closed:
        winner, loser, nick, other = second, first, "twin", "Twin"
        winner.numeric("001")
    lines = loser.seen + loser.read_until_closed()
    assert not [l for l in lines if command(l) == "001"], lines
    assert any(command(l) == "ERROR" and f"{other} is online" in l for l in lines), lines
    winner.sync("after-twin")
    assert users_online(daemon) == {nick: True}

    # A registered session that came online meanwhile stays; the guest goes.
    g = daemon.irc("g")
    g.send_raw(b"NICK bob\r\nUSER b 0 * :b\r\n")
    wait_until(lambda: "login bob from 127.0.0.1 as a guest" in daemon.log_text(),
               "the guest's look-up")
    bob = daemon.login("bob")                       # registers bob and goes online
    lines = g.read_until_closed()
    assert not [l for l in lines if command(l) == "001"], lines
    assert any(command(l) == "ERROR" and "bob is online" in l for l in lines), lines
    bob.sync()
    assert users_online(daemon) == {nick: True, "bob": False}
    winner.send("WHOIS bob")
    winner.numeric("330")

    # Registered and gone again before the guest comes online: still no guest's name.
    late = daemon.irc("late")
    late.send_raw(b"NICK carol\r\nUSER c 0 * :c\r\n")
    wait_until(lambda: "login carol from 127.0.0.1 as a guest" in daemon.log_text(),
               "the guest's look-up")
    daemon.login("carol").close()
    lines = late.read_until_closed()
    assert not [l for l in lines if command(l) == "001"], lines
    assert any(command(l) == "ERROR" and "carol was registered" in l for l in lines), lines
    assert "carol" not in users_online(daemon)
    winner.send("WHOIS carol")
    winner.numeric("401")
    daemon.login("carol")

    # Natively the same: a native guest that loses its name to an IRC guest says BYE.
    irc_dora = daemon.irc("irc-dora")
    irc_dora.send_raw(b"NICK Dora\r\nUSER d 0 * :d\r\n")
    wait_until(lambda: "login Dora from 127.0.0.1 as a guest" in daemon.log_text(),
               "the IRC guest's look-up")
    native = daemon.connect("native")
    native.expect_hello()
    native.send_line("dora")
    native.expect("PASS", "new")
    native.send_line("")
    first_line = native.read()
    if first_line.tag == "WELCOME":
        # A loaded machine ran the native guest's thread first: the IRC one goes.
        lines = irc_dora.read_until_closed()
        assert not [l for l in lines if command(l) == "001"], lines
        assert any(command(l) == "ERROR" and "Dora is online" in l for l in lines), lines
        assert users_online(daemon).get("dora") is True
        return
    assert [first_line.raw] + [l.raw for l in native.read_until_closed()] == [
        "BYE refused dora is online; choose another name"]
    irc_dora.numeric("001")
    assert users_online(daemon).get("Dora") is True


def test_crowds_of_guests_for_one_nick(irc_attack):
    """Ten rounds of 40 connections that come in as guests under one nick (in any case)
    at the same moment, held at CAP LS and let go together: each round exactly one is
    welcomed, and it stays; every other gets 433 or ERROR, never a welcome followed by
    being replaced.  Before the hub refused a guest a name online, most runs had a round
    that welcomed two (the first then replaced)."""
    daemon = irc_attack(guests=True, max_logins=256, max_logins_per_address=256,
                        max_clients_per_address=512, max_clients=1000)
    for r in range(10):
        crowd = [daemon.irc(f"r{r}c{i}") for i in range(40)]
        for i, c in enumerate(crowd):
            nick = f"same{r}" if i % 2 else f"SAME{r}"
            c.send_raw(f"CAP LS 302\r\nNICK {nick}\r\nUSER g 0 * :g\r\n".encode())
        for c in crowd:
            c.expect(lambda l: command(l) == "CAP", "CAP LS")
        for c in crowd:
            c.send_raw(b"CAP END\r\n")
        answers = [command(c.expect(lambda l: command(l) in ("001", "433", "ERROR"),
                                    "001, 433 or ERROR", 30)) for c in crowd]
        assert answers.count("001") == 1, (r, answers)
        winner = crowd[answers.index("001")]
        winner.sync(f"round{r}")
        online = {n.lower(): g for n, g in users_online(daemon).items()}
        assert online.get(f"same{r}") is True, online
        for c in crowd:
            c.close()


# ---- many clients, and one that never reads ----

def test_crowd_of_200_irc_registrations(irc_attack):
    """200 IRC connections register at once (guests, within max_logins); WHO, NAMES, LIST
    and ISON on the crowded room keep every line within 512 bytes."""
    daemon = irc_attack(guests=True, max_logins=256, max_logins_per_address=256,
                       max_clients_per_address=256)
    conns = [daemon.irc(f"c{i}") for i in range(200)]
    for i, c in enumerate(conns):
        c.send_raw(f"NICK g{i:03d}-{'x' * 26}\r\nUSER g 0 * :g\r\n".encode())
    for c in conns:
        c.numeric("001", timeout=30)
    w = conns[0]
    w.sync("crowd")
    w.send("WHO #lobby")
    w.numeric("315", timeout=20)
    assert len([l for l in w.before if command(l) == "352"]) == 200
    w.send("NAMES #lobby")
    w.numeric("366", timeout=20)
    w.send("LIST")
    w.numeric("323", timeout=20)
    w.send("ISON " + " ".join(f"g{i:03d}-{'x' * 26}" for i in range(14)))
    w.numeric("303")
    for c in conns[1:]:
        c.send("QUIT :bye")
    w.sync("after")


def register_answer(conn):
    """The REGISTER SUCCESS or FAIL REGISTER line that answers a REGISTER, as params."""
    return params(conn.expect(lambda l: command(l) in ("REGISTER", "FAIL"), "REGISTER answer"))


def test_crowd_of_100_registers_at_once(irc_attack):
    """100 connections send REGISTER before connection registration at once: 50 for one
    nick (in any case), 50 for names of their own.  Exactly one of the 50 gets the nick
    and the rest ACCOUNT_EXISTS (no second account, no password checked against the
    winner's); every one of the others gets its account; the daemon goes on."""
    daemon = irc_attack(max_logins=256, max_logins_per_address=256,
                        max_clients_per_address=256)
    racers = [daemon.irc(f"race{i}") for i in range(50)]
    owners = [daemon.irc(f"own{i}") for i in range(50)]
    for i, c in enumerate(racers):
        nick = "Race" if i % 2 else "rACE"
        c.send_raw(f"CAP LS 302\r\nNICK {nick}\r\nREGISTER * * :pw-race-{i}\r\n".encode())
    for i, c in enumerate(owners):
        c.send_raw(f"CAP LS 302\r\nNICK own{i:02d}\r\nREGISTER * * :pw-own-{i}\r\n".encode())
    answers = [register_answer(c) for c in racers]
    won = [i for i, a in enumerate(answers) if a[0] == "SUCCESS"]
    assert len(won) == 1, answers
    lost = [a for a in answers if a[0] != "SUCCESS"]
    assert all(a[:2] == ["REGISTER", "ACCOUNT_EXISTS"] for a in lost), lost
    for i, c in enumerate(owners):
        assert register_answer(c)[:2] == ["SUCCESS", f"own{i:02d}"]
    names = daemon.ctl_ok("user", "list").split()
    assert sum(1 for n in names if n.lower() == "race") == 1, names
    assert all(f"own{i:02d}" in names for i in range(50)), names
    # The winner's password is the account's; a loser's is not.
    w = won[0]
    daemon.irc("winner").register("race", password=f"pw-race-{w}")
    loser = daemon.irc("loser")
    loser.send(f"PASS pw-race-{(w + 1) % 50}")
    loser.send("NICK race")
    loser.send("USER race 0 * :x")
    loser.numeric("464")
    for c in racers + owners:
        c.close()
    daemon.login("after").sync()


def guest_register_outcome(guest, nick):
    """How a guest's REGISTER of nick ended against another login of the nick: "guest"
    when it registered the nick (REGISTER SUCCESS), "pass" when the other login won and
    replaced it.  Replaced, the guest may have its REGISTER answered ACCOUNT_EXISTS
    first, or not at all: a command waits for what happened before it was read, the
    replacement among that (the session ends there, test_a_guest_replaced_before_its_
    register_is_read)."""
    first = guest.expect(lambda l: command(l) in ("REGISTER", "FAIL", "ERROR"),
                         "REGISTER answer or ERROR", timeout=30)
    if command(first) == "REGISTER":
        assert params(first)[:2] == ["SUCCESS", nick], first
        return "guest"
    lines = [first]
    if command(first) == "FAIL":
        assert params(first)[:3] == ["REGISTER", "ACCOUNT_EXISTS", nick], first
        lines = guest.read_until_closed(timeout=10)
    assert any(l.startswith("ERROR :Closing link: replaced") for l in lines), lines
    return "pass"


def test_a_guest_replaced_before_its_register_is_read(irc_attack):
    """The race test_guests_register_at_once... lost under load: an account's login
    replaces a guest whose REGISTER is still unread (here flood control holds it back).
    The guest's session ends with ERROR replaced and the REGISTER is never answered (it
    came after the replacement); the account is the other login's.  That test took a
    REGISTER answer for granted."""
    daemon = irc_attack(guests=True, irc_flood_burst=1, irc_flood_rate=1)
    g = daemon.irc("g").register("gst")
    g.send_raw(b"".join(b"PING p%d\r\n" % i for i in range(10)) + b"REGISTER * * :pw-g\r\n")
    daemon.login("gst", "pw-native")
    assert guest_register_outcome(g, "gst") == "pass"
    assert not [l for l in g.seen if command(l) in ("REGISTER", "FAIL")], g.seen
    loser = daemon.irc("loser")
    loser.send_raw(b"PASS pw-g\r\nNICK gst\r\nUSER x 0 * :x\r\n")
    loser.numeric("464")


def test_guests_register_at_once_while_others_log_in_with_their_nicks(irc_attack):
    """140 guests online send REGISTER at once; for half of them another connection logs
    in with PASS and the same nick at the same moment (which registers it if it gets there
    first).  Each nick ends as exactly one account, held by whoever won: a guest that won
    is online as that account (no guest in chatctl users, 330 in WHOIS) and the PASS login
    got 464 and ERROR; a PASS login that won is online and replaced the guest, whose
    REGISTER got ACCOUNT_EXISTS.  The winner's password is the account's."""
    daemon = irc_attack(guests=True, max_logins=256, max_logins_per_address=256,
                        max_clients_per_address=256, max_clients=512)
    n = 140
    guests = [daemon.irc(f"g{i}") for i in range(n)]
    for i, g in enumerate(guests):
        g.send_raw(f"NICK gst{i:03d}\r\nUSER g 0 * :g\r\n".encode())
    for g in guests:
        g.numeric("001", timeout=30)
        g.sync("in")
    rivals = {i: daemon.irc(f"p{i}") for i in range(0, n, 2)}
    for i, g in enumerate(guests):
        g.send(f"REGISTER * * :pw-g-{i}")
        if i in rivals:
            rivals[i].send_raw(f"PASS pw-p-{i}\r\nNICK gst{i:03d}\r\nUSER p 0 * :p\r\n"
                               .encode())
    winner = {}
    for i, g in enumerate(guests):
        winner[i] = guest_register_outcome(g, f"gst{i:03d}")
        if winner[i] == "guest":
            g.sync("won")
        else:
            assert i in rivals, i
    for i, p in rivals.items():
        final = p.expect(lambda l: command(l) in ("001", "464"), "001 or 464", timeout=30)
        assert command(final) == ("001" if winner[i] == "pass" else "464"), (i, final)
        if winner[i] == "guest":
            lines = p.read_until_closed(timeout=10)
            assert lines and command(lines[-1]) == "ERROR", lines
    assert len(winner) == n
    online = users_online(daemon)
    accounts = daemon.ctl_ok("user", "list").split()
    for i in range(n):
        nick = f"gst{i:03d}"
        assert online.get(nick) is False, (nick, online.get(nick))   # online, no guest
        assert accounts.count(nick) == 1, nick
    guests[1].send("WHOIS gst000")
    guests[1].numeric("330")
    # The winner's password is the account's, the loser's is not.
    for i in (0, 2):
        nick = f"gst{i:03d}"
        good, bad = ((f"pw-g-{i}", f"pw-p-{i}") if winner[i] == "guest" else
                     (f"pw-p-{i}", f"pw-g-{i}"))
        daemon.irc(f"check{i}").register(nick, password=good)
        loser = daemon.irc(f"loser{i}")
        loser.send_raw(f"PASS {bad}\r\nNICK {nick}\r\nUSER x 0 * :x\r\n".encode())
        loser.numeric("464")


def test_a_burst_with_register_inside_splits_at_the_register(irc_attack):
    """A guest sends 60 messages, REGISTER and 60 more in one write (flood control opened
    up): the room gets the first 60 without account= and the last 60 with it, in order,
    live and from CHATHISTORY; the REGISTER answer comes between its two halves' echoes."""
    daemon = irc_attack(guests=True, irc_flood_burst=1000, irc_flood_rate=1000)
    caps = ["message-tags", "echo-message", "batch", "draft/chathistory"]
    w = daemon.irc("w").register("watcher", password="pw-watcher", caps=caps)
    g = daemon.irc("g").register("burster", caps=caps)
    burst = [f"PRIVMSG #lobby :guest {i}" for i in range(60)] + ["REGISTER * * :pw-burster"]
    burst += [f"PRIVMSG #lobby :account {i}" for i in range(60)]
    g.send_raw(("\r\n".join(burst) + "\r\n").encode())
    want = [(f"guest {i}", None) for i in range(60)] + [(f"account {i}", "burster")
                                                       for i in range(60)]

    def account(line):
        tags = dict(t.partition("=")[::2] for t in line[1:].split(" ", 1)[0].split(";"))
        return tags.get("account")

    def texts(c):
        out = []
        while len([t for t in out if t[0] != "REGISTER"]) < 120:
            line = c.expect(lambda l: command(l) in ("PRIVMSG", "REGISTER"), "burst", 20)
            if command(line) == "REGISTER":
                out.append(("REGISTER", params(line)[0]))
            elif ":burster!" in line:
                out.append((params(line)[-1], account(line)))
        return out

    assert [t for t in texts(w) if t[0] != "REGISTER"] == want
    echoed = texts(g)
    assert ("REGISTER", "SUCCESS") in echoed, echoed
    at = echoed.index(("REGISTER", "SUCCESS"))
    assert echoed[:at] + echoed[at + 1:] == want, echoed
    assert at == 60, echoed
    g.send("CHATHISTORY LATEST #lobby * 200")
    got = []
    while True:
        line = g.expect(lambda l: command(l) in ("PRIVMSG", "BATCH"), "history", 20)
        if command(line) == "BATCH" and params(line)[0].startswith("-"):
            break
        if command(line) == "PRIVMSG" and ":burster!" in line:
            got.append((params(line)[-1], account(line)))
    assert got == want, got


def test_register_answers_keep_irc_framing(irc_attack):
    """Account names and passwords made to break a FAIL line or the history's guest mark:
    the longest line allowed, names that are not names (a guest's '~' mark, '*', '-', '#',
    UTF-8), a password cut at the spec's limit, invisible or control characters; each gets
    its FAIL code on a line that keeps IRC's framing, nothing is registered, and the
    connection may register afterwards."""
    daemon = irc_attack(guests=True)
    c = daemon.irc("c")
    c.send("CAP LS 302")
    c.send("NICK crafty")
    long_name = "a" * (510 - len("REGISTER  * :p"))
    for account, code in ((long_name, "BAD_ACCOUNT_NAME"), ("~crafty", "BAD_ACCOUNT_NAME"),
                          ("~", "BAD_ACCOUNT_NAME"), ("-", "BAD_ACCOUNT_NAME"),
                          ("#crafty", "BAD_ACCOUNT_NAME"), ("cr\u00e4fty", "BAD_ACCOUNT_NAME"),
                          ("someone", "ACCOUNT_NAME_MUST_BE_NICK")):
        c.send(f"REGISTER {account} * :p")
        answer = register_answer(c)
        assert answer[:2] == ["REGISTER", code], (account, answer)
    for password, code in (("\u202epw", "UNACCEPTABLE_PASSWORD"),
                           ("pw\u200b", "UNACCEPTABLE_PASSWORD"),
                           ("p\x1bw", "UNACCEPTABLE_PASSWORD"),
                           ("\u00e9" * 129, "UNACCEPTABLE_PASSWORD")):
        c.send(f"REGISTER * * :{password}")
        answer = register_answer(c)
        assert answer[:3] == ["REGISTER", code, "crafty"], (password, answer)
    c.send_raw(b"REGISTER * * :p\xff\xfe\r\n")
    answer = register_answer(c)
    assert answer[:3] == ["REGISTER", "UNACCEPTABLE_PASSWORD", "crafty"], answer
    assert "crafty" not in daemon.ctl_ok("user", "list").split()
    c.send("REGISTER * * :a password with spaces")
    assert register_answer(c)[:2] == ["SUCCESS", "crafty"]
    c.send("USER crafty 0 * :x")
    c.send("CAP END")
    c.numeric("001")
    # A guest's REGISTER is held to the same rules; it never names another account.
    g = daemon.irc("g").register("drifter")
    for line in ("REGISTER ~drifter * :p", "REGISTER crafty * :p", "REGISTER * * :"):
        g.send(line)
        assert register_answer(g)[0] == "REGISTER", line
    g.send("WHOIS drifter")
    g.numeric("320")                                     # still a guest
    c.sync("end")


def test_a_client_that_never_reads_is_dropped_at_send_queue_limit(irc_attack):
    """Requests with big answers from a client that does not read: its queue stays
    bounded and it is dropped for overflow; the others go on."""
    daemon = irc_attack(send_queue_limit=65536)
    carol = daemon.login("carol")
    for i in range(30):
        carol.say(f"{i} " + "x" * 2000)
    slow = daemon.irc("slow").register("slow", password="pw-slow",
                                       caps=["batch", "draft/chathistory"])
    slow.sock.settimeout(scaled(10))
    request = b"CHATHISTORY LATEST #lobby * 1000\r\nLIST\r\nPRIVMSG nobody :x\r\n"
    try:
        for _ in range(300):
            slow.send_raw(request)
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    wait_until(lambda: "disconnect slow from 127.0.0.1: overflow" in daemon.log_text(),
               "slow dropped for overflow", timeout=20)
    carol.sync()


# ---- hostile lines ----

def test_hostile_lines(irc_attack):
    """NUL, bare CR, empty lines, tags at and over 4094 bytes, lines at and over 510
    bytes and 8191 + 512 in all, many parameters: answered (417) or ignored; the
    connection and the daemon stay."""
    daemon = irc_attack()
    a = daemon.irc("a").register("alice", password="pw-alice",
                                 caps=["message-tags", "labeled-response"])
    a.send("@" + "a" * 4094 + " PING tags-at-max")
    a.expect(lambda l: l.endswith("tags-at-max"), "PONG")
    for line in ("@" + "a" * 4095 + " PING x", "@a=" + "b" * 8180 + " PING x",
                 "@" + "a" * 8191 + " " + "P" * 512, "@" + "a" * 9000 + " PING x",
                 "PING " + "x" * 506):
        a.send(line)
        a.numeric("417")
    a.send("PING " + "x" * 505)          # fits the client's line; its PONG would not fit ours
    assert params(a.numeric("417"))[1].startswith("PING token too long")
    a.send_raw(b"PING a\0b\r\nPING a\rb\r\n\r\n\n\r\r\n" + b"x" * 20000 + b"\r\n")
    a.numeric("417")
    a.send(" ".join(["PING"] + [f"p{i}" for i in range(40)]))
    a.expect(lambda l: command(l) == "PONG" and l.endswith(":p0"), "PONG p0")
    a.send("CAP REQ :" + " ".join(["sasl"] * 100))
    a.expect(lambda l: " ACK :sasl" in l, "ACK")
    a.send("PRIVMSG #lobby :\x01ACTION")
    a.send("PRIVMSG #lobby :\x01")
    a.send("PRIVMSG #lobby :\x02\x1d\x0f")
    a.numeric("412")
    a.send("PRIVMSG #lobby :a\x07b")
    a.expect(lambda l: "INVALID_TEXT" in l, "FAIL INVALID_TEXT")
    a.sync("end")


def test_malformed_lines_are_answered_not_dropped(irc_attack):
    """A line with a NUL or a bare CR inside, tags or a source but no command, or more
    than 32 tags, was dropped without a word (a PRIVMSG with a stray CR vanished, and
    its sender never knew): each gets 400 (417 for the tags) and is not processed,
    before registration and after; the connection goes on (docs/IRC.md, "Limits")."""
    daemon = irc_attack()
    carol = daemon.login("carol")
    pre = daemon.irc("pre")
    pre.send_raw(b"NICK a\0b\r\n")
    assert params(pre.numeric("400"))[:2] == ["*", "*"]
    pre.close()
    a = daemon.irc("a").register("alice", password="pw-alice", caps=["message-tags"])
    many = ";".join(f"+t{i}=v" for i in range(33))
    for raw in (b"PING a\0b", b"PRIVMSG #lobby :one\rtwo", b"@a=b", b":src",
                b"@" + many.encode() + b" PRIVMSG #lobby :tagged"):
        a.send_raw(raw + b"\r\n")
        got = a.expect(lambda l: command(l) in ("400", "417", "PONG"), "400 or 417")
        assert command(got) == ("417" if raw.startswith(b"@+") else "400"), (raw, got)
        assert params(got)[0] == "alice", got
    a.send("@" + ";".join(f"+t{i}=v" for i in range(32)) + " PRIVMSG #lobby :32 tags")
    a.sync("end")
    carol.sync()
    assert [l[-1] for l in carol.live if l.tag == "MSG"] == ["32 tags"], carol.live


def test_texts_others_see_keep_the_native_framing(irc_attack):
    """QUIT, PART, AWAY and TOPIC texts with bidi, control and formatting characters
    reach native users only as text that passes the native rules (PROTOCOL.md)."""
    daemon = irc_attack()
    carol = daemon.login("carol")
    a = daemon.irc("a").register("alice", password="pw-alice")
    a.send("AWAY :\x1b[31m red \u202e")
    a.numeric("306")
    a.send("TOPIC #lobby :\u202eevil")
    a.expect(lambda l: "INVALID_TEXT" in l, "FAIL INVALID_TEXT")
    a.send("PRIVMSG #lobby :\x0304,12colour\x03 \x02bold\x02")
    a.send("PART #lobby :\u2066isolate\u2069")
    a.send("JOIN #lobby")
    a.send("QUIT :bye \u202e\x01 now")
    a.read_until_closed()
    carol.sync()
    msgs = [l for l in carol.live if l.tag == "MSG"]
    assert [m[-1] for m in msgs] == ["colour bold"]
    parts = [l for l in carol.live if l.tag == "PART"]
    assert len(parts) == 2 and all("\u202e" not in l.raw and "\u2066" not in l.raw
                                   for l in parts), parts


def source(line):
    """The source of a server line (without its ':'), or ""."""
    words = line.split(" ")
    if words[0].startswith("@"):
        words = words[1:]
    return words[0][1:] if words and words[0].startswith(":") else ""


def test_a_guests_prefix_has_a_tilde_in_every_line(irc_attack):
    """A guest was NICK!NICK@chatd in every line but 333 (NICK!~NICK@chatd there), so
    an IRC client could not tell it from the account someone may register under the
    name later: it is NICK!~NICK@chatd in every line, live, echoed and replayed, and
    the user part of 352, 311 and 302 (natively a guest is ~NAME everywhere)."""
    daemon = irc_attack(guests=True)
    w = daemon.irc("w").register("watcher", password="pw-watcher",
                                 caps=["batch", "draft/chathistory"])
    assert any(command(l) == "JOIN" and source(l) == "watcher!watcher@chatd" for l in w.seen)
    g = daemon.irc("g").register("guesty", caps=["echo-message"])
    mask = "guesty!~guesty@chatd"
    assert any(command(l) == "JOIN" and source(l) == mask for l in g.seen), g.seen
    assert source(w.expect(lambda l: command(l) == "JOIN", "guest's JOIN")) == mask
    g.send("PRIVMSG #lobby :hello")
    assert source(g.expect(lambda l: command(l) == "PRIVMSG", "echo")) == mask
    assert source(w.expect(lambda l: command(l) == "PRIVMSG", "PRIVMSG")) == mask
    g.send("PRIVMSG watcher :psst")
    assert source(w.expect(lambda l: command(l) == "PRIVMSG", "private")) == mask
    g.send("TOPIC #lobby :set by a guest")
    assert source(w.expect(lambda l: command(l) == "TOPIC", "TOPIC")) == mask
    w.send("WHO guesty")
    assert params(w.numeric("352"))[2] == "~guesty"
    w.send("WHOIS guesty")
    assert params(w.numeric("311"))[2] == "~guesty"
    w.send("USERHOST guesty")
    assert params(w.numeric("302"))[1] == "guesty=+~guesty@chatd"
    w.send("CHATHISTORY LATEST #lobby * 10")
    w.expect(lambda l: command(l) == "BATCH", "BATCH")
    replayed = w.expect(lambda l: command(l) == "PRIVMSG", "replayed PRIVMSG")
    assert source(replayed) == mask and replayed.endswith(" :hello"), replayed
    g.send("PART #lobby")
    assert source(g.expect(lambda l: command(l) == "PART", "own PART")) == mask
    assert source(w.expect(lambda l: command(l) == "PART", "PART")) == mask
    g.send("JOIN #lobby")
    g.send("QUIT :bye")
    assert source(w.expect(lambda l: command(l) == "QUIT", "QUIT")) == mask


def test_a_guests_private_message_has_no_account_tag(irc_attack):
    """account-tag: a guest is logged in to no account; its private messages (IRC or
    native /msg) carried account=NAME all the same."""
    daemon = irc_attack(guests=True)
    w = daemon.irc("w").register("watcher", password="pw-watcher",
                                 caps=["message-tags", "account-tag"])
    g = daemon.irc("g").register("guesty")
    g.send("PRIVMSG watcher :from an IRC guest")
    native = daemon.connect("native-guest")
    native.expect_hello()
    native.send_line("nguest")
    native.expect("PASS")
    native.send_line("")
    native.finish_login()
    native.request("/msg watcher from a native guest")
    carol = daemon.login("carol")
    carol.request("/msg watcher from carol")
    lines = [w.expect(lambda l: command(l) == "PRIVMSG", "PRIVMSG") for _ in range(3)]
    assert ["account=" in l.split(" ", 1)[0] for l in lines] == [False, False, True], lines
    assert ";account=carol " in lines[2]


def test_a_guests_room_message_has_no_account_tag(irc_attack):
    """account-tag (and IRC-DESIGN: 'account only for registered users'): a guest is
    logged in to no account, so its room messages must not carry one."""
    daemon = irc_attack(guests=True)
    w = daemon.irc("w").register("watcher", password="pw-watcher",
                                 caps=["message-tags", "account-tag"])
    g = daemon.irc("g").register("guesty")
    g.send("PRIVMSG #lobby :from a guest")
    line = w.expect(lambda l: command(l) == "PRIVMSG", "the guest's PRIVMSG")
    assert "account=" not in line.split(" ", 1)[0], line


def test_tagmsg_echo_carries_what_others_get(irc_attack):
    """echo-message and message-tags: a TAGMSG's echo is the line the others get, with
    time= and, for an account (not for a guest, nor before its REGISTER), account=, to a
    room and to a nick; a TAGMSG that was not delivered (a room not joined, a nick not
    online) is answered with its error, not echoed."""
    daemon = irc_attack(guests=True)
    caps = ["message-tags", "echo-message"]
    w = daemon.irc("w").register("watcher", password="pw-watcher", caps=caps)
    g = daemon.irc("g").register("guesty", caps=caps)
    a = daemon.irc("a").register("acct", password="pw-acct", caps=caps)

    def tags_of(line):
        return dict(t.partition("=")[::2] for t in line[1:].split(" ", 1)[0].split(";"))

    def echoes(c, nick):
        c.send("@+typing=active TAGMSG #lobby")
        c.send("@+typing=paused TAGMSG watcher")
        mine = [c.expect(lambda l: command(l) == "TAGMSG" and f":{nick}!" in l, "echo")
                for _ in range(2)]
        theirs = [w.expect(lambda l: command(l) == "TAGMSG" and f":{nick}!" in l, "TAGMSG")
                  for _ in range(2)]
        # The room's and the private one travel apart: either may reach w first.
        order = {"#lobby": 0, "watcher": 1}
        return mine, sorted(theirs, key=lambda l: order[params(l)[0]])

    for c, nick, account in ((a, "acct", "acct"), (g, "guesty", None)):
        mine, theirs = echoes(c, nick)
        assert [params(l) for l in mine] == [["#lobby"], ["watcher"]], mine
        for echo, got in zip(mine, theirs):
            assert tags_of(echo).get("account") == account, (echo, got)
            assert tags_of(got).get("account") == account, (echo, got)
            assert "time" in tags_of(echo), echo
            assert tags_of(echo)["+typing"] == tags_of(got)["+typing"], (echo, got)
    g.send("REGISTER * * :pw-guesty")
    assert register_answer(g)[:2] == ["SUCCESS", "guesty"]
    mine, theirs = echoes(g, "guesty")
    assert [tags_of(l).get("account") for l in mine + theirs] == ["guesty"] * 4, mine + theirs

    a.send("@+typing=active TAGMSG #nowhere")
    a.send("@+typing=active TAGMSG nobody")
    a.numeric("403")
    a.numeric("401")
    a.sync("no-echo")
    assert not [l for l in a.before if command(l) == "TAGMSG"], a.before


def test_operator_events_have_a_valid_source(irc_attack):
    """A topic the operator set (chatctl room topic) has the server as its source, live
    and in history: ':*!*@chatd TOPIC' named a user '*', which no nick can be.  Long
    operator notices are cut to fit one line."""
    daemon = irc_attack(max_topic=1024)
    a = daemon.irc("a").register("alice", password="pw-alice",
                                 caps=["message-tags", "batch", "draft/chathistory",
                                       "draft/event-playback"])
    daemon.ctl_ok("room", "topic", "lobby", "set by the operator")
    topic = a.expect(lambda l: command(l) == "TOPIC", "TOPIC")
    assert topic.split(" ")[1] == ":chatd", topic
    daemon.ctl_ok("notice", "n" * 3000)
    assert params(a.expect(lambda l: command(l) == "NOTICE", "NOTICE"))[1].startswith("nnn")
    a.send("CHATHISTORY LATEST #lobby * 10")
    a.expect(lambda l: l.startswith(":chatd BATCH -"), "end of batch")
    topics = [l for l in a.before if command(l) == "TOPIC"]
    assert topics and all(" :chatd TOPIC #lobby " in l for l in topics), topics


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))


@pytest.mark.skipif(os.environ.get("CHATD_SANITIZE", "") != "",
                    reason="a sanitizer's allocator keeps freed memory resident: "
                    "the resident size cannot show what chatd frees")
def test_a_big_reply_is_not_kept_per_connection(chatd_factory):
    """Each connection gathered its replies in a buffer that grew to the largest reply it
    ever had (a CHATHISTORY of 1000 lines: half a megabyte, a LIST of 4096 rooms with
    topics more) and kept it for its life: many connections asking once pinned that much
    each."""
    daemon = chatd_factory(irc=True, irc_port=free_port(), irc_tls_port=-1,
                           max_logins_per_address=128, max_clients_per_address=128)
    carol = daemon.login("carol")
    for start in range(0, 1000, 100):
        carol.send_raw(b"".join(b"%d %s\n" % (i, b"x" * 440) for i in range(start, start + 100)))
        for _ in range(100):
            carol.wait_for("OK")
    clients = [Irc(daemon.irc_port, f"c{i}").register(f"user{i}", password=f"pw-user{i}",
                                                      caps=["batch", "draft/chathistory"])
               for i in range(100)]
    before = rss_kib(daemon.pid)
    # One after the other: the allocator keeps some of what a reply freed for the next (a
    # bounded amount, some 16 MiB here, whatever the number of connections); what each
    # connection keeps adds up (about half a MiB each).
    for c in clients:
        c.send("CHATHISTORY LATEST #lobby * 1000")
        c.expect(lambda l: l.startswith(":chatd BATCH -"), "end of the batch", timeout=30)
        c.sync()
    kept = rss_kib(daemon.pid) - before
    assert kept < 32 * 1024, f"{kept} KiB kept after 100 CHATHISTORY replies of ~500 KiB"
    for c in clients:
        c.close()


def test_connection_limits_hold_across_irc_and_native(irc_attack):
    """SECURITY.md "connection floods": max_clients_per_address counts an address's
    connections on every port together, and the IRC port refuses the excess at once
    with an IRC ERROR; max_clients counts IRC users too, and an IRC registration
    that would exceed it is refused at its welcome (ERROR), never let in."""
    daemon = irc_attack(max_clients_per_address=3, max_clients=3)
    src = "127.0.0.41"

    def irc_from(addr):
        return socket.create_connection(("127.0.0.1", daemon.irc_port), source_address=(addr, 0),
                                        timeout=scaled(5))

    def until_closed(sock):
        got = b""
        while True:
            data = sock.recv(4096)
            if not data:
                return got
            got += data

    native = daemon.connect("native", source_addr=src)
    native.login("nat", "pw")
    socks = [irc_from(src) for _ in range(2)]
    try:
        for s in socks:             # both admitted: each answers a PING
            s.sendall(b"PING :probe\r\n")
            got = b""
            while b"PONG" not in got:
                data = s.recv(4096)
                assert data, got
                got += data
        # A fourth from the address, on either port: refused at once.
        extra = irc_from(src)
        refused = until_closed(extra)
        extra.close()
        assert refused.startswith(b"ERROR :too many connections from your address (3)"), refused
        late = daemon.connect("late-native", source_addr=src)
        assert late.read().raw.startswith("ERR 503 too many connections"), "native 4th"
    finally:
        for s in socks:
            s.close()

    # max_clients (3): two IRC users and the native one fill it; a third IRC
    # registration, connected before they were in, is refused at its welcome, and
    # a connection made then is refused at once.
    c = daemon.irc("c")
    c.sync()
    daemon.irc("a").register("ircone", "pw-one")
    daemon.irc("b").register("irctwo", "pw-two")
    assert until_closed(irc_from("127.0.0.42")).startswith(b"ERROR :server is full (3 clients)")
    c.send("PASS pw-three")
    c.send("NICK ircthree")
    c.send("USER ircthree 0 * :x")
    lines = c.read_until_closed()
    assert lines and lines[-1].startswith("ERROR :server is full (3 clients)"), lines
    assert not any(command(l) == "001" for l in lines), lines
    assert "clients: 3 online" in daemon.ctl_ok("status")


def test_ctcp_other_than_action_reaches_nobody(irc_attack):
    """SECURITY.md: CTCP other than ACTION is not relayed, so nobody can make
    another's client answer VERSION, PING or TIME (revealing it, or flooding
    through it) or offer a DCC connection (revealing an address), whether to
    a channel or privately, as PRIVMSG or NOTICE, to IRC or native users."""
    daemon = irc_attack(irc_flood_burst=100)
    carol = daemon.login("carol")
    a = daemon.irc("a").register("alice", password="pw-alice")
    b = daemon.irc("b").register("bob", password="pw-bob")
    a.expect(lambda l: command(l) == "JOIN" and l.startswith(":bob!"), "bob's JOIN")
    carol.sync()
    for target in ("#lobby", "bob", "carol"):
        for verb in ("PRIVMSG", "NOTICE"):
            for ctcp in ("VERSION", "PING 1234", "TIME", "CLIENTINFO",
                         "DCC SEND file 2130706433 5000 10", "DCC CHAT chat 2130706433 5001"):
                a.send(f"{verb} {target} :\x01{ctcp}\x01")
    a.send("PRIVMSG #lobby :\x01ACTION waves\x01")
    got = b.expect(lambda l: command(l) in ("PRIVMSG", "NOTICE"), "the ACTION")
    assert params(got) == ["#lobby", "\x01ACTION waves\x01"], got
    assert not [l for l in b.before if command(l) in ("PRIVMSG", "NOTICE")], b.before
    msg = carol.wait_for("MSG")
    assert msg[-1] == "/me waves", msg.raw
    b.sync("after")
    assert not [l for l in b.before if command(l) in ("PRIVMSG", "NOTICE")], b.before
    carol.sync()
    assert not carol.live_of("PRIV") and not carol.live_of("NOTICE"), carol.live
    a.sync("end")
