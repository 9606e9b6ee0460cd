"""
test_history.py - replay at login, /history, ids across reconnects and
restarts, and the history file on disk (a guest's records marked there, its
name plain in replay).
"""

import re

HISTORY_LINE = re.compile(r"(\d+) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) lobby msg (\S+) (.*)\Z")


def read_history_file(path):
    """[(id, name, text)] from the history file, checking its format."""
    lines = path.read_bytes().decode("utf-8").split("\n")
    assert lines[0] == "chatd-history 2", lines[:2]
    assert lines[-1] == "", "history file does not end in a newline"
    entries = []
    for line in lines[1:-1]:
        m = HISTORY_LINE.match(line)
        assert m, f"bad history line {line!r}"
        entries.append((int(m.group(1)), m.group(3), m.group(4)))
    return entries


def assert_consecutive(ids):
    assert ids == list(range(ids[0], ids[0] + len(ids))), ids


def test_replay_after_reconnect(chatd):
    a = chatd.login("writer")
    b = chatd.login("other")
    ids = [a.say(f"a{i}") for i in range(5)]
    a.close()
    ids += [b.say(f"b{i}") for i in range(2)]

    a = chatd.login("writer")
    assert [(h.id, h[2], h[3]) for h in a.hist] == list(zip(
        ids, ["writer"] * 5 + ["other"] * 2, [f"a{i}" for i in range(5)] + ["b0", "b1"]))
    assert_consecutive(ids)

    live_id = b.say("after the replay")
    assert live_id == ids[-1] + 1
    assert a.wait_for("MSG").id == live_id


def test_replay_is_limited_to_history_replay(chatd_factory):
    d = chatd_factory(history_replay=5)
    a = d.login("writer")
    ids = [a.say(f"m{i}") for i in range(12)]
    b = d.login("late")
    assert [h.id for h in b.hist] == ids[-5:]


def test_no_gap_between_replay_and_live(chatd):
    """A user logging in during a flood sees every id exactly once, in order."""
    flooder = chatd.login("flooder")
    count = 1500
    # The acknowledgements (about 20 KiB) wait in the flooder's socket
    # buffers while "late" logs in mid-flood.
    flooder.send_raw(b"".join(f"flood {i}\n".encode() for i in range(count)))
    late = chatd.login("late")
    acks = [flooder.collect_reply(timeout=30)[1] for _ in range(count)]
    assert all(ack.tag == "OK" for ack in acks), [a for a in acks if a.tag != "OK"][:3]
    assert_consecutive([ack.id for ack in acks])
    last_acked = acks[-1].id
    # If the whole flood was stored before "late" joined, its replay ends
    # with the last message and nothing comes live.
    seen = [h.id for h in late.hist]
    if seen[-1:] != [last_acked]:
        late.wait_for("MSG", lambda l: l.id == last_acked, timeout=30)
        seen += [m.id for m in late.live if m.tag == "MSG"] + [last_acked]
    assert len(late.hist) <= 20
    assert_consecutive(seen)


def test_history_after_restart(chatd):
    a = chatd.login("keeper", "pw")
    ids = [a.say(f"before restart {i}") for i in range(4)]
    chatd.restart()

    a = chatd.login("keeper", "pw", expect_pass="known")
    assert [(h.id, h[3]) for h in a.hist] == [(i, f"before restart {n}")
                                              for n, i in enumerate(ids)]
    b = chatd.login("newcomer")
    new_id = b.say("after restart")
    assert new_id == ids[-1] + 1, (ids, new_id)
    assert a.wait_for("MSG").id == new_id

    entries = read_history_file(chatd.history_path)
    assert entries == [(i, "keeper", f"before restart {n}") for n, i in enumerate(ids)] + [
        (new_id, "newcomer", "after restart")]


def test_history_command_last_n(chatd):
    a = chatd.login("histo")
    ids = [a.say(f"msg {i}") for i in range(25)]
    data, final = a.request("/history 3")
    assert [(h.tag, h.id, h[3]) for h in data] == [("HIST", i, f"msg {n + 22}")
                                                   for n, i in enumerate(ids[-3:])]
    assert final.raw.startswith("OK - 3 messages"), final

    data, final = a.request("/history")
    assert [h.id for h in data] == ids[-20:]
    assert final.raw.startswith("OK - 20 messages"), final


def test_history_command_counts_in_words(chatd):
    """One message is "1 message", not "1 messages"; none and many are plural."""
    a = chatd.login("histo")
    assert a.request("/history 1")[1].raw == "OK - 0 messages"
    i = a.say("only one")
    data, final = a.request("/history")
    assert [h.id for h in data] == [i] and final.raw == "OK - 1 message", final
    data, final = a.request(f"/history since {i - 1}")
    assert [h.id for h in data] == [i] and final.raw == "OK - 1 message", final
    a.say("two")
    assert a.request("/history 2")[1].raw == "OK - 2 messages"


def test_history_command_since(chatd):
    a = chatd.login("histo")
    ids = [a.say(f"msg {i}") for i in range(6)]
    data, final = a.request(f"/history since {ids[2]}")
    assert [h.id for h in data] == ids[3:]
    assert final.tag == "OK", final
    data, final = a.request(f"/history since {ids[-1]}")
    assert data == [] and final.tag == "OK", (data, final)


def test_history_since_the_largest_id_claims_no_gap(chatd):
    """Nothing comes after id 2^64-1: the answer is complete.  It said
    "complete from id N on", as if messages after that id had been dropped
    (after + 1 wrapped to 0)."""
    a = chatd.login("histo")
    a.say("one")
    data, final = a.request(f"/history since {2**64 - 1}")
    assert data == [] and final.raw == "OK - 0 messages", final.raw


def test_history_since_beyond_memory(chatd_factory):
    d = chatd_factory(history_memory=10, history_replay=5)
    a = d.login("histo")
    ids = [a.say(f"msg {i}") for i in range(15)]
    data, final = a.request(f"/history since {ids[0]}")
    assert [h.id for h in data] == ids[-10:]
    assert final.tag == "OK" and str(ids[-10]) in final[1], final


def test_history_bad_arguments(chatd):
    a = chatd.login("histo")
    for bad in ("/history since", "/history since x", "/history -3", "/history lobby x",
                "/history lobby 0", "/history #lobby since"):
        data, final = a.request(bad)
        assert data == [] and final.tag == "ERR" and final[0] == "400", (bad, final)
    # A word that is no count names a room (version 2).
    data, final = a.request("/history lots")
    assert data == [] and final.raw == "ERR 404 no such room: lots", final


def test_history_reply_never_overflows_the_asker(chatd_factory):
    """Asking for more history than the send queue holds gets the newest part, not a drop."""
    d = chatd_factory(send_queue_limit=16384)
    a = d.login("writer")
    ids = [a.say(f"long {i} {'y' * 1000}") for i in range(40)]
    reader = d.login("reader")
    data, final = reader.request("/history 40")
    assert final.tag == "OK" and "fit" in final[1], final.raw
    got = [h.id for h in data]
    assert 0 < len(got) < 40 and got == ids[-len(got):], got
    reader.sync()


def test_a_guests_messages_replay_marked_as_a_guests(chatd_factory):
    """guests = true: the history file marks a guest's records (~NAME,
    docs/FILES.md), and so does the native protocol, in the replay at login
    (HIST) and /history, before and after a restart: a guest's words never
    read as an account's of that name."""
    d = chatd_factory(guests=True)
    g = d.connect("guest")
    g.login("visitor", "", expect_pass="new")
    assert g.welcome[1] == "guest", g.welcome.raw
    guest_id = g.say("from a guest")
    member = d.login("member")
    member_id = member.say("from an account")
    want = [(guest_id, "~visitor", "from a guest"), (member_id, "member", "from an account")]
    assert [(h.id, h[2], h[3]) for h in member.hist] == want[:1]
    data, final = member.request("/history 2")
    assert [(h.tag, h.id, h[2], h[3]) for h in data] == [("HIST", *w) for w in want], data

    raw = d.history_path.read_text()
    assert re.search(rf"^{guest_id} \S+ lobby msg ~visitor from a guest$", raw, re.M), raw
    assert re.search(rf"^{member_id} \S+ lobby msg member from an account$", raw, re.M), raw

    d.restart()
    later = d.login("later")
    assert [(h.id, h[2], h[3]) for h in later.hist] == want
    data, final = later.request("/history 2")
    assert [(h.tag, h.id, h[2], h[3]) for h in data] == [("HIST", *w) for w in want], data


def test_default_room_spelled_anew_replays_in_the_new_spelling(chatd_factory):
    """default_room changed only in case across a restart (chatd.conf): the
    configured spelling wins, so the records stored under the old one replay
    (HIST at login, /history) in the spelling the live lines use, before and
    after another restart."""
    d = chatd_factory(default_room="lobby")
    alice = d.login("alice")
    old = alice.say("under the old spelling")
    alice.close()
    d.restart(default_room="Lobby")
    carol = d.login("carol")
    assert [(h.room, h.id) for h in carol.hist] == [("Lobby", old)], [h.raw for h in carol.hist]
    bob = d.login("bob")
    new = bob.say("under the new one")
    live = carol.wait_for("MSG")
    assert (live.room, live.id) == ("Lobby", new), live.raw
    for _ in range(2):
        data, final = carol.request("/history 2")
        assert [(h.tag, h.room, h.id) for h in data] == [("HIST", "Lobby", old),
                                                         ("HIST", "Lobby", new)], data
        d.restart()
        carol = d.login("carol")
        assert [(h.room, h.id) for h in carol.hist] == [("Lobby", old), ("Lobby", new)]
