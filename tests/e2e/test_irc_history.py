"""
test_irc_history.py - IRCv3 draft/chathistory and draft/event-playback on
chatd's IRC gateway: LATEST, BEFORE, AFTER, AROUND and BETWEEN by msgid= and
timestamp=, TARGETS, limits, the chathistory batch, errors as standard
replies, and the replay on JOIN, from the ircv3.net chathistory
specification (the cases irctest checks for Ergo, written again here); events
replayed as they were seen live (an operator's kick off the server as QUIT);
and no account tag on a guest's lines, live or replayed, across a restart;
the default room replayed in its configured spelling when only its case
changed.  Skipped while chatd has no IRC gateway.
"""

import time

import pytest

from chatproto import deadline_in
from ircproto import TIME_RE, iso_ms, one_batch, utc_ms, wait_clock_past

CAPS = ["batch", "server-time", "message-tags", "echo-message", "draft/chathistory"]
N = 10


def say_all(client, channel, texts):
    """Sends each text with echo-message on: [(msgid, time, text)] in order,
    every message one millisecond or more after the one before."""
    sent = []
    for text in texts:
        client.send(f"PRIVMSG {channel} :{text}")
        echo = client.expect("PRIVMSG", lambda m, t=text: m.last == t)
        sent.append((echo.tags["msgid"], echo.tags["time"], text))
        wait_clock_past(echo.tags["time"])
    assert len({s[0] for s in sent}) == len(sent) and len({s[1] for s in sent}) == len(sent)
    return sent


def chathistory(client, line, timeout=5):
    """Sends a CHATHISTORY line: (BATCH start, its inner lines) or the FAIL."""
    client.send(line)
    first = client.expect(("BATCH", "FAIL"),
                          lambda m: m.command == "FAIL" or m.params[0].startswith("+"),
                          timeout)
    if first.command == "FAIL":
        return first, None
    ref = first.params[0][1:]
    lines = client.until("BATCH", lambda m: m.params[0] == "-" + ref, timeout)
    # Live traffic may come between a batch's lines (batch spec): it stays unconsumed.
    inner = [m for m in lines[:-1] if m.tags.get("batch") == ref]
    client.backlog.extend(m for m in lines[:-1] if m.tags.get("batch") != ref)
    return first, inner


def history(client, line, target="#h"):
    """The messages of a chathistory batch as (msgid, time, text)."""
    start, inner = chathistory(client, line)
    assert inner is not None, f"{line!r} failed: {start.raw!r}"
    assert start.params[1:] == ["chathistory", target], start.raw
    assert start.source == "chatd"
    out = []
    for m in inner:
        assert m.command in ("PRIVMSG", "NOTICE"), f"{m.raw!r} without event-playback"
        assert m.params[0] == target, m.raw
        out.append((m.tags["msgid"], m.tags["time"], m.last))
    return out


@pytest.fixture
def room(irc_chatd):
    """(chatd, alice, messages): alice in #h with CAPS, N messages sent there."""
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=CAPS)
    assert alice.join("#h")[-1].command == "366"
    alice.sync()
    msgs = say_all(alice, "#h", [f"message {i}" for i in range(N)])
    return chatd, alice, msgs


def test_isupport_and_cap(room):
    _, alice, _ = room
    assert "draft/chathistory" in alice.caps
    assert int(alice.isupport["CHATHISTORY"]) >= N


def test_latest(room):
    _, alice, m = room
    assert history(alice, "CHATHISTORY LATEST #h * 100") == m
    assert history(alice, "CHATHISTORY LATEST #h * 5") == m[-5:]
    assert history(alice, "CHATHISTORY LATEST #h * 1") == m[-1:]
    assert history(alice, f"CHATHISTORY LATEST #h msgid={m[4][0]} 100") == m[5:]
    assert history(alice, f"CHATHISTORY LATEST #h timestamp={m[4][1]} 100") == m[5:]
    assert history(alice, f"CHATHISTORY LATEST #h msgid={m[4][0]} 2") == m[-2:]


def test_before(room):
    _, alice, m = room
    assert history(alice, f"CHATHISTORY BEFORE #h msgid={m[6][0]} 100") == m[:6]
    assert history(alice, f"CHATHISTORY BEFORE #h timestamp={m[6][1]} 100") == m[:6]
    assert history(alice, f"CHATHISTORY BEFORE #h timestamp={m[6][1]} 2") == m[4:6]
    assert history(alice, f"CHATHISTORY BEFORE #h msgid={m[0][0]} 100") == []


def test_after(room):
    _, alice, m = room
    assert history(alice, f"CHATHISTORY AFTER #h msgid={m[3][0]} 100") == m[4:]
    assert history(alice, f"CHATHISTORY AFTER #h timestamp={m[3][1]} 100") == m[4:]
    assert history(alice, f"CHATHISTORY AFTER #h timestamp={m[3][1]} 3") == m[4:7]
    assert history(alice, f"CHATHISTORY AFTER #h msgid={m[-1][0]} 100") == []


def contiguous_around(result, m, i, limit):
    """AROUND: at most limit messages, in order, a run of m holding m[i]."""
    assert 0 < len(result) <= limit, result
    assert m[i] in result, result
    first = m.index(result[0])
    assert result == m[first:first + len(result)], result


def test_around(room):
    _, alice, m = room
    assert history(alice, f"CHATHISTORY AROUND #h msgid={m[7][0]} 1") == [m[7]]
    contiguous_around(history(alice, f"CHATHISTORY AROUND #h msgid={m[7][0]} 3"), m, 7, 3)
    contiguous_around(history(alice, f"CHATHISTORY AROUND #h timestamp={m[7][1]} 3"),
                      m, 7, 3)
    contiguous_around(history(alice, f"CHATHISTORY AROUND #h msgid={m[1][0]} 5"), m, 1, 5)


@pytest.mark.parametrize("kind", ["msgid", "timestamp"])
def test_between(room, kind):
    _, alice, m = room
    k = 0 if kind == "msgid" else 1
    first, last = f"{kind}={m[0][k]}", f"{kind}={m[-1][k]}"
    assert history(alice, f"CHATHISTORY BETWEEN #h {first} {last} 100") == m[1:-1]
    assert history(alice, f"CHATHISTORY BETWEEN #h {last} {first} 100") == m[1:-1]
    # With a limit, forwards starts at the first bound and backwards at it too.
    assert history(alice, f"CHATHISTORY BETWEEN #h {first} {last} 3") == m[1:4]
    assert history(alice, f"CHATHISTORY BETWEEN #h {last} {first} 3") == m[-4:-1]


def test_between_a_msgid_and_a_timestamp(room):
    _, alice, m = room
    got = history(alice, f"CHATHISTORY BETWEEN #h msgid={m[2][0]} timestamp={m[6][1]} 100")
    assert got == m[3:6]


def test_timestamps_between_messages(room):
    """A timestamp between two messages' times selects by time, not by message."""
    _, alice, m = room
    middle = iso_ms((utc_ms(m[4][1]) + utc_ms(m[5][1])) // 2)
    if middle in (m[4][1], m[5][1]):
        pytest.skip("messages 4 and 5 are one millisecond apart")
    assert history(alice, f"CHATHISTORY BEFORE #h timestamp={middle} 100") == m[:5]
    assert history(alice, f"CHATHISTORY AFTER #h timestamp={middle} 100") == m[5:]


def test_history_lines_are_the_live_lines(room):
    """The batch holds each message as it was sent: source, msgid, time, account."""
    chatd, alice, m = room
    start, inner = chathistory(alice, "CHATHISTORY LATEST #h * 1")
    line = inner[0]
    assert line.source == "alice!alice@chatd" and line.params == ["#h", m[-1][2]], line.raw
    assert line.tags["msgid"] == m[-1][0] and line.tags["time"] == m[-1][1], line.raw
    assert line.tags.get("account") == "alice", line.raw


def test_native_messages_are_in_the_history_with_their_ids(room):
    chatd, alice, m = room
    carol = chatd.login("carol")
    carol.request("/join h")
    msg_id = carol.say("from the native side")
    alice.expect("PRIVMSG", lambda x: x.last == "from the native side")
    got = history(alice, "CHATHISTORY LATEST #h * 2")
    assert got[0] == m[-1]
    assert got[1][0] == str(msg_id) and got[1][2] == "from the native side", got


def test_limit_is_capped_by_history_memory(irc_chatd):
    chatd = irc_chatd(history_memory=5, history_replay=5)
    alice = chatd.irc_login("alice", caps=CAPS)
    assert alice.isupport["CHATHISTORY"] == "5"
    alice.join("#h")
    alice.sync()
    m = say_all(alice, "#h", [f"m{i}" for i in range(8)])
    assert history(alice, "CHATHISTORY LATEST #h * 100") == m[-5:]
    assert history(alice, f"CHATHISTORY AFTER #h msgid={m[4][0]} 100") == m[5:]


def test_chathistory_in_005_is_what_one_request_gets(irc_chatd):
    """005 CHATHISTORY=N is "the maximum number of messages a client can
    request in a single command" (ircv3 chathistory): with more than N
    messages in memory, a request for N gets N, however large
    history_memory is (a client takes fewer than it asked for as the start
    of the history)."""
    chatd = irc_chatd(history_memory=1005, history_sync_ms=50,
                      irc_flood_burst=5000, irc_flood_rate=5000)
    alice = chatd.irc_login("alice", caps=CAPS)
    n = int(alice.isupport["CHATHISTORY"])
    assert 0 < n <= 1005, alice.isupport
    alice.join("#h")
    alice.sync()
    count = min(n + 1, 1005)
    alice.send_raw("".join(f"PRIVMSG #h :m{i}\r\n" for i in range(count)).encode())
    alice.expect("PRIVMSG", lambda m: m.last == f"m{count - 1}", timeout=60)
    got = history(alice, f"CHATHISTORY LATEST #h * {n}")
    assert [t for _, _, t in got] == [f"m{i}" for i in range(count - n, count)]
    got = history(alice, f"CHATHISTORY LATEST #h * {n + 1}")
    assert len(got) == n


def long_history(client, line):
    """The messages of a chathistory batch of long messages (several lines each, msgid on
    the first) as (msgid, text)."""
    start, inner = chathistory(client, line)
    assert inner is not None, f"{line!r} failed: {start.raw!r}"
    out = []
    for m in inner:
        if "msgid" in m.tags:
            out.append([m.tags["msgid"], m.last])
        else:
            out[-1][1] += m.last
    return [tuple(x) for x in out]


def test_a_batch_bigger_than_the_send_queue_is_cut_not_fatal(irc_chatd):
    """A CHATHISTORY (or a replay on JOIN) whose lines passed send_queue_limit ended the
    session for overflow before the client could read a line of it.  A batch holds what
    fits in half the send queue (as natively): the messages nearest the reference (the
    newest for LATEST and BEFORE, the oldest for AFTER), and paging on from the last one
    got brings every message, none twice, none missing."""
    chatd = irc_chatd(send_queue_limit=65536, history_replay=100)
    carol = chatd.login("carol")
    n = 100
    texts = [f"{i:03d} " + "x" * 1496 for i in range(n)]
    carol.send_raw("".join(t + "\n" for t in texts).encode())
    for _ in range(n):
        data, final = carol.collect_reply(timeout=30)
        assert final.tag == "OK", final.raw
    alice = chatd.irc_login("alice", caps=CAPS)
    got = long_history(alice, f"CHATHISTORY LATEST #lobby * {n}")
    assert 0 < len(got) < n and [t for _, t in got] == texts[n - len(got):], len(got)
    while len(got) < n:
        page = long_history(alice, f"CHATHISTORY BEFORE #lobby msgid={got[0][0]} {n}")
        assert page, len(got)
        got = page + got
    assert [t for _, t in got] == texts
    forward = long_history(alice, f"CHATHISTORY AFTER #lobby msgid={got[0][0]} {n}")
    assert 0 < len(forward) < n and [t for _, t in forward] == texts[1:1 + len(forward)]
    around = long_history(alice, f"CHATHISTORY AROUND #lobby msgid={got[50][0]} {n}")
    texts_around = [t for _, t in around]
    assert 0 < len(around) < n and texts[50] in texts_around, len(around)
    start = texts.index(texts_around[0])
    assert texts_around == texts[start:start + len(around)] and start < 50 < start + len(around)
    alice.sync()
    # The replay on JOIN (no draft/chathistory): the newest that fit, and the session stays.
    bob = chatd.irc_login("bob")
    replayed = [m.last for m in bob.welcome if m.command == "PRIVMSG"]
    assert 0 < len(replayed) < 4 * n and texts[-1].endswith(replayed[-1]), len(replayed)
    bob.sync()


def test_a_room_one_is_not_in_is_readable(room):
    """Rooms are public in chatd (docs/PROTOCOL.md): their history too."""
    chatd, _, m = room
    bob = chatd.irc_login("bob", caps=CAPS)
    assert history(bob, "CHATHISTORY LATEST #h * 3") == m[-3:]


def test_private_messages_are_not_kept(room):
    chatd, alice, _ = room
    bob = chatd.irc_login("bob", caps=CAPS)
    alice.send("PRIVMSG bob :between us")
    bob.expect("PRIVMSG", lambda x: x.last == "between us")
    start, inner = chathistory(alice, "CHATHISTORY LATEST bob * 10")
    if inner is not None:
        assert [x for x in inner if x.command == "PRIVMSG"] == [], inner


def test_the_batch_names_a_nick_as_it_is_spelled(room):
    """ircv3 chathistory: the batch's parameter is "the canonical name of the
    target being queried": a nick asked for in another case is named as
    spelled, online or not, as a channel is."""
    chatd, alice, _ = room
    chatd.irc_login("Bob", caps=CAPS)
    chatd.add_user("Carol")
    for asked, named in (("BOB", "Bob"), ("carol", "Carol"), ("#H", "#h")):
        start, inner = chathistory(alice, f"CHATHISTORY LATEST {asked} * 1")
        assert inner is not None and start.params[1:] == ["chathistory", named], start.raw


# --- errors (standard replies) ---

def expect_fail(client, line, *codes):
    """The current chathistory draft answers every malformed command with
    INVALID_PARAMS (SHOULD); earlier drafts had UNKNOWN_COMMAND and
    NEED_MORE_PARAMS (MUST): each test names the codes the drafts allow."""
    start, inner = chathistory(client, line)
    assert inner is None, f"{line!r}: expected FAIL {codes}, got a batch {start.raw!r}"
    assert start.params[0] == "CHATHISTORY" and start.params[1] in codes, start.raw
    return start


def test_unknown_subcommand(room):
    _, alice, _ = room
    expect_fail(alice, "CHATHISTORY SIDEWAYS #h * 10", "INVALID_PARAMS", "UNKNOWN_COMMAND")


def test_missing_parameters(room):
    _, alice, _ = room
    expect_fail(alice, "CHATHISTORY LATEST #h", "INVALID_PARAMS", "NEED_MORE_PARAMS")
    expect_fail(alice, "CHATHISTORY BETWEEN #h msgid=1 10", "INVALID_PARAMS",
                "NEED_MORE_PARAMS")


@pytest.mark.parametrize("line", ["CHATHISTORY LATEST #h * ten",
                                  "CHATHISTORY BEFORE #h nonsense 10",
                                  "CHATHISTORY BEFORE #h timestamp=yesterday 10",
                                  "CHATHISTORY BEFORE #h * 10",
                                  "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z "
                                  "timestamp=2030-01-01T00:00:00.000Z ten",
                                  # a sign or a number past 64 bits is no id or limit
                                  "CHATHISTORY BEFORE #h msgid=-1 10",
                                  "CHATHISTORY AFTER #h msgid=+1 10",
                                  "CHATHISTORY BEFORE #h msgid=18446744073709551616 10",
                                  "CHATHISTORY LATEST #h * -1",
                                  "CHATHISTORY LATEST #h * +5",
                                  "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z "
                                  "timestamp=2030-01-01T00:00:00.000Z -1"])
def test_invalid_parameters(room, line):
    _, alice, _ = room
    expect_fail(alice, line, "INVALID_PARAMS")


def test_a_limit_past_64_bits_is_the_most(room):
    """LIMIT 0 or larger than any request returns (even past 64 bits) is the most."""
    _, alice, m = room
    for limit in ("0", "18446744073709551616"):
        got = history(alice, f"CHATHISTORY LATEST #h * {limit}")
        assert [t for _, _, t in got] == [t for _, _, t in m], (limit, got)


def test_a_room_that_does_not_exist(room):
    _, alice, _ = room
    start, inner = chathistory(alice, "CHATHISTORY LATEST #nowhere * 10")
    if inner is None:
        assert start.params[:2] == ["CHATHISTORY", "INVALID_TARGET"], start.raw
    else:
        assert inner == []


def test_a_msgid_not_in_memory(room):
    """The spec says nothing of an unknown msgid: a FAIL or a batch (chatd's
    ids are ordered numbers, so "before 999999999" may mean every message)."""
    _, alice, m = room
    start, inner = chathistory(alice, "CHATHISTORY BEFORE #h msgid=999999999 10")
    if inner is None:
        assert start.params[0] == "CHATHISTORY", start.raw
    else:
        assert [x.last for x in inner] in ([], [t for _, _, t in m]), inner


# --- TARGETS ---

def targets(client, line):
    start, inner = chathistory(client, line)
    assert inner is not None, start.raw
    assert start.params[1:] == ["draft/chathistory-targets"], start.raw
    out = []
    for m in inner:
        assert m.command == "CHATHISTORY" and m.params[0] == "TARGETS", m.raw
        # "CHATHISTORY TARGETS <target> <YYYY-MM-DDThh:mm:ss.sssZ>": a bare time
        assert len(m.params) == 3 and TIME_RE.match(m.params[2]), m.raw
        out.append((m.params[1], m.params[2]))
    return out


def test_targets_lists_rooms_with_their_latest_time(room):
    chatd, alice, m = room
    bob = chatd.irc_login("bob", caps=CAPS)
    alice.send("PRIVMSG bob :not a room")
    bob.expect("PRIVMSG")
    early = iso_ms(utc_ms(m[0][1]) - 60000)
    late = iso_ms(int(time.time() * 1000) + 60000)
    got = targets(alice, f"CHATHISTORY TARGETS timestamp={early} timestamp={late} 50")
    assert ("#h", m[-1][1]) in got, got
    assert all(name.startswith("#") for name, _ in got), got  # rooms only
    before = targets(alice, f"CHATHISTORY TARGETS timestamp={iso_ms(utc_ms(early) - 60000)} "
                            f"timestamp={early} 50")
    assert "#h" not in [name for name, _ in before], before


def test_targets_limit(room):
    chatd, alice, m = room
    alice.join("#h2")
    say_all(alice, "#h2", ["elsewhere"])
    early = iso_ms(utc_ms(m[0][1]) - 60000)
    late = iso_ms(int(time.time() * 1000) + 60000)
    got = targets(alice, f"CHATHISTORY TARGETS timestamp={early} timestamp={late} 1")
    assert len(got) == 1, got


def test_targets_count_from_the_first_timestamp_and_come_oldest_first(room):
    """TARGETS takes its timestamps as BETWEEN does: the limit counts from the
    first one, forwards or backwards in time; the lines come in ascending time
    order (ircv3 chathistory, "Returned message notes")."""
    chatd, alice, m = room
    rooms = ["#t1", "#t2", "#t3"]
    for name in rooms:
        alice.join(name)
    latest = {name: say_all(alice, name, [f"in {name}"])[0][1] for name in rooms}
    latest["#h"] = m[-1][1]
    early = iso_ms(utc_ms(m[0][1]) - 60000)
    late = iso_ms(int(time.time() * 1000) + 60000)
    everything = [("#h", latest["#h"])] + [(name, latest[name]) for name in rooms]
    assert targets(alice, f"CHATHISTORY TARGETS timestamp={early} timestamp={late} 50") == \
        everything
    assert targets(alice, f"CHATHISTORY TARGETS timestamp={late} timestamp={early} 50") == \
        everything
    # forwards from early: the two oldest; backwards from late: the two newest
    assert targets(alice, f"CHATHISTORY TARGETS timestamp={early} timestamp={late} 2") == \
        everything[:2]
    assert targets(alice, f"CHATHISTORY TARGETS timestamp={late} timestamp={early} 2") == \
        everything[2:]


# --- event-playback ---

def test_event_playback_shows_joins_parts_and_topics(irc_chatd):
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=CAPS + ["draft/event-playback"])
    bob = chatd.irc_login("bob")
    alice.join("#ev")
    bob.join("#ev")
    alice.expect("JOIN", lambda x: x.nick == "bob" and x.params[0] == "#ev")
    bob.send("TOPIC #ev :eventful")
    alice.expect("TOPIC")
    bob.send("PRIVMSG #ev :in between")
    alice.expect("PRIVMSG", lambda x: x.last == "in between")
    bob.send("PART #ev :bye now")
    alice.expect("PART", lambda x: x.nick == "bob")
    # The PART may reach the history a moment after the members (see the next test).
    deadline = deadline_in(5)
    while True:
        start, inner = chathistory(alice, "CHATHISTORY LATEST #ev * 50")
        assert inner is not None, start.raw
        if inner and inner[-1].command == "PART" or time.monotonic() > deadline:
            break
    events = [(x.command, x.nick) for x in inner]
    assert events[-4:] == [("JOIN", "bob"), ("TOPIC", "bob"), ("PRIVMSG", "bob"),
                           ("PART", "bob")], [x.raw for x in inner]
    part = inner[-1]
    assert part.params == ["#ev", "bye now"], part.raw
    topic = inner[-3]
    assert topic.params == ["#ev", "eventful"], topic.raw
    assert all("time" in x.tags for x in inner), inner
    times = [x.tags["time"] for x in inner]
    assert times == sorted(times), times


def test_an_event_seen_live_is_in_the_history(irc_chatd):
    """A member that saw a PART live finds it with CHATHISTORY once it is
    stored: events are shown at once and stored a moment later (docs/IRC.md,
    "CHATHISTORY"), so the request is repeated until then, within a deadline."""
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=CAPS + ["draft/event-playback"])
    bob = chatd.irc_login("bob")
    alice.join("#ev")
    bob.join("#ev")
    alice.expect("JOIN", lambda x: x.nick == "bob" and x.params[0] == "#ev")
    bob.send("PART #ev :bye now")
    alice.expect("PART", lambda x: x.nick == "bob")
    deadline = deadline_in(5)
    while True:
        start, inner = chathistory(alice, "CHATHISTORY LATEST #ev * 50")
        if [(x.command, x.nick) for x in inner][-1:] == [("PART", "bob")]:
            break
        assert time.monotonic() < deadline, [x.raw for x in inner]


def latest_events(client, channel, until, timeout=5):
    """CHATHISTORY LATEST channel * 50, asked again until until(inner lines) holds
    (an event is stored a moment after the members saw it); the inner lines."""
    deadline = deadline_in(timeout)
    while True:
        start, inner = chathistory(client, f"CHATHISTORY LATEST {channel} * 50")
        assert inner is not None, start.raw
        if until(inner):
            return inner
        assert time.monotonic() < deadline, [x.raw for x in inner]


def seen_as(m):
    """A line as a member reads it: source, command and parameters (no tags)."""
    return (m.source, m.command, m.params)


def test_a_kick_off_the_server_is_replayed_as_the_quit_members_saw(irc_chatd):
    """chatctl kick NAME takes NAME off the server, out of every room at once: the
    IRC members of its rooms see it QUIT, not KICKed from one channel.  History
    playback (CHATHISTORY, and the replay on JOIN, also after a restart) shows that
    same QUIT; a kick out of one room (chatctl room kick) is a KICK live and
    replayed."""
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=CAPS + ["draft/event-playback"])
    bob = chatd.irc_login("bob")
    carl = chatd.irc_login("carl")
    alice.join("#ev")
    for who in (bob, carl):
        who.join("#ev")
        alice.expect("JOIN", lambda x, n=who.label: x.nick == n and x.params[0] == "#ev")
    chatd.ctl_ok("kick", "bob", "spamming")
    quit_live = alice.expect(("QUIT", "KICK", "PART"), lambda x: x.nick == "bob")
    assert seen_as(quit_live) == ("bob!bob@chatd", "QUIT", ["spamming"]), quit_live.raw
    chatd.ctl_ok("room", "kick", "ev", "carl", "off topic")
    kick_live = alice.expect(("QUIT", "KICK", "PART"), lambda x: "carl" in x.params)
    assert seen_as(kick_live) == ("chatd", "KICK", ["#ev", "carl", "off topic"]), kick_live.raw

    inner = latest_events(alice, "#ev", lambda lines: len(lines) >= 5)
    assert [seen_as(x) for x in inner[-2:]] == [seen_as(quit_live), seen_as(kick_live)], \
        [x.raw for x in inner]
    # Its time is the record's, stored a moment after the members saw it (IRC.md).
    assert inner[-2].tags["time"] >= quit_live.tags["time"], (inner[-2].raw, quit_live.raw)

    chatd.restart()
    # The replay on JOIN (a client with draft/chathistory gets none).
    dave = chatd.irc_login("dave", caps=[c for c in CAPS if c != "draft/chathistory"] +
                           ["draft/event-playback"])
    lines = dave.join("#ev") + dave.sync()
    replayed = [seen_as(x) for x in lines if x.command in ("QUIT", "KICK", "PART")]
    assert replayed == [seen_as(quit_live), seen_as(kick_live)], [x.raw for x in lines]


def test_without_event_playback_only_messages(irc_chatd):
    chatd = irc_chatd()
    alice = chatd.irc_login("alice", caps=CAPS)
    bob = chatd.irc_login("bob")
    alice.join("#ev")
    bob.join("#ev")
    bob.send("TOPIC #ev :eventful")
    bob.send("PRIVMSG #ev :only me")
    bob.send("PART #ev")
    alice.expect("PART", lambda x: x.nick == "bob")
    start, inner = chathistory(alice, "CHATHISTORY LATEST #ev * 50")
    assert [(x.command, x.last) for x in inner] == [("PRIVMSG", "only me")], inner


# --- replay on JOIN ---

def test_join_replays_history_in_a_chathistory_batch(irc_chatd):
    chatd = irc_chatd(history_replay=3)
    alice = chatd.irc_login("alice", caps=CAPS)
    alice.join("#h")
    m = say_all(alice, "#h", [f"r{i}" for i in range(5)])
    bob = chatd.irc_login("bob", caps=["batch", "server-time", "message-tags"])
    lines = bob.join("#h") + bob.sync()
    i366 = [x.command for x in lines].index("366")
    start = lines[i366 + 1]
    assert start.command == "BATCH" and start.params[1:] == ["chathistory", "#h"], lines
    ref = start.params[0][1:]
    inner = [x for x in lines if x.tags.get("batch") == ref]
    assert [(x.tags["msgid"], x.tags["time"], x.last) for x in inner] == m[-3:]
    assert any(x.command == "BATCH" and x.params == ["-" + ref] for x in lines)


def test_no_replay_on_join_for_a_client_with_chathistory(irc_chatd):
    """ircv3 chathistory: a client that requests draft/chathistory asks for
    history itself, so the server SHOULD NOT play back any it would send on
    its own: neither in the default room at login nor on JOIN."""
    chatd = irc_chatd(history_replay=3)
    alice = chatd.irc_login("alice", caps=CAPS)
    alice.join("#h")
    say_all(alice, "#lobby", ["in the lobby"])
    m = say_all(alice, "#h", [f"r{i}" for i in range(5)])
    bob = chatd.irc_login("bob", caps=CAPS)
    assert not [x for x in bob.welcome if x.command in ("BATCH", "PRIVMSG")], bob.welcome
    lines = bob.join("#h") + bob.sync()
    assert not [x for x in lines if x.command in ("BATCH", "PRIVMSG")], lines
    assert history(bob, "CHATHISTORY LATEST #h * 3") == m[-3:]
    # Without the capability, the same joins play the history back.
    carol = chatd.irc_login("carol", caps=["batch", "server-time", "message-tags"])
    assert [x.last for x in carol.welcome if x.command == "PRIVMSG"] == ["in the lobby"]
    lines = carol.join("#h") + carol.sync()
    assert [x.last for x in lines if x.command == "PRIVMSG"] == [t for _, _, t in m[-3:]]


def test_join_replays_plain_lines_without_batch(irc_chatd):
    chatd = irc_chatd(history_replay=2)
    alice = chatd.irc_login("alice", caps=CAPS)
    alice.join("#h")
    m = say_all(alice, "#h", ["p0", "p1", "p2"])
    bob = chatd.irc_login("bob", caps=["server-time"])
    lines = bob.join("#h") + bob.sync()
    replay = [x for x in lines if x.command == "PRIVMSG"]
    assert [(x.tags.get("time"), x.last) for x in replay] == [(t, s) for _, t, s in m[-2:]]
    assert not [x for x in lines if x.command == "BATCH"], lines


# --- without the batch capability ---

def test_latest_without_batch_is_plain_lines(room):
    """A client without batch cannot be sent BATCH: the messages come bare."""
    chatd, _, m = room
    bob = chatd.irc_login("bob", caps=["server-time", "draft/chathistory"])
    bob.send("CHATHISTORY LATEST #h * 3")
    lines = bob.sync()
    assert not [x for x in lines if x.command == "BATCH" or "batch" in x.tags], lines
    got = [(x.tags.get("time"), x.last) for x in lines if x.command == "PRIVMSG"]
    assert got == [(t, s) for _, t, s in m[-3:]], lines


def test_targets_without_batch_is_plain_lines(room):
    chatd, _, m = room
    bob = chatd.irc_login("bob", caps=["draft/chathistory"])
    bob.join("#h")  # TARGETS lists the rooms one is in
    early = iso_ms(utc_ms(m[0][1]) - 60000)
    late = iso_ms(int(time.time() * 1000) + 60000)
    bob.send(f"CHATHISTORY TARGETS timestamp={early} timestamp={late} 50")
    lines = bob.sync()
    assert not [x for x in lines if x.command == "BATCH"], lines
    rows = [x.params[1:3] for x in lines if x.command == "CHATHISTORY"]
    assert ["#h", m[-1][1]] in rows, lines


# --- guests: no account tag on their lines, live or replayed ---

READER_CAPS = CAPS + ["account-tag", "draft/event-playback"]
# (command, nick, account tag) of the lines in #g from the guest and from alice.
GUEST_LINES = [("JOIN", "visitor", None), ("TOPIC", "visitor", None),
               ("PRIVMSG", "visitor", None), ("NOTICE", "visitor", None),
               ("PRIVMSG", "alice", "alice"), ("PART", "visitor", None)]


def assert_accounts(lines, want):
    """The lines of visitor and alice (but alice's JOIN) among a room's history
    lines, as (command, nick, account tag or None): want."""
    got = [(x.command, x.nick, x.tags.get("account")) for x in lines
           if x.nick == "visitor" or x.nick == "alice" and x.command != "JOIN"]
    assert got == want, [x.raw for x in lines]


def replay_and_latest(chatd, nick):
    """nick (registered, READER_CAPS) joins #g: the lines of its replay (made
    before draft/chathistory is on: a client with it gets none), and those of
    CHATHISTORY LATEST."""
    reader = chatd.irc_login(nick, caps=[c for c in READER_CAPS if c != "draft/chathistory"])
    lines = reader.join("#g") + reader.sync()
    start, replay = one_batch(lines, "chathistory")
    assert start.params[2] == "#g", start.raw
    assert reader.cap_req(["draft/chathistory"])[0] == "ACK"
    start, latest = chathistory(reader, "CHATHISTORY LATEST #g * 50")
    assert latest is not None, start.raw
    return replay, latest


def guest_in_g(chatd):
    """alice (registered, READER_CAPS) in #g; the guest "visitor" joins, sets the
    topic, says something, sends a notice and a TAGMSG, alice says something,
    the guest parts.  The guest's lines as alice got them live; by then the
    PART is in the history too."""
    alice = chatd.irc_login("alice", caps=READER_CAPS)
    assert alice.join("#g")[-1].command == "366"
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor", caps=["message-tags"]).command == "001"
    assert guest.join("#g")[-1].command == "366"

    def in_g(x):
        return x.nick == "visitor" and x.params[0] == "#g"

    live = [alice.expect("JOIN", in_g)]
    guest.send("TOPIC #g :set by a guest")
    live.append(alice.expect("TOPIC", in_g))
    guest.send("PRIVMSG #g :from a guest")
    live.append(alice.expect("PRIVMSG", in_g))
    guest.send("NOTICE #g :a guest's notice")
    live.append(alice.expect("NOTICE", in_g))
    guest.send("@+example.com/mood=curious TAGMSG #g")
    live.append(alice.expect("TAGMSG", in_g))
    say_all(alice, "#g", ["from an account"])
    guest.send("PART #g :bye")
    live.append(alice.expect("PART", in_g))
    # The PART is stored a moment after it was shown (docs/IRC.md, "CHATHISTORY").
    deadline = deadline_in(5)
    while True:
        _, inner = chathistory(alice, "CHATHISTORY LATEST #g * 50")
        if [(x.command, x.nick) for x in inner][-1:] == [("PART", "visitor")]:
            break
        assert time.monotonic() < deadline, [x.raw for x in inner]
    return live


def test_a_guests_live_lines_carry_no_account(irc_chatd):
    """guests = true: a guest's name is no account, so nothing it does in a room
    carries account= (account-tag, message-tags) live: JOIN, TOPIC, PRIVMSG,
    NOTICE, TAGMSG, PART."""
    live = guest_in_g(irc_chatd(guests=True))
    assert [(x.command, x.tags.get("account")) for x in live] == [
        ("JOIN", None), ("TOPIC", None), ("PRIVMSG", None), ("NOTICE", None),
        ("TAGMSG", None), ("PART", None)], [x.raw for x in live]


def test_a_guests_history_carries_no_account(irc_chatd):
    """guests = true: a guest's messages and events carry no account= in the
    replay on JOIN and in CHATHISTORY (event-playback), and so after a restart
    (the history file says who was a guest), when the name has become someone's
    account; an account's messages carry it."""
    chatd = irc_chatd(guests=True)
    guest_in_g(chatd)
    for lines in replay_and_latest(chatd, "carol"):
        assert_accounts(lines, GUEST_LINES)

    chatd.restart()
    # The name is free: someone registers it and speaks.  The guest's lines stay no account's.
    owner = chatd.irc_login("visitor", caps=READER_CAPS)
    assert owner.join("#g")[-1].command == "366"
    say_all(owner, "#g", ["now an account"])
    after = GUEST_LINES + [("JOIN", "visitor", "visitor"), ("PRIVMSG", "visitor", "visitor")]
    for lines in replay_and_latest(chatd, "dave"):
        assert_accounts(lines, after)


def msg_accounts(lines, nick="visitor"):
    """(command, text, account tag or None) of nick's PRIVMSG and NOTICE lines."""
    return [(x.command, x.last, x.tags.get("account")) for x in lines
            if x.nick == nick and x.command in ("PRIVMSG", "NOTICE")]


def test_a_guest_that_registers_mid_session(irc_chatd):
    """guests = true: a guest says things, registers its nick with REGISTER, says more.
    What it said as a guest stays without account= and what it says as the account
    carries it: live (to the room, to a nick, its own echo), in the replay and
    CHATHISTORY, after a compaction of the history file (history_max_size at its least,
    another room filling it) and after a restart that reads the compacted file.  WHO,
    WHOIS and chatctl users stop calling it a guest."""
    chatd = irc_chatd(guests=True, history_max_size=65536)
    alice = chatd.irc_login("alice", caps=READER_CAPS)
    assert alice.join("#g")[-1].command == "366"
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor", caps=READER_CAPS).command == "001"
    assert guest.join("#g")[-1].command == "366"
    alice.expect("JOIN", lambda m: m.nick == "visitor")

    def speak(word):
        """The room message, notice and private message, as alice and the echo have them."""
        got = []
        for line in (f"PRIVMSG #g :{word} in the room", f"NOTICE #g :{word} notice",
                     f"PRIVMSG alice :{word} to alice"):
            guest.send(line)
            text = line.split(" :", 1)[1]
            got.append(alice.expect(("PRIVMSG", "NOTICE"), lambda m, t=text: m.last == t))
            got.append(guest.expect(("PRIVMSG", "NOTICE"), lambda m, t=text: m.last == t))
        return got

    before = speak("before")
    assert [x.tags.get("account") for x in before] == [None] * 6, [x.raw for x in before]
    guest.send("WHO #g")
    who = [m for m in guest.until("315") if m.command == "352" and m.params[5] == "visitor"]
    assert who and who[0].last.split(" ", 1)[1] == "guest", who
    guest.send("REGISTER * * :pw-visitor")
    assert guest.expect("REGISTER").params[:2] == ["SUCCESS", "visitor"]
    after = speak("after")
    assert [x.tags.get("account") for x in after] == ["visitor"] * 6, [x.raw for x in after]
    guest.send("WHO #g")
    who = [m for m in guest.until("315") if m.command == "352" and m.params[5] == "visitor"]
    assert who and who[0].last.split(" ", 1)[1] == "visitor", who
    users = [ln.split() for ln in chatd.ctl_ok("users").splitlines()]
    assert [u[-1] for u in users if u[0] == "visitor"] == ["irc"], users

    want = [("PRIVMSG", "before in the room", None), ("NOTICE", "before notice", None),
            ("PRIVMSG", "after in the room", "visitor"), ("NOTICE", "after notice", "visitor")]
    for lines in replay_and_latest(chatd, "carol"):
        assert msg_accounts(lines) == want, [x.raw for x in lines]

    # Another room fills the file past history_max_size: it is compacted.
    filler = chatd.login("filler")
    filler.request("/join filler")
    for i in range(200):
        filler.say(f"{i:03d} " + "x" * 400)
    deadline = deadline_in(10)
    while "compacted from" not in chatd.log_text():
        assert time.monotonic() < deadline, chatd.log_text()[-2000:]
        filler.say("one more")
    raw = chatd.history_path.read_text()
    assert " g msg ~visitor before in the room\n" in raw, raw[:2000]
    assert " g msg visitor after in the room\n" in raw, raw[:2000]
    for lines in replay_and_latest(chatd, "dave"):
        assert msg_accounts(lines) == want, [x.raw for x in lines]
    chatd.restart()
    for lines in replay_and_latest(chatd, "erin"):
        assert msg_accounts(lines) == want, [x.raw for x in lines]


def test_default_room_spelled_anew_plays_back_in_the_new_spelling(irc_chatd):
    """default_room changed only in case across a restart: CHATHISTORY (and
    event playback) names the channel as it is spelled now, as live lines do,
    for the records stored under the old spelling too."""
    chatd = irc_chatd(default_room="lobby")
    alice = chatd.irc_login("alice", caps=CAPS)
    old = say_all(alice, "#lobby", ["under the old spelling"])
    alice.close()
    chatd.restart(default_room="Lobby")
    bob = chatd.irc_login("bob", caps=CAPS + ["draft/event-playback"])
    bob.sync()
    new = say_all(bob, "#Lobby", ["under the new one"])
    start, inner = chathistory(bob, "CHATHISTORY LATEST #Lobby * 10")
    assert inner is not None, start.raw
    assert {m.params[0] for m in inner} == {"#Lobby"}, [m.raw for m in inner]
    texts = [m.last for m in inner if m.command == "PRIVMSG"]
    assert texts == [old[0][2], new[0][2]], [m.raw for m in inner]
