"""
test_client_rooms.py - chat with rooms (protocol 2) against the real chatd:
each line labelled with its room, the current room in the prompt and where
a plain line goes, /join /switch /say /topic /leave, Tab completion and
Alt-N, --room in both modes, the rooms joined again after chatd restarts;
and a server of another protocol version refused with a clear error.
"""

import socket
import threading

import pytest

from chatclient import (EXIT_LOST, EXIT_OK, EXIT_USAGE, FakeServer, RunningPlain,
                        answer_until_quit, fake_login, run_plain, scaled)
from chatproto import wait_until

EXIT_ROOM = 7   # chat(1): plain mode, the room could not be joined


@pytest.fixture
def rooms_chatd(chatd):
    """chatd, once it is known to have /join (the rooms of protocol 2)."""
    probe = chatd.login("probe")
    _, final = probe.request("/join probe")
    probe.close()
    if final.tag == "ERR" and final[0] == "400":
        pytest.skip("this chatd has no /join")
    assert final.tag == "OK", final.raw
    return chatd


def addr(chatd):
    return ["127.0.0.1", str(chatd.port)]


def prompt_is(term, name, room):
    """Waits until the input row is the bare prompt of name in room."""
    want = f"{name} #{room}>"
    term.wait_for(lambda rows: term.input_row() == want, f"the prompt {want!r}")


def msg_from(client, text):
    """The MSG carrying text (its .room says where it went)."""
    return client.wait_for("MSG", lambda m: m[3] == text)


def test_lines_show_their_room_and_plain_lines_go_to_the_current_one(rooms_chatd, terminals):
    chatd = rooms_chatd
    bob = chatd.login("bob")
    bob.request("/join dev")
    term = terminals(["--name", "alice", *addr(chatd)], password="pw-alice")
    prompt_is(term, "alice", "lobby")
    term.line("/join dev")
    prompt_is(term, "alice", "dev")
    term.wait_text("-- #dev: 2 online: alice bob")
    bob.wait_for("JOIN", lambda j: j.room == "dev" and j[1] == "alice")

    # What others say arrives labelled with its room.
    bob.say("in dev")
    term.wait_text("#dev <bob> in dev")
    bob.request("/say lobby in the lobby")
    term.wait_text("#lobby <bob> in the lobby")

    # A plain line goes to the current room, and shows there.
    term.line("typed in dev")
    assert msg_from(bob, "typed in dev").room == "dev"
    term.wait_text("#dev <alice> typed in dev")
    term.line("/switch #lobby")
    prompt_is(term, "alice", "lobby")
    term.line("typed in lobby")
    assert msg_from(bob, "typed in lobby").room == "lobby"
    term.line("/say dev said to dev")
    assert msg_from(bob, "said to dev").room == "dev"
    term.wait_text("#dev <alice> said to dev")
    prompt_is(term, "alice", "lobby")

    term.line("/topic dev ship it")
    term.wait_text("-- #dev topic: ship it (set by alice,")
    term.line("/rooms")
    term.wait_text("-- #dev, 2 members: ship it")

    # Leaving the current room falls back to the default room.
    term.line("/switch dev")
    prompt_is(term, "alice", "dev")
    term.line("/leave")
    term.wait_text("-- left dev")
    prompt_is(term, "alice", "lobby")
    part = bob.wait_for("PART", lambda p: p.room == "dev" and p[1] == "alice")
    assert part[2] == "left"
    bob.request("/leave dev see you")
    # In no room at all: the prompt says so, and a plain line is refused.
    term.line("/leave lobby")
    term.wait_for(lambda rows: term.input_row() == "alice>", "the prompt without a room")
    term.line("anyone?")
    term.wait_text('!! not sent: "anyone?": you are in no room')
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


def test_tab_completes_commands_and_rooms_and_alt_n_switches(rooms_chatd, terminals):
    chatd = rooms_chatd
    owner = chatd.login("owner")
    owner.request("/join operations")
    term = terminals(["--name", "cleo", "--room", "devel", *addr(chatd)], password="pw-cleo")
    prompt_is(term, "cleo", "devel")
    term.type("/swi")
    term.keys("Tab")
    term.wait_for(lambda rows: term.input_row() == "cleo #devel> /switch", "/switch completed")
    term.type("lo")
    term.keys("Tab")
    term.wait_for(lambda rows: term.input_row() == "cleo #devel> /switch lobby",
                  "lobby completed")
    term.keys("Enter")
    prompt_is(term, "cleo", "lobby")
    # A room seen in /rooms completes after /join; '#' is kept.
    term.line("/rooms")
    term.wait_text("-- #operations, 1 member")
    term.type("/join #oper")
    term.keys("Tab")
    term.wait_for(lambda rows: term.input_row() == "cleo #lobby> /join #operations",
                  "#operations completed")
    term.keys("Enter")
    prompt_is(term, "cleo", "operations")
    # A user seen (owner, in the login's USERS line) after /msg.
    term.type("/msg ow")
    term.keys("Tab")
    term.wait_for(lambda rows: term.input_row() == "cleo #operations> /msg owner",
                  "owner completed")
    term.type("psst")
    term.keys("Enter")
    assert owner.wait_for("PRIV")[1:] == ["cleo", "owner", "psst"]
    # Alt-N: the N-th room joined (lobby, devel, operations).
    term.keys("M-2")
    prompt_is(term, "cleo", "devel")
    term.keys("M-1")
    prompt_is(term, "cleo", "lobby")
    term.keys("M-9")
    term.wait_text("-- no room 9: you are in 3")


def test_rooms_are_joined_again_after_chatd_restarts(rooms_chatd, terminals):
    chatd = rooms_chatd
    early = chatd.login("early")
    early.request("/join dev")
    early.say("said before hal came")
    early.close()
    term = terminals(["--name", "hal", "--room", "dev", *addr(chatd)], password="pw-hal")
    prompt_is(term, "hal", "dev")
    term.wait_text("#dev <early> said before hal came")
    term.line("/join ops")
    prompt_is(term, "hal", "ops")
    term.line("/switch dev")
    prompt_is(term, "hal", "dev")
    chatd.restart()
    term.wait_text("-- the server ended the session: shutdown")
    # Typed while away: sent once back in dev, the current room.
    term.line("typed during the restart")
    term.wait_text("-- logged in again as hal", timeout=30)
    term.wait_text("-- talking in dev")
    prompt_is(term, "hal", "dev")
    ivy = chatd.login("ivy")

    def in_dev():
        data, _ = ivy.request("/history dev 5")
        return [h[2:] for h in data if h[2] == "hal"]
    wait_until(lambda: in_dev() == [["hal", "typed during the restart"]], "hal's line in dev")
    data, _ = ivy.request("/history lobby 5")
    assert not [h for h in data if h[2] == "hal"]
    # hal is in ops again: what is said there arrives.
    ivy.request("/join ops")
    ivy.say("welcome back to ops")
    term.wait_text("#ops <ivy> welcome back to ops")
    # dev's replay when joined again showed nothing already shown.
    assert term.everything().count("said before hal came") == 1


def test_plain_room_gets_every_input_line(rooms_chatd):
    chatd = rooms_chatd
    bob = chatd.login("bob")
    bob.request("/join builds")
    res = run_plain(["--name", "ci", "--room", "#builds", *addr(chatd)],
                    "build 1 passed\nbuild 2 passed\n", password="pw-ci")
    assert res.rc == EXIT_OK, res
    assert "OK - joined builds" in res.lines, res
    # The server's lines are printed as given: the room first.
    assert any(line.startswith("USERS builds ") for line in res.lines), res
    assert msg_from(bob, "build 1 passed").room == "builds"
    assert msg_from(bob, "build 2 passed").room == "builds"
    # Never in the lobby.
    data, _ = bob.request("/history lobby 10")
    assert not [h for h in data if h[2] == "ci"]


def test_plain_room_refused_sends_nothing(chatd_factory):
    chatd = chatd_factory(room_create="admin")
    probe = chatd.login("probe")
    _, final = probe.request("/join newroom")
    if final.tag == "ERR" and final[0] == "400":
        pytest.skip("this chatd has no /join")
    res = run_plain(["--name", "dee", "--room", "nosuchroom", *addr(chatd)], "never sent\n",
                    password="pw-dee")
    assert res.rc == EXIT_ROOM, res
    assert res.tagged("ERR")[0].startswith("ERR 403"), res
    assert 'refused "/join nosuchroom"' in res.err, res
    data, _ = probe.request("/history lobby 10")
    assert "never sent" not in [h[3] for h in data]


def joining_server(join_reply):
    """A fake chatd that answers /join with join_reply, any other line with OK."""
    def play(server, conn, reader):
        fake_login(server, conn, reader)
        answer_until_quit(server, conn, reader, reply=lambda line: (
            join_reply if line.startswith(b"/join ") else b"OK 1 sent\n"))
    return FakeServer(play=play)


def test_plain_room_answered_for_another_room_sends_nothing():
    """An OK to --room's /join that names another room: the lines would go
    there (the server's current room), so none is sent."""
    server = joining_server(b"OK - joined lobby2\n")
    res = run_plain(["--name", "dee", "--room", "#ops", "127.0.0.1", str(server.port)],
                    "secret plans\n", password="pw")
    server.join()
    assert res.rc == EXIT_ROOM, res
    assert ('the server answered "/join ops" with "OK - joined lobby2", not the room asked '
            'for; nothing more is sent') in res.err, res
    assert b"secret plans\n" not in server.received, server.received


def test_plain_room_answered_in_another_case_is_the_room():
    server = joining_server(b"OK - already in OPS\n")
    res = run_plain(["--name", "dee", "--room", "#ops", "127.0.0.1", str(server.port)],
                    "plans\n", password="pw")
    server.join()
    assert res.rc == EXIT_OK, res
    assert b"plans\n" in server.received, server.received


def test_plain_room_name_is_checked_before_connecting():
    res = run_plain(["--name", "dee", "--room", "no room", "127.0.0.1", "1"], "x\n",
                    password="pw")
    assert res.rc == EXIT_USAGE and "invalid room name" in res.err, res


def test_plain_reconnect_joins_the_rooms_again(rooms_chatd):
    chatd = rooms_chatd
    chat = RunningPlain(["--name", "mia", "--reconnect", "--room", "dev", *addr(chatd)],
                        password="pw-mia")
    try:
        chat.wait_line(lambda line: line == "OK - joined dev")
        chat.send("/join ops")
        chat.wait_line(lambda line: line == "OK - joined ops")
        chat.send("/switch dev")
        chat.wait_line(lambda line: line == "OK - talking in dev")
        chatd.restart()
        wait_until(lambda: chat.lines.count("OK - joined ops") == 2, "ops joined again",
                   timeout=30)
        chat.wait_line(lambda line: line == "OK - talking in dev")
        ivy = chatd.login("ivy")
        ivy.request("/join dev")
        chat.send("back in dev")
        assert msg_from(ivy, "back in dev").room == "dev"
        rc, err = chat.finish()
    finally:
        chat.kill()
    assert rc == EXIT_OK, err
    assert chat.lines.count("OK - joined dev") == 2


def test_another_protocol_version_is_refused():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        listener.settimeout(scaled(20))
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"HELLO 1 chatd/0.1.0 an older server\n")
            conn.settimeout(scaled(20))
            conn.recv(100)  # chat closes without sending its name
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    res = run_plain(["--name", "lee", "127.0.0.1", str(port)], "hi\n", password="pw")
    thread.join(scaled(20))
    assert res.rc == EXIT_LOST, res
    assert "protocol version 1; this chat speaks version 2" in res.err, res


def ctl_rooms(chatd, *args):
    """chatctl room ARGS; skips the test where chatctl has no room commands yet."""
    proc = chatd.ctl("room", *args)
    if proc.returncode != 0 and "room" in (proc.stderr + proc.stdout).lower() and \
            "unknown" in (proc.stderr + proc.stdout).lower():
        pytest.skip("this chatctl has no room commands")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_put_out_of_rooms_by_an_operator(rooms_chatd, terminals):
    chatd = rooms_chatd
    term = terminals(["--name", "kim", "--room", "dev", *addr(chatd)], password="pw-kim")
    prompt_is(term, "kim", "dev")
    term.line("/join ops")
    prompt_is(term, "kim", "ops")
    # Kicked from the current room: the default room becomes current, as on the server.
    ctl_rooms(chatd, "kick", "ops", "kim", "spam")
    term.wait_text("#ops <-- kim left (kicked: spam)")
    prompt_is(term, "kim", "lobby")
    # Out of the default room, then the current room deleted: back in the default room.
    term.line("/switch dev")
    prompt_is(term, "kim", "dev")
    term.line("/leave lobby")
    term.wait_text("-- left lobby")
    ctl_rooms(chatd, "del", "dev")
    term.wait_text("#dev <-- kim left (deleted: the room was deleted)")
    prompt_is(term, "kim", "lobby")
    term.line("still heard")
    watcher = chatd.login("watcher")
    # The line is typed, not yet stored: the history has it once chatd took it.
    wait_until(lambda: ["kim", "still heard"] in
               [h[2:] for h in watcher.request("/history lobby 5")[0]],
               "kim's line in lobby's history")


def test_plain_room_deleted_stops_the_input(rooms_chatd):
    chatd = rooms_chatd
    chat = RunningPlain(["--name", "sid", "--room", "dev", *addr(chatd)], password="pw-sid")
    try:
        chat.wait_line(lambda line: line == "OK - joined dev")
        ctl_rooms(chatd, "del", "dev")
        rc, err = chat.finish(close_input=False)
    finally:
        chat.kill()
    assert rc == EXIT_ROOM, err
    assert "put us out of the --room room" in err
