"""
test_rooms_attack.py - named rooms under attack: crafted room names, crowds
creating, joining and leaving rooms at once, pipelined traffic across many
rooms, topic limits and floods, planted links and damaged rooms files,
deletion, kicks and expiry racing with members, and history per room.

Each test holds one promise of docs/PROTOCOL.md ("Rooms"), docs/SECURITY.md
or docs/ADMIN.md.  A promise chatd does not keep yet would be marked
xfail(strict=True) with a reason starting "DEFECT:"; none is open.
"""

import os
import re
import signal
import threading

import pytest

from chatproto import no_time, ok, reply, wait_until

CROWD_LIMITS = dict(max_clients=260, max_clients_per_address=260, max_logins=260,
                    max_logins_per_address=260)


def rooms_of(client):
    """The /rooms listing (page 1) as [(name, members, topic)]."""
    data, final = client.request("/rooms")
    assert final.tag == "OK", final.raw
    return [(d.room, int(d[0]), d[1]) for d in data]


def in_threads(items, work):
    """Runs work(i, item) for every item at once, one thread each; the errors."""
    errors = []
    barrier = threading.Barrier(len(items))

    def run(i, item):
        try:
            barrier.wait(timeout=30)
            work(i, item)
        except Exception as e:      # noqa: BLE001 - reported by the caller
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=run, args=(i, item)) for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
    return errors


def login_many(d, names):
    """Logged-in clients for names, logging in at once (registration syncs a file each)."""
    clients = [None] * len(names)

    def login(i, name):
        clients[i] = d.login(name)

    assert in_threads(names, login) == []
    return clients


# ---- room names ----

BAD_NAMES = [
    "#",                    # nothing after the '#'
    "##x",                  # only one '#' is stripped
    "a" * 33,               # one too long
    "#" + "a" * 33,
    "caf\u00e9",            # non-ASCII
    "\u0430dmin",           # a Cyrillic a that looks like a Latin one
    "*",                    # the NOTICE target for the whole server
    "-",
    "-dev",
    "_dev",
    ".dev",
    "9",
    "dev/ops",
    "dev:ops",
    "dev,ops",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_crafted_room_names_are_refused_everywhere(chatd, name):
    alice = chatd.login("alice")
    for command in ("/join", "/switch", "/leave", "/topic", "/who", "/history"):
        data, final = reply(alice, f"{command} {name}")
        if command in ("/who", "/history") and name[0] in "0123456789+-":
            # Read as a count, not a room (/who 9 is page 9): no room either way.
            assert final.startswith(("ERR 400 ", "OK - page 9", "OK - 0 messages")), \
                (command, name, final)
            continue
        assert data == [] and final.startswith("ERR 423 "), (command, name, data, final)
    data, final = reply(alice, f"/say {name} hi")
    assert final.startswith("ERR 423 "), (name, final)
    # Nothing was made, and the name is not echoed in the error.
    assert rooms_of(alice) == [("lobby", 1, "")]


def test_room_names_at_the_edges(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    longest = "A" + "b" * 31
    assert reply(alice, f"/join #{longest}") == ([f"USERS {longest} 1 1 1 alice"],
                                                 f"OK - joined {longest}")
    # Case-insensitive: the spelling of creation is kept for everyone.
    assert reply(bob, f"/join {longest.lower()}")[1] == f"OK - joined {longest}"
    assert reply(bob, f"/join {longest.upper()}") == ([], f"OK - already in {longest}")
    ok(alice, "/join x")
    ok(alice, "/join X.-_9")
    got = [r[0] for r in rooms_of(alice)]
    assert got == [longest, "lobby", "x", "X.-_9"], got
    # A room named like a keyword is still a room with its '#'.
    ok(alice, "/join since")
    i = alice.say("in since")
    data, final = alice.request("/history #since")
    assert [(h.room, h.id) for h in data] == [("since", i)], final.raw
    # /join takes one word: a space is a usage error, not a room "a b".
    assert reply(alice, "/join a b") == ([], "ERR 400 usage: /join ROOM")


def test_history_of_a_room_whose_name_starts_with_since(chatd):
    alice = chatd.login("alice")
    ok(alice, "/join sincere")
    i = alice.say("hello")
    ok(alice, "/switch lobby")
    data, final = alice.request("/history sincere")
    assert final.raw == "OK - 1 message" and [h.id for h in data] == [i], final.raw


def test_who_paging_never_mistakes_a_room_for_a_page(chatd):
    alice = chatd.login("alice")
    ok(alice, "/join e10")      # looks like a number in some notations
    assert reply(alice, "/who e10") == (["USERS e10 1 1 1 alice"], "OK - page 1")
    assert reply(alice, "/who e10 1") == (["USERS e10 1 1 1 alice"], "OK - page 1")
    assert reply(alice, "/who 1") == (["USERS e10 1 1 1 alice"], "OK - page 1")
    assert reply(alice, "/who e10 -1")[1].startswith("ERR 400 ")
    assert reply(alice, "/who e10 99999999999999999999")[1].startswith("ERR 400 ")
    assert reply(alice, "/who e10 0")[1] in ("OK - page 0", "ERR 400 usage: /who [ROOM] [PAGE]")
    assert reply(alice, "/rooms 99999999999999999999")[1].startswith("ERR 400 ")
    assert reply(alice, "/rooms 4294967295")[1] == "OK - page 4294967295 of 1, 2 rooms"


CASE_CROWD = 60


def test_case_collisions_created_at_once_make_one_room(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=5)
    crowd = login_many(d, [f"u{i}" for i in range(CASE_CROWD)])
    spellings = ["Dev", "dev", "DEV", "dEv", "#dev", "#DeV"]
    joined = {}

    def join(i, c):
        data, final = c.request(f"/join {spellings[i % len(spellings)]}", timeout=20)
        assert final.tag == "OK" and final.raw.startswith("OK - joined "), final.raw
        joined[i] = final.raw.split()[-1]

    assert in_threads(crowd, join) == []
    # One room, one spelling, shown the same to everyone.
    assert len(set(joined.values())) == 1, set(joined.values())
    name = joined[0]
    rooms = rooms_of(crowd[0])
    assert rooms == sorted([(name, CASE_CROWD, ""), ("lobby", CASE_CROWD, "")],
                           key=lambda r: r[0].lower()), rooms
    i = crowd[1].say("/say dev one room")
    for c in crowd[:1] + crowd[2:]:
        got = c.wait_for("MSG", lambda l: l.id == i)
        assert got.room == name
    text = (d.state_dir / "rooms").read_text()
    assert len([l for l in text.splitlines() if l.lower().startswith("dev ")]) == 1, text


# ---- max_rooms under a crowd ----

MAX_ROOMS = 40
CREATORS = 200


def test_a_crowd_creating_rooms_gets_exactly_max_rooms(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, max_rooms=MAX_ROOMS, room_notice_limit=5)
    crowd = login_many(d, [f"c{i}" for i in range(CREATORS)])
    finals = {}

    def create(i, c):
        data, final = c.request(f"/join r{i}", timeout=20)
        finals[i] = final.raw

    assert in_threads(crowd, create) == []
    made = sorted(i for i, f in finals.items() if f == f"OK - joined r{i}")
    refused = [f for f in finals.values() if not f.startswith("OK")]
    assert len(made) == MAX_ROOMS - 1       # the default room counts
    assert set(refused) == {f"ERR 405 too many rooms (max_rooms {MAX_ROOMS})"}
    assert len(refused) == CREATORS - len(made)
    want = sorted([(f"r{i}", 1, "") for i in made] + [("lobby", CREATORS, "")],
                  key=lambda r: r[0].lower())
    assert rooms_of(crowd[0]) == want
    assert reply(crowd[made[0]], f"/join r{CREATORS + 1}")[1].startswith("ERR 405 ")
    # The rooms file agrees, and after a restart exactly the same rooms exist.
    d.restart()
    alice = d.login("alice")
    assert rooms_of(alice) == [(n, 1 if n == "lobby" else 0, "") for n, _, _ in want]
    lines = (d.state_dir / "rooms").read_text().splitlines()
    assert lines[0] == "chatd-rooms 1" and len(lines) == MAX_ROOMS + 1, lines
    # Still full: a new name is refused, a made one may be joined.
    assert reply(alice, "/join brandnew")[1].startswith("ERR 405 ")
    assert reply(alice, f"/join r{made[-1]}")[1] == f"OK - joined r{made[-1]}"
    # A deletion frees a place, for one new room only.
    d.ctl_ok("room", "del", f"r{made[0]}")
    assert reply(alice, "/join brandnew")[1] == "OK - joined brandnew"
    assert reply(alice, "/join another")[1].startswith("ERR 405 ")


# ---- churn: joining and leaving while others talk ----

CHURNERS = 200
STAYERS = 4
TALKERS = 4
PER_TALKER = 20


def test_churn_in_a_room_loses_and_duplicates_nothing_for_members_that_stay(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=1000)
    stayers = login_many(d, [f"s{i}" for i in range(STAYERS)])
    talkers = login_many(d, [f"t{i}" for i in range(TALKERS)])
    churners = login_many(d, [f"ch{i}" for i in range(CHURNERS)])
    for c in stayers + talkers:
        ok(c, "/join hot")
    for c in churners:
        ok(c, "/join side")
    stop = threading.Event()
    sent = {}

    def churn(i, c):
        # Join and leave hot, with a line to side between: every reply in order.
        k = 0
        while not stop.is_set() and k < 3:
            assert c.request("/join hot", timeout=20)[1].raw == "OK - joined hot"
            final = c.request(f"/say side {i}.{k}", timeout=20)[1]
            assert final.tag == "OK" and final[1] == "sent", final.raw
            assert c.request("/leave hot", timeout=20)[1].raw == "OK - left hot"
            k += 1

    def talk(i, c):
        ids = []
        for k in range(PER_TALKER):
            ids.append(c.say(f"/say hot {i}.{k}", timeout=20))
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        sent[i] = ids

    def act(i, item):
        kind, j, c = item
        try:
            (talk if kind == "t" else churn)(j, c)
        finally:
            if kind == "t" and len(sent) == TALKERS:
                stop.set()

    items = [("t", i, c) for i, c in enumerate(talkers)] + \
            [("c", i, c) for i, c in enumerate(churners)]
    assert in_threads(items, act) == []
    every = sorted(i for ids in sent.values() for i in ids)
    for s in stayers:
        got = []
        while len(got) < len(every):
            got.append(s.wait_for("MSG", lambda l: l.room == "hot", timeout=20).id)
        s.sync()
        got += [m.id for m in s.live_of("MSG") if m.room == "hot"]
        assert got == every, (s.label, len(got), len(every))
    # The room's members at the end: the stayers and talkers only.
    users = reply(stayers[0], "/who hot")[0][0].split()
    assert sorted(users[5:]) == sorted(c.name for c in stayers + talkers), users


# ---- one client in many rooms ----

MANY = 20


def test_pipelined_lines_to_many_rooms_are_answered_in_request_order(chatd_factory):
    d = chatd_factory(max_rooms_per_user=MANY)
    alice, bob = d.login("alice"), d.login("bob")
    rooms = ["lobby"] + [f"room{i}" for i in range(MANY - 1)]
    for r in rooms[1:]:
        ok(alice, f"/join {r}")
        ok(bob, f"/join {r}")
    assert reply(alice, "/join onemore")[1].startswith("ERR 405 ")
    # Messages to every room with commands between, all in one write.
    lines, want = [], []
    for k in range(6):
        for j, r in enumerate(rooms):
            lines.append(f"/say #{r} m{k}.{j}")
            want.append(("sent", r))
            if j % 7 == 3:
                lines.append(f"/ping p{k}.{j}")
                want.append(("pong", f"p{k}.{j}"))
            if j % 9 == 5:
                lines.append(f"/who {r}")
                want.append(("who", r))
            if j % 11 == 2:
                lines.append(f"/topic {r} t{k}.{j}")
                want.append(("topic", r))
    alice.send_raw("".join(l + "\n" for l in lines).encode())
    ids = []
    for line, (kind, arg) in zip(lines, want):
        data, final = alice.collect_reply(timeout=20, topic_is_data=kind == "topic")
        assert final.tag == "OK", (line, final.raw)
        if kind == "sent":
            assert data == [] and final[1] == "sent", (line, final.raw)
            ids.append((final.id, arg))
        elif kind == "pong":
            assert [x.raw for x in data] == [f"PONG {arg}"], (line, data)
        elif kind == "who":
            assert [x.room for x in data] == [arg] and final.raw == "OK - page 1", (line, data)
        else:
            assert [x.room for x in data] == [arg] and final.raw == "OK - topic set", line
    assert [i for i, _ in ids] == sorted(i for i, _ in ids), "ids went back"
    # bob, a member of every room, gets each message once, in id order, named by its room.
    last = bob.wait_for("MSG", lambda l: l.id == ids[-1][0], timeout=20)
    got = [(m.id, m.room) for m in bob.live_of("MSG") + [last]]
    assert got == ids


BUSY_ROOMS = 8


def test_a_member_of_many_busy_rooms_that_stops_reading_overflows_alone(chatd_factory):
    d = chatd_factory(send_queue_limit=65536, max_rooms_per_user=BUSY_ROOMS + 1)
    stuck = d.connect("stuck", rcvbuf=4096)
    stuck.login("stuck", "pw-stuck")
    bob = d.login("bob")
    talkers = login_many(d, [f"t{i}" for i in range(BUSY_ROOMS)])
    for i, t in enumerate(talkers):
        for c in (t, bob, stuck):
            ok(c, f"/join busy{i}")
    text = "x" * 2000
    burst = 4
    parts = []
    for rnd in range(60):
        for t in talkers:
            t.send_raw((f"{text}\n" * burst).encode())
        for t in talkers:
            for _ in range(burst):
                assert t.collect_reply(timeout=20)[1].tag == "OK"
        # bob reads all of it, at the pace of the rooms.
        for _ in range(burst * BUSY_ROOMS):
            bob.wait_for("MSG", timeout=20)
        parts = [p for p in bob.live_of("PART") if p[1] == "stuck"]
        if parts:
            break
    assert parts, "the member that never reads was never dropped"
    assert {p[2] for p in parts} == {"overflow"}, parts
    # Every room it was in saw it go, and nobody else went.
    bob.sync()
    gone = {p.room for p in bob.live_of("PART") if p[1] == "stuck"}
    assert gone == {"lobby"} | {f"busy{i}" for i in range(BUSY_ROOMS)}, gone
    assert [p for p in bob.live_of("PART") if p[1] != "stuck"] == []
    for t in talkers:
        t.sync()
    assert reply(bob, "/who busy0") == (["USERS busy0 2 1 1 bob t0"], "OK - page 1")


# ---- topics ----

def test_topic_length_is_counted_in_bytes_at_the_boundary(chatd_factory):
    d = chatd_factory(max_topic=10)
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join dev")
    ok(bob, "/join dev")
    five = "\u00e9" * 5                             # 10 bytes, 5 characters
    data, final = alice.request(f"/topic dev {five}")
    assert final.raw == "OK - topic set" and data[0][-1] == five
    assert bob.wait_for("TOPIC")[-1] == five
    assert reply(alice, f"/topic dev {five}a") == ([], "ERR 400 topic too long (max 10 bytes)")
    assert reply(alice, "/topic dev " + "\u20ac" * 4) == (   # 12 bytes, 4 characters
        [], "ERR 400 topic too long (max 10 bytes)")
    assert reply(alice, "/topic dev " + "a" * 10)[1] == "OK - topic set"
    assert reply(alice, "/topic dev " + "a" * 11)[1].startswith("ERR 400 ")
    # The refused ones changed nothing, nor reached anyone.
    assert bob.wait_for("TOPIC")[-1] == "a" * 10
    bob.sync()
    assert bob.live_of("TOPIC") == []
    assert [no_time(t) for t in reply(bob, "/topic dev")[0]] == ["TOPIC dev T alice " + "a" * 10]
    # An operator's topic has the same limit.
    proc = d.ctl("room", "topic", "dev", "b" * 11)
    assert proc.returncode != 0 and "max_topic (10)" in proc.stderr, proc
    proc = d.ctl("room", "create", "ops", "c" * 11)
    assert proc.returncode != 0 and "max_topic (10)" in proc.stderr, proc
    assert [r[0] for r in rooms_of(alice)] == ["dev", "lobby"]


@pytest.mark.parametrize("bad", [b"a\x01b", b"a\x1b[2Jb", b"a\x7fb", b"\xc3(", b"\xed\xa0\x80",
                                 b"a\rb", b"\xe2\x80\xaeevil"])
def test_topics_with_forbidden_characters_are_refused(chatd, bad):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    ok(alice, "/join dev")
    ok(bob, "/join dev")
    ok(alice, "/topic dev good")
    bob.wait_for("TOPIC")
    alice.send_raw(b"/topic dev " + bad + b"\n")
    data, final = alice.collect_reply(topic_is_data=True)
    if bad == b"\xe2\x80\xaeevil":
        # A bidi override is not a control character: accepted or refused, never raw bytes
        # that bend the line format.
        assert final.tag in ("OK", "ERR"), final.raw
        return
    assert final.tag == "ERR" and final[0] == "422", (bad, final.raw)
    bob.sync()
    assert bob.live_of("TOPIC") == []
    assert [no_time(l) for l in reply(bob, "/topic dev")[0]] == ["TOPIC dev T alice good"]


def test_an_operator_cannot_set_a_topic_with_control_characters(chatd):
    alice = chatd.login("alice")
    ok(alice, "/join dev")
    for bad in ("a\x01b", "a\x1b[2Jb", "a\rb"):
        proc = chatd.ctl("room", "topic", "dev", bad)
        assert proc.returncode != 0, (bad, proc.stdout)
        proc = chatd.ctl("room", "create", "x" + str(len(bad)), bad)
        assert proc.returncode != 0, (bad, proc.stdout)
        proc = chatd.ctl("room", "notice", "dev", bad)
        assert proc.returncode != 0, (bad, proc.stdout)
    alice.sync()
    assert [l for l in alice.live if l.tag in ("TOPIC", "NOTICE")] == []
    assert reply(alice, "/topic dev") == (["TOPIC dev - -"], "OK - topic")


TOPIC_MEMBERS = 40
TOPICS = 150


def test_a_topic_flood_reaches_every_member_in_order(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=5)
    setter = d.login("setter")
    members = login_many(d, [f"m{i}" for i in range(TOPIC_MEMBERS)])
    for c in [setter] + members:
        ok(c, "/join dev")
    setter.send_raw("".join(f"/topic dev topic {k}\n" for k in range(TOPICS)).encode())
    for k in range(TOPICS):
        data, final = setter.collect_reply(timeout=20, topic_is_data=True)
        assert final.raw == "OK - topic set" and data[0][-1] == f"topic {k}", (k, final.raw)
    for c in members:
        got = [c.wait_for("TOPIC", timeout=20)[-1] for _ in range(TOPICS)]
        assert got == [f"topic {k}" for k in range(TOPICS)], c.label
    text = (d.state_dir / "rooms").read_text()
    assert re.search(rf"^dev user \d+ \d+ setter topic {TOPICS - 1}$", text, re.M), text


# ---- the rooms file ----

def refused_start(d, text=None, *expected):
    rc, out, err = d.run_expecting_exit()
    assert rc == 1, (rc, err)
    for e in expected:
        assert e in err, err
    return err


def test_a_symlink_planted_at_the_rooms_file_stops_chatd(chatd_factory, tmp_path):
    d = chatd_factory(start=False)
    victim = tmp_path / "victim"
    victim.write_text("chatd-rooms 1\n")
    victim.chmod(0o600)
    (d.state_dir / "rooms").symlink_to(victim)
    refused_start(d, None, "rooms is a symbolic link")
    assert victim.read_text() == "chatd-rooms 1\n"


def test_a_hard_link_planted_at_the_rooms_file_stops_chatd(chatd_factory, tmp_path):
    d = chatd_factory(start=False)
    victim = d.state_dir / "elsewhere"
    victim.write_text("chatd-rooms 1\n")
    victim.chmod(0o600)
    os.link(victim, d.state_dir / "rooms")
    refused_start(d, None, "hard links")


@pytest.mark.parametrize("kind", ["symlink", "hardlink"])
def test_a_link_planted_at_the_rooms_temp_file_is_never_written_through(chatd_factory,
                                                                         tmp_path, kind):
    d = chatd_factory()
    victim = d.state_dir / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    tmp = d.state_dir / "rooms.tmp"
    if kind == "symlink":
        tmp.symlink_to(victim)
    else:
        os.link(victim, tmp)
    alice = d.login("alice")
    ok(alice, "/join dev")
    ok(alice, "/topic dev planted")
    assert victim.read_text() == "precious\n"
    rooms = d.state_dir / "rooms"
    assert not rooms.is_symlink() and rooms.stat().st_nlink == 1
    assert oct(rooms.stat().st_mode & 0o777) == "0o600"
    assert re.search(r"^dev user \d+ \d+ alice planted$", rooms.read_text(), re.M)
    d.restart()
    assert rooms_of(d.login("bob")) == [("dev", 0, "planted"), ("lobby", 1, "")]


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_rooms_file_that_is_no_regular_file_is_refused(chatd_factory, kind):
    d = chatd_factory(start=False)
    path = d.state_dir / "rooms"
    if kind == "directory":
        path.mkdir()
    else:
        os.mkfifo(path, 0o600)
    refused_start(d, None, str(path))


def test_a_rooms_file_in_a_directory_others_may_write_is_refused(chatd_factory, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    d = chatd_factory(start=False, rooms_file=str(shared / "rooms"))
    err = refused_start(d)
    assert str(shared) in err, err


DAMAGED = [
    # (file body after the header, the line named)
    ("dev user 1 5 bob a\x01b\n", 2),
    ("dev user 1 5 bob " + "x" * 1025 + "\n", 2),
    ("dev user 1 - bob \n", 2),
    ("dev user 1 5 - topic\n", 2),
    ("dev root 1 - - \n", 2),
    ("#dev user 1 - - \n", 2),
    ("dev user -1 - - \n", 2),
    ("dev user 1 99999999999999999999 bob t\n", 2),
    ("dev user 1 - -", 2),            # cut short: no LF
    ("d\u00e9v user 1 - - \n", 2),
    ("lobby op 1 - - \n\n", 3),       # an empty line
]


@pytest.mark.parametrize("body,lineno", DAMAGED)
def test_a_damaged_rooms_file_is_refused_with_file_and_line(chatd_factory, body, lineno):
    d = chatd_factory(start=False)
    path = d.state_dir / "rooms"
    path.write_bytes(("chatd-rooms 1\n" + body).encode())
    path.chmod(0o600)
    refused_start(d, None, f"{path}:{lineno}:")
    assert path.read_bytes() == ("chatd-rooms 1\n" + body).encode()


@pytest.mark.parametrize("second", ["dev user 2 5 bob other topic", "Dev op 2 - - "])
def test_a_rooms_file_naming_a_room_twice_is_refused(chatd_factory, second):
    d = chatd_factory(start=False)
    path = d.state_dir / "rooms"
    path.write_text(f"chatd-rooms 1\ndev user 1 7 alice first topic\n{second}\n")
    path.chmod(0o600)
    try:
        d.start()
    except AssertionError as e:
        assert "exited with 1" in str(e) and f"{path}:3:" in str(e), str(e)
        return
    pytest.fail(f"chatd started with the room twice: {rooms_of(d.login('alice'))}")


# ---- deletion, kicks and the default room ----

@pytest.mark.parametrize("how", ["delete", "expire"])
def test_a_deleted_room_made_again_at_once_has_no_history(chatd_factory, how):
    d = chatd_factory(start=False, room_expiry=1 if how == "expire" else 0)
    d.env["CHATD_TEST_FAULT"] = "slow-sync"     # every sync 100 ms: a slow disk
    d.start()
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join dev")
    alice.say("the old room's secret")
    if how == "delete":
        d.ctl_ok("room", "del", "dev")
    else:
        ok(alice, "/leave dev")
        wait_until(lambda: "dev" not in [r[0] for r in rooms_of(bob)], "dev to expire")
    # bob makes dev again right after it went.
    data, final = bob.request("/join dev")
    assert final.raw == "OK - joined dev", final.raw
    assert [h.raw for h in data if h.tag == "HIST"] == []
    data, final = bob.request("/history dev")
    assert [h.raw for h in data] == [], final.raw


def test_a_message_to_a_deleted_room_never_reaches_the_room_made_again(chatd_factory):
    d = chatd_factory(start=False)
    d.env["CHATD_TEST_FAULT"] = "slow-sync"     # every sync 100 ms: the message waits
    d.start()
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join dev")
    alice.send_line("/say dev for the old room only")
    d.ctl_ok("room", "del", "dev")
    assert bob.request("/join dev")[1].raw == "OK - joined dev"
    final = alice.collect_reply(timeout=10)[1]
    assert re.fullmatch(r"OK \d+ sent|ERR 404 .*", final.raw), final.raw
    bob.sync()
    assert [m.raw for m in bob.live_of("MSG")] == []


def test_an_expired_room_made_again_has_no_history(chatd_factory):
    d = chatd_factory(room_expiry=1)
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join brief")
    ok(alice, "/topic brief old topic")
    alice.say("gone with the room")
    ok(alice, "/leave brief")
    wait_until(lambda: "brief" not in [r[0] for r in rooms_of(bob)], "brief to expire")
    wait_until(lambda: re.search(r"^\d+ \S+ brief delete -", d.history_path.read_text(), re.M),
               "the deletion in the history file")
    data, final = bob.request("/join BRIEF")
    assert final.raw == "OK - joined BRIEF"
    assert [l.raw for l in data if l.tag in ("HIST", "TOPIC")] == []
    assert reply(bob, "/history brief") == ([], "OK - 0 messages")
    data, final = reply(bob, "/history brief since 0")
    assert data == [] and final.startswith("OK - 0 messages"), final
    i = bob.say("new room")
    d.restart()
    carol = d.login("carol")
    data, final = carol.request("/history brief")
    assert [(h.room, h.id) for h in data] == [("BRIEF", i)], final.raw


def test_operator_rooms_and_the_default_room_never_expire(chatd_factory):
    d = chatd_factory(room_expiry=1)
    d.ctl_ok("room", "create", "kept")
    alice = d.login("alice")
    ok(alice, "/join kept")
    ok(alice, "/join brief")
    ok(alice, "/leave kept")
    ok(alice, "/leave lobby")
    ok(alice, "/leave brief")
    # brief expires; kept and lobby, empty as long, do not.
    wait_until(lambda: [r[0] for r in rooms_of(alice)] == ["kept", "lobby"], "brief to expire")
    assert rooms_of(alice) == [("kept", 0, ""), ("lobby", 0, "")]
    assert "kept expired" not in d.log_text() and "lobby expired" not in d.log_text()


def test_the_default_room_cannot_be_deleted_and_a_user_in_no_room_can_come_back(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    proc = chatd.ctl("room", "del", "#LOBBY")
    assert proc.returncode != 0 and "cannot be deleted" in proc.stderr, proc
    ok(alice, "/join dev")
    ok(alice, "/leave lobby")
    # Kicked from its last room: in no room, told so, and still online.
    chatd.ctl_ok("room", "kick", "dev", "alice", "out")
    part = alice.wait_for("PART")
    assert (part.room, part[1], part[2]) == ("dev", "alice", "kicked"), part.raw
    assert reply(alice, "hello?") == ([], "ERR 404 you are in no room; /join one")
    assert reply(alice, "/say lobby hi") == ([], "ERR 404 you are not in lobby")
    assert reply(alice, "/history") == ([], "ERR 404 you are in no room; /join one")
    assert reply(alice, "/ping x") == (["PONG x"], "OK - pong")
    ok(alice, "/join lobby")
    i = alice.say("back")
    assert bob.wait_for("MSG", lambda l: l.id == i).room == "lobby"
    # A room deleted while its member is not in the default room puts it there.
    ok(alice, "/join ops")
    ok(alice, "/leave lobby")
    chatd.ctl_ok("room", "del", "ops")
    part = alice.wait_for("PART")
    assert (part.room, part[2]) == ("ops", "deleted"), part.raw
    assert bob.wait_for("JOIN", lambda l: l[1] == "alice").room == "lobby"
    j = alice.say("in lobby again")
    assert bob.wait_for("MSG", lambda l: l.id == j).room == "lobby"


SENDS = 300
ROUNDS_TAKEN_OUT = 40


def sending_while_taken_out(d, how):
    """alice pipelines SENDS messages to a room while the operator deletes the room or
    kicks her from it; each round a new room.  Returns the problems seen."""
    alice, bob = d.login("alice"), d.login("bob")
    for rnd in range(ROUNDS_TAKEN_OUT):
        room = f"dev{rnd}"
        for c in (alice, bob):
            ok(c, f"/join {room}")
        alice.send_raw("".join(f"/say {room} m{k}\n" for k in range(SENDS)).encode())
        # The operator acts after a few answers, a different number each round.
        finals = [alice.collect_reply(timeout=5)[1].raw for _ in range(rnd * 7 % 40)]
        if how == "delete":
            d.ctl_ok("room", "del", room)
        else:
            d.ctl_ok("room", "kick", room, "alice")
        for _ in range(SENDS - len(finals)):
            # Answers come at the pace of the disk: seconds at most, not never.
            try:
                finals.append(alice.collect_reply(timeout=5)[1].raw)
            except AssertionError as e:
                raise AssertionError(f"round {rnd}: {len(finals)} of {SENDS} answers: {e}")
        # In order: some sent, then refused, never sent again after a refusal.
        kinds = ["sent" if re.fullmatch(r"OK \d+ sent", f) else f for f in finals]
        assert set(kinds) <= {"sent", f"ERR 404 you are not in {room}",
                              f"ERR 404 no such room: {room}"}, set(kinds)
        first_refused = next((k for k, f in enumerate(kinds) if f != "sent"), SENDS)
        assert all(f != "sent" for f in kinds[first_refused:]), kinds
        ids = [int(f.split()[1]) for f in finals[:first_refused]]
        assert ids == sorted(ids)
        # bob sees the PART, and nothing of the room it did not already have.
        part = bob.wait_for("PART", lambda l: l.room == room, timeout=20)
        assert part[1:3] == (["bob", "deleted"] if how == "delete" else ["alice", "kicked"])
        bob.sync()
        got = [m.id for m in bob.live if m.tag == "MSG" and m.room == room]
        assert got == sorted(got) and set(got) <= set(ids), (got, ids)
        bob.live.clear()
        alice.live.clear()
        alice.sync()
        if how == "kick":
            ok(bob, f"/leave {room}")


def test_a_member_sending_while_its_room_is_deleted_gets_every_answer(chatd):
    sending_while_taken_out(chatd, "delete")


def test_a_member_sending_while_kicked_from_the_room_gets_every_answer(chatd):
    sending_while_taken_out(chatd, "kick")


JOINERS = 40
ROUNDS = 15


def test_joins_racing_with_deletions_leave_memberships_consistent(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=5)
    crowd = login_many(d, [f"j{i}" for i in range(JOINERS)])

    def loop(i, c):
        for k in range(ROUNDS):
            data, final = c.request("/join dev", timeout=20)
            assert final.raw.startswith(("OK - joined dev", "OK - already in dev")), final.raw
            if k % 3 == 2:
                data, final = c.request("/leave dev", timeout=20)
                assert final.raw in ("OK - left dev", "ERR 404 you are not in dev",
                                     "ERR 404 no such room: dev"), final.raw
        c.sync(timeout=20)

    def deleter(_i, _c):
        for _ in range(ROUNDS):
            proc = d.ctl("room", "del", "dev")
            assert proc.returncode == 0 or "no room dev" in proc.stderr, proc

    errors = in_threads([("x", None)] + [(i, c) for i, c in enumerate(crowd)],
                        lambda i, item: deleter(*item) if item[0] == "x" else loop(*item))
    assert errors == []
    # Whoever the server counts as a member of dev must be one; a deletion seen last
    # means out.  Ask each client: /switch dev works exactly for members.
    data, final = crowd[0].request("/who dev 1")
    members = set(data[0].raw.split()[5:]) if final.tag == "OK" else set()
    for i, c in enumerate(crowd):
        switched = c.request("/switch dev")[1]
        assert (switched.tag == "OK") == (c.name in members), (c.name, switched.raw, members)
    assert len(members) == (int(data[0][0]) if final.tag == "OK" else 0)
    # And the rooms file has dev exactly when it exists.
    text = (d.state_dir / "rooms").read_text()
    assert (re.search(r"^dev ", text, re.M) is not None) == (final.tag == "OK"), text


# ---- history per room ----

def test_history_since_takes_ids_of_any_room(chatd):
    alice, bob = chatd.login("alice"), chatd.login("bob")
    ok(alice, "/join dev")
    ok(bob, "/join dev")
    ok(bob, "/switch lobby")
    ids = []
    for k in range(6):
        ids.append(("dev", alice.say(f"d{k}")))
        ids.append(("lobby", bob.say(f"l{k}")))
    for room in ("dev", "lobby"):
        for after_room, after in ids:
            data, final = alice.request(f"/history {room} since {after}")
            want = [i for r, i in ids if r == room and i > after]
            assert [h.id for h in data] == want, (room, after_room, after, final.raw)
            assert {h.room for h in data} <= {room}
            assert final.raw.startswith(f"OK - {len(want)} message{'' if len(want) == 1 else 's'}"), final.raw
    # An id from the future, and one past every id: nothing, and no error.
    assert reply(alice, "/history dev since 18446744073709551615")[0] == []
    assert reply(alice, "/history dev since 18446744073709551616")[1].startswith("ERR 400 ")
    # The contract puts no membership on /history (as on /topic): a non-member reads it.
    ok(bob, "/leave dev")
    data, final = bob.request("/history dev 2")
    assert [h.id for h in data] == [i for r, i in ids if r == "dev"][-2:], final.raw


REPLAY_MSGS = 150


def test_replay_at_join_has_no_gap_while_the_room_talks(chatd_factory):
    d = chatd_factory(history_replay=100, history_memory=1000)
    talker = d.login("talker")
    ok(talker, "/join hot")
    joiners = login_many(d, [f"j{i}" for i in range(6)])
    sent = []
    started = threading.Event()

    def talk():
        for k in range(REPLAY_MSGS):
            sent.append(talker.say(f"m{k}", timeout=20))
            if k == 20:
                started.set()

    t = threading.Thread(target=talk)
    t.start()
    try:
        assert started.wait(20)
        views = []
        for j in joiners:
            data, final = j.request("/join hot", timeout=20)
            assert final.raw == "OK - joined hot", final.raw
            views.append([h.id for h in data if h.tag == "HIST"])
    finally:
        t.join(60)
    assert len(sent) == REPLAY_MSGS
    for j, replayed in zip(joiners, views):
        live = []
        while not live or live[-1] != sent[-1]:
            live.append(j.wait_for("MSG", lambda l: l.room == "hot", timeout=20).id)
        seen = replayed + live
        assert replayed, j.label
        # From the first replayed message on: every message once, in order.
        assert seen == sent[sent.index(seen[0]):], (j.label, replayed[-3:], live[:3])


def test_a_busy_room_does_not_push_a_quiet_room_out_of_memory(chatd_factory):
    d = chatd_factory(history_memory=20, history_replay=5)
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, "/join quiet")
    quiet = [alice.say(f"q{k}") for k in range(3)]
    ok(alice, "/leave quiet")
    for k in range(40):
        bob.say(f"busy {k}")
    data, final = bob.request("/join quiet")
    assert [h.id for h in data if h.tag == "HIST"] == quiet
    data, final = bob.request("/history quiet")
    assert [h.id for h in data] == quiet, final.raw


# ---- more of the rooms file, /rooms paging, operators racing users ----

TOPIC_SETTERS = 60


def test_topics_set_at_once_in_many_rooms_survive_a_kill(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=5)
    crowd = login_many(d, [f"u{i}" for i in range(TOPIC_SETTERS)])
    for i, c in enumerate(crowd):
        ok(c, f"/join r{i}")

    def set_topic(i, c):
        for k in range(3):
            final = c.request(f"/topic r{i}  topic {k} of r{i} \u00e9 ", timeout=20)[1]
            assert final.raw == "OK - topic set", final.raw

    assert in_threads(crowd, set_topic) == []
    before = crowd[0].say("/say r0 last before the kill")
    # Every OK is on disk: no clean shutdown needed.
    d.kill()
    d.settings["port"] = d.port
    d.start()
    alice = d.login("alice")
    got = {name: topic for name, _, topic in rooms_of(alice)}
    assert alice.say("first after") > before        # ids only grow, across rooms and restarts
    assert got == {"lobby": "", **{f"r{i}": f" topic 2 of r{i} \u00e9 "
                                   for i in range(TOPIC_SETTERS)}}


def test_a_leftover_rooms_temp_file_is_never_read(chatd_factory):
    d = chatd_factory(start=False)
    (d.state_dir / "rooms").write_text("chatd-rooms 1\nkept user 1 - - \n")
    (d.state_dir / "rooms").chmod(0o600)
    (d.state_dir / "rooms.tmp").write_text("chatd-rooms 1\nghost user 1 - - \ngarbage\n")
    d.start()
    alice = d.login("alice")
    assert [r[0] for r in rooms_of(alice)] == ["kept", "lobby"]
    ok(alice, "/join new")
    assert not (d.state_dir / "rooms.tmp").exists()
    assert "ghost" not in (d.state_dir / "rooms").read_text()


PAGED_ROOMS = 230


def test_rooms_pages_list_every_room_once_in_name_order(chatd_factory):
    d = chatd_factory(room_expiry=0)
    alice = d.login("alice")
    names = [f"{'Ab'[k % 2]}room{k:03d}" for k in range(PAGED_ROOMS)]
    alice.send_raw("".join(f"/join {n}\n/leave {n}\n" for n in names).encode())
    for _ in range(2 * PAGED_ROOMS):
        assert alice.collect_reply(timeout=20)[1].tag == "OK"
    total = PAGED_ROOMS + 1
    pages = (total + 99) // 100
    seen = []
    for page in range(1, pages + 2):
        data, final = alice.request(f"/rooms {page}")
        assert final.raw == f"OK - page {page} of {pages}, {total} rooms", final.raw
        assert len(data) == (min(100, total - 100 * (page - 1)) if page <= pages else 0)
        seen += [l.room for l in data]
    assert seen == sorted(names + ["lobby"], key=str.lower)


def test_an_operator_and_users_making_one_room_at_once_make_one(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, room_notice_limit=5)
    crowd = login_many(d, [f"u{i}" for i in range(30)])
    results = {}

    def act(i, c):
        if c is None:
            results["op"] = d.ctl("room", "create", "Games", "by the operator")
        else:
            results[i] = c.request("/join gAmEs", timeout=20)[1].raw

    assert in_threads([None] + crowd, act) == []
    listed = [r for r in rooms_of(crowd[0]) if r[0].lower() == "games"]
    assert len(listed) == 1 and listed[0][1] == 30, listed
    op = results.pop("op")
    # The operator made it (and its topic) or found it made: never two rooms.
    assert op.returncode == 0 or "exists" in op.stderr + op.stdout, op
    text = (d.state_dir / "rooms").read_text()
    assert len(re.findall(r"^games ", text, re.M | re.I)) == 1, text


# ---- the server line limit ----

def test_an_operator_topic_never_makes_a_line_longer_than_promised(chatd_factory):
    d = chatd_factory(start=False, max_line=256)
    try:
        d.start()
    except AssertionError as e:
        assert "max_topic" in str(e), str(e)   # refusing the settings is a fine answer
        return
    alice = d.login("alice")
    ok(alice, "/join dev")
    proc = d.ctl("room", "topic", "dev", "x" * 390)
    if proc.returncode != 0:
        return                                  # so is refusing the topic
    topic = alice.wait_for("TOPIC")             # the client checks the line's length
    assert rooms_of(alice)[0] == ("dev", 1, topic[-1])


def test_a_users_line_never_exceeds_the_server_line_limit(chatd_factory):
    d = chatd_factory(max_line=64)
    crowd = [d.login(f"user{i:02d}" + "n" * 20) for i in range(12)]
    data, final = crowd[0].request("/who")
    assert final.tag == "OK"


@pytest.mark.parametrize("name", ["#lobby", "9lobby", "", "x" * 33, "caf\u00e9", "lob by"])
def test_an_invalid_default_room_stops_chatd_with_file_and_line(chatd_factory, name):
    d = chatd_factory(start=False, default_room=name)
    rc, out, err = d.run_expecting_exit()
    assert rc == 1 and f"{d.config_path}:" in err and "default_room" in err, (rc, err)


VANISHING = 100
EACH_IN = 10


def test_a_crowd_in_many_rooms_vanishing_at_once_parts_each_room_once(chatd_factory):
    d = chatd_factory(**CROWD_LIMITS, max_rooms_per_user=EACH_IN + 1)
    watcher = d.login("watcher")
    rooms = [f"w{k}" for k in range(EACH_IN)]
    for r in rooms:
        ok(watcher, f"/join {r}")
    crowd = login_many(d, [f"v{i}" for i in range(VANISHING)])
    for c in crowd:
        c.send_raw("".join(f"/join {r}\n" for r in rooms).encode())
    for c in crowd:
        for r in rooms:
            assert c.collect_reply(timeout=20)[1].raw == f"OK - joined {r}"
    watcher.sync(timeout=20)
    watcher.live.clear()
    # Half quit, half drop their connections, all at once.
    for i, c in enumerate(crowd):
        if i % 2:
            c.send_line("/quit bye")
        else:
            c.abort()
    want = {(r, c.name, "quit" if i % 2 else "lost")
            for i, c in enumerate(crowd) for r in rooms + ["lobby"]}
    got = []
    while len(got) < len(want):
        p = watcher.wait_for("PART", timeout=20)
        got.append((p.room, p[1], p[2]))
    watcher.sync()
    got += [(p.room, p[1], p[2]) for p in watcher.live_of("PART")]
    assert sorted(got) == sorted(want)
    for r in rooms + ["lobby"]:
        assert reply(watcher, f"/who {r}") == ([f"USERS {r} 1 1 1 watcher"], "OK - page 1")


# ---- settings changed by SIGHUP ----

def reload(d, **changes):
    d.settings.update(changes)
    d.write_config()
    before = d.log_text().count("reloaded")
    d.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: d.log_text().count("reloaded") > before, "the reload")


def test_room_limits_lowered_by_a_reload_hold_for_what_comes_next(chatd_factory):
    d = chatd_factory(max_rooms_per_user=5)
    alice, bob = d.login("alice"), d.login("bob")
    for r in ("a1", "a2", "a3", "a4"):
        ok(alice, f"/join {r}")
    reload(d, max_rooms_per_user=2, max_rooms=3, room_create="admin", max_topic=5)
    # Already in five rooms: kept, but no sixth, nor a new room for anyone.
    assert reply(alice, "/join a1") == ([], "OK - already in a1")
    assert reply(bob, "/join a1")[1] == "OK - joined a1"
    assert reply(bob, "/join a2")[1].startswith("ERR 405 ")
    ok(bob, "/leave lobby")
    assert reply(bob, "/join a2")[1] == "OK - joined a2"
    ok(bob, "/leave a2")
    assert reply(bob, "/join brandnew")[1] == "ERR 403 only an operator may create rooms here"
    assert reply(alice, "/topic a1 123456")[1] == "ERR 400 topic too long (max 5 bytes)"
    ok(alice, "/topic a1 12345")
    ok(alice, "/leave a4")
    assert reply(alice, "/join a4") == ([], "ERR 405 you are in too many rooms (max 2); "
                                            "/leave one")
    assert len(rooms_of(alice)) == 5


def test_room_expiry_turned_on_by_a_reload_applies_promptly(chatd_factory):
    d = chatd_factory(room_expiry=0)
    alice = d.login("alice")
    ok(alice, "/join brief")
    ok(alice, "/leave brief")
    reload(d, room_expiry=1)
    wait_until(lambda: "brief" not in [r[0] for r in rooms_of(alice)], "brief to expire",
               timeout=10)


def test_fixed_room_settings_are_not_changed_by_a_reload(chatd_factory):
    d = chatd_factory()
    alice = d.login("alice")
    reload(d, default_room="hall", rooms_file=str(d.state_dir / "rooms2"))
    assert re.search(r"reload: .*default_room.* changed; that takes a restart", d.log_text())
    bob = d.login("bob")                        # login() checks bob lands in lobby
    ok(bob, "/join x")
    assert rooms_of(alice) == [("lobby", 2, ""), ("x", 1, "")]
    assert not (d.state_dir / "rooms2").exists()
    assert re.search(r"^x user ", (d.state_dir / "rooms").read_text(), re.M)


def test_answers_keep_request_order_across_rooms_when_one_is_deleted(chatd):
    """alice alternates lines to dev and lobby while dev is deleted: her answers come in
    the order of her lines (ids growing), whatever room each line went to."""
    alice, bob = chatd.login("alice"), chatd.login("bob")
    for rnd in range(ROUNDS_TAKEN_OUT):
        room = f"dev{rnd}"
        for c in (alice, bob):
            ok(c, f"/join {room}")
        lines = [f"/say {room if k % 2 else 'lobby'} m{k}" for k in range(SENDS)]
        alice.send_raw("".join(line + "\n" for line in lines).encode())
        finals = [alice.collect_reply(timeout=5)[1].raw for _ in range(rnd * 7 % 40)]
        d_ok = chatd.ctl("room", "del", room)
        assert d_ok.returncode == 0, d_ok.stderr
        for _ in range(SENDS - len(finals)):
            finals.append(alice.collect_reply(timeout=5)[1].raw)
        ids = [int(f.split()[1]) for f in finals if re.fullmatch(r"OK \d+ sent", f)]
        assert ids == sorted(ids), f"round {rnd}: answers out of request order"
        for line, f in zip(lines, finals):
            if line.startswith("/say lobby"):
                assert re.fullmatch(r"OK \d+ sent", f), (rnd, line, f)
        alice.live.clear()
        bob.live.clear()
        alice.sync()
        bob.sync()
        alice.live.clear()
        bob.live.clear()


def test_a_kick_reason_never_makes_a_line_longer_than_promised(chatd_factory):
    d = chatd_factory(max_line=64)
    name, room = "a" * 32, "R" * 32
    alice, bob = d.login(name), d.login("bob")
    for c in (alice, bob):
        ok(c, f"/join {room}")
    proc = d.ctl("room", "kick", room, name, "x" * 300)
    if proc.returncode != 0:
        return                                  # refusing the reason is a fine answer
    part = bob.wait_for("PART")                 # the client checks the line's length
    assert part[1:3] == [name, "kicked"]
