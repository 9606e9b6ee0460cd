"""
test_chat.py - the room: messages between users, joins and departures,
and the commands of a logged-in session.
"""

import math
import time

import pytest

from chatproto import wait_until
from lograte import BURST, WINDOW_S, events, summaries


def messages_from(client, name):
    return [line for line in client.live if line.tag == "MSG" and line[2] == name]


def test_three_clients_chat(chatd):
    """The lab demo: everyone sees everyone else's messages, nobody their own."""
    names = ["ann", "ben", "cat"]
    clients = {name: chatd.login(name) for name in names}
    sent = {}
    for round_no in range(3):
        for name, client in clients.items():
            text = f"round {round_no} from {name}"
            sent[client.say(text)] = (name, text)
    assert sorted(sent) == list(range(min(sent), min(sent) + len(sent))), "ids skip"
    # Room messages reach everyone in id order: once this last one is in,
    # an echo of anyone's own message would have arrived before it.
    closing = chatd.login("dan").say("closing")

    for name, client in clients.items():
        client.wait_for("MSG", lambda l: l.id == closing)
        got = {line.id: (line[2], line[3]) for line in client.live if line.tag == "MSG"}
        want = {i: m for i, m in sent.items() if m[0] != name}
        assert got == want, f"{name} got {client.live!r}"
        ids = [line.id for line in client.live if line.tag == "MSG"]
        assert ids == sorted(ids), f"{name} got messages out of order"


def test_join_seen_by_others(chatd):
    first = chatd.login("first")
    second = chatd.login("second")
    assert second.users[0] == "2" and second.users[3].split() == ["first", "second"]
    join = first.wait_for("JOIN")
    assert join[1] == "second"
    second.sync()
    assert second.live_of("JOIN") == [], "a user sees its own JOIN"


@pytest.mark.parametrize("how", ["reset", "close"])
def test_client_vanishes_others_keep_chatting(chatd, how):
    a = chatd.login("stay1")
    b = chatd.login("stay2")
    gone = chatd.login("gone")
    a.wait_for("JOIN", lambda l: l[1] == "gone")
    b.wait_for("JOIN", lambda l: l[1] == "gone")
    if how == "reset":
        gone.abort()
    else:
        gone.close()
    for client in (a, b):
        part = client.wait_for("PART", lambda l: l[1] == "gone")
        assert part[2] == "lost", part
    msg_id = a.say("still here?")
    got = b.wait_for("MSG", lambda l: l[2] == "stay1")
    assert (got.id, got[3]) == (msg_id, "still here?")
    reply_id = b.say("yes")
    assert a.wait_for("MSG", lambda l: l[2] == "stay2").id == reply_id
    data, final = a.request("/who")
    assert data[0][3].split() == ["stay1", "stay2"]


def test_quit_with_reason(chatd):
    leaver = chatd.login("leaver")
    watcher = chatd.login("watcher")
    leaver.wait_for("JOIN")
    data, bye = leaver.request("/quit lunch break")
    assert data == [] and bye.raw == "BYE quit lunch break", bye
    assert leaver.read_until_closed() == []
    part = watcher.wait_for("PART", lambda l: l[1] == "leaver")
    assert part[2:] == ["quit", "lunch break"], part


def test_private_message(chatd):
    a = chatd.login("priva")
    b = chatd.login("privb")
    c = chatd.login("privc")
    data, final = a.request("/msg privb meet me at 5")
    assert data == [] and final.tag == "OK" and final[0] == "-", final
    assert final[1] == "sent to privb"
    priv = b.wait_for("PRIV")
    assert priv[1:] == ["priva", "privb", "meet me at 5"], priv

    # c gets nothing: a room message sent after it arrives first.
    marker = a.say("room marker")
    c.wait_for("MSG", lambda l: l.id == marker)
    c.sync()
    assert c.live_of("PRIV") == []
    a.sync()
    assert a.live_of("PRIV") == [], "sender got its own PRIV"

    # Private messages have no id and are not history.
    data, _ = b.request("/history")
    assert [h[3] for h in data] == ["room marker"]
    assert b"meet me at 5" not in chatd.history_path.read_bytes()


def test_private_message_names_the_recipient_as_spelled(chatd_factory):
    """/msg finds its recipient whatever the case typed; the answer and the
    PRIV line's `to` name it as it spells itself (registered spelling), and
    a guest recipient as "~NAME" to others (PROTOCOL.md "Login" 2)."""
    d = chatd_factory(guests=True)
    a = d.login("Sender")
    b = d.login("BobSmith")
    data, final = a.request("/msg bobsmith hi there")
    assert data == [] and final.raw == "OK - sent to BobSmith", final.raw
    priv = b.wait_for("PRIV")
    assert priv[1:] == ["Sender", "BobSmith", "hi there"], priv.raw

    g = d.connect("guest")
    g.login("Visitor", "", expect_pass="new")
    for to in ("visitor", "~VISITOR"):
        data, final = a.request(f"/msg {to} hello guest")
        assert final.raw == "OK - sent to ~Visitor", final.raw
        back = g.wait_for("PRIV", lambda line: line[3] == "hello guest")
        assert back[1:3] == ["Sender", "Visitor"], back.raw  # its own name, plainly


def test_private_message_to_offline_user(chatd):
    a = chatd.login("lonely")
    chatd.login("wasthere").close()
    a.wait_for("PART", lambda l: l[1] == "wasthere")
    data, final = a.request("/msg nobody hello?")
    assert data == [] and final.tag == "ERR" and final[0] == "404", final
    data, final = a.request("/msg wasthere hello?")
    assert final.tag == "ERR" and final[0] == "404", final


def test_private_message_without_a_name_is_a_usage_error(chatd):
    """/msg with two spaces, or a guest's mark alone, names nobody: ERR 400 and
    the usage, not "ERR 404  is not online" with an empty name."""
    a = chatd.login("lonely")
    for line in ("/msg  hello?", "/msg ~ hello?"):
        data, final = a.request(line)
        assert data == [] and final.raw == "ERR 400 usage: /msg NAME TEXT", (line, final.raw)


def test_double_slash_sends_slash(chatd):
    a = chatd.login("slasher")
    b = chatd.login("reader")
    msg_id = a.say("//x")
    got = b.wait_for("MSG")
    assert (got.id, got[2], got[3]) == (msg_id, "slasher", "/x")


def test_unknown_command(chatd):
    a = chatd.login("curious")
    data, final = a.request("/frobnicate now")
    assert data == [] and final.tag == "ERR" and final[0] == "400", final
    a.sync()


def test_ping(chatd):
    a = chatd.login("pinger")
    data, final = a.request("/ping are you there")
    assert [d.raw for d in data] == ["PONG are you there"]
    assert final.tag == "OK" and final[0] == "-"


def test_ping_without_text(chatd):
    a = chatd.login("pinger")
    data, final = a.request("/ping")
    assert len(data) == 1 and data[0].tag == "PONG" and data[0][0] == ""
    assert final.tag == "OK"


def test_help(chatd):
    a = chatd.login("helpme")
    data, final = a.request("/help")
    assert final.tag == "OK" and final[0] == "-", final
    assert data and all(d.tag == "HELP" for d in data), data
    text = "\n".join(d[0] for d in data)
    for command in ("/who", "/msg", "/history", "/passwd", "/ping", "/quit", "/help"):
        assert command in text, f"{command} missing from /help"


def test_who_lists_everyone_sorted(chatd):
    clients = [chatd.login(name) for name in ("carol", "Bob", "alice")]
    data, final = clients[0].request("/who")
    assert final.tag == "OK" and final[0] == "-", final
    assert len(data) == 1 and data[0].tag == "USERS"
    assert data[0][:3] == ["3", "1", "1"]
    assert data[0][3].split() == ["alice", "Bob", "carol"]
    assert clients[2].users[3].split() == ["alice", "Bob", "carol"]


def test_crlf_line_end(chatd):
    a = chatd.login("crlf")
    b = chatd.login("lf")
    a.send_raw(b"with cr\r\n")
    _, ok = a.collect_reply()
    assert ok.tag == "OK", ok
    assert b.wait_for("MSG")[3] == "with cr"


def test_utf8_text_passes_unchanged(chatd):
    a = chatd.login("intl")
    b = chatd.login("reader")
    text = "héllo wörld — ✓ 日本語 😀"
    msg_id = a.say(text)
    got = b.wait_for("MSG")
    assert (got.id, got[3]) == (msg_id, text)


def test_ping_echoes_a_line_of_max_line_bytes(chatd_factory):
    """Replies are not capped below max_line, whatever max_line is."""
    d = chatd_factory(max_line=8192)
    a = d.login("echoer")
    text = "p" * (8192 - len("/ping "))
    data, final = a.request("/ping " + text)
    assert [l.raw for l in data] == ["PONG " + text] and final.tag == "OK", final.raw


def test_a_guests_topics_and_rooms_grow_the_log_by_a_bounded_number_of_lines(chatd_factory):
    """guests = true: anyone can log in as a guest, so the log lines of a
    guest's /topic and of the rooms it makes are bounded per kind and window
    (daemon/lograte.h), with exact counts; an account's are logged each."""
    d = chatd_factory(guests=True, room_create="anyone", max_rooms_per_user=40)
    wait_until(lambda: "listening" in d.log_text(), "started")
    member = d.login("member")
    g = d.connect("guest")
    g.login("visitor", "", expect_pass="new")
    start = time.monotonic()
    before = len(d.log_text().splitlines())
    for i in range(200):
        assert g.request(f"/topic lobby round {i}")[1].tag == "OK"
    for i in range(30):
        assert g.request(f"/join room{i}")[1].tag == "OK"
    elapsed = time.monotonic() - start
    grown = len(d.log_text().splitlines()) - before
    windows = math.ceil(elapsed / WINDOW_S) + 1
    assert grown <= 2 * (BURST + 1) * windows, f"{grown} lines for 230 events in {elapsed:.1f} s"
    assert member.request("/topic lobby an account's")[1].tag == "OK"
    assert member.request("/join accounts")[1].tag == "OK"
    assert d.stop() == 0
    text = d.log_text()
    assert events(text, "~visitor set the topic of lobby", "topics set by guests") == 200
    assert events(text, "~visitor made room room", "rooms made by guests") == 30
    if elapsed < WINDOW_S:  # one window each: BURST logged, the rest in one summary
        assert summaries(text, "topics set by guests") == [190]
        assert summaries(text, "rooms made by guests") == [20]
    assert "member set the topic of lobby" in text and "member made room accounts" in text
