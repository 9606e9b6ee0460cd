"""
test_irc_caps.py - IRCv3 capabilities on chatd's IRC gateway: CAP LS/REQ/
LIST/END, cap-notify, message-tags (and its 4094-byte limit, 417),
server-time, msgid, echo-message, account-tag, batch with labeled-response,
standard replies; and the flood control (fakelag, never a disconnect).
From the ircv3.net specifications.  Skipped while chatd has no IRC gateway.
"""

import re
import time

import pytest

from chatproto import scaled
from ircproto import TIME_RE, batches, one_batch

ADVERTISED = {"cap-notify", "message-tags", "server-time", "echo-message", "batch",
              "labeled-response", "account-tag", "sasl", "draft/chathistory",
              "draft/event-playback"}


def commands(lines):
    return [m.command for m in lines]


def login_pair(chatd, alice_caps=(), bob_caps=()):
    alice = chatd.irc_login("alice", caps=alice_caps)
    bob = chatd.irc_login("bob", caps=bob_caps)
    alice.expect("JOIN", lambda m: m.nick == "bob")
    return alice, bob


# --- negotiation ---

def test_cap_ls_302_lists_the_capabilities(irc_chatd):
    c = irc_chatd().irc_connect()
    caps = c.cap_ls("302")
    assert ADVERTISED <= set(caps), caps
    assert caps["sasl"] is not None and "PLAIN" in caps["sasl"].split(","), caps
    for name in caps:
        assert re.fullmatch(r"[a-z0-9./-]+", name), caps


def test_cap_ls_without_302_has_no_values(irc_chatd):
    c = irc_chatd().irc_connect()
    caps = c.cap_ls(None)
    assert ADVERTISED - {"cap-notify"} <= set(caps), caps
    assert all(value is None for value in caps.values()), caps


def test_cap_ls_lines_fit_and_continue_with_a_star(irc_chatd):
    c = irc_chatd().irc_connect()
    c.send("CAP LS 302")
    lines = c.until("CAP", lambda m: m.param(1) == "LS" and len(m.params) == 3)
    for m in lines[:-1]:
        assert m.command == "CAP" and m.params[:3] == ["*", "LS", "*"], lines
    assert lines[-1].source == "chatd"


def test_cap_req_ack_and_list(irc_chatd):
    c = irc_chatd().irc_connect()
    c.cap_ls()
    verb, named = c.cap_req(["server-time", "echo-message"])
    assert verb == "ACK" and sorted(named) == ["echo-message", "server-time"], named
    c.send("CAP LIST")
    listed = c.expect("CAP", lambda m: m.param(1) == "LIST")
    assert {"server-time", "echo-message"} <= set(listed.last.split()), listed.raw


def test_cap_req_of_an_unknown_cap_is_nak_for_the_whole_list(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    c.cap_ls()
    verb, named = c.cap_req(["server-time", "no-such-cap"])
    assert verb == "NAK" and set(named) == {"server-time", "no-such-cap"}
    c.send("CAP LIST")
    listed = c.expect("CAP", lambda m: m.param(1) == "LIST")
    assert "server-time" not in listed.last.split(), listed.raw


def test_cap_req_minus_disables(irc_chatd):
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=["server-time"])
    bob = chatd.irc_login("bob")
    alice.expect("JOIN", lambda m: m.nick == "bob" and "time" in m.tags)
    assert alice.cap_req(["-server-time"]) == ("ACK", ["-server-time"])
    bob.send("PRIVMSG #lobby :untimed")
    got = alice.expect("PRIVMSG")
    assert "time" not in got.tags, got.raw


def cap_answer(c, line):
    """Sends line (a CAP REQ); the ACK or NAK that answers it."""
    c.send(line)
    return c.expect("CAP", lambda m: m.param(1, "").upper() in ("ACK", "NAK"))


def test_cap_ack_names_the_set_requested_whatever_the_req_held(irc_chatd):
    """A REQ of ~500 bytes (runs of spaces, names repeated, in any case) is ACKed with
    the capabilities it names, once each, in its order, one space apart: a line that
    fits, not the REQ echoed and cut at 512 bytes.  A REQ written so gets itself back."""
    c = irc_chatd().irc_connect()
    c.cap_ls("302")
    wanted = ("batch" + " " * 320 + "message-tags  batch server-time -echo-message BATCH"
              + " batch" * 20)
    line = "CAP REQ :" + wanted
    assert 495 <= len(line) <= 510, len(line)
    ack = cap_answer(c, line)
    assert len(ack.raw.encode()) + 2 <= 512, ack.raw
    assert ack.params[1] == "ACK", ack.raw
    assert ack.last == "batch message-tags server-time -echo-message", ack.raw
    # "on" and "off" of one capability in one REQ: off wins, and the ACK says so.
    ack = cap_answer(c, "CAP REQ :echo-message account-tag -account-tag")
    assert ack.last == "echo-message -account-tag", ack.raw
    ack = cap_answer(c, "CAP REQ :account-tag sasl")
    assert ack.last == "account-tag sasl", ack.raw
    c.send("CAP LIST")
    listed = c.expect("CAP", lambda m: m.param(1) == "LIST")
    assert set(listed.last.split()) == {"account-tag", "batch", "cap-notify", "echo-message",
                                        "message-tags", "sasl", "server-time"}, listed.raw


def test_cap_nak_never_cuts_a_name(irc_chatd):
    """NAK echoes the REQ's list as sent when the reply fits (the spec's example); a
    longer one gets the names as sent, whole, once each, as many as fit: never a name
    cut short, and nothing enabled."""
    c = irc_chatd().irc_connect()
    c.cap_ls("302")
    nak = cap_answer(c, "CAP REQ :batch  no-such-cap")
    assert nak.params[1] == "NAK" and nak.last == "batch  no-such-cap", nak.raw

    long_x, long_y = "x" * 300, "y" * 150
    wanted = "batch" + " " * 26 + f"{long_x} {long_y} message-tags batch"
    assert len("CAP REQ :" + wanted) == 510
    nak = cap_answer(c, "CAP REQ :" + wanted)
    assert len(nak.raw.encode()) + 2 <= 512, nak.raw
    assert nak.params[1] == "NAK", nak.raw
    assert nak.last == f"batch {long_x} {long_y} message-tags", nak.raw

    # Too long even so: the names that fit whole, the one that would not left out.
    wanted = "batch " + "x" * 250 + " " + "y" * 236 + " sasl"
    nak = cap_answer(c, "CAP REQ :" + wanted)
    assert len(nak.raw.encode()) + 2 <= 512, nak.raw
    assert nak.params[1] == "NAK", nak.raw
    assert nak.last == "batch " + "x" * 250 + " sasl", nak.raw
    c.send("CAP LIST")
    listed = c.expect("CAP", lambda m: m.param(1) == "LIST")
    assert set(listed.last.split()) <= {"cap-notify"}, listed.raw


def test_cap_after_registration(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd)
    caps = alice.cap_ls("302")
    assert ADVERTISED <= set(caps)
    ls = [m for m in alice.history if m.command == "CAP"][-1]
    assert ls.params[0] == "alice", ls.raw  # the nick, no longer "*"
    assert alice.cap_req(["message-tags"])[0] == "ACK"
    bob.send("PRIVMSG #lobby :tagged now")
    assert "msgid" in alice.expect("PRIVMSG").tags


def test_cap_notify(irc_chatd):
    """cap-notify is advertised and can be requested (with CAP LS 302 it is
    on implicitly; chatd's capabilities never change while it runs)."""
    c = irc_chatd().irc_connect()
    c.cap_ls("302")
    assert c.cap_req(["cap-notify"]) == ("ACK", ["cap-notify"])


# --- message-tags, server-time, msgid, account-tag ---

def test_message_tags_on_a_message(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["message-tags"])
    bob.send("PRIVMSG #lobby :with tags")
    got = alice.expect("PRIVMSG")
    assert TIME_RE.match(got.tags.get("time") or ""), got.raw
    assert got.tags.get("msgid"), got.raw
    assert got.tags.get("account") == "bob", got.raw
    assert got.raw.startswith("@") and got.source == "bob!bob@chatd"


def test_server_time_alone_is_only_time(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["server-time"])
    before = time.time()
    bob.send("PRIVMSG #lobby :timed")
    got = alice.expect("PRIVMSG")
    after = time.time()
    assert set(got.tags) == {"time"}, got.raw
    stamp = got.tags["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
    from ircproto import utc_ms
    assert before * 1000 - 1000 <= utc_ms(stamp) <= after * 1000 + 1000, (stamp, before)


def test_no_caps_no_tags(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd)
    bob.send("PRIVMSG #lobby :plain")
    got = alice.expect("PRIVMSG")
    assert got.tags == {} and not got.raw.startswith("@"), got.raw


def test_msgid_is_chatds_message_id(irc_chatd):
    chatd = irc_chatd()
    irc = chatd.irc_login("alice", caps=["message-tags"])
    native = chatd.login("carol")
    irc.expect("JOIN", lambda m: m.nick == "carol")
    msg_id = native.say("counted")
    got = irc.expect("PRIVMSG")
    assert got.tags["msgid"] == str(msg_id), (got.raw, msg_id)
    assert got.last == "counted"


def test_account_tag_alone(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["account-tag"])
    bob.send("PRIVMSG #lobby :who am i")
    got = alice.expect("PRIVMSG")
    assert got.tags.get("account") == "bob", got.raw


@pytest.mark.parametrize("caps", [["account-tag"], ["account-tag", "server-time"],
                                  ["message-tags", "account-tag", "server-time"]])
def test_account_tag_on_every_command_a_user_sends(irc_chatd, caps):
    """account-tag: the tag MUST be added to all commands sent by a user
    (PRIVMSG, NOTICE "and all others"): JOIN, TOPIC, PART and QUIT too, never
    on the server's lines (KICK, the operator's TOPIC), nor a guest's."""
    chatd = irc_chatd(guests=True)
    alice = chatd.irc_login("alice", caps=caps)
    bob = chatd.irc_login("bob")
    alice.join("#t")
    bob.join("#t")
    assert alice.expect("JOIN", lambda m: m.nick == "bob").tags.get("account") == "bob"
    bob.send("TOPIC #t :by bob")
    assert alice.expect("TOPIC").tags.get("account") == "bob"
    bob.send("PART #t :later")
    assert alice.expect("PART").tags.get("account") == "bob"
    chatd.ctl_ok("room", "topic", "t", "by the operator")
    assert "account" not in alice.expect("TOPIC").tags
    bob.send("QUIT :gone")
    assert alice.expect("QUIT").tags.get("account") == "bob"
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor").command == "001"
    guest.join("#t")
    assert "account" not in alice.expect("JOIN", lambda m: m.nick == "visitor").tags
    guest.send("QUIT")
    assert "account" not in alice.expect("QUIT").tags


def test_no_account_tag_for_a_guest(irc_chatd):
    chatd = irc_chatd(guests=True)
    alice = chatd.irc_login("alice", caps=["message-tags", "account-tag"])
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor").command == "001"
    guest.send("PRIVMSG #lobby :no account")
    got = alice.expect("PRIVMSG")
    assert "account" not in got.tags, got.raw


def test_client_only_tags_are_relayed_unless_denied(irc_chatd):
    """message-tags: client-only tags MUST be relayed on PRIVMSG, unless
    CLIENTTAGDENY says they are blocked."""
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["message-tags"], bob_caps=["message-tags"])
    bob.send("@+example.com/mood=happy\\sday;+draft/reply=1 PRIVMSG #lobby :tagged")
    got = alice.expect("PRIVMSG")
    deny = alice.isupport.get("CLIENTTAGDENY") or ""
    if deny.split(",")[0] != "*":
        assert got.tags.get("+example.com/mood") == "happy day", got.raw
    assert not {k for k in got.tags if not k.startswith("+")} - {"time", "msgid", "account"}


@pytest.mark.parametrize("value", [b"\x1b[31mred", b"bell\x07", b"a\xe2\x80\xaeb", b"\xff\xfe",
                                   b"line\\nbreak"])
def test_client_only_tags_that_are_no_text_are_not_relayed(irc_chatd, value):
    """A client-only tag value reaches other clients, which show some (reactions):
    one with control characters (an escape sequence, a line break once unescaped),
    a bidi override or invalid UTF-8 (005 says UTF8ONLY) is dropped; the message and
    its other tags still go."""
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["message-tags"], bob_caps=["message-tags"])
    for verb in (b"TAGMSG #lobby", b"PRIVMSG #lobby :tagged", b"PRIVMSG alice :private"):
        bob.send_raw(b"@+draft/react=" + value + b";+typing=active " + verb + b"\r\n")
        got = alice.expect(verb.split()[0].decode())
        assert got.tags.get("+typing") == "active", got.raw
        assert "+draft/react" not in got.tags, got.raw


def test_tagmsg(irc_chatd):
    """message-tags enables TAGMSG: delivered like PRIVMSG to those with the cap."""
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=["message-tags"])
    bob = chatd.irc_login("bob", caps=["message-tags"])
    plain = chatd.irc_login("carol")
    alice.expect("JOIN", lambda m: m.nick == "carol")
    bob.send("@+typing=active TAGMSG #lobby")
    got = alice.expect("TAGMSG")
    assert got.params == ["#lobby"] and got.nick == "bob", got.raw
    plain.no_more("TAGMSG")


def test_client_tags_up_to_4094_bytes_pass_and_longer_is_417(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["message-tags"], bob_caps=["message-tags"])
    key = "+example.com/pad="
    fits = key + "v" * (4094 - len(key))
    assert len(fits) == 4094
    bob.send(f"@{fits} PRIVMSG #lobby :at the limit")
    assert alice.expect("PRIVMSG").last == "at the limit"
    bob.send(f"@{fits}w PRIVMSG #lobby :one byte over")
    bob.expect("417")
    bob.send(f"@{fits * 2} PRIVMSG #lobby :far over")
    bob.expect("417")
    alice.no_more("PRIVMSG", lambda m: "over" in m.last)
    bob.send("PRIVMSG #lobby :still connected")
    assert alice.expect("PRIVMSG").last == "still connected"


# --- echo-message ---

def test_echo_message_returns_the_message_to_its_sender(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["echo-message", "message-tags"],
                            bob_caps=["message-tags"])
    alice.send("PRIVMSG #lobby :echo me")
    echo = alice.expect("PRIVMSG")
    got = bob.expect("PRIVMSG")
    assert echo.source == "alice!alice@chatd" and echo.params == ["#lobby", "echo me"]
    assert echo.tags["msgid"] == got.tags["msgid"], (echo.raw, got.raw)
    assert echo.tags["time"] == got.tags["time"]
    alice.send("PRIVMSG bob :private echo")
    echo = alice.expect("PRIVMSG")
    assert echo.params == ["bob", "private echo"] and echo.nick == "alice", echo.raw
    assert bob.expect("PRIVMSG").params == ["bob", "private echo"]


def test_without_echo_message_the_sender_gets_nothing(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["message-tags", "server-time"])
    alice.send("PRIVMSG #lobby :no echo")
    alice.send("PRIVMSG bob :no echo either")
    bob.expect("PRIVMSG", lambda m: m.last == "no echo either")
    lines = alice.no_more("PRIVMSG")
    assert not [m for m in lines if m.command in ("NOTICE", "FAIL")], lines


def test_echo_message_of_a_notice(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["echo-message"])
    alice.send("NOTICE #lobby :noticed")
    assert alice.expect("NOTICE").params == ["#lobby", "noticed"]
    assert bob.expect("NOTICE").last == "noticed"


# --- batch, labeled-response ---

def test_labeled_response_with_several_lines_is_a_batch(irc_chatd):
    chatd = irc_chatd()
    alice, _ = login_pair(chatd, alice_caps=["batch", "labeled-response", "message-tags"])
    alice.send("@label=w1 WHOIS bob")
    lines = alice.until("BATCH", lambda m: m.params[0].startswith("-"))
    start, inner = one_batch(lines, "labeled-response")
    assert start.tags.get("label") == "w1", start.raw
    assert start.source == "chatd"
    cmds = commands(inner)
    assert "311" in cmds and cmds[-1] == "318", lines
    assert all("label" not in m.tags for m in inner), inner


def test_labeled_response_with_one_line_carries_the_label(irc_chatd):
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=["batch", "labeled-response"])
    alice.send("@label=p1 PING :one")
    pong = alice.expect("PONG")
    assert pong.tags.get("label") == "p1" and pong.last == "one", pong.raw
    alice.send("@label=m1 MODE alice")
    reply = alice.expect(("221", "BATCH"))
    assert reply.tags.get("label") == "m1", reply.raw


def test_labeled_command_without_a_reply_gets_ack(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["batch", "labeled-response"])
    alice.send("@label=s1 PRIVMSG #lobby :quiet")
    ack = alice.expect("ACK")
    assert ack.tags.get("label") == "s1" and ack.params == [], ack.raw
    assert bob.expect("PRIVMSG").last == "quiet"


def test_labeled_echo_carries_the_label(irc_chatd):
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["batch", "labeled-response", "echo-message",
                                               "message-tags"],
                            bob_caps=["message-tags"])
    alice.send("@label=e1 PRIVMSG #lobby :labelled echo")
    echo = alice.expect("PRIVMSG")
    assert echo.tags.get("label") == "e1", echo.raw
    got = bob.expect("PRIVMSG")
    assert "label" not in got.tags, got.raw


@pytest.mark.parametrize("target", ["#lobby", "bob"])
def test_a_labeled_echo_of_several_lines_is_one_logical_answer(irc_chatd, target):
    """labeled-response: the label goes on exactly one logical message, and a
    response of several messages is a batch.  The echo of a 510-byte PRIVMSG
    takes two lines (its prefix makes it longer than 512 bytes): they come in
    a labeled batch, or the label answers with an ACK and leaves them unlabeled;
    never the label on the first line alone."""
    chatd = irc_chatd()
    alice, bob = login_pair(chatd, alice_caps=["batch", "labeled-response", "echo-message",
                                               "message-tags"])
    head = f"PRIVMSG {target} :"
    text = "w" * (510 - len(head))
    alice.send(f"@label=big {head}{text}")
    got = ""
    lines = []
    while got != text:
        m = alice.next()
        lines.append(m)
        if m.command == "PRIVMSG":
            got += m.last
    lines += alice.sync()
    labeled = [m for m in lines if "label" in m.tags]
    assert len(labeled) == 1, [m.raw for m in lines]
    echoes = [m for m in lines if m.command == "PRIVMSG"]
    assert len(echoes) == 2, [m.raw for m in lines]
    if labeled[0].command == "BATCH":
        ref = labeled[0].params[0][1:]
        assert all(m.tags.get("batch") == ref for m in echoes), [m.raw for m in lines]
    else:
        assert labeled[0].command == "ACK", [m.raw for m in lines]
    heard = ""
    while heard != text:
        heard += bob.expect("PRIVMSG").last
    # The longest text whose echo is one line: that line carries the label.
    fits = "f" * (510 - len(f":alice!alice@chatd {head}"))
    alice.send(f"@label=fits {head}{fits}")
    echo = alice.expect("PRIVMSG")
    assert echo.tags.get("label") == "fits" and echo.last == fits, echo.raw


def test_labels_before_registration(irc_chatd):
    """labeled-response holds from its CAP ACK, before registration too: a
    reply carries the label, a command with none gets a labeled ACK, and
    the welcome that CAP END sets off carries none (it answers no command
    of the client's alone)."""
    chatd = irc_chatd()
    chatd.add_user("carol")
    c = chatd.irc_connect("carol")
    c.cap_ls("302")
    assert c.cap_req(["batch", "labeled-response"])[0] == "ACK"
    c.send("@label=p1 PING :early")
    pong = c.expect("PONG")
    assert pong.tags.get("label") == "p1" and pong.last == "early", pong.raw
    c.send("@label=n1 NICK carol")
    ack = c.expect("ACK")
    assert ack.tags.get("label") == "n1", ack.raw
    c.send("@label=u1 USER carol 0 * :Carol")
    assert c.expect("ACK").tags.get("label") == "u1"
    c.send("@label=w1 PASS pw-carol")
    assert c.expect("ACK").tags.get("label") == "w1"
    c.send("@label=e1 CAP END")
    lines = c.until("001")
    labeled = [m for m in lines if "label" in m.tags]
    assert [m.command for m in labeled] == ["ACK"] and labeled[0].tags["label"] == "e1", lines
    assert not [m for m in c.sync() if "label" in m.tags]


def test_labeled_error_carries_the_label(irc_chatd):
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=["batch", "labeled-response"])
    alice.send("@label=x9 PRIVMSG nobody :x")
    err = alice.expect("401")
    assert err.tags.get("label") == "x9", err.raw


def test_batches_are_well_formed_in_the_join_reply(irc_chatd):
    chatd = irc_chatd()
    alice, _ = login_pair(chatd, alice_caps=["batch", "labeled-response"])
    alice.send("@label=j1 JOIN #dev")
    lines = alice.until("BATCH", lambda m: m.params[0].startswith("-"))
    start, inner = one_batch(lines, "labeled-response")
    assert start.tags["label"] == "j1"
    assert commands(inner)[0] == "JOIN" and commands(inner)[-1] == "366", inner
    assert len(batches(lines)) == 1


# --- flood control ---

def test_flood_is_slowed_not_disconnected(irc_chatd):
    burst, rate, n = 5, 10, 35
    chatd = irc_chatd(irc_flood_burst=burst, irc_flood_rate=rate)
    alice = chatd.irc_login("alice")
    other = chatd.irc_login("bob")
    # The registration lines took tokens: the bucket is full again after
    # burst / rate seconds, a time only the server's rate defines (nothing to await).
    time.sleep(burst / rate + 0.2)
    start = time.monotonic()
    alice.send_raw(b"".join(f"PING f{i}\r\n".encode() for i in range(n)))
    other.send("PING unaffected")
    other.expect("PONG")
    other_done = time.monotonic() - start
    for i in range(n):
        pong = alice.expect("PONG", timeout=scaled(10))
        assert pong.last == f"f{i}", pong.raw
    elapsed = time.monotonic() - start
    least = (n - burst - 1) / rate * 0.8
    assert elapsed >= least, f"{n} lines answered in {elapsed:.2f} s: not slowed ({least:.2f})"
    assert elapsed <= (n - burst) / rate * 3 + 2, f"too slow: {elapsed:.2f} s"
    assert other_done < least, f"another client waited {other_done:.2f} s"
    alice.send("PING after")
    assert alice.expect("PONG").last == "after"


def test_reload_sends_cap_new_and_del(irc_chatd):
    """ircv3.net cap-notify: a reload that stops or starts offering a
    capability (registration: draft/account-registration) sends CAP * DEL or
    CAP * NEW (with 302 values) to clients that have cap-notify (CAP LS 302
    implies it), at once, though the client is idle; others hear nothing."""
    import signal
    from chatproto import wait_until

    chatd = irc_chatd(registration=True)
    ann = chatd.irc_login("ann")                           # CAP LS 302
    old = chatd.irc_connect("old")                        # no CAP at all
    assert old.register("old", "pw-old", cap_negotiation=False).command == "001"

    def reload(on):
        before = chatd.log_text().count("reloaded")
        chatd.settings["registration"] = on
        chatd.write_config()
        chatd.send_signal(signal.SIGHUP)
        wait_until(lambda: chatd.log_text().count("reloaded") > before, "the reload")

    def caps_until_pong(c):
        c.send("PING :after")
        lines = c.until("PONG")
        return [m.params[1:] for m in lines if m.command == "CAP"]

    reload(False)
    assert ann.expect("CAP").params[1:] == ["DEL", "draft/account-registration"]
    assert caps_until_pong(ann) == []                      # said once
    assert caps_until_pong(old) == []
    reload(True)
    assert ann.expect("CAP").params[1:] == ["NEW", "draft/account-registration=before-connect"]
    assert caps_until_pong(ann) == []
    assert caps_until_pong(old) == []
