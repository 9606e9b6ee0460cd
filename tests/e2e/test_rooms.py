"""
test_rooms.py - named rooms end to end (protocol version 2): real chatd,
real sockets on loopback.  Joining, leaving, switching, talking to a room
without switching, topics, /who and /history per room, /rooms, the
limits and their error codes, rooms and topics across a restart, the
expiry of empty rooms, the order of replies across rooms, and a crowd
joining rooms at once.
"""

import re
import resource
import socket
import threading
from pathlib import Path

import pytest

from chatproto import no_time, ok, reply, wait_until


def test_two_users_in_two_rooms(chatd):
    """docs/PROTOCOL.md's transcript of alice and bob in lobby and dev."""
    alice = chatd.login("alice")
    assert alice.users.raw == "USERS lobby 1 1 1 alice"
    bob = chatd.login("bob")
    assert bob.users.raw == "USERS lobby 2 1 1 alice bob"
    assert no_time(alice.wait_for("JOIN").raw) == "JOIN lobby T bob"

    assert reply(alice, "/join dev") == (["USERS dev 1 1 1 alice"], "OK - joined dev")
    data, final = reply(alice, "/topic dev release on friday")
    assert [no_time(d) for d in data] == ["TOPIC dev T alice release on friday"]
    assert final == "OK - topic set"

    data, final = reply(bob, "/join #dev")
    assert [no_time(d) for d in data] == ["TOPIC dev T alice release on friday",
                                          "USERS dev 2 1 1 alice bob"]
    assert final == "OK - joined dev"
    assert no_time(alice.wait_for("JOIN", lambda l: l.room == "dev").raw) == "JOIN dev T bob"

    msg_id = alice.say("tests are green")
    got = bob.wait_for("MSG")
    assert got.room == "dev" and got.id == msg_id and got[2:] == ["alice", "tests are green"]
    # bob's plain lines go to dev now too, lobby hears nothing.
    reply_id = bob.say("great")
    got = alice.wait_for("MSG")
    assert (got.room, got.id, got[3]) == ("dev", reply_id, "great")
    alice.sync()
    assert alice.live_of("MSG") == []


def test_switch_say_leave(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    ok(alice, "/join dev")
    ok(bob, "/join dev")
    assert reply(bob, "/switch lobby") == ([], "OK - talking in lobby")
    first = bob.say("hi lobby")
    assert alice.wait_for("MSG", lambda l: l.id == first).room == "lobby"
    second = bob.say("/say #dev hi dev")
    assert alice.wait_for("MSG", lambda l: l.id == second).room == "dev"
    # /say did not move bob: his next plain line is in lobby again.
    third = bob.say("still lobby")
    assert alice.wait_for("MSG", lambda l: l.id == third).room == "lobby"

    assert reply(bob, "/leave dev see you") == ([], "OK - left dev")
    part = alice.wait_for("PART", lambda l: l.room == "dev")
    assert part[1:] == ["bob", "left", "see you"]
    assert reply(bob, "/say dev x") == ([], "ERR 404 you are not in dev")
    assert reply(bob, "/switch dev") == ([], "ERR 404 you are not in dev")
    assert reply(bob, "/leave dev") == ([], "ERR 404 you are not in dev")
    assert reply(bob, "/switch nosuch") == ([], "ERR 404 no such room: nosuch")
    assert reply(bob, "/join bad!name")[1].startswith("ERR 423 ")
    assert reply(bob, "/join 9lives")[1].startswith("ERR 423 ")
    assert reply(bob, "/join") == ([], "ERR 400 usage: /join ROOM")
    assert reply(bob, "/say dev") == ([], "ERR 400 usage: /say ROOM TEXT")
    # Already in: it becomes current.
    ok(alice, "/switch lobby")
    assert reply(alice, "/join DEV") == ([], "OK - already in dev")
    fourth = alice.say("back in dev")
    assert alice.live_of("MSG") == [] and fourth > third


def test_current_room_after_leaving(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    for room in ("dev", "ops"):
        ok(alice, f"/join {room}")
        ok(bob, f"/join {room}")
    # Leaving the current room (ops) falls back to the default room.
    ok(alice, "/leave")
    one = alice.say("one")
    assert bob.wait_for("MSG", lambda l: l.id == one).room == "lobby"
    # Without the default room: the room joined first of those left (dev).
    ok(alice, "/join ops")
    ok(alice, "/leave lobby")
    ok(alice, "/leave ops")
    two = alice.say("two")
    assert bob.wait_for("MSG", lambda l: l.id == two).room == "dev"
    ok(alice, "/leave")
    assert reply(alice, "hello?") == ([], "ERR 404 you are in no room; /join one")
    assert reply(alice, "/topic") == ([], "ERR 404 you are in no room; /join one")
    assert reply(alice, "/who") == ([], "ERR 404 you are in no room; /join one")
    assert reply(alice, "/leave") == ([], "ERR 404 you are in no room; /join one")
    # A room of no one's: /who and /topic of any room still answer.
    assert reply(alice, "/who dev") == (["USERS dev 1 1 1 bob"], "OK - page 1")
    assert reply(alice, "/topic ops") == (["TOPIC ops - -"], "OK - topic")
    ok(alice, "/join lobby")
    three = alice.say("three")
    assert bob.wait_for("MSG", lambda l: l.id == three).room == "lobby"


def test_who_topic_rooms_history_per_room(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    ok(alice, "/join dev")
    ok(bob, "/join dev")
    ok(bob, "/switch lobby")
    lobby_ids = [bob.say(f"lobby {i}") for i in range(3)]
    dev_ids = [alice.say(f"dev {i}") for i in range(3)]

    assert reply(alice, "/who") == (["USERS dev 2 1 1 alice bob"], "OK - page 1")
    assert reply(alice, "/who lobby 1") == (["USERS lobby 2 1 1 alice bob"], "OK - page 1")
    assert reply(alice, "/who #lobby 2") == (["USERS lobby 2 0 1 "], "OK - page 2")
    assert reply(alice, "/who nosuch") == ([], "ERR 404 no such room: nosuch")
    assert reply(alice, "/who dev x") == ([], "ERR 400 usage: /who [ROOM] [PAGE]")

    data, final = alice.request("/history")
    assert [(h.room, h.id) for h in data] == [("dev", i) for i in dev_ids]
    data, final = alice.request("/history lobby 2")
    assert [(h.room, h.id, h[3]) for h in data] == [("lobby", lobby_ids[1], "lobby 1"),
                                                    ("lobby", lobby_ids[2], "lobby 2")]
    assert final.raw == "OK - 2 messages"
    data, final = alice.request(f"/history #dev since {dev_ids[0]}")
    assert [h.id for h in data] == dev_ids[1:]
    data, final = bob.request(f"/history since {lobby_ids[1]}")
    assert [h.id for h in data] == lobby_ids[2:]

    assert reply(alice, "/topic") == (["TOPIC dev - -"], "OK - topic")
    assert reply(alice, "/topic dev " + "x" * 391) == ([], "ERR 400 topic too long (max 390 bytes)")
    assert reply(alice, "/topic nosuch hi") == ([], "ERR 404 no such room: nosuch")
    ok(alice, "/leave lobby")
    assert reply(alice, "/topic lobby hi") == ([], "ERR 404 you are not in lobby")
    ok(bob, "/topic dev  spaces  kept ")
    topic = alice.wait_for("TOPIC")
    assert topic.room == "dev" and topic[1:] == ["bob", " spaces  kept "]

    data, final = reply(alice, "/rooms")
    assert data == ["ROOM dev 2  spaces  kept ", "ROOM lobby 1 "]
    assert final == "OK - page 1 of 1, 2 rooms"
    assert reply(alice, "/rooms 2") == ([], "OK - page 2 of 1, 2 rooms")
    assert reply(alice, "/rooms x") == ([], "ERR 400 usage: /rooms [PAGE]")

    # The history keeps the joins, departures and topics too (not replayed as HIST).
    # An event's record is written by the commit thread after its line went out.
    events = (r"^\d+ \S+ dev join alice ?$", r"^\d+ \S+ lobby part alice left left the room$",
              r"^\d+ \S+ dev topic bob  spaces  kept $")
    wait_until(lambda: all(re.search(e, chatd.history_path.read_text(), re.M) for e in events),
               "the join, part and topic records in the history file")


def test_history_words_and_rooms_made_again(chatd):
    """/history sincere is a room (only the word since is the keyword); a room
    deleted and made again at once shows none of the old room's history."""
    alice, bob = chatd.login("alice"), chatd.login("bob")
    ok(alice, "/join sincere")
    i = alice.say("hello")
    ok(alice, "/switch lobby")
    data, final = alice.request("/history sincere")
    assert [h.id for h in data] == [i] and final.raw == "OK - 1 message"
    ok(alice, "/join dev")
    alice.say("the old room's secret")
    chatd.ctl_ok("room", "del", "dev")
    data, final = bob.request("/join dev")
    assert final.raw == "OK - joined dev" and [h for h in data if h.tag == "HIST"] == []
    assert reply(bob, "/history dev") == ([], "OK - 0 messages")
    assert reply(bob, "/history dev since 0") == ([], "OK - 0 messages")


def test_replies_stay_in_order_across_rooms(chatd):
    """Pipelined messages to two rooms: OKs in request order, and a member of
    both gets every message in id order whatever its room."""
    alice, bob = chatd.login("alice"), chatd.login("bob")
    for c in (alice, bob):
        ok(c, "/join dev")
    ok(alice, "/switch lobby")
    lines = []
    for i in range(40):
        lines.append(f"/say dev d{i}" if i % 3 == 0 else f"l{i}")
    alice.send_raw("".join(line + "\n" for line in lines).encode())
    ids = []
    for line in lines:
        data, final = alice.collect_reply()
        assert data == [] and final.tag == "OK" and final[1] == "sent", (line, final.raw)
        ids.append(final.id)
    assert ids == sorted(ids)
    last = bob.wait_for("MSG", lambda l: l.id == ids[-1])
    got = [(m.room, m.id, m[3]) for m in bob.live_of("MSG") + [last]]
    want = [("dev" if t.startswith("/say") else "lobby", i, t.split()[-1])
            for t, i in zip(lines, ids)]
    assert got == want


def test_limits_and_creation(chatd_factory):
    d = chatd_factory(max_rooms=3, max_rooms_per_user=2)
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join one")
    assert reply(alice, "/join two") == (
        [], "ERR 405 you are in too many rooms (max 2); /leave one")
    ok(bob, "/join two")
    assert reply(bob, "/join three") == ([], "ERR 405 you are in too many rooms (max 2); /leave one")
    ok(bob, "/leave lobby")
    assert reply(bob, "/join three") == ([], "ERR 405 too many rooms (max_rooms 3)")
    # Joining an existing room needs no room to be made.
    ok(bob, "/join one")


def test_only_operators_create_rooms_when_so_configured(chatd_factory):
    d = chatd_factory(room_create="admin")
    carol = d.login("carol")
    assert reply(carol, "/join four") == ([], "ERR 403 only an operator may create rooms here")
    assert reply(carol, "/rooms") == (["ROOM lobby 1 "], "OK - page 1 of 1, 1 rooms")


def test_rooms_and_topics_survive_a_restart(chatd_factory):
    d = chatd_factory()
    alice = d.login("alice")
    ok(alice, "/join Dev")
    ok(alice, "/topic dev release on friday")
    ok(alice, "/join ops")
    ok(alice, "/topic lobby welcome all")
    ids = [alice.say(f"ops {i}") for i in range(2)]
    d.restart()
    alice = d.login("alice")
    # Back in the default room only, which kept its topic.
    assert no_time(alice.topic.raw) == "TOPIC lobby T alice welcome all"
    data, final = reply(alice, "/rooms")
    assert data == ["ROOM Dev 0 release on friday", "ROOM lobby 1 welcome all", "ROOM ops 0 "]
    assert reply(alice, "/join dev")[1] == "OK - joined Dev"
    data, final = alice.request("/join ops")
    assert [h.id for h in data if h.tag == "HIST"] == ids
    assert oct((d.state_dir / "rooms").stat().st_mode & 0o777) == "0o600"
    text = (d.state_dir / "rooms").read_text()
    assert text.startswith("chatd-rooms 1\n")
    assert re.search(r"^Dev user \d+ \d+ alice release on friday$", text, re.M), text
    assert re.search(r"^ops user \d+ - - $", text, re.M), text


def test_a_damaged_rooms_file_stops_chatd_with_file_and_line(chatd_factory):
    d = chatd_factory(start=False)
    (d.state_dir / "rooms").write_text("chatd-rooms 1\nlobby op 1 - - \nbad line\n")
    (d.state_dir / "rooms").chmod(0o600)
    rc, out, err = d.run_expecting_exit()
    assert rc != 0 and "rooms:3: damaged room line" in err, err


def test_a_room_twice_in_the_rooms_file_stops_chatd_at_its_second_line(chatd_factory):
    d = chatd_factory(start=False)
    (d.state_dir / "rooms").write_text("chatd-rooms 1\nlobby op 1 - - \nb user 1 - - \n"
                                       "c user 1 - - \nB user 1 - - \nc user 1 - - \n")
    (d.state_dir / "rooms").chmod(0o600)
    rc, out, err = d.run_expecting_exit()
    assert rc != 0 and "rooms:5: room B is there twice" in err, err


def test_a_rooms_file_of_many_rooms_loads_at_once(chatd_factory):
    """max_rooms goes to a million (chatd.conf(5)): the rooms file was checked
    for a room named twice by comparing each room with every one before it,
    so 60,000 rooms took 1.8 billion comparisons (seconds) to start, and a
    million rooms most of an hour."""
    n = 60000
    d = chatd_factory(start=False, max_rooms=1000000)
    lines = ["chatd-rooms 1", "lobby op 1 - - "] + [f"r{i:06d} op 1 - - " for i in range(n)]
    (d.state_dir / "rooms").write_text("\n".join(lines) + "\n")
    (d.state_dir / "rooms").chmod(0o600)
    d.start(timeout=4)
    assert f"rooms: {n + 1} (max_rooms 1000000)" in d.ctl_ok("status")


def test_status_counts_the_rooms_without_a_copy_of_each(chatd_factory):
    """chatctl status copied every room (name, topic...: 1.1 KiB each) under
    the room lock only to count them: 60,000 rooms took 67 MB each time, and
    with less memory left its rooms line said "unknown: Cannot allocate
    memory"."""
    n = 60000
    d = chatd_factory(start=False, max_rooms=1000000)
    lines = ["chatd-rooms 1", "lobby op 1 - - "] + [f"r{i:06d} op 1 - - " for i in range(n)]
    (d.state_dir / "rooms").write_text("\n".join(lines) + "\n")
    (d.state_dir / "rooms").chmod(0o600)
    d.start(timeout=60)                 # quick now, but not before the fix above
    assert f"rooms: {n + 1} (max_rooms 1000000)" in d.ctl_ok("status")
    vm = int(re.search(r"VmSize:\s+(\d+) kB", (Path("/proc") / str(d.pid) / "status").read_text())[1])
    resource.prlimit(d.pid, resource.RLIMIT_AS, (vm * 1024 + (16 << 20), resource.RLIM_INFINITY))
    try:
        rooms = [line for line in d.ctl_ok("status").splitlines() if line.startswith("rooms:")]
        assert rooms == [f"rooms: {n + 1} (max_rooms 1000000)"], rooms
        # room kick tells a missing room from a missing member the same cheap way
        proc = d.ctl("room", "kick", "nosuch", "nobody")
        assert proc.stderr == "chatctl: no room nosuch\n", proc.stderr
    finally:
        resource.prlimit(d.pid, resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


@pytest.mark.parametrize("setter", ["~", "~*", "~~x", "~-"])
def test_a_guest_mark_without_a_name_is_a_damaged_rooms_line(chatd_factory, setter):
    """A topic's setter `~NAME` is a guest's (docs/FILES.md); a `~` without a
    name after it is no setter."""
    d = chatd_factory(start=False)
    (d.state_dir / "rooms").write_text(f"chatd-rooms 1\nlobby op 1 2 {setter} hi\n")
    (d.state_dir / "rooms").chmod(0o600)
    rc, out, err = d.run_expecting_exit()
    assert rc != 0 and "rooms:2: damaged room line" in err, err


def test_empty_user_rooms_expire(chatd_factory):
    d = chatd_factory(room_expiry=1)
    alice = d.login("alice")
    ok(alice, "/join brief")
    ok(alice, "/join kept")
    ok(alice, "/leave brief")

    def rooms():
        return reply(alice, "/rooms")[0]

    wait_until(lambda: rooms() == ["ROOM kept 1 ", "ROOM lobby 1 "], "brief to expire")
    # The deletion record is stored by the commit thread after the room went.
    wait_until(lambda: re.search(r"^\d+ \S+ brief delete -", d.history_path.read_text(), re.M),
               "the deletion of brief to be stored")


def test_replaced_session_parts_all_its_rooms(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    for c in (alice, bob):
        ok(c, "/join dev")
    again = chatd.login("alice")
    parts = sorted((bob.wait_for("PART", lambda l, r=r: l.room == r).room)
                   for r in ("lobby", "dev"))
    assert parts == ["dev", "lobby"]
    assert reply(bob, "/who dev") == (["USERS dev 1 1 1 bob"], "OK - page 1")
    # The new session starts in the default room only.
    assert reply(again, "/switch dev") == ([], "ERR 404 you are not in dev")


def test_room_notice_limit_is_per_room(chatd_factory):
    d = chatd_factory(room_notice_limit=2)
    a, b, c = d.login("a1"), d.login("b1"), d.login("c1")
    ok(a, "/join small")
    ok(b, "/join small")
    assert no_time(a.wait_for("JOIN", lambda l: l.room == "small").raw) == "JOIN small T b1"
    # lobby has 3 members: above the limit, quiet, and its USERS lists nobody.
    assert c.users.raw == "USERS lobby 3 0 1 "
    ok(c, "/join small")        # small has 3 now: no JOIN
    ok(b, "/leave small")       # nor PART
    a.sync()
    assert [l for l in a.live if l.tag in ("JOIN", "PART") and l.room == "small"] == []


def test_design_transcript_unchanged_but_the_version(chatd):
    """The seed's README session: a client that never mentions rooms."""
    sock = socket.create_connection(("127.0.0.1", chatd.port))
    f = sock.makefile("rwb")
    try:
        def line():
            return f.readline().decode().rstrip("\n")

        assert line() == "HELLO 2 chatd/0.3.0 welcome to chatd; who are you?"
        f.write(b"alice\n")
        f.flush()
        assert line() == "PASS new alice choose a password to register alice"
        f.write(b"correct horse\n")
        f.flush()
        assert line() == "WELCOME alice registered"
        assert line() == "USERS lobby 1 1 1 alice"
        assert line() == "OK - logged in as alice"
        f.write(b"hello, world\n")
        f.flush()
        assert re.fullmatch(r"OK \d+ sent", line())
    finally:
        f.close()
        sock.close()


CROWD = 200
ROOMS = 10


def test_a_crowd_joins_rooms_at_once(chatd_factory):
    d = chatd_factory(max_clients=CROWD + 10, max_clients_per_address=CROWD + 10,
                      max_logins=CROWD + 10, max_logins_per_address=CROWD + 10,
                      room_notice_limit=5)
    crowd = [d.login(f"user{i}") for i in range(CROWD)]
    # Everyone asks at once, from threads of their own.
    errors = []

    def join(i, c):
        try:
            data, final = c.request(f"/join room{i % ROOMS}", timeout=30)
            assert final.raw == f"OK - joined room{i % ROOMS}", final.raw
        except Exception as e:      # noqa: BLE001 - reported below
            errors.append((i, e))

    threads = [threading.Thread(target=join, args=(i, c)) for i, c in enumerate(crowd)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    data, final = reply(crowd[0], "/rooms")
    assert sorted(data) == sorted([f"ROOM room{r} {CROWD // ROOMS} " for r in range(ROOMS)]
                                  + [f"ROOM lobby {CROWD} "])
    # One message per room reaches exactly that room's members.
    ids = {r: crowd[r].say(f"to room{r}") for r in range(ROOMS)}
    for i, c in enumerate(crowd[ROOMS:], ROOMS):
        r = i % ROOMS
        got = c.wait_for("MSG", lambda l, r=r: l.room == f"room{r}", timeout=30)
        assert got.id == ids[r], (i, got.raw)
    for c in crowd:
        c.sync(timeout=30)
        assert [m.room for m in c.live_of("MSG")] == [], (c.label, c.live_of("MSG"))
