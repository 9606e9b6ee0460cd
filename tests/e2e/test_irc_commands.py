"""
test_irc_commands.py - the commands of a registered IRC client on chatd's
gateway and their numerics (modern.ircdocs.horse): JOIN, PART, TOPIC, NAMES,
LIST, WHO, WHOIS, PRIVMSG, NOTICE, PING, QUIT, MOTD, AWAY, MODE, NICK, ISON,
and the error numerics.  Skipped while chatd has no IRC gateway.
"""

import pytest


def commands(lines):
    return [m.command for m in lines]


def names_of(lines, channel):
    return sorted(n for m in lines if m.command == "353" and m.params[2] == channel
                  for n in m.last.split())


@pytest.fixture
def pair(irc_chatd):
    """(chatd, alice, bob): two IRC users, both in #lobby, nothing pending."""
    chatd = irc_chatd()
    alice = chatd.irc_login("alice")
    bob = chatd.irc_login("bob")
    alice.expect("JOIN", lambda m: m.nick == "bob")
    return chatd, alice, bob


# --- JOIN ---

def test_join_makes_a_room_and_others_see_it(pair):
    chatd, alice, bob = pair
    lines = alice.join("#dev")
    cmds = commands(lines)
    join = lines[0]
    assert join.command == "JOIN" and join.params == ["#dev"], lines
    assert join.source == "alice!alice@chatd", join.raw
    assert "332" not in cmds and cmds[-1] == "366", cmds
    names = [m for m in lines if m.command == "353"]
    assert names[0].params[1] in ("=", "*", "@") and names[0].params[2] == "#dev", names
    assert names_of(lines, "#dev") == ["alice"]
    bob_lines = bob.join("#dev")
    assert names_of(bob_lines, "#dev") == ["alice", "bob"]
    seen = alice.expect("JOIN", lambda m: m.nick == "bob")
    assert seen.params == ["#dev"] and seen.source == "bob!bob@chatd"
    assert "dev" in [row.split()[0] for row in chatd.ctl_ok("room", "list").splitlines()]


def test_join_a_comma_list(pair):
    _, alice, _ = pair
    alice.send("JOIN #one,#two")
    lines = alice.until("366", lambda m: m.params[1] == "#two")
    joined = [m.params[0] for m in lines if m.command == "JOIN" and m.nick == "alice"]
    assert joined == ["#one", "#two"], lines
    alice.send("NAMES #two")
    assert names_of(alice.until("366"), "#two") == ["alice"]


def test_join_with_a_topic_sends_332_and_333(pair):
    chatd, alice, bob = pair
    alice.join("#dev")
    alice.send("TOPIC #dev :release friday")
    alice.expect("TOPIC")
    lines = bob.join("#dev")
    cmds = commands(lines)
    assert cmds[:3] == ["JOIN", "332", "333"], cmds
    assert lines[1].params[1:] == ["#dev", "release friday"]
    assert lines[2].params[1] == "#dev" and lines[2].params[2].split("!")[0] == "alice"
    assert lines[2].params[3].isdigit()   # a Unix time


def test_join_0_parts_every_channel(pair):
    _, alice, bob = pair
    alice.join("#dev")
    bob.join("#dev")
    alice.send("JOIN 0")
    parts = {alice.expect("PART").params[0] for _ in range(2)}
    assert parts == {"#lobby", "#dev"}
    bob.expect("PART", lambda m: m.nick == "alice" and m.params[0] == "#dev")


@pytest.mark.parametrize("channel", ["#bad!name", "#" + "x" * 33, "dev", "#", "#-dash"])
def test_join_a_bad_name_is_refused(pair, channel):
    _, alice, _ = pair
    alice.send(f"JOIN {channel}")
    reply = alice.expect(("403", "476", "479", "366"))
    assert reply.command != "366", reply.raw


def test_join_beyond_the_channel_limit_is_405(irc_chatd):
    chatd = irc_chatd(max_rooms_per_user=2)
    alice = chatd.irc_login("alice")
    assert alice.join("#one")[-1].command == "366"
    alice.send("JOIN #two")
    reply = alice.expect(("405", "366"))
    assert reply.command == "405" and reply.params[1] == "#two", reply.raw


def test_join_needs_a_parameter(pair):
    _, alice, _ = pair
    alice.send("JOIN")
    assert alice.expect("461").params[1] == "JOIN"


# --- PART ---

def test_part_with_a_reason(pair):
    _, alice, bob = pair
    alice.join("#dev")
    bob.join("#dev")
    bob.send("PART #dev :off to lunch")
    mine = bob.expect("PART")
    assert mine.params[0] == "#dev" and mine.nick == "bob"
    seen = alice.expect("PART", lambda m: m.nick == "bob")
    assert seen.params == ["#dev", "off to lunch"], seen.raw
    bob.send("NAMES #dev")
    assert "bob" not in bob.until("366")[0].last.split()


def test_part_errors(pair):
    _, alice, bob = pair
    bob.join("#dev")
    alice.send("PART #dev")
    assert alice.expect("442").params[1] == "#dev"
    alice.send("PART #nowhere")
    assert alice.expect(("403", "442")).params[1] == "#nowhere"
    alice.send("PART")
    assert alice.expect("461").params[1] == "PART"


# --- TOPIC ---

def test_topic_set_and_read(pair):
    _, alice, bob = pair
    alice.join("#dev")
    bob.join("#dev")
    alice.send("TOPIC #dev :tests are green")
    mine = alice.expect("TOPIC")
    assert mine.source == "alice!alice@chatd" and mine.params == ["#dev", "tests are green"]
    theirs = bob.expect("TOPIC")
    assert theirs.params == ["#dev", "tests are green"]
    bob.send("TOPIC #dev")
    topic = bob.expect("332")
    assert topic.params[1:] == ["#dev", "tests are green"]
    who = bob.expect("333")
    assert who.params[1] == "#dev" and who.params[2].split("!")[0] == "alice"


def test_topic_of_a_room_without_one_is_331(pair):
    _, alice, _ = pair
    alice.join("#dev")
    alice.send("TOPIC #dev")
    assert alice.expect(("331", "332")).command == "331"


def test_a_cleared_topic_is_no_topic(pair):
    """modern.ircdocs.horse, TOPIC: an empty <topic> clears the topic; a
    channel without one answers a query with RPL_NOTOPIC (331), and JOIN
    sends RPL_TOPIC (332) and RPL_TOPICWHOTIME (333) only when it has one."""
    _, alice, bob = pair
    alice.join("#dev")
    alice.send("TOPIC #dev :for now")
    alice.expect("TOPIC")
    alice.send("TOPIC #dev :")
    cleared = alice.expect("TOPIC")
    assert cleared.params == ["#dev", ""], cleared.raw
    alice.send("TOPIC #dev")
    assert alice.next().command == "331"
    lines = bob.join("#dev")
    assert [m.command for m in lines] == ["JOIN", "353", "366"], lines


def test_topic_errors(pair):
    _, alice, bob = pair
    bob.join("#dev")
    alice.send("TOPIC #dev :not a member")
    assert alice.expect("442").params[1] == "#dev"
    alice.send("TOPIC #nowhere :x")
    assert alice.expect(("403", "442")).params[1] == "#nowhere"
    alice.send("TOPIC")
    assert alice.expect("461").params[1] == "TOPIC"


# --- NAMES, LIST, WHO, WHOIS ---

def test_names(pair):
    _, alice, _ = pair
    alice.send("NAMES #lobby")
    lines = alice.until("366")
    assert names_of(lines, "#lobby") == ["alice", "bob"]
    alice.send("NAMES #nowhere")
    end = alice.next()
    assert end.command == "366" and end.params[1] == "#nowhere", end.raw


def test_names_of_several_channels(pair):
    """NAMES #a,#b (modern.ircdocs.horse): the names of each channel, each
    list ended by its own 366; a channel that does not exist gets its 366."""
    _, alice, bob = pair
    bob.join("#dev")
    alice.send("NAMES #lobby,#dev,#nowhere")
    lines = alice.until("366", lambda m: m.params[1] == "#nowhere")
    assert names_of(lines, "#lobby") == ["alice", "bob"], lines
    assert names_of(lines, "#dev") == ["bob"], lines
    ends = [m.params[1] for m in lines if m.command == "366"]
    assert ends == ["#lobby", "#dev", "#nowhere"], lines
    for empty in ("NAMES", "NAMES :", "NAMES ,,"):
        alice.send(empty)
        end = alice.next()
        assert end.command == "366" and end.params[1] == "*", (empty, end.raw)


def test_names_of_a_room_above_room_notice_limit_is_only_you(irc_chatd):
    """docs/IRC.md: above room_notice_limit members nobody sees the others
    come and go, so NAMES lists only the reader; WHO lists everyone."""
    chatd = irc_chatd(room_notice_limit=1)
    alice = chatd.irc_login("alice")
    chatd.irc_login("bob")
    alice.sync()
    alice.send("NAMES #lobby")
    assert names_of(alice.until("366"), "#lobby") == ["alice"]
    alice.send("WHO #lobby")
    who = [m.params[5] for m in alice.until("315") if m.command == "352"]
    assert sorted(who) == ["alice", "bob"], who


def test_list(pair):
    chatd, alice, bob = pair
    bob.join("#dev")
    bob.send("TOPIC #dev :the dev room")
    bob.expect("TOPIC")
    alice.send("LIST")
    lines = alice.until("323")
    rows = {m.params[1]: m for m in lines if m.command == "322"}
    assert set(rows) == {"#lobby", "#dev"}, lines
    assert rows["#lobby"].params[2] == "2"
    assert rows["#dev"].params[2] == "1" and rows["#dev"].last.endswith("the dev room")
    assert set(commands(lines)) <= {"321", "322", "323"}, lines


def test_list_of_given_channels(pair):
    """LIST #a,#b (modern.ircdocs.horse): only the channels given, in any
    case; one that does not exist is left out; a parameter that is no channel
    list (an ELIST condition chatd does not offer) lists every channel."""
    _, alice, bob = pair
    for name in ("#dev", "#ops", "#misc"):
        bob.join(name)
    alice.send("LIST #DEV,#ops,#nowhere")
    lines = alice.until("323")
    assert commands(lines)[0] == "321", lines
    assert sorted(m.params[1] for m in lines if m.command == "322") == ["#dev", "#ops"], lines
    alice.send("LIST >0")
    lines = alice.until("323")
    assert sorted(m.params[1] for m in lines if m.command == "322") == \
        ["#dev", "#lobby", "#misc", "#ops"], lines


def test_who_a_channel_and_a_nick(pair):
    _, alice, _ = pair
    alice.send("WHO #lobby")
    lines = alice.until("315")
    rows = [m for m in lines if m.command == "352"]
    # 352 <client> <channel> <user> <host> <server> <nick> <flags> :<hopcount> <realname>
    assert sorted(m.params[5] for m in rows) == ["alice", "bob"], lines
    for m in rows:
        assert m.params[1] == "#lobby" and m.params[3] == "chatd", m.raw
        assert m.params[6][0] in "HG", m.raw
        assert m.last.split(" ", 1)[0].isdigit(), m.raw
    assert lines[-1].params[1] == "#lobby"
    alice.send("WHO bob")
    lines = alice.until("315")
    assert [m.params[5] for m in lines if m.command == "352"] == ["bob"], lines


def test_whois(pair):
    _, alice, _ = pair
    alice.send("WHOIS bob")
    lines = alice.until("318")
    by = {m.command: m for m in lines}
    assert by["311"].params[1:4] == ["bob", "bob", "chatd"], by["311"].raw
    assert by["312"].params[1] == "bob"
    assert by["330"].params[1:3] == ["bob", "bob"], by["330"].raw   # account
    assert "320" not in by
    assert by["318"].params[1] == "bob"


def test_whois_of_nobody_is_401(pair):
    _, alice, _ = pair
    alice.send("WHOIS nobody")
    lines = alice.until("318")
    assert "401" in commands(lines), lines


# --- PRIVMSG, NOTICE ---

def test_privmsg_to_a_channel(pair):
    _, alice, bob = pair
    alice.send("PRIVMSG #lobby :hello room")
    got = bob.expect("PRIVMSG")
    assert got.source == "alice!alice@chatd" and got.params == ["#lobby", "hello room"]
    alice.no_more("PRIVMSG")  # no echo-message: the sender gets nothing


def test_privmsg_to_a_nick(pair):
    _, alice, bob = pair
    alice.send("PRIVMSG bob :psst")
    got = bob.expect("PRIVMSG")
    assert got.source == "alice!alice@chatd" and got.params == ["bob", "psst"]
    bob.send("PRIVMSG ALICE :case does not matter")
    assert alice.expect("PRIVMSG").params[1] == "case does not matter"


def test_privmsg_errors(pair):
    _, alice, bob = pair
    bob.join("#dev")
    alice.send("PRIVMSG #dev :not a member")
    assert alice.expect("404").params[1] == "#dev"
    alice.send("PRIVMSG #nowhere :x")
    assert alice.expect(("401", "403")).params[1] == "#nowhere"
    alice.send("PRIVMSG nobody :x")
    assert alice.expect("401").params[1] == "nobody"
    alice.send("PRIVMSG #lobby :")
    alice.expect("412")
    alice.send("PRIVMSG #lobby")
    alice.expect(("412", "461"))
    alice.send("PRIVMSG")
    alice.expect(("411", "461"))
    # Targets that are only commas got no answer at all.
    alice.send("PRIVMSG ,, :to nobody")
    assert alice.expect(("411", "401")).command == "411"
    bob.no_more("PRIVMSG")


def test_notice_to_a_channel_and_a_nick(pair):
    _, alice, bob = pair
    alice.send("NOTICE #lobby :room notice")
    got = bob.expect("NOTICE")
    assert got.source == "alice!alice@chatd" and got.params == ["#lobby", "room notice"]
    alice.send("NOTICE bob :private notice")
    assert bob.expect("NOTICE").params == ["bob", "private notice"]


def test_notice_never_gets_an_error(pair):
    _, alice, bob = pair
    bob.join("#dev")
    for line in ("NOTICE nobody :x", "NOTICE #nowhere :x", "NOTICE #dev :x",
                 "NOTICE #lobby :", "NOTICE bob", "NOTICE"):
        alice.send(line)
    lines = alice.sync()
    assert not [m for m in lines if m.command.isdigit()], lines


def test_overlong_line_is_417_and_the_connection_stays(pair):
    _, alice, bob = pair
    alice.send("PRIVMSG #lobby :" + "x" * 600)
    alice.expect("417")
    alice.send("PRIVMSG #lobby :short again")
    assert bob.expect("PRIVMSG").last == "short again"


def test_a_line_of_512_bytes_is_accepted(pair):
    """510 bytes and CR LF: no 417.  Relayed with a source it would pass 512
    bytes: the server may cut the text (the client checks every line's size)."""
    _, alice, bob = pair
    head = "PRIVMSG #lobby :"
    text = "y" * (510 - len(head))
    alice.send(head + text)
    got = bob.expect("PRIVMSG")
    assert text.startswith(got.last) and len(got.last) > 400, got.raw
    assert not [m for m in alice.sync() if m.command == "417"]


# --- PING, QUIT, MOTD, unknown ---

def test_ping_pong(pair):
    _, alice, _ = pair
    alice.send("PING :some token")
    pong = alice.expect("PONG")
    assert pong.source == "chatd" and pong.params == ["chatd", "some token"], pong.raw
    alice.send("PING :")
    pong = alice.expect("PONG")
    assert pong.params == ["chatd", ""], pong.raw


def test_ping_without_a_token_is_461_before_and_after_registration(irc_chatd):
    """PING's token is its one parameter (modern.ircdocs.horse: ERR_NEEDMOREPARAMS):
    without one it gets 461, the same before registration as after, never a PONG."""
    chatd = irc_chatd()
    pre = chatd.irc_connect("pre")
    alice = chatd.irc_login("alice")
    for conn, target in ((pre, "*"), (alice, "alice")):
        conn.send("PING")
        got = conn.expect(("PONG", "461"))
        assert got.command == "461" and got.params[:2] == [target, "PING"], got.raw
        conn.sync()


def test_ping_token_of_invalid_utf8_is_fail_invalid_utf8(irc_chatd):
    """chatd says UTF8ONLY and sends nothing but UTF-8, so a token that is not UTF-8
    cannot come back whole: FAIL PING INVALID_UTF8 (ircv3 utf8-only), not a PONG with
    the bad bytes changed (a token changed matches no PING of the client's).  A valid
    token beside it still gets its PONG.  Before registration and after."""
    chatd = irc_chatd()
    pre = chatd.irc_connect("pre")
    alice = chatd.irc_login("alice")
    for conn in (pre, alice):
        for token in (b"lag\xff1", b"\xc3(", b"\xed\xa0\x80", b"cut\xe2\x82"):
            conn.send(b"PING :" + token)
            got = conn.expect(("PONG", "FAIL"))
            assert got.command == "FAIL" and got.params[:2] == ["PING", "INVALID_UTF8"], got.raw
        conn.send("PING :lag\u00e91")
        assert conn.expect(("PONG", "FAIL")).params == ["chatd", "lag\u00e91"]


def test_pong_from_the_client_is_accepted_silently(pair):
    _, alice, _ = pair
    alice.send("PONG :whatever")
    lines = alice.sync()
    assert not [m for m in lines if m.command.isdigit()], lines


def test_a_private_message_never_overtakes_a_room_message_sent_before_it(irc_chatd):
    """A room message goes out once stored (here 100 ms late: the slow-sync fault), a
    private one at once: sent right after one to the room, the private message reached
    bob first.  It waits for the room message as a command does (natively /msg is a
    command), so bob sees them in the order alice sent them."""
    chatd = irc_chatd(start=False)
    chatd.env["CHATD_TEST_FAULT"] = "slow-sync"
    chatd.start()
    alice = chatd.irc_login("alice")
    bob = chatd.irc_login("bob")
    alice.expect("JOIN", lambda m: m.nick == "bob")
    alice.send_raw(b"PRIVMSG #lobby :first\r\nPRIVMSG bob :second\r\n"
                   b"NOTICE #lobby,bob :third\r\nPRIVMSG bob :fourth\r\n")
    got = [bob.expect(("PRIVMSG", "NOTICE")).last for _ in range(5)]
    assert got == ["first", "second", "third", "third", "fourth"], got


def test_quit(pair):
    _, alice, bob = pair
    bob.send("QUIT :see you")
    rest = bob.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest
    quit_ = alice.expect("QUIT")
    assert quit_.source == "bob!bob@chatd" and "see you" in quit_.last, quit_.raw


def test_a_long_quit_text_is_cut_between_characters(pair):
    """A QUIT text longer than the session keeps (255 bytes) was cut inside a
    character, failed the text check and reached the others as "quit": it is cut
    between characters, and they see its first 127 bytes (as a PART's reason)."""
    _, alice, bob = pair
    bob.send("QUIT :" + "\u00e9" * 200)
    bob.expect_closed()
    quit_ = alice.expect("QUIT")
    assert quit_.last == "\u00e9" * 63, quit_.raw


def test_quit_when_the_connection_drops(pair):
    _, alice, bob = pair
    bob.close()
    quit_ = alice.expect("QUIT")
    assert quit_.nick == "bob"


def test_motd(pair):
    _, alice, _ = pair
    alice.send("MOTD")
    first = alice.expect(("375", "422"))
    if first.command == "375":
        lines = alice.until("376")
        assert set(commands(lines[:-1])) <= {"372"}, lines


def test_unknown_command_is_421(pair):
    _, alice, _ = pair
    alice.send("FROBNICATE now")
    assert alice.expect("421").params[1] == "FROBNICATE"


# --- AWAY, MODE, NICK, ISON ---

def test_away(pair):
    _, alice, bob = pair
    alice.send("AWAY :gone fishing")
    alice.expect("306")
    bob.send("PRIVMSG alice :are you there")
    away = bob.expect("301")
    assert away.params[1:] == ["alice", "gone fishing"], away.raw
    assert alice.expect("PRIVMSG").last == "are you there"
    bob.send("WHOIS alice")
    assert "301" in commands(bob.until("318"))
    alice.send("AWAY")
    alice.expect("305")
    bob.send("PRIVMSG alice :back?")
    bob.no_more("301")


def test_mode_queries_and_refused_changes(pair):
    _, alice, _ = pair
    alice.send("MODE #lobby")
    mode = alice.expect("324")
    assert mode.params[1] == "#lobby" and mode.params[2].startswith("+")
    assert set(mode.params[2][1:]) <= set("nt"), mode.raw
    alice.send("MODE alice")
    umode = alice.expect("221")
    assert umode.params[1].startswith("+"), umode.raw
    alice.send("MODE #lobby +o bob")
    assert alice.expect(("482", "472")).params[1] == "o"
    alice.send("MODE alice +x")
    alice.expect("501")
    alice.send("MODE bob")
    alice.expect(("502", "401"))
    alice.send("MODE #nowhere")
    alice.expect(("403", "401"))


def test_channel_modes_say_anyone_may_set_the_topic(pair):
    """modern.ircdocs.horse: with protected topic mode (+t) only members with
    channel privileges may change the topic.  In chatd nobody has those and
    every member may set it, so no room says +t (324, 005 CHANMODES, 004):
    a client that read +t would keep its users from setting the topic."""
    _, alice, bob = pair
    bob.send("TOPIC #lobby :anyone may")
    assert bob.expect("TOPIC").last == "anyone may"
    alice.send("MODE #lobby")
    mode = alice.expect("324")
    assert "t" not in mode.params[2] and "n" in mode.params[2], mode.raw
    assert "t" not in alice.isupport["CHANMODES"], alice.isupport
    myinfo = [m for m in alice.welcome if m.command == "004"][0]
    assert "t" not in myinfo.params[4], myinfo.raw


def test_user_mode_invisible(pair):
    """modern.ircdocs.horse, MODE and 221: 004 lists user mode i, so MODE
    nick +i (irssi sends it on every connect) sets it, answered with a MODE
    message that echoes the change; MODE nick shows it (221); setting it
    again changes nothing and says nothing; -i clears it.  An unknown letter
    is 501, the known ones in the same string still apply."""
    _, alice, bob = pair
    alice.send("MODE alice +i")
    change = alice.expect(("MODE", "501"))
    assert change.command == "MODE", change.raw
    assert change.source.split("!")[0] == "alice", change.raw
    assert change.params == ["alice", "+i"], change.raw
    alice.send("MODE alice")
    assert alice.expect("221").params[1] == "+i"
    alice.send("MODE Alice +i")          # already +i: no reply
    lines = alice.sync()
    assert not [m for m in lines if m.command in ("MODE", "501")], lines
    # invisible hides no one from a lookup by name: WHOIS and WHO nick answer
    bob.send("WHOIS alice")
    assert "311" in commands(bob.until("318"))
    bob.send("WHO alice")
    assert "352" in commands(bob.until("315"))
    alice.send("MODE alice -i+w")
    got = [alice.next(), alice.next()]
    assert sorted(m.command for m in got) == ["501", "MODE"], got
    assert [m.params for m in got if m.command == "MODE"] == [["alice", "-i"]], got
    alice.send("MODE alice")
    assert alice.expect("221").params[1] == "+"


def test_mode_of_a_nick_nobody_has_is_401(pair):
    """modern.ircdocs.horse, MODE: a nick that does not exist on the network
    is ERR_NOSUCHNICK (401); another user's is ERR_USERSDONTMATCH (502)."""
    _, alice, _ = pair
    alice.send("MODE nobody")
    assert alice.next().command == "401"
    alice.send("MODE nobody +i")
    assert alice.next().command == "401"
    alice.send("MODE BOB +i")
    assert alice.next().command == "502"


def test_nick_change_to_another_name_is_432(pair):
    _, alice, bob = pair
    alice.send("NICK alicia")
    reply = alice.expect(("432", "NICK"))
    assert reply.command == "432", reply.raw
    alice.send("NICK Alice")   # the same account: ignored
    lines = alice.sync()
    assert not [m for m in lines if m.command.isdigit()], lines
    bob.send("PRIVMSG alice :still alice")
    assert alice.expect("PRIVMSG").last == "still alice"


def test_nick_without_a_nickname_is_431(pair):
    """modern.ircdocs.horse, NICK: no nickname given is ERR_NONICKNAMEGIVEN
    (431), not 461; before registration as after it."""
    chatd, alice, _ = pair
    alice.send("NICK")
    assert alice.next().command == "431"
    alice.send("NICK :")
    assert alice.next().command == "431"
    c = chatd.irc_connect()
    c.send("NICK")
    assert c.next().command == "431"


def test_unknown_channel_mode_is_472(pair):
    """modern.ircdocs.horse: a mode letter the server does not know is
    ERR_UNKNOWNMODE (472, the letter as its parameter); a known one a member
    may not change stays ERR_CHANOPRIVSNEEDED (482)."""
    _, alice, _ = pair
    alice.send("MODE #lobby +z")
    reply = alice.next()
    assert reply.command == "472" and reply.params[1] == "z", reply.raw
    alice.send("MODE #lobby -n")
    reply = alice.next()
    assert reply.command == "482" and reply.params[1] == "#lobby", reply.raw


def test_ison(pair):
    _, alice, _ = pair
    alice.send("ISON bob nobody Alice")
    reply = alice.expect("303")
    assert sorted(n.lower() for n in reply.last.split()) == ["alice", "bob"], reply.raw


def test_guest_is_shown_as_a_guest(irc_chatd):
    chatd = irc_chatd(guests=True)
    alice = chatd.irc_login("alice")
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor").command == "001"
    alice.expect("JOIN", lambda m: m.nick == "visitor")
    alice.send("WHOIS visitor")
    lines = alice.until("318")
    assert "320" in commands(lines) and "330" not in commands(lines), lines
    guest.send("PRIVMSG #lobby :hi from a guest")
    got = alice.expect("PRIVMSG")
    assert got.nick == "visitor" and got.last == "hi from a guest"
    # room_create = registered: a registered user may make rooms, the guest
    # is told so (not that only an operator may).
    guest.send("JOIN #brand-new")
    assert guest.expect("403").last == "No such channel (only registered users may make rooms)"


# --- a client's parameter echoed in a reply: the reply keeps its text ---

LONGEST_NICK = "n" + "x" * 31


def longest(head, tail="", fill="k"):
    """HEAD, then fill, then TAIL: the longest line IRC allows (510 bytes without CR LF)."""
    return head + fill * (510 - len(head.encode("utf-8")) - len(tail.encode("utf-8"))) + tail


def is_text(text):
    def check(msg):
        return msg.last == text
    check.__name__ = f"text {text!r}"
    return check


# (line, the reply's command, its parameters before the text that echo, a check of the text)
ECHOES = [
    (longest("WHOIS "), "401", 1, is_text("No such nick/channel")),
    (longest("WHOIS "), "318", 1, is_text("End of /WHOIS list.")),
    (longest("WHOIS chatd "), "401", 1, is_text("No such nick/channel")),
    ("WHOIS :two words", "401", 1, is_text("No such nick/channel")),
    ("WHOIS ::colon", "401", 1, is_text("No such nick/channel")),
    ("WHOIS :", "401", 1, is_text("No such nick/channel")),
    (longest("WHO "), "315", 1, is_text("End of /WHO list.")),
    ("WHO :two words", "315", 1, is_text("End of /WHO list.")),
    (longest("NAMES #"), "366", 1, is_text("End of /NAMES list.")),
    (longest("NICK "), "432", 1,
     lambda m: m.last.startswith("Nicks are account names in chatd: log in as ")
     and m.last.endswith(" to use it")),
    (longest("", fill="X"), "421", 1, is_text("Unknown command")),
    (longest("CAP "), "410", 1, is_text("Invalid CAP command")),
    (longest("JOIN #"), "479", 1, is_text("Illegal channel name")),
    (longest("PART #"), "403", 1, is_text("No such channel")),
    (longest("TOPIC #"), "403", 1, is_text("No such channel")),
    (longest("MODE #"), "403", 1, is_text("No such channel")),
    (longest("PRIVMSG ", " :hi"), "401", 1, is_text("No such nick/channel")),
    (longest("PRIVMSG #", " :hi"), "403", 1, is_text("No such channel")),
    (longest("PRIVMSG a,b,c,d,", " :hi"), "407", 1, is_text("Too many targets (at most 4)")),
    (longest("PRIVMSG ", " :\x07"), "FAIL", 1, lambda m: m.last.endswith(": not sent")),
    ("@+typing=active " + longest("TAGMSG "), "401", 1, is_text("No such nick/channel")),
    (longest("CHATHISTORY "), "FAIL", 1, is_text("Unknown subcommand")),
]


@pytest.mark.parametrize("line,command,echoes,check", ECHOES,
                         ids=[f"{i}-{e[1]}-{e[0][:14]}" for i, e in enumerate(ECHOES)])
def test_an_echoed_parameter_leaves_the_reply_its_text(irc_chatd, line, command, echoes, check):
    """The longest parameter a line holds, behind the longest nick, or one that is no middle
    parameter at all (empty, with a space, starting with ':'): the reply is one line within
    512 bytes (the strict client checks) with its text whole, and what it echoes is one
    parameter, the client's shortened or *.  (Echoed whole, the parameter cut the text off,
    or split into several parameters.)"""
    chatd = irc_chatd()
    c = chatd.irc_login(LONGEST_NICK)
    c.send(line)
    reply = c.expect(command)
    assert check(reply), reply.raw
    # The nick (numerics) or the command and code (FAIL) come before what is echoed.
    before = 1 if command != "FAIL" else 2
    assert len(reply.params) == before + echoes + 1, reply.raw
    for echoed in reply.params[before:before + echoes]:
        assert echoed == "*" or (echoed and echoed in line), reply.raw
    c.sync()


def test_a_labeled_reply_with_the_longest_label_keeps_its_text(irc_chatd):
    """labeled-response: the longest label chatd keeps (64 bytes escaped) rides a reply that
    echoes the longest parameter; the tags do not count against the 512 bytes, the text is
    whole and the label the client's."""
    chatd = irc_chatd()
    c = chatd.irc_login(LONGEST_NICK, caps=["labeled-response"])
    label = "L" * 64
    c.send(f"@label={label} " + longest("NICK "))
    reply = c.expect("432")
    assert reply.tags.get("label") == label, reply.raw
    assert reply.last.endswith(" to use it") and len(reply.params) == 3, reply.raw
