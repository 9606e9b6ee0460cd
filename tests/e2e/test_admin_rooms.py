"""
test_admin_rooms.py - chatctl's room commands end to end: a real chatd, the
real chatctl and native clients on loopback sockets, asserting what each
command did to the rooms and their members, not just its OK.
"""

import signal
import socket
import time

from chatproto import DEFAULT_ROOM, scaled, wait_until
from test_admin import run_chatctl


def room_list(chatd):
    """{room: (members, kind, topic)} from chatctl room list."""
    rooms = {}
    for line in chatd.ctl_ok("room", "list").splitlines():
        name, members, kind, *topic = line.split(" ", 3)
        rooms[name] = (int(members), kind, topic[0] if topic else "")
    return rooms


def refused(chatd, *args):
    """chatctl ARGS must be refused by chatd (exit 1); returns its message."""
    proc = chatd.ctl(*args)
    assert proc.returncode == 1, (args, proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    return proc.stderr


def admin_status(chatd, request):
    """The status line chatd answers to request on a raw admin connection."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(scaled(10))
        s.connect(str(chatd.admin_socket))
        s.sendall(request.encode() + b"\n")
        buf = b""
        while True:
            chunk = s.recv(65536)
            assert chunk, f"closed after {buf!r}"
            buf += chunk
            lines = buf.decode().split("\n")
            for line in lines[:-1]:
                if not line.startswith("- "):
                    return line


def join(client, room):
    data, final = client.request(f"/join {room}")
    assert final.tag == "OK", final.raw
    return data


def in_room(client, room, name):
    """Does /who ROOM (asked by client, a member) list name?"""
    data, final = client.request(f"/who {room}")
    assert final.tag == "OK", final.raw
    return name in data[0][-1].split()


def test_list_and_status_show_the_default_room(chatd):
    chatd.login("alice")
    assert room_list(chatd) == {DEFAULT_ROOM: (1, "default", "")}
    status = dict(line.split(": ", 1) for line in chatd.ctl_ok("status").splitlines())
    assert status["rooms"] == "1 (max_rooms 4096)"


def test_room_commands_are_in_help(chatd):
    usages = [line.split("  ")[0].strip() for line in chatd.ctl_ok("help").splitlines()]
    for usage in ("room list", "room create NAME [TOPIC]", "room del NAME",
                  "room topic NAME TEXT", "room kick ROOM NAME [REASON]",
                  "room notice ROOM TEXT", "kick NAME [REASON]", "notice TEXT"):
        assert usage in usages, (usage, usages)


def test_room_names_are_checked_before_sending(tmp_path):
    missing = str(tmp_path / "none.sock")
    for args, message in ((["room", "create", "9lives"], "not a valid room name"),
                          (["room", "del", "#"], "not a valid room name"),
                          (["room", "topic", "a" * 33, "x"], "not a valid room name"),
                          (["room", "kick", "games"], "NAME is missing"),
                          (["room", "kick", "games", "bad/name"], "not a valid user name"),
                          (["room", "notice", "games"], "TEXT is missing"),
                          (["room", "frob"], "'room' takes: list, create, del, topic, kick")):
        proc = run_chatctl("-s", missing, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)


def test_create_with_a_topic_and_join_it(chatd):
    assert chatd.ctl_ok("room", "create", "#Games", "cards", "and", "dice") == \
        "room Games created\n"
    assert room_list(chatd)["Games"] == (0, "op", "cards and dice")
    alice = chatd.login("alice")
    topics = [line for line in join(alice, "games") if line.tag == "TOPIC"]
    assert [(t.room, t[-1]) for t in topics] == [("Games", "cards and dice")]
    assert room_list(chatd)["Games"] == (1, "op", "cards and dice")
    assert "room games exists" in refused(chatd, "room", "create", "games", "other")
    assert room_list(chatd)["Games"][2] == "cards and dice"   # left alone
    assert admin_status(chatd, "room create GAMES") == "ERR 409 room GAMES exists"
    join(alice, "chess")      # made by a user: may expire
    assert room_list(chatd)["chess"] == (1, "user", "")


def test_create_stops_at_max_rooms_and_max_topic(chatd_factory):
    chatd = chatd_factory(max_rooms=2, max_topic=10)
    chatd.ctl_ok("room", "create", "one")
    assert "max_rooms (2)" in refused(chatd, "room", "create", "two")
    assert admin_status(chatd, "room create two").startswith("ERR 405 ")
    chatd.ctl_ok("room", "del", "one")
    assert "max_topic (10)" in refused(chatd, "room", "create", "two", "x" * 11)
    assert admin_status(chatd, "room create two " + "x" * 11).startswith("ERR 413 ")
    chatd.ctl_ok("room", "create", "two", "x" * 10)
    assert set(room_list(chatd)) == {DEFAULT_ROOM, "two"}


def test_a_topic_past_max_line_is_refused_with_the_limit_that_holds(chatd_factory):
    """chatd.conf(5): a topic is never more than max_line.  With max_line below
    max_topic, room topic and room create refused a longer one saying "at most
    max_topic (390) bytes", a limit it had not passed."""
    chatd = chatd_factory(max_line=64)
    for args in (("room", "topic", DEFAULT_ROOM), ("room", "create", "two")):
        err = refused(chatd, *args, "x" * 65)
        assert "at most 64 bytes" in err, err
        assert admin_status(chatd, " ".join(args) + " " + "x" * 65).startswith("ERR 413 ")
    chatd.ctl_ok("room", "topic", DEFAULT_ROOM, "x" * 64)


def test_delete_moves_the_members_to_the_default_room(chatd):
    chatd.ctl_ok("room", "create", "games")
    alice, bob, carol = (chatd.login(n) for n in ("alice", "bob", "carol"))
    join(alice, "games")
    join(bob, "games")
    data, final = alice.request(f"/leave {DEFAULT_ROOM}")
    assert final.tag == "OK", final.raw
    assert not in_room(carol, DEFAULT_ROOM, "alice")
    alice.say("in games")  # plain lines go to games: chatd keeps that answer
    assert chatd.ctl_ok("room", "del", "games") == "room games deleted\n"
    for member in (alice, bob):
        part = member.wait_for("PART", lambda l: l.room == "games")
        assert part[1:3] == [member.name, "deleted"], part.raw
    # alice, in games only, lands in the default room; bob was there already.
    carol.wait_for("JOIN", lambda l: l.room == DEFAULT_ROOM and l[1] == "alice")
    assert in_room(carol, DEFAULT_ROOM, "alice") and in_room(carol, DEFAULT_ROOM, "bob")
    alice.say("back in the lobby")
    msg = carol.wait_for("MSG", lambda l: l[-1] == "back in the lobby")
    assert msg.room == DEFAULT_ROOM
    carol.sync()
    assert not [l for l in carol.live if l.tag == "PART" and l.room == "games"], carol.live
    assert "games" not in room_list(chatd)
    assert "no room games" in refused(chatd, "room", "del", "games")
    assert admin_status(chatd, "room del games") == "ERR 404 no room games"


def test_the_default_room_cannot_be_deleted(chatd):
    alice = chatd.login("alice")
    assert "cannot be deleted" in refused(chatd, "room", "del", DEFAULT_ROOM.upper())
    assert admin_status(chatd, f"room del #{DEFAULT_ROOM}").startswith("ERR 409 ")
    assert room_list(chatd) == {DEFAULT_ROOM: (1, "default", "")}
    alice.sync()
    assert not alice.live_of("PART")


def test_topic_reaches_the_members(chatd):
    chatd.ctl_ok("room", "create", "games")
    alice, carol = chatd.login("alice"), chatd.login("carol")
    join(alice, "games")
    assert chatd.ctl_ok("room", "topic", "games", "new", "rules") == "topic of games set\n"
    topic = alice.wait_for("TOPIC", lambda l: l.room == "games")
    assert topic[1:] == ["*", "new rules"], topic.raw     # set by an operator
    data, final = carol.request("/topic games")
    assert final.tag == "OK" and [(t.room, t[-1]) for t in data] == [("games", "new rules")]
    carol.sync()
    assert not carol.live_of("TOPIC")
    assert room_list(chatd)["games"][2] == "new rules"
    assert "no room chess" in refused(chatd, "room", "topic", "chess", "x")


def test_kick_from_one_room_only(chatd):
    chatd.ctl_ok("room", "create", "games")
    alice, bob, carol = (chatd.login(n) for n in ("alice", "bob", "carol"))
    join(alice, "games")
    join(bob, "games")
    bob.say("in games")  # plain lines go to games: chatd keeps that answer
    assert chatd.ctl_ok("room", "kick", "games", "bob", "cheating", "at", "cards") == \
        "bob kicked from games\n"
    for member in (alice, bob):
        part = member.wait_for("PART", lambda l: l.room == "games")
        assert part[1:] == ["bob", "kicked", "cheating at cards"], part.raw
    assert room_list(chatd)["games"][0] == 1
    # Still online and in the default room: carol saw no PART, bob talks there.
    bob.say("still here")
    assert carol.wait_for("MSG", lambda l: l[-1] == "still here").room == DEFAULT_ROOM
    assert not carol.live_of("PART")
    assert "bob " in chatd.ctl_ok("users")
    assert "bob is not in games" in refused(chatd, "room", "kick", "games", "bob")
    assert "no room chess" in refused(chatd, "room", "kick", "chess", "bob")
    assert admin_status(chatd, "room kick games carol").startswith("ERR 404 ")
    join(bob, "games")   # a kick is no ban
    alice.wait_for("JOIN", lambda l: l.room == "games" and l[1] == "bob")


def test_kick_without_a_reason(chatd):
    chatd.ctl_ok("room", "create", "games")
    bob = chatd.login("bob")
    join(bob, "games")
    chatd.ctl_ok("room", "kick", "#games", "BOB")
    part = bob.wait_for("PART", lambda l: l.room == "games")
    assert part[1:3] == ["bob", "kicked"], part.raw


def test_room_notice_reaches_only_its_members(chatd):
    chatd.ctl_ok("room", "create", "games")
    alice, bob, carol = (chatd.login(n) for n in ("alice", "bob", "carol"))
    join(alice, "games")
    join(bob, "games")
    assert chatd.ctl_ok("room", "notice", "games", "finals", "at", "8") == \
        "notice sent to 2 members of games\n"
    for member in (alice, bob):
        notice = member.wait_for("NOTICE")
        assert notice.target == "games" and notice[-1] == "finals at 8", notice.raw
    carol.sync()
    assert not carol.live_of("NOTICE")
    assert "no room chess" in refused(chatd, "room", "notice", "chess", "hello")
    assert admin_status(chatd, "room notice games " + "x" * 5000).startswith("ERR 413 ")


def test_server_notice_and_kick_stay_server_wide(chatd):
    chatd.ctl_ok("room", "create", "games")
    alice, bob, carol = (chatd.login(n) for n in ("alice", "bob", "carol"))
    join(alice, "games")
    join(bob, "games")
    assert chatd.ctl_ok("notice", "maintenance", "at", "noon") == "notice sent to 3 online\n"
    for c in (alice, bob, carol):
        notice = c.wait_for("NOTICE")
        assert notice.target == "*" and notice[-1] == "maintenance at noon", notice.raw
    chatd.ctl_ok("kick", "bob", "flooding")
    for room, member in (("games", alice), (DEFAULT_ROOM, alice), (DEFAULT_ROOM, carol)):
        part = member.wait_for("PART", lambda l, r=room: l.room == r)
        assert part[1:] == ["bob", "kicked", "flooding"], part.raw
    assert "bob" not in chatd.ctl_ok("users")
    assert room_list(chatd)["games"][0] == 1


def test_room_commands_answer_when_the_room_hangs(chatd_factory):
    """The room lock held for good (test fault room-hang): every room command
    answers at once, ERR 503 "the room is busy", and status says rooms unknown."""
    chatd = chatd_factory(start=False)
    chatd.env["CHATD_TEST_FAULT"] = "room-hang"
    chatd.start()
    alice = chatd.login("alice")
    alice.send_line("this message hangs the room")
    wait_until(lambda: chatd.ctl("-t", "5", "users").returncode == 1,
               "the room lock held", timeout=5)
    for args in (["room", "list"], ["room", "create", "games"], ["room", "del", "games"],
                 ["room", "topic", "games", "x"], ["room", "kick", "games", "alice"],
                 ["room", "notice", "games", "x"]):
        start = time.monotonic()
        proc = chatd.ctl("-t", "5", *args)
        assert proc.returncode == 1 and "the room is busy" in proc.stderr, (args, proc)
        assert time.monotonic() - start < scaled(3), args
    status = chatd.ctl_ok("-t", "5", "status")
    assert "rooms: unknown: the room lock was not free within" in status
    chatd.send_signal(signal.SIGTERM)
    assert chatd.wait(timeout=8) == 1


def test_a_put_off_rooms_save_is_retried_by_the_tick_and_at_shutdown(chatd_factory):
    """The control thread's first save of a change finds the room lock busy
    (test fault room-save-busy, in every run): an operator's topic is then
    not in the rooms file, and the next rooms tick writes it; in a run
    whose tick is a minute away, chatd's stop writes it. Both are there
    after a restart."""
    chatd = chatd_factory(start=False, room_expiry=4)   # a rooms tick every second
    chatd.env["CHATD_TEST_FAULT"] = "room-save-busy"
    chatd.start()
    rooms_file = chatd.path("rooms_file", "rooms")
    alice = chatd.login("alice")
    join(alice, "games")        # saved by alice's thread: the fault is the control thread's
    wait_until(lambda: "games" in rooms_file.read_text(), "games in the rooms file")
    chatd.ctl_ok("room", "topic", "games", "put off")
    assert "rooms: the room lock was busy" in chatd.log_text()
    wait_until(lambda: "put off" in rooms_file.read_text(), "the tick to write the topic")
    alice.close()
    chatd.restart(room_expiry=0)     # no expiry: the next tick is a minute away
    assert room_list(chatd)["games"] == (0, "user", "put off")
    chatd.ctl_ok("room", "topic", "games", "at shutdown")
    assert chatd.log_text().count("rooms: the room lock was busy") == 2
    assert "at shutdown" not in rooms_file.read_text()
    chatd.restart()
    assert room_list(chatd)["games"] == (0, "user", "at shutdown")


def test_rooms_made_and_deleted_by_an_operator_outlive_a_restart(chatd):
    chatd.ctl_ok("room", "create", "games", "cards")
    chatd.ctl_ok("room", "create", "chess")
    chatd.ctl_ok("room", "topic", "chess", "no draws")
    chatd.ctl_ok("room", "create", "gone")
    chatd.ctl_ok("room", "del", "gone")
    chatd.restart()
    assert room_list(chatd) == {DEFAULT_ROOM: (0, "default", ""), "chess": (0, "op", "no draws"),
                                "games": (0, "op", "cards")}


def ctl_on_terminal(chatd, lang, *args):
    """chatctl ARGS with its output on a pseudo-terminal in the locale lang: the bytes written."""
    import os
    import pty
    import subprocess

    from conftest import CHATCTL_BIN
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LC_")}
    env["LANG"] = lang
    proc = subprocess.run([CHATCTL_BIN, "-s", str(chatd.admin_socket), *args], stdout=slave,
                          stderr=subprocess.PIPE, env=env, timeout=scaled(20))
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_topic_sets_no_c1_control_on_a_terminal_not_in_utf8(chatd):
    """In an 8-bit terminal the bytes of a UTF-8 character may be C1 controls:
    U+00DB is C3 9B and 9B is CSI there, U+00DD C3 9D (OSC), U+00DC C3 9C (ST)."""
    topic = "\u00db2J \u00dd52;c;ZXZpbA==\u00dc caf\u00e9"
    alice = chatd.login("alice")
    assert alice.request(f"/topic {DEFAULT_ROOM} {topic}")[1].raw == "OK - topic set"
    raw = ctl_on_terminal(chatd, "C", "room", "list")
    assert b"\\xc3\\x9b2J \\xc3\\x9d52;c;ZXZpbA==\\xc3\\x9c caf\\xc3\\xa9" in raw, raw
    assert not [b for b in raw if b >= 0x80], raw
    # A UTF-8 terminal, or a pipe, gets the topic as it is.
    assert topic.encode() in ctl_on_terminal(chatd, "C.UTF-8", "room", "list")
    assert topic in chatd.ctl_ok("room", "list")
