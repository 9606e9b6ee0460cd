"""
test_client_tty.py - chat's terminal mode, on a real pseudo-terminal (a
tmux screen) against the real chatd: the prompts, the hidden password, a
message arriving while a line is half typed, reconnecting after chatd
restarts, and escape sequences kept off the terminal.
"""

import termios
import time

import pytest

from chatclient import (EXIT_LOGIN, EXIT_LOST, EXIT_OK, EXIT_USAGE, FakeServer,
                        answer_by_check, fake_login)
from chatproto import deadline_in


def logged_in(term, name, room="lobby"):
    """Waits for the input line's prompt after login: the name and the current room."""
    prompt = f"{name} #{room}>"
    term.wait_for(lambda rows: any(row.startswith(prompt + " ") or row == prompt
                                   for row in rows), f"the prompt {prompt!r}")


def test_asks_host_port_name_and_hides_the_password(chatd, terminals):
    term = terminals([])
    term.wait_text("Host [localhost]:")
    term.line("127.0.0.1")
    term.wait_text("Port [7777]:")
    term.line(str(chatd.port))
    term.wait_text("Name [")
    term.line("alice")
    term.wait_text("alice is a new name; choose a password:")
    term.line("Sw0rdfish-typed")
    term.wait_text("Repeat the password:")
    term.line("Sw0rdfish-typed")
    term.wait_text("-- logged in as alice (registered)")
    logged_in(term, "alice")
    # Neither on the screen nor in any byte chat wrote to the terminal.
    assert "Sw0rdfish" not in term.everything()
    assert b"Sw0rdfish" not in term.raw()
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    # The password typed is the one registered.
    chatd.login("alice", "Sw0rdfish-typed")


def test_a_session_taken_over_elsewhere_ends_without_reconnecting(chatd, terminals):
    term = terminals(["--name", "kay", "127.0.0.1", str(chatd.port)], password="pw-kay")
    logged_in(term, "kay")
    chatd.login("kay", "pw-kay")
    assert term.wait_exit() == EXIT_LOST
    assert "logged in elsewhere" in term.everything()


def test_a_quit_line_the_server_refuses_still_quits(chatd, terminals):
    """chatd answers a /quit line it refuses itself (too long) with ERR, not
    BYE: the answer to it, no broken protocol; chat ends as asked."""
    term = terminals(["--name", "kay", "127.0.0.1", str(chatd.port)], password="pw-kay")
    logged_in(term, "kay")
    term.line("/quit " + "x" * 4200)
    assert term.wait_exit() == EXIT_OK
    assert "(error 413)" in term.everything()
    assert "broke the protocol" not in term.everything()


def test_pasted_lines_go_as_one_request_each(chatd, terminals):
    """A paste holds line ends: chatd takes each for the end of a request and
    answers each; sent as one line, its answers would outnumber chat's
    requests (a broken protocol, once chat checks)."""
    bob = chatd.login("bob")
    term = terminals(["--name", "kay", "127.0.0.1", str(chatd.port)], password="pw-kay")
    logged_in(term, "kay")
    term.paste("one\r\ntwo\n\nthree")
    term.keys("Enter")
    assert [bob.wait_for("MSG")[3] for _ in range(3)] == ["one", "two", "three"]
    # A new password with a line end: its rest must not go out as a message.
    term.paste("/passwd new-pw\nrest-of-it")
    term.keys("Enter")
    term.wait_text("/passwd is typed alone, not pasted with other lines: nothing was sent")
    # Nor one after other lines: nothing of the paste goes, the password stays.
    term.paste("before it\n/passwd other-pw")
    term.keys("Enter")
    term.wait_for(lambda rows: sum("nothing was sent" in r for r in rows) == 2,
                  "the second paste refused")
    term.line("/ping done")
    term.wait_text("done")
    bob.sync()
    assert not bob.live_of("MSG"), bob.live
    # Neither paste comes back with the Up key.
    term.keys("Up")
    term.wait_text("kay #lobby> /ping done")
    term.keys("Up")
    term.wait_for(lambda rows: any(r.startswith("kay #lobby> one") for r in rows),
                  "the paste of messages before it")
    assert not [r for r in term.screen() if r.startswith("kay #lobby>") and "passwd" in r]
    term.keys("Down", "Down")
    term.wait_for(lambda rows: any(r.rstrip() == "kay #lobby>" for r in rows), "an empty line")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    assert "broke the protocol" not in term.everything()
    chatd.login("kay", "pw-kay").close()


def test_a_paste_goes_together_behind_one_check(terminals):
    """chatd answers a command (chat's check, a /ping) only once the messages
    before it are stored: a check behind each pasted line would cost each
    line a disk commit of its own, one after the other."""
    def play(server, conn, reader):
        fake_login(server, conn, reader)
        answer_by_check(server, conn, reader)

    server = FakeServer(play=play)
    term = terminals(["--name", "kay", "127.0.0.1", str(server.port)], password="pw")
    logged_in(term, "kay")
    lines = [f"pasted {i}" for i in range(10)]
    term.paste("\n".join(lines))
    term.keys("Enter")
    want = [f"{line}\n".encode() for line in lines]
    deadline = deadline_in(10)
    while not any(line in batch for batch in server.batches for line in want[-1:]):
        assert time.monotonic() < deadline, server.batches
        time.sleep(0.05)
    assert want in server.batches, server.batches
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    assert "broke the protocol" not in term.everything()


def test_one_reply_too_many_for_a_paste_breaks_the_protocol(terminals):
    """The lines of a paste share one check: one reply more than lines before
    its PONG is one nobody asked for, and none of them is taken as answered."""
    def play(server, conn, reader):
        fake_login(server, conn, reader)
        answer_by_check(server, conn, reader, reply=b"OK 5 sent\n",
                        extra=lambda requests: b"ERR 507 message not stored (disk)\n"
                        if b"three\n" in requests else b"")

    server = FakeServer(play=play)
    term = terminals(["--name", "kay", "127.0.0.1", str(server.port)], password="pw")
    logged_in(term, "kay")
    term.paste("one\ntwo\nthree")
    term.keys("Enter")
    assert term.wait_exit() == EXIT_LOST
    assert "ERR 507 message not stored (disk)" in term.everything()
    assert "answers no request" in term.everything()


def test_a_name_offered_only_as_a_guest_comes_in_with_enter(chatd_factory, terminals):
    """Registration closed, guests on: chatd answers an unknown name with
    PASS guest, and an empty line comes in as a guest.  chat asked for the
    name's password instead, and refused an empty one: no way in."""
    d = chatd_factory(guests=True, registration=False)
    d.add_user("bob")
    bob = d.login("bob")
    term = terminals(["--name", "gus", "127.0.0.1", str(d.port)])
    term.wait_text("gus is no user here and the server registers no new names; press Enter "
                   "to come in as a guest:")
    term.line("")
    term.wait_text("-- logged in as gus (guest)")
    logged_in(term, "gus")
    term.line("hello as a guest")
    assert bob.wait_for("MSG", lambda m: m[2] == "~gus")[3] == "hello as a guest"
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    assert "Password for" not in term.everything()


def test_guest_option_comes_in_without_a_password_prompt(chatd_factory, terminals):
    """--guest on a terminal, registration open: no password prompt (chat asked
    to register the name before), in as a guest; no resume token asked."""
    d = chatd_factory(guests=True)
    bob = d.login("bob")
    term = terminals(["--guest", "--name", "gwen", "127.0.0.1", str(d.port)])
    term.wait_text("-- logged in as gwen (guest)")
    logged_in(term, "gwen")
    term.line("hello from a guest")
    assert bob.wait_for("MSG", lambda m: m[2] == "~gwen")[3] == "hello from a guest"
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    assert "password" not in term.everything().lower()
    assert "token" not in term.everything().lower()


def test_tab_completes_token_as_the_other_commands(chatd, terminals):
    """/token is one of chatd's commands (/help lists it): Tab completes it at the
    start of a line as it does the others."""
    term = terminals(["--name", "kay", "127.0.0.1", str(chatd.port)], password="pw-kay")
    logged_in(term, "kay")
    term.type("/tok")
    term.keys("Tab")
    term.wait_for(lambda rows: term.input_row() == "kay #lobby> /token", "/token completed")
    term.keys("C-c")
    term.wait_for(lambda rows: term.input_row() == "kay #lobby>", "the line cleared")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


def test_wrong_password_is_asked_again(chatd, terminals):
    chatd.login("bob", "the-right-one").close()
    term = terminals(["--name", "bob", "127.0.0.1", str(chatd.port)])
    term.wait_text("Password for bob:")
    term.line("not-it")
    term.wait_text("Wrong password.")
    term.line("the-right-one")
    term.wait_text("-- logged in as bob (welcome back)")
    assert b"not-it" not in term.raw() and b"the-right-one" not in term.raw()
    term.wait_text("bob #lobby>")      # readline reads keys again (a C-d before its prompt was lost once)
    term.keys("C-d")
    assert term.wait_exit() == EXIT_OK


def test_ctrl_c_at_the_password_prompt_cancels_at_once(chatd, terminals):
    """Ctrl-C at the hidden password prompt ends chat then (status 1: input
    cancelled at a prompt), not at the next Enter."""
    chatd.login("bob", "the-right-one").close()
    term = terminals(["--name", "bob", "127.0.0.1", str(chatd.port)])
    term.wait_text("Password for bob:")
    term.type("half")
    term.keys("C-c")
    assert term.wait_exit() == EXIT_USAGE


def test_backspace_and_ctrl_u_edit_the_hidden_password(chatd, terminals):
    chatd.login("bob", "the-right-one").close()
    term = terminals(["--name", "bob", "127.0.0.1", str(chatd.port)])
    term.wait_text("Password for bob:")
    term.type("wrong-start")
    term.keys("C-u")
    term.type("the-right-onX\u00e9")
    term.keys("BSpace", "BSpace")
    term.type("e")
    term.keys("Enter")
    term.wait_text("-- logged in as bob (welcome back)")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


def test_login_refused_with_a_clear_error(chatd_factory, terminals):
    chatd = chatd_factory(registration=False)
    term = terminals(["--name", "stranger", "127.0.0.1", str(chatd.port)], password="pw")
    assert term.wait_exit() == EXIT_LOGIN
    assert "'stranger' is not registered" in term.everything()


def test_incoming_message_does_not_garble_a_half_typed_line(chatd, terminals):
    bob = chatd.login("bob")
    term = terminals(["--name", "carol", "127.0.0.1", str(chatd.port)], password="pw-carol")
    logged_in(term, "carol")
    bob.wait_for("JOIN")
    term.type("half of a lin")
    term.wait_for(lambda rows: term.input_row() == "carol #lobby> half of a lin", "the typed text")
    bob.say("something arrives meanwhile")
    rows = term.wait_for(lambda rows: any(r.endswith("#lobby <bob> something arrives meanwhile")
                                          for r in rows), "bob's message")
    # The message sits on its own row above; the input row is as it was.
    assert term.input_row() == "carol #lobby> half of a lin", rows
    text_rows = [r for r in rows if r]
    assert text_rows[-2].endswith("#lobby <bob> something arrives meanwhile"), rows
    # Typing goes on where it stopped, and the whole line is what is sent.
    term.type("e")
    term.keys("Enter")
    assert bob.wait_for("MSG")[2:] == ["carol", "half of a line"]
    term.wait_for(lambda rows: any(r.endswith("#lobby <carol> half of a line") for r in rows),
                  "carol's own message")
    assert term.input_row() == "carol #lobby>"


def test_ctrl_z_gives_the_terminal_back_and_fg_takes_it_again(chatd, terminals):
    """Ctrl-Z at a shell with job control: the shell gets a terminal with
    echo and lines on, and `fg` brings chat back in readline's modes, the
    half-typed line redrawn and still there to finish."""
    bob = chatd.login("bob")
    term = terminals(["--name", "zed", "127.0.0.1", str(chatd.port)], password="pw-zed",
                     shell=True)
    logged_in(term, "zed")
    bob.wait_for("JOIN")
    term.type("half typed")
    term.wait_for(lambda rows: term.input_row() == "zed #lobby> half typed", "the typed text")
    term.keys("C-z")
    term.wait_text("Stopped")
    term.wait_for(lambda rows: term.input_row() == "$", "the shell's prompt")
    term.line("fg")
    term.wait_for(lambda rows: term.input_row() == "zed #lobby> half typed",
                  "the typed text redrawn after fg")
    lflag = term.tty_lflag()
    assert not lflag & (termios.ICANON | termios.ECHO), "chat's terminal modes after fg"
    term.type(" and done")
    term.keys("Enter")
    assert bob.wait_for("MSG")[2:] == ["zed", "half typed and done"]
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK


def test_quit_says_we_left_not_that_the_server_ended_the_session(chatd, terminals):
    term = terminals(["--name", "quin", "127.0.0.1", str(chatd.port)], password="pw-quin")
    logged_in(term, "quin")
    term.line("/quit see you")
    assert term.wait_exit() == EXIT_OK
    screen = term.everything()
    assert "-- left chatd (see you)" in screen, screen
    assert "the server ended the session" not in screen, screen


def test_private_messages_joins_and_departures_are_shown(chatd, terminals):
    term = terminals(["--name", "dan", "127.0.0.1", str(chatd.port)], password="pw-dan")
    logged_in(term, "dan")
    eve = chatd.login("eve")
    term.wait_text("#lobby --> eve joined")
    eve.request("/msg dan psst")
    term.wait_text("*eve* psst")
    term.line("/msg eve back at you")
    assert eve.wait_for("PRIV")[1:] == ["dan", "eve", "back at you"]
    term.wait_text("-> *eve* back at you")
    eve.request("/quit lunch")
    term.wait_text("#lobby <-- eve left (quit: lunch)")
    term.line("/msg eve too late")
    term.wait_text("eve is not online (error 404)")


def test_history_replay_is_shown_as_history(chatd, terminals):
    old = chatd.login("fay")
    old.say("said before you came")
    term = terminals(["--name", "gus", "127.0.0.1", str(chatd.port)], password="pw-gus")
    logged_in(term, "gus")
    everything = term.everything()
    lines = everything.splitlines()
    start = lines.index("-- history of #lobby")
    assert lines[start + 1].endswith(" #lobby <fay> said before you came")
    assert lines[start + 2] == "-- end of history"


def test_reconnects_after_chatd_restarts(chatd, terminals):
    term = terminals(["--name", "hal", "127.0.0.1", str(chatd.port)], password="pw-hal")
    logged_in(term, "hal")
    chatd.restart()     # the same port again
    term.wait_text("-- the server ended the session: shutdown")
    # Typed while away: kept, and sent once logged in again.
    term.line("typed during the restart")
    term.type("half typed")
    term.wait_text("-- logged in again as hal", timeout=30)
    term.wait_for(lambda rows: term.input_row() == "hal #lobby> half typed",
                  "the kept input line")
    ivy = chatd.login("ivy")
    data, _ = ivy.request("/history 5")
    assert [h[2:] for h in data if h[2] == "hal"] == [["hal", "typed during the restart"]]
    # The new connection carries live traffic both ways.
    ivy.say("welcome back hal")
    term.wait_text("#lobby <ivy> welcome back hal")
    term.keys("Enter")
    assert ivy.wait_for("MSG")[2:] == ["hal", "half typed"]


def test_escape_sequences_from_a_server_never_reach_the_terminal(terminals):
    evil = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil".encode() + b"\xff"
    server = FakeServer(b"MSG lobby 1 2026-11-21T09:30:00.000Z eve " + evil + b" done\n")
    term = terminals(["--name", "jo", "--color", "never", "127.0.0.1", str(server.port)],
                     password="pw")
    term.wait_text("evil")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    raw = term.raw()
    assert b"pwned" in raw and b"done" in raw
    for forbidden in (b"\x1b]", b"\x07", b"\x1b[2J", b"\xc2\x9b", "\u202e".encode(), b"\xff"):
        assert forbidden not in raw, forbidden


def test_a_terminal_not_in_utf8_gets_no_c1_control_from_a_character(terminals):
    """In a terminal whose character set is not UTF-8 the bytes of a UTF-8
    character may be C1 controls: U+00DB is C3 9B and 9B is CSI there, U+00DD
    C3 9D (OSC), U+00DC C3 9C (ST): an OSC 52 would set the clipboard."""
    evil = "\u00db2J \u00dd52;c;ZXZpbA==\u00dc caf\u00e9".encode()
    server = FakeServer(b"MSG lobby 1 2026-11-21T09:30:00.000Z eve " + evil + b" done\n")
    term = terminals(["--name", "jo", "--color", "never", "127.0.0.1", str(server.port)],
                     password="pw", lang="C")
    term.wait_text("done")
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    server.join()
    raw = term.raw()
    assert b"?2J ?52;c;ZXZpbA==? caf? done" in raw, raw
    assert not [b for b in raw if 0x80 <= b <= 0x9f], raw


def test_logs_in_again_with_a_password_changed_meanwhile(chatd, terminals):
    term = terminals(["--name", "max", "127.0.0.1", str(chatd.port)], password="old-pw")
    logged_in(term, "max")
    term.line("first words")
    term.line("/passwd new-pw")
    term.wait_text("-- password changed")
    # A password never comes back with the Up key: the line before it does.
    term.keys("Up")
    term.wait_for(lambda rows: term.input_row() == "max #lobby> first words",
                  "the recalled line")
    term.keys("C-c")
    term.wait_for(lambda rows: term.input_row() == "max #lobby>", "the line cleared by Ctrl-C")
    chatd.restart()
    term.wait_text("-- logged in again as max", timeout=30)
    term.line("/quit")
    assert term.wait_exit() == EXIT_OK
    chatd.login("max", "new-pw")
