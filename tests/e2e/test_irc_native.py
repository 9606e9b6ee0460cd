"""
test_irc_native.py - IRC users and native users (docs/PROTOCOL.md) on one
chatd: the same rooms, messages and private messages both ways, joins,
parts and topics shown in each protocol's form, and chatctl's users, kick,
notice and room commands reaching IRC users.  Skipped while chatd has no
IRC gateway.
"""

from ircproto import TIME_RE


def test_room_messages_both_ways(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    irc = chatd.irc_login("bob", caps=["message-tags", "echo-message"])
    joined = native.wait_for("JOIN", lambda line: line[1] == "bob")
    assert joined.room == "lobby"
    msg_id = native.say("hello from native")
    got = irc.expect("PRIVMSG")
    assert got.source == "alice!alice@chatd" and got.params == ["#lobby", "hello from native"]
    assert got.tags["msgid"] == str(msg_id) and got.tags["account"] == "alice"
    irc.send("PRIVMSG #lobby :hello from irc")
    echo = irc.expect("PRIVMSG", lambda m: m.nick == "bob")
    line = native.wait_for("MSG")
    assert line.room == "lobby" and line[2:] == ["bob", "hello from irc"], line.raw
    assert str(line.id) == echo.tags["msgid"], (line.raw, echo.raw)
    assert line[1] == echo.tags["time"], (line.raw, echo.raw)


def test_private_messages_both_ways(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    irc = chatd.irc_login("bob")
    native.wait_for("JOIN", lambda line: line[1] == "bob")
    data, final = native.request("/msg bob psst irc")
    assert final.tag == "OK", final.raw
    got = irc.expect("PRIVMSG")
    assert got.source == "alice!alice@chatd" and got.params == ["bob", "psst irc"]
    irc.send("PRIVMSG alice :psst native")
    priv = native.wait_for("PRIV")
    assert priv[1:] == ["bob", "alice", "psst native"], priv.raw


def test_irc_user_is_in_the_native_users_list(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    chatd.irc_login("bob")
    native.wait_for("JOIN", lambda line: line[1] == "bob")
    data, final = native.request("/who lobby")
    assert data[0].tag == "USERS" and "bob" in data[0][3].split(), data


def test_native_join_leave_and_topic_reach_irc(irc_chatd):
    chatd = irc_chatd()
    irc = chatd.irc_login("bob")
    irc.join("#dev")
    native = chatd.login("alice")
    irc.expect("JOIN", lambda m: m.nick == "alice" and m.params == ["#lobby"])
    native.request("/join dev")
    join = irc.expect("JOIN", lambda m: m.params == ["#dev"])
    assert join.source == "alice!alice@chatd"
    native.request("/topic dev native topic")
    topic = irc.expect("TOPIC")
    assert topic.source == "alice!alice@chatd" and topic.params == ["#dev", "native topic"]
    native.request("/say dev in dev")
    assert irc.expect("PRIVMSG").params == ["#dev", "in dev"]
    native.request("/leave dev gone for now")
    part = irc.expect("PART", lambda m: m.params[0] == "#dev")
    assert part.source == "alice!alice@chatd" and part.params == ["#dev", "gone for now"]
    native.request("/quit bye all")
    quit_ = irc.expect("QUIT")
    assert quit_.nick == "alice" and "bye all" in quit_.last


def test_irc_join_part_and_topic_reach_native(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    native.request("/join dev")
    irc = chatd.irc_login("bob")
    irc.join("#dev")
    join = native.wait_for("JOIN", lambda line: line.room == "dev")
    assert join[1] == "bob"
    irc.send("TOPIC #dev :set from irc")
    topic = native.wait_for("TOPIC")
    assert topic.room == "dev" and topic[1:] == ["bob", "set from irc"], topic.raw
    irc.send("PART #dev :leaving dev")
    part = native.wait_for("PART", lambda line: line.room == "dev")
    assert part[1:] == ["bob", "left", "leaving dev"], part.raw
    irc.send("QUIT :done")
    gone = native.wait_for("PART", lambda line: line.room == "lobby")
    assert gone[1:3] == ["bob", "quit"], gone.raw


def test_chatctl_users_lists_irc_users(irc_chatd):
    chatd = irc_chatd()
    chatd.login("alice")
    chatd.irc_login("bob")
    names = [line.split()[0] for line in chatd.ctl_ok("users").splitlines()]
    assert sorted(names) == ["alice", "bob"], names
    protocols = {line.split()[0]: line.split()[3] for line in chatd.ctl_ok("users").splitlines()}
    assert protocols == {"alice": "line", "bob": "irc"}, protocols


def test_chatctl_status_counts_irc_connections(irc_chatd):
    chatd = irc_chatd()
    chatd.login("alice")
    chatd.irc_login("bob")
    chatd.irc_login("carol")
    status = chatd.ctl_ok("status")
    assert "clients: 3 online, 3 connected, 2 of them on IRC" in status, status
    assert "(IRC)" in next(x for x in status.splitlines() if x.startswith("listening:")), status


def test_chatctl_kick_disconnects_an_irc_user(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    irc = chatd.irc_login("bob")
    native.wait_for("JOIN", lambda line: line[1] == "bob")
    chatd.ctl_ok("kick", "bob", "behave")
    rest = irc.expect_closed()
    assert rest and rest[-1].command == "ERROR", rest
    assert "behave" in " ".join(m.last or "" for m in rest), rest
    part = native.wait_for("PART")
    assert part[1:] == ["bob", "kicked", "behave"], part.raw


def test_chatctl_notices_reach_irc_users(irc_chatd):
    chatd = irc_chatd()
    irc = chatd.irc_login("bob", caps=["server-time"])
    chatd.ctl_ok("notice", "maintenance", "at", "noon")
    notice = irc.expect("NOTICE")
    assert notice.source == "chatd" and notice.params == ["*", "maintenance at noon"]
    assert TIME_RE.match(notice.tags.get("time", ""))
    chatd.ctl_ok("room", "notice", "lobby", "lobby", "only")
    notice = irc.expect("NOTICE")
    assert notice.source == "chatd" and notice.params == ["#lobby", "lobby only"]


def test_chatctl_room_kick_and_delete(irc_chatd):
    chatd = irc_chatd()
    chatd.ctl_ok("room", "create", "games")
    irc = chatd.irc_login("bob")
    watcher = chatd.irc_login("carol")
    irc.join("#games")
    watcher.join("#games")
    chatd.ctl_ok("room", "kick", "games", "bob", "cheating")
    kick = irc.expect("KICK")
    assert kick.source == "chatd" and kick.params == ["#games", "bob", "cheating"], kick.raw
    assert watcher.expect("KICK").params == ["#games", "bob", "cheating"]
    irc.send("PRIVMSG #games :still here?")
    irc.expect("404")
    chatd.ctl_ok("room", "del", "games")
    gone = watcher.expect("KICK")
    assert gone.source == "chatd" and gone.params[:2] == ["#games", "carol"], gone.raw
    assert "deleted" in gone.last
    irc.send("PING alive")
    assert irc.expect("PONG").last == "alive"


def test_chatctl_room_topic_reaches_irc(irc_chatd):
    chatd = irc_chatd()
    irc = chatd.irc_login("bob")
    chatd.ctl_ok("room", "topic", "lobby", "set", "by", "the", "operator")
    topic = irc.expect("TOPIC")
    assert topic.params == ["#lobby", "set by the operator"], topic.raw


def test_irc_login_replaces_a_native_session(irc_chatd):
    chatd = irc_chatd()
    native = chatd.login("alice")
    chatd.irc_login("alice")
    lines = native.read_until_closed()
    assert [(line.tag, line[0]) for line in lines if line.tag == "BYE"] == \
        [("BYE", "replaced")], lines


def test_native_login_replaces_an_irc_session(irc_chatd):
    chatd = irc_chatd()
    irc = chatd.irc_login("alice")
    chatd.login("alice")
    rest = irc.expect_closed()
    assert rest and rest[-1].command == "ERROR", rest


def test_a_long_native_message_reaches_irc_in_lines_of_512_bytes(irc_chatd):
    """A native line may hold max_line (4096) bytes; an IRC line at most 512
    (modern.ircdocs.horse): the text arrives whole, over as many PRIVMSGs as
    it takes (the client checks each line's size)."""
    chatd = irc_chatd()
    irc = chatd.irc_login("bob")
    native = chatd.login("alice")
    irc.expect("JOIN", lambda m: m.nick == "alice")
    words = " ".join(f"word{i:04d}" for i in range(300))
    native.say(words)
    native.say("after")
    pieces = [m.last for m in irc.until("PRIVMSG", lambda m: m.last == "after")
              if m.command == "PRIVMSG"][:-1]
    assert "".join(pieces).replace(" ", "") == words.replace(" ", ""), pieces


def test_a_guests_topic_stays_a_guests_after_a_restart(irc_chatd):
    """guests = true: a guest sets a topic.  Its setter shows as a guest
    (natively `~NAME` in TOPIC, on IRC `NAME!~NAME@chatd` in 333), and so
    after a restart (the rooms file keeps the mark), when the name has become
    someone's account: it must not read as that account's topic."""
    chatd = irc_chatd(guests=True)
    guest = chatd.connect("guest")
    guest.login("visitor", "", expect_pass="new")
    assert guest.welcome[1] == "guest", guest.welcome.raw
    data, final = guest.request("/topic lobby set by a guest")
    assert final.raw == "OK - topic set", final.raw
    assert [line[1] for line in data] == ["~visitor"], [line.raw for line in data]

    def shown():
        native = chatd.login("carol")
        data, final = native.request("/topic lobby")
        irc = chatd.irc_login("dave")
        irc.send("TOPIC #lobby")
        irc.expect("332")
        who = irc.expect("333")
        native.close()
        irc.close()
        return [line.raw.split(" ", 3)[-1] for line in data], who.params[2]

    before = shown()
    assert before == (["~visitor set by a guest"], "visitor!~visitor@chatd"), before
    guest.close()
    chatd.restart()
    chatd.add_user("visitor")
    text = (chatd.state_dir / "rooms").read_text()
    assert " ~visitor set by a guest\n" in text, text
    assert shown() == before
