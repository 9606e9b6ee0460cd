"""
test_login.py - the login dialogue: registration, passwords, names,
takeover, pipelining, closed registration and the login timeout.
"""

import re
import time

import pytest

from chatproto import Closed, Timeout, scaled, wait_until


def test_register_then_log_in_again(chatd):
    first = chatd.connect("first")
    first.login("alice", "s3cret", expect_pass="new")
    assert first.welcome[0] == "alice"
    assert first.users[:3] == ["1", "1", "1"] and first.users[3] == "alice"
    first.close()

    again = chatd.connect("again")
    again.login("alice", "s3cret", expect_pass="known")
    assert again.name == "alice"


def test_wrong_password_then_right_one(chatd):
    chatd.login("bob", "right-one").close()
    c = chatd.connect("bob")
    c.expect_hello()
    c.send_line("bob")
    c.expect("PASS", "known")
    c.send_line("wrong-one")
    c.expect("ERR", "401")
    c.send_line("right-one")
    c.finish_login()
    assert c.name == "bob"


def test_too_many_wrong_passwords_refused(chatd_factory):
    d = chatd_factory(login_attempts=3)
    d.login("carol", "right-one").close()
    c = d.connect("carol")
    c.expect_hello()
    c.send_line("carol")
    c.expect("PASS", "known")
    for _ in range(2):
        c.send_line("wrong-one")
        c.expect("ERR", "401")
    c.send_line("wrong-one")
    rest = c.read_until_closed()
    assert rest, "closed without BYE refused"
    assert rest[-1].tag == "BYE" and rest[-1][0] == "refused", rest
    assert all(line.raw.startswith("ERR 401") for line in rest[:-1]), rest
    assert len(rest) <= 2, rest

    # The daemon keeps serving, and the right password still works.
    d.login("carol", "right-one")


def test_name_is_case_insensitive(chatd):
    chatd.login("Alice", "pw").close()
    c = chatd.connect("lower")
    c.login("alice", "pw", expect_pass="known")
    assert c.welcome[0] == "Alice"
    # The registered spelling is shown to others too.
    other = chatd.login("zed")
    data, final = other.request("/who")
    assert final.tag == "OK" and len(data) == 1, (data, final)
    assert data[0][3].split() == ["Alice", "zed"]


def test_uppercase_spelling_cannot_register_again(chatd):
    chatd.login("Dora", "pw").close()
    c = chatd.connect("DORA")
    c.expect_hello()
    c.send_line("DORA")
    c.expect("PASS", "known")


def test_takeover_by_second_login(chatd):
    old = chatd.login("alice", "pw")
    watcher = chatd.login("bob", "pw2")
    old.wait_for("JOIN", lambda l: l[1] == "bob")

    new = chatd.connect("alice-new")
    new.login("alice", "pw", expect_pass="known")

    gone = old.read_until_closed()
    assert gone and gone[-1].tag == "BYE" and gone[-1][0] == "replaced", gone

    part = watcher.wait_for("PART", lambda l: l[1] == "alice")
    assert part[2] == "replaced", part
    assert not [l for l in watcher.live if l.tag == "JOIN" and l[1] == "alice"], \
        f"JOIN before PART: {watcher.live!r}"
    watcher.wait_for("JOIN", lambda l: l[1] == "alice")

    msg_id = watcher.say("to the new alice")
    got = new.wait_for("MSG", lambda l: l[3] == "to the new alice")
    assert got.id == msg_id


def test_pipelined_login(chatd):
    chatd.login("pipe", "pw").close()
    c = chatd.connect("pipe")
    c.login("pipe", "pw", expect_pass="known", pipeline=True)
    assert c.name == "pipe"
    c.sync()


def test_pipelined_registration_and_message(chatd):
    reader = chatd.login("reader")
    c = chatd.connect("fast")
    c.send_raw(b"fast\npw\nfirst words\n")
    c.expect_hello()
    c.expect("PASS", "new")
    c.finish_login()
    _, ok = c.collect_reply()
    assert ok.tag == "OK" and ok[0].isdigit(), ok
    msg = reader.wait_for("MSG", lambda l: l[2] == "fast")
    assert msg[3] == "first words" and msg.id == ok.id


def test_registration_closed(chatd_factory):
    d = chatd_factory(registration=True)
    d.login("member", "pw").close()
    d.restart(registration=False)

    c = d.connect("stranger")
    c.expect_hello()
    c.send_line("stranger")
    c.expect("ERR", "403")
    # The server waits for another name: a known one still logs in.
    c.send_line("member")
    c.expect("PASS", "known")
    c.send_line("pw")
    c.finish_login()
    assert c.name == "member"


@pytest.mark.parametrize("bad", [
    b"-lead", b".dot", b"has space", b"a" * 33, b"sem;colon", b"caf\xc3\xa9",
    b"\xff\xfe", b"esc\x1b", b"tab\tname", b"x/y",
])
def test_bad_name_rejected(chatd, bad):
    c = chatd.connect("badname")
    c.expect_hello()
    c.send_line(bad)
    err = c.expect("ERR")
    assert err[0] in ("422", "423"), err
    # Still waiting for a name.
    c.send_line("good.name-1")
    c.expect("PASS", "new")
    c.send_line("pw")
    c.finish_login()
    assert c.name == "good.name-1"


def test_longest_name_accepted(chatd):
    name = "n" * 32
    c = chatd.login(name)
    assert c.name == name


def test_bad_password_text_rejected(chatd):
    c = chatd.connect("badpw")
    c.expect_hello()
    c.send_line("newbie")
    c.expect("PASS", "new")
    c.send_line(b"pass\x1bword")
    c.expect("ERR", "422")
    c.close()
    # Nothing was registered with the bad password.
    again = chatd.connect("again")
    again.expect_hello()
    again.send_line("newbie")
    again.expect("PASS", "new")


@pytest.mark.parametrize("how", ["idle", "after_name", "trickle"])
def test_login_timeout(chatd_factory, how):
    d = chatd_factory(login_timeout=1)
    c = d.connect(how)
    start = time.monotonic()
    c.expect_hello()
    if how == "after_name":
        c.send_line("sleepy")
        c.expect("PASS", "new")
    lines = []
    if how == "trickle":
        # One byte every 0.3 s: activity must not extend the login deadline.
        for byte in b"abcdefghijklmnopqrstuvwxyz":
            try:
                c.send_raw(bytes([byte]))
                lines.append(c.read(timeout=0.3))
                break
            except Timeout:
                continue
            except (Closed, BrokenPipeError, ConnectionResetError):
                break
    lines += c.read_until_closed(timeout=4)
    elapsed = time.monotonic() - start
    assert lines and lines[-1].tag == "BYE" and lines[-1][0] == "timeout", lines
    assert 0.8 <= elapsed <= 1 + scaled(2), elapsed


def test_logged_in_client_is_not_timed_out(chatd_factory):
    d = chatd_factory(login_timeout=1)
    c = d.login("patient")
    # Idle past the login timeout: the session must live on.
    with pytest.raises(Timeout):
        c.read(timeout=1.5)
    c.sync()


def test_blank_lines_are_ignored(chatd):
    c = chatd.connect("blank")
    c.expect_hello()
    c.send_raw(b"\n\r\n\n")
    c.send_line("blanky")
    c.expect("PASS", "new")
    c.send_line("pw")
    c.finish_login()
    c.send_raw(b"\n\n")
    c.sync()
    assert c.live == []


def test_passwd_changes_password(chatd):
    c = chatd.login("changer", "old-pw")
    data, final = c.request("/passwd new pw with spaces")
    assert data == [] and final.tag == "OK", final
    c.close()

    old = chatd.connect("old")
    old.expect_hello()
    old.send_line("changer")
    old.expect("PASS", "known")
    old.send_line("old-pw")
    old.expect("ERR", "401")
    old.send_line("new pw with spaces")
    old.finish_login()
    assert old.name == "changer"



def failure_delays(chatd):
    """The 'next try in N ms' of every failed login in the log, in order."""
    return [int(m) for m in re.findall(r"login failed for \S+ from \S+; next try in (\d+) ms",
                                       chatd.log_text())]


def test_wrong_passwords_slow_down_more_and_more(chatd_factory):
    chatd = chatd_factory(login_fail_delay_ms=40, login_fail_delay_max_ms=150,
                          login_attempts=10)
    chatd.login("bob")
    c = chatd.connect("guesser")
    c.expect_hello()
    c.send_line("bob")
    c.expect("PASS", "known")
    for guess in range(4):
        c.send_line(f"guess{guess}")
        c.expect("ERR", "401", timeout=10)
    assert failure_delays(chatd) == [40, 80, 150, 150]


def test_parallel_guessing_is_refused_until_the_wait_is_over(chatd_factory):
    chatd = chatd_factory(login_fail_delay_ms=3000)
    chatd.login("bob")
    guessers = []
    for i in range(3):
        g = chatd.connect(f"guesser{i}")
        g.expect_hello()
        g.send_line("bob")
        g.expect("PASS", "known")
        guessers.append(g)
    guessers[0].send_line("wrong")
    wait_until(lambda: failure_delays(chatd) == [3000], "the failure to be counted")
    # Even the right password gets no answer about itself while the wait lasts.
    for g, pw in ((guessers[1], "another guess"), (guessers[2], "pw-bob")):
        g.send_line(pw)
        err = g.expect("ERR", "429")
        assert re.fullmatch(r"too many failed logins for bob; try again in [1-3] s", err[1]), err
    guessers[0].expect("ERR", "401", timeout=10)
    # Once it is over, the right password logs in (a guesser's ERR 429 cost it nothing).
    guessers[2].send_line("pw-bob")
    guessers[2].finish_login()


def test_login_timeout_counts_the_delay_after_a_wrong_password(chatd_factory):
    # The whole login, from the accept on, is bounded: a delay after a wrong password
    # that would outlast it ends the login when its time is up.
    d = chatd_factory(login_timeout=2, login_fail_delay_ms=20000,
                      login_fail_delay_max_ms=20000)
    d.login("slow", "right-one").close()
    c = d.connect("slow")
    start = time.monotonic()
    c.expect_hello()
    c.send_line("slow")
    c.expect("PASS", "known")
    c.send_line("wrong-one")
    lines = c.read_until_closed(timeout=6)
    elapsed = time.monotonic() - start
    assert [line.raw for line in lines] == ["BYE timeout login took too long"], lines
    assert 1.8 <= elapsed <= 2 + scaled(2), elapsed


def test_guest_with_an_empty_password(chatd_factory):
    """guests = true: a name nobody registered comes in with an empty password
    line, as a guest (WELCOME NAME guest, chatctl users says guest); a second
    guest of that name is refused with ERR 409, a guest cannot make a room
    while room_create is "registered", and a registered name still needs its
    password (an empty line is no password)."""
    d = chatd_factory(guests=True)
    d.login("owner", "owner-pw").close()
    g = d.connect("guest")
    g.expect_hello()
    g.send_line("visitor")
    assert "guest" in g.expect("PASS", "new").raw
    g.send_line("")
    assert g.expect("WELCOME", "visitor")[1] == "guest"
    users = d.ctl_ok("users")
    assert any(x.split()[0] == "visitor" and x.split()[-1] == "guest"
               for x in users.splitlines()), users

    twin = d.connect("twin")
    twin.expect_hello()
    twin.send_line("visitor")
    twin.expect("PASS", "new")
    twin.send_line("")
    twin.expect("ERR", "409")

    while g.read().tag != "OK":  # the rest of the welcome
        pass
    # The owner's PART (its connection closed above) may still be on its way.
    _, final = g.request("/join brand-new")
    assert final.raw == "ERR 403 only registered users may create rooms here", final.raw

    owner = d.connect("owner")
    owner.expect_hello()
    owner.send_line("owner")
    owner.expect("PASS", "known")
    owner.send_line("")
    owner.send_line("/ping")  # taken as a password: wrong, not a way in
    owner.expect("ERR", "401")


def test_a_guest_is_marked_in_every_line_that_names_it(chatd_factory):
    """guests = true: natively a guest's name is "~NAME" wherever a line names
    someone (USERS, JOIN, MSG, PRIV, PART, TOPIC), as the IRC gateway tells
    guests apart (WHO, WHOIS, no account tag), so nobody takes a guest's words
    for an account's of that name; /msg takes the name with or without the
    mark."""
    d = chatd_factory(guests=True)
    member = d.login("member")
    g = d.connect("guest")
    g.login("visitor", "", expect_pass="new")
    assert g.welcome.raw == "WELCOME visitor guest", g.welcome.raw
    assert g.users[3].split() == ["member", "~visitor"], g.users.raw

    joined = member.wait_for("JOIN")
    assert joined[1] == "~visitor", joined.raw
    data, final = member.request("/who")
    assert final.tag == "OK" and data[0][3].split() == ["member", "~visitor"], data

    mid = g.say("hello from a guest")
    msg = member.wait_for("MSG")
    assert (msg.id, msg[2], msg[3]) == (mid, "~visitor", "hello from a guest"), msg.raw

    data, final = g.request("/msg member psst")
    assert final.raw == "OK - sent to member", final.raw
    pm = member.wait_for("PRIV")
    assert pm[1:] == ["~visitor", "member", "psst"], pm.raw
    for to in ("~visitor", "visitor"):
        data, final = member.request(f"/msg {to} hi guest")
        assert final.raw == "OK - sent to ~visitor", final.raw
        back = g.wait_for("PRIV", lambda line: line[3] == "hi guest")
        assert back[1:3] == ["member", "visitor"], back.raw

    data, final = g.request("/topic lobby set by a guest")
    assert final.tag == "OK", final.raw
    topic = member.wait_for("TOPIC")
    assert topic[1] == "~visitor", topic.raw

    g.send_line("/quit bye")
    part = member.wait_for("PART")
    assert part[1] == "~visitor", part.raw
    member.sync()


def test_a_guest_cannot_take_a_name_registered_during_its_dialogue(chatd_factory):
    """guests = true: PASS new said the name was nobody's, but it was registered
    (chatctl user add, or a native registration that has logged out again) before
    the empty line came: that line is no way in under a registered name.  ERR 409,
    and the dialogue asks for a name again; the owner's password still works."""
    d = chatd_factory(guests=True)
    g = d.connect("guest")
    g.expect_hello()
    g.send_line("visitor")
    g.expect("PASS", "new")
    d.add_user("Visitor")
    g.send_line("")
    refused = g.read()
    assert refused.tag == "ERR" and refused[0] == "409", refused.raw
    assert "Visitor was registered" in refused.raw, refused.raw
    assert "visitor" not in d.ctl_ok("users").lower()
    # The dialogue goes on with a name: a free one comes in as a guest.
    g.send_line("drifter")
    g.expect("PASS", "new")
    g.send_line("")
    assert g.expect("WELCOME", "drifter")[1] == "guest"

    late = d.connect("late")
    late.expect_hello()
    late.send_line("newcomer")
    late.expect("PASS", "new")
    d.login("newcomer").close()          # registers newcomer, then leaves
    late.send_line("")
    assert late.expect("ERR", "409")
    owner = d.login("visitor", "pw-visitor")
    assert owner.welcome[0] == "Visitor"


def test_a_guest_has_no_token_and_no_password(chatd_factory):
    """guests = true: a guest's name is no account, so /token and /passwd are refused
    (ERR 403).  A token would have logged in, once someone registered the name, to that
    account; /passwd, once the operator added the name with the guest still online,
    would have set that account's password.  The owner's password stands."""
    d = chatd_factory(guests=True)
    g = d.connect("guest")
    g.expect_hello()
    g.send_line("visitor")
    g.expect("PASS", "new")
    g.send_line("")
    g.finish_login()
    _, final = g.request("/token")
    assert final.tag == "ERR" and final[0] == "403", final.raw
    d.add_user("visitor", "owners-password")            # the guest is still online
    _, final = g.request("/passwd guests-password")
    assert final.tag == "ERR" and final[0] == "403", final.raw
    _, final = g.request("/token")
    assert final.tag == "ERR" and final[0] == "403", final.raw
    owner = d.login("visitor", "owners-password")       # and the guest is replaced
    assert owner.welcome[1] == "welcome back", owner.welcome.raw
    _, final = owner.request("/token")
    assert final.tag == "OK", final.raw


def test_no_guests_by_default(chatd):
    c = chatd.connect("c")
    c.expect_hello()
    c.send_line("visitor")
    assert "guest" not in c.expect("PASS", "new").raw
    c.send_line("")  # ignored: no password given yet
    c.send_line("pw-visitor")
    assert c.expect("WELCOME", "visitor")[1] == "registered"
