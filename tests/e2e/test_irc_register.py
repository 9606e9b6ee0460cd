"""
test_irc_register.py - registration on chatd's IRC gateway: CAP, SASL PLAIN,
PASS, guests, what is refused before registration, the welcome (001-005,
ISUPPORT, MOTD, the default room), and account registration with REGISTER
(draft/account-registration).  From modern.ircdocs.horse, the IRCv3
capability-negotiation, sasl-3.1/3.2 and account-registration specifications
and the gateway's design (issue 16).  Skipped while chatd has no IRC gateway
(conftest.py).
"""

import signal

import pytest

from chatproto import wait_until

from ircproto import REGISTRATION_FAILURES, b64_chunks, plain_payload


def commands(lines):
    return [m.command for m in lines]


def assert_refused(client, final, numeric):
    """final is numeric; the server then sends ERROR and closes."""
    assert final.command == numeric, final.raw
    rest = client.expect_closed()
    assert [m.command for m in rest][-1:] == ["ERROR"], rest


# --- SASL PLAIN ---

def test_sasl_plain_logs_in_a_registered_user(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect("alice")
    caps = c.cap_ls("302")
    assert "sasl" in caps and "PLAIN" in (caps["sasl"] or "").split(","), caps
    assert c.cap_req(["sasl"]) == ("ACK", ["sasl"])
    final = c.authenticate_plain("alice", "pw-alice")
    assert final.command == "903", final.raw
    logged_in = [m for m in c.history if m.command == "900"]
    assert len(logged_in) == 1, c.history
    # 900 <nick> <nick>!<ident>@<host> <account> :You are now logged in as <account>
    assert logged_in[0].params[2] == "alice", logged_in[0].raw
    c.send("NICK alice")
    c.send("USER alice 0 * :Alice")
    c.send("CAP END")
    welcome = c.expect("001")
    assert welcome.params[0] == "alice"


def test_sasl_nick_is_the_account_name(irc_chatd):
    """After SASL as X the client is X, whatever NICK said (design)."""
    chatd = irc_chatd()
    chatd.add_user("Alice")
    c = chatd.irc_connect()
    final = c.register("somebody", password="pw-alice", sasl=True, sasl_user="alice")
    assert final.command == "001", final.raw
    assert final.params[0] == "Alice"     # the registered spelling


def test_sasl_wrong_password_is_904_and_the_client_may_try_again(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    assert c.authenticate_plain("alice", "wrong").command == "904"
    assert c.authenticate_plain("alice", "pw-alice").command == "903"
    c.send("NICK alice")
    c.send("USER alice 0 * :x")
    c.send("CAP END")
    assert c.expect("001").params[0] == "alice"


def test_sasl_unknown_mechanism_gets_908_and_904(irc_chatd):
    c = irc_chatd().irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    c.send("AUTHENTICATE SCRAM-SHA-256")
    lines = c.until("904")
    mechs = [m for m in lines if m.command == "908"]
    assert mechs and "PLAIN" in mechs[0].params[1].split(","), lines
    assert not [m for m in lines if m.command == "AUTHENTICATE"], lines


def test_sasl_abort_is_906(irc_chatd):
    c = irc_chatd().irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    c.send("AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE", lambda m: m.params == ["+"])
    c.send("AUTHENTICATE *")
    c.expect("906")
    # Still not registered, and it can register afterwards.
    final = c.register("alice", password="pw-alice", sasl=True)
    assert final.command == "001", final.raw


@pytest.mark.parametrize("sent", [0, 1])
def test_registration_ends_an_unfinished_sasl_exchange_with_906(irc_chatd, sent):
    """SASL 3.1: a client that completes registration (CAP END, NICK, USER)
    while its SASL exchange is still in progress has it aborted with 906 and
    registers without it (here with PASS), instead of waiting for a
    login_timeout it does not know of."""
    chatd = irc_chatd(login_timeout=30)
    chatd.add_user("alice")
    c = chatd.irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    c.send("AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE", lambda m: m.params == ["+"])
    if sent:   # a whole chunk: more was announced
        c.send("AUTHENTICATE " + "A" * 400)
    c.send("PASS pw-alice")
    c.send("NICK alice")
    c.send("USER alice 0 * :Alice")
    c.send("CAP END")
    lines = c.until(("001",) + tuple(REGISTRATION_FAILURES), timeout=5)
    assert [m.command for m in lines if m.command in ("906", "001")] == ["906", "001"], lines
    assert lines[-1].params[0] == "alice"


def test_sasl_argument_over_400_bytes_is_905(irc_chatd):
    c = irc_chatd().irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    c.send("AUTHENTICATE PLAIN")
    c.expect("AUTHENTICATE", lambda m: m.params == ["+"])
    c.send("AUTHENTICATE " + "A" * 401)
    c.expect("905")


def test_sasl_again_after_success_is_907(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    assert c.authenticate_plain("alice", "pw-alice").command == "903"
    c.send("AUTHENTICATE PLAIN")
    c.expect("907")


def test_authenticate_after_the_welcome_907_only_when_logged_in(irc_chatd):
    """After the welcome, AUTHENTICATE from a client logged in to an account (PASS, SASL,
    REGISTER) is 907 (sasl-3.1: already authenticated); a guest never authenticated, so it
    gets 904 with how to log in (reconnect with SASL or PASS, or REGISTER), no
    "AUTHENTICATE +", and stays a guest.  (A guest was told 907, "You have already
    authenticated using SASL", which was false.)"""
    chatd = irc_chatd(guests=True)
    member = chatd.irc_login("member")
    member.send("AUTHENTICATE PLAIN")
    assert member.expect(("904", "907")).command == "907"
    guest = chatd.irc_connect("guest")
    assert guest.register("visitor", caps=["sasl"]).command == "001"
    guest.send("AUTHENTICATE PLAIN")
    answer = guest.expect(("904", "907"))
    assert answer.command == "904", answer.raw
    for way in ("SASL", "PASS", "REGISTER"):
        assert way in answer.last, answer.raw
    lines = guest.no_more("AUTHENTICATE")
    assert "900" not in commands(lines), lines
    guest.send("WHOIS visitor")
    assert "320" in commands(guest.until("318"))             # still a guest
    # Once its REGISTER made it an account, it is logged in: 907.
    guest.send("REGISTER * * :pw-visitor")
    assert registration_answer(guest).params[:2] == ["SUCCESS", "visitor"]
    guest.send("AUTHENTICATE PLAIN")
    assert guest.expect(("904", "907")).command == "907"


@pytest.mark.parametrize("size", [300, 322])
def test_sasl_in_400_byte_pieces(irc_chatd, size):
    """A payload whose base64 is exactly 400 bytes ends with "AUTHENTICATE +";
    a longer one comes in two pieces (sasl-3.1).  authzid = authcid, both 32
    bytes, to reach 300 bytes with a password of at most 256."""
    chatd = irc_chatd()
    name = "n" * 32
    password = "p" * (size - 2 * len(name) - 2)
    payload = plain_payload(name, password, authzid=name)
    assert len(payload) == size and len(password) <= 256
    chunks = b64_chunks(payload)
    assert len(chunks) == 2 and len(chunks[0]) == 400, chunks
    chatd.add_user(name, password)
    c = chatd.irc_connect(name)
    c.cap_ls()
    c.cap_req(["sasl"])
    final = c.authenticate_plain(name, password, authzid=name)
    assert final.command == "903", final.raw


@pytest.mark.parametrize("password", ["pw-alice", "pw-alice1", "pw-alice12"])
def test_sasl_whatever_the_base64_padding(irc_chatd, password):
    """Payloads of 15, 16 and 17 bytes: base64 without "=", with "==", with "="."""
    chatd = irc_chatd()
    chatd.add_user("alice", password)
    c = chatd.irc_connect()
    c.cap_ls()
    c.cap_req(["sasl"])
    final = c.authenticate_plain("alice", password)
    assert final.command == "903", (len(plain_payload("alice", password)), final.raw)


def test_sasl_unknown_name_registers_while_registration_is_open(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    assert c.register("newbie", password="pw-newbie", sasl=True).command == "001"
    assert "newbie" in chatd.ctl_ok("user", "list").split()
    # The same account logs in natively with that password.
    chatd.login("newbie")


def test_sasl_unknown_name_is_refused_while_registration_is_closed(irc_chatd):
    chatd = irc_chatd(registration=False)
    c = chatd.irc_connect()
    assert c.register("newbie", password="pw-newbie", sasl=True).command == "904"


# --- PASS, no password, guests ---

def test_pass_logs_in_a_registered_user(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    assert c.register("alice", password="pw-alice").command == "001"


def test_pass_without_cap_negotiation(irc_chatd):
    """A client that never sends CAP registers on NICK and USER alone."""
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    final = c.register("alice", password="pw-alice", cap_negotiation=False)
    assert final.command == "001", final.raw


def test_pass_wrong_password_is_refused(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    assert_refused(c, c.register("alice", password="nope"), "464")


def test_pass_registers_an_unknown_nick_while_registration_is_open(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    assert c.register("carol", password="pw-carol").command == "001"
    assert "carol" in chatd.ctl_ok("user", "list").split()
    # The welcome says the nick is an account now, as the native one says "registered".
    told = [m for m in c.welcome if m.command == "NOTICE"]
    assert [m.last for m in told] == ["Your nick carol is now a registered account: log in "
                                      "with its password from now on"], told
    c.send("QUIT")
    c.expect_closed()
    again = chatd.irc_connect()
    assert again.register("carol", password="pw-carol").command == "001"
    assert again.welcome[-1].command == "366" and not [m for m in again.welcome
                                                         if m.command == "NOTICE"]
    other = chatd.irc_connect()
    assert_refused(other, other.register("carol", password="guess"), "464")


def test_pass_for_an_unknown_nick_while_registration_is_closed(irc_chatd):
    chatd = irc_chatd(registration=False)
    c = chatd.irc_connect()
    final = c.register("carol", password="pw-carol")
    assert final.command != "001", final.raw
    lines = [final] + c.expect_closed()
    assert commands(lines)[-1:] == ["ERROR"], lines


def test_registered_nick_without_password_is_464_then_error(irc_chatd):
    chatd = irc_chatd(guests=True)
    chatd.add_user("alice")
    c = chatd.irc_connect()
    final = c.register("alice")
    assert final.command == "464", final.raw
    assert "SASL" in final.last or "PASS" in final.last, final.raw
    rest = c.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest


def test_unknown_nick_without_password_is_a_guest_when_guests_are_on(irc_chatd):
    chatd = irc_chatd(guests=True)
    c = chatd.irc_connect()
    final = c.register("visitor")
    assert final.command == "001" and final.params[0] == "visitor", final.raw
    assert "visitor" not in chatd.ctl_ok("user", "list").split()
    c.send("WHOIS visitor")
    lines = c.until("318")
    assert "320" in commands(lines), lines      # "is a guest"
    assert "330" not in commands(lines), lines  # no account


def test_unknown_nick_without_password_is_refused_when_guests_are_off(irc_chatd):
    chatd = irc_chatd(guests=False)
    c = chatd.irc_connect()
    final = c.register("visitor")
    assert final.command == "464", final.raw
    rest = c.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest


# --- before registration ---

@pytest.mark.parametrize("line", ["JOIN #lobby", "PRIVMSG #lobby :hi", "WHOIS alice",
                                  "NAMES #lobby", "CHATHISTORY LATEST #lobby * 10",
                                  "MOTD", "AWAY :x"])
def test_commands_before_registration_get_451(irc_chatd, line):
    c = irc_chatd().irc_connect()
    c.send(line)
    reply = c.expect("451")
    assert reply.params[0] == "*", reply.raw
    c.send("PING still-here")
    assert c.expect("PONG").last == "still-here"


def test_ping_cap_and_quit_work_before_registration(irc_chatd):
    c = irc_chatd().irc_connect()
    c.send("PING early")
    pong = c.expect("PONG")
    assert pong.last == "early"
    c.cap_ls()
    c.send("CAP LIST")
    listed = c.expect("CAP", lambda m: m.param(1) == "LIST")
    assert listed.params[0] == "*"
    c.send("QUIT :leaving")
    rest = c.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest


def test_cap_negotiation_holds_registration_until_cap_end(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    c.cap_ls()
    c.send("PASS pw-alice")
    c.send("NICK alice")
    c.send("USER alice 0 * :x")
    lines = c.sync()
    assert "001" not in commands(lines), lines
    c.send("CAP END")
    c.expect("001")


@pytest.mark.parametrize("nick", ["bad!nick", "a" * 33, "#chan", "-dash"])
def test_invalid_nick_is_432(irc_chatd, nick):
    c = irc_chatd(guests=True).irc_connect()
    c.send(f"NICK {nick}")
    reply = c.expect(("432", "001"))
    assert reply.command == "432", reply.raw


def test_nick_and_user_need_their_parameters(irc_chatd):
    c = irc_chatd().irc_connect()
    c.send("NICK")
    c.expect(("431", "461"))
    c.send("USER onlyone")
    c.expect("461")


def test_registration_must_finish_within_login_timeout(irc_chatd):
    c = irc_chatd(login_timeout=1).irc_connect()
    c.send("NICK slowpoke")
    rest = c.expect_closed(timeout=5)
    assert commands(rest)[-1:] == ["ERROR"], rest


# --- the welcome ---

def test_welcome_is_001_to_005_then_motd_then_the_default_room(irc_chatd):
    chatd = irc_chatd()
    chatd.ctl_ok("room", "topic", "lobby", "welcome", "all")
    c = chatd.irc_login("alice")
    cmds = commands(c.welcome)
    numerics = [x for x in cmds if x.isdigit() and x != "900"]   # 900: logged in
    assert numerics[:5] == ["001", "002", "003", "004"] + ["005"], cmds
    i005 = max(i for i, x in enumerate(cmds) if x == "005")
    after = cmds[i005 + 1:]
    # MOTD: 375 372... 376, or 422 "no MOTD"
    if "422" in after:
        motd_end = after.index("422")
    else:
        assert after[0] == "375" and "376" in after, cmds
        motd_end = after.index("376")
        assert set(after[1:motd_end]) <= {"372"}, cmds
    room = [m for m in c.welcome[i005 + 1 + motd_end + 1:] if m.command != "PRIVMSG"]
    join = room[0]
    assert join.command == "JOIN" and join.params[0] == "#lobby", room
    assert join.nick == "alice" and join.source == "alice!alice@chatd", join.raw
    rc = commands(room)
    assert rc[1:3] == ["332", "333"], rc
    topic = room[1]
    assert topic.params[1:] == ["#lobby", "welcome all"], topic.raw
    assert rc.index("353") < rc.index("366"), rc
    names = [m for m in room if m.command == "353"]
    assert "alice" in " ".join(m.last for m in names).split(), names
    end = room[rc.index("366")]
    assert end.params[1] == "#lobby", end.raw
    for m in c.welcome:
        if m.command.isdigit():
            assert m.source == "chatd" and m.params[0] == "alice", m.raw


def test_welcome_without_a_topic_has_no_332(irc_chatd):
    c = irc_chatd().irc_login("alice")
    cmds = commands(c.welcome)
    assert "332" not in cmds and "366" in cmds, cmds


def test_001_names_the_network_and_004_the_server(irc_chatd):
    c = irc_chatd().irc_login("alice")
    first = {m.command: m for m in c.welcome if m.command in ("001", "002", "004")}
    assert "alice" in first["001"].last
    assert first["004"].params[1] == "chatd", first["004"].raw


def test_server_name_setting_is_the_source_of_numerics(irc_chatd):
    c = irc_chatd(server_name="irc.example.test").irc_login("alice")
    welcome = [m for m in c.welcome if m.command == "001"][0]
    assert welcome.source == "irc.example.test", welcome.raw
    c.send("PING x")
    pong = c.expect("PONG")
    assert pong.source == "irc.example.test" and pong.params[0] == "irc.example.test"


def test_isupport_tells_chatds_limits(irc_chatd):
    chatd = irc_chatd(max_rooms_per_user=7, max_topic=100, history_memory=50)
    c = chatd.irc_login("alice")
    isupport = c.isupport
    assert isupport.get("CASEMAPPING") == "ascii", isupport
    assert isupport.get("CHANTYPES") == "#", isupport
    assert isupport.get("NICKLEN") == "32", isupport
    assert isupport.get("CHANNELLEN") == "33", isupport   # "#" and 32
    assert isupport.get("CHANLIMIT") == "#:7", isupport
    assert isupport.get("TOPICLEN") == "100", isupport
    assert isupport.get("CHATHISTORY") == "50", isupport
    assert isupport.get("NETWORK"), isupport
    assert isupport.get("PREFIX", "") in ("", "()"), isupport
    assert "UTF8ONLY" in isupport, isupport
    msgreftypes = isupport.get("MSGREFTYPES", "msgid,timestamp").split(",")
    assert set(msgreftypes) == {"msgid", "timestamp"}, isupport
    tokens = [t for m in c.welcome if m.command == "005" for t in m.params[1:-1]]
    assert len(tokens) == len({t.split("=")[0] for t in tokens}), tokens
    for m in c.welcome:
        if m.command == "005":
            assert len(m.params) <= 15 and len(m.params) - 2 <= 13, m.raw


def test_nicklen_and_channellen_are_true(irc_chatd):
    chatd = irc_chatd()
    longest = "n" + "x" * 31
    c = chatd.irc_login(longest)
    assert c.nick == longest
    room = "#r" + "y" * 31
    lines = c.join(room)
    assert lines[-1].command == "366", lines
    c.send("JOIN #r" + "y" * 32)
    assert c.expect(("403", "476", "479", "366")).command != "366"


def test_isupport_limits_hold_at_n_and_refuse_or_cut_beyond(irc_chatd):
    """What 005 announces holds: CHANLIMIT=#:N channels (the default one
    among them) and 405 for one more; TARGMAX=PRIVMSG:N targets and 407 for
    one more; AWAYLEN=N bytes of an away text kept whole, a longer one cut
    to N; TOPICLEN=N bytes of a topic kept whole, a longer one cut to N."""
    chatd = irc_chatd(max_rooms_per_user=4)
    alice = chatd.irc_login("alice")
    bob = chatd.irc_login("bob")
    isupport = alice.isupport
    chanlimit = int(isupport["CHANLIMIT"].split(":")[1])
    for i in range(1, chanlimit):       # in #lobby already
        assert alice.join(f"#c{i}")[-1].command == "366"
    alice.send(f"JOIN #c{chanlimit}")
    assert alice.expect(("405", "JOIN")).command == "405"

    targmax = int(dict(t.split(":") for t in isupport["TARGMAX"].split(","))["PRIVMSG"])
    alice.send(f"PRIVMSG {','.join(['bob'] * targmax)} :at the limit")
    for _ in range(targmax):
        bob.expect("PRIVMSG", lambda m: m.last == "at the limit")
    alice.no_more("407")
    alice.send(f"PRIVMSG {','.join(['bob'] * (targmax + 1))} :over it")
    alice.expect("407")

    awaylen = int(isupport["AWAYLEN"])
    for size in (awaylen, awaylen + 1):
        bob.send("AWAY :" + "a" * size)
        bob.expect("306")
        alice.send("WHOIS bob")
        away = [m for m in alice.until("318") if m.command == "301"]
        assert away and away[0].last == "a" * awaylen, away

    topiclen = int(isupport["TOPICLEN"])
    for size in (topiclen, topiclen + 1):
        alice.send(f"TOPIC #c1 :{'t' * size}")
        assert alice.expect("TOPIC").last == "t" * topiclen


def test_casemapping_ascii_one_account_one_room(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    final = c.register("ALICE", password="pw-alice", sasl=True)
    assert final.command == "001" and final.params[0] == "alice", final.raw
    c.send("JOIN #LOBBY")
    lines = c.sync()
    # Already in #lobby: nothing, or the answer names the channel as it is spelled.
    assert all(m.param(0) == "#lobby" for m in lines if m.command == "JOIN"), lines


def test_a_second_login_replaces_the_first_session(irc_chatd):
    chatd = irc_chatd()
    first = chatd.irc_login("alice", label="first")
    watcher = chatd.irc_login("bob")
    second = chatd.irc_login("alice", label="second")
    rest = first.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest
    assert second.nick == "alice"
    # bob sees alice go and come back in #lobby.
    watcher.expect("QUIT", lambda m: m.nick == "alice")
    watcher.expect("JOIN", lambda m: m.nick == "alice" and m.params[0] == "#lobby")


# --- TLS, plain_login ---

def tls_settings(pair):
    from conftest import free_port
    return {"tls_cert": str(pair[0]), "tls_key": str(pair[1]), "tls_port": free_port(),
            "irc_tls_port": free_port()}


def test_registration_over_tls(irc_chatd, ca, pair):
    chatd = irc_chatd(**tls_settings(pair))
    chatd.add_user("alice")
    c = chatd.irc_connect("tls", tls=True, cafile=str(ca.cert))
    assert c.register("alice", password="pw-alice", sasl=True).command == "001"
    plain = chatd.irc_connect("plain")   # loopback: plain_login's default lets it in
    assert plain.register("bob", password="pw-bob", sasl=True).command == "001"


def test_plain_login_deny_refuses_passwords_on_the_plain_port(irc_chatd, pair):
    settings = tls_settings(pair)
    chatd = irc_chatd(plain_login="deny", **settings)
    chatd.add_user("alice")
    c = chatd.irc_connect()
    c.send_raw(b"PASS pw-alice\r\nNICK alice\r\nUSER alice 0 * :x\r\n")
    lines = c.expect_closed()
    assert "001" not in commands(lines), lines
    said = " ".join(m.last or "" for m in lines)
    assert str(chatd.irc_tls_port) in said, lines


# --- draft/account-registration: REGISTER and VERIFY ---

REG_CAP = "draft/account-registration"


def cap_keys(value):
    """The keys of a capability value "k1,k2=v,..." (the spec's format)."""
    return {item.partition("=")[0] for item in (value or "").split(",") if item}


def registration_answer(c, verb="REGISTER", **timeout):
    """The answer to a REGISTER (or VERIFY): REGISTER SUCCESS, or FAIL REGISTER ..."""
    return c.expect(("FAIL", verb), lambda m: m.command == verb or m.param(0) == verb, **timeout)


def start_registration(c, nick, caps=()):
    """CAP LS 302 (holding registration until CAP END), the caps, NICK and USER."""
    offered = c.cap_ls("302")
    if caps:
        assert c.cap_req(list(caps)) == ("ACK", list(caps))
    c.send(f"NICK {nick}")
    c.send(f"USER {nick} 0 * :x")
    return offered


def test_cap_offered_with_before_connect_only(irc_chatd):
    c = irc_chatd().irc_connect()
    caps = c.cap_ls("302")
    assert REG_CAP in caps, caps
    # before-connect is true; chatd needs no e-mail and has no account name but the nick.
    assert cap_keys(caps[REG_CAP]) == {"before-connect"}, caps[REG_CAP]
    assert c.cap_req([REG_CAP]) == ("ACK", [REG_CAP])


def test_register_before_connect_then_the_welcome_and_every_login(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect("newbie")
    start_registration(c, "newbie")
    c.send("REGISTER * * :pw-newbie")
    lines = c.until("900")
    success = [m for m in lines if m.command == "REGISTER"]
    assert len(success) == 1 and success[0].params[:2] == ["SUCCESS", "newbie"], lines
    assert lines.index(success[0]) < len(lines) - 1, lines       # 900 after it
    assert lines[-1].params[2] == "newbie", lines[-1].raw         # logged in as newbie
    assert "001" not in commands(lines), lines                    # CAP END not sent yet
    assert "newbie" in chatd.ctl_ok("user", "list").split()
    c.send("CAP END")
    welcome = c.expect("001")
    assert welcome.params[0] == "newbie", welcome.raw
    c.expect("JOIN", lambda m: m.nick == "newbie" and m.params[0] == "#lobby")
    c.send("WHOIS newbie")
    whois = c.until("318")
    assert "330" in commands(whois) and "320" not in commands(whois), whois
    # The account is chatd's: SASL and PASS on IRC, and the native login.
    assert chatd.irc_login("newbie", sasl=True, label="sasl").nick == "newbie"
    assert chatd.irc_login("newbie", label="pass").nick == "newbie"
    chatd.login("newbie")
    other = chatd.irc_connect("guesser")
    assert_refused(other, other.register("newbie", password="guess"), "464")


def test_register_names_the_account_as_the_nick_in_any_case(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    start_registration(c, "Carol")
    c.send("REGISTER carol * :pw-carol")
    answer = registration_answer(c)
    assert answer.params[:2] == ["SUCCESS", "Carol"], answer.raw
    assert "Carol" in chatd.ctl_ok("user", "list").split()


def test_register_before_nick_needs_a_nick(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    c.send("REGISTER * * :pw-early")
    answer = registration_answer(c)
    assert answer.command == "FAIL" and answer.params[:3] == ["REGISTER", "NEED_NICK", "*"], \
        answer.raw
    # A nick then, and the same REGISTER goes through.
    c.send("NICK early")
    c.send("REGISTER * * :pw-early")
    assert registration_answer(c).params[:2] == ["SUCCESS", "early"]


def test_register_an_account_other_than_the_nick_is_refused(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    start_registration(c, "dave")
    c.send("REGISTER someoneelse * :pw-x")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "ACCOUNT_NAME_MUST_BE_NICK", "someoneelse"], \
        answer.raw
    users = chatd.ctl_ok("user", "list").split()
    assert "someoneelse" not in users and "dave" not in users, users


@pytest.mark.parametrize("account", ["b@d", "a" * 33, "-dash"])
def test_register_a_bad_account_name(irc_chatd, account):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    start_registration(c, "erin")
    c.send(f"REGISTER {account} * :pw-erin")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "BAD_ACCOUNT_NAME", account], answer.raw
    assert "erin" not in chatd.ctl_ok("user", "list").split()


def test_register_an_existing_account_is_account_exists(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    start_registration(c, "alice", caps=["sasl"])
    c.send("REGISTER * * :not-alices-password")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "ACCOUNT_EXISTS", "alice"], answer.raw
    # Nothing was checked or changed: the owner's password stands, and this
    # connection may still log in with it.
    assert c.authenticate_plain("alice", "pw-alice").command == "903"
    c.send("CAP END")
    assert c.expect("001").params[0] == "alice"
    chatd.login("alice")


def test_register_a_weak_or_unacceptable_password_then_a_good_one(irc_chatd):
    chatd = irc_chatd()
    c = chatd.irc_connect()
    start_registration(c, "frank")
    c.send("REGISTER * * :")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "WEAK_PASSWORD", "frank"], answer.raw
    c.send("REGISTER * * :" + "p" * 257)
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "UNACCEPTABLE_PASSWORD", "frank"], answer.raw
    c.send("REGISTER * * :bell\x07inside")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "UNACCEPTABLE_PASSWORD", "frank"], answer.raw
    assert "frank" not in chatd.ctl_ok("user", "list").split()
    # The client may try again (the spec's MAY): 256 bytes is a password.
    c.send("REGISTER * * :" + "p" * 256)
    assert registration_answer(c).params[:2] == ["SUCCESS", "frank"]
    c.send("CAP END")
    assert c.expect("001").params[0] == "frank"


def test_empty_pass_registers_nothing(irc_chatd):
    """The same rule without REGISTER: an unknown nick's empty PASS is no password."""
    chatd = irc_chatd()
    c = chatd.irc_connect()
    c.cap_ls()
    c.send("PASS :")
    c.send("NICK gina")
    c.send("USER gina 0 * :x")
    c.send("CAP END")
    final = c.expect(("001", "464"))
    assert final.command == "464", final.raw
    assert "gina" not in chatd.ctl_ok("user", "list").split()


def test_register_again_or_after_sasl_is_already_authenticated(irc_chatd):
    chatd = irc_chatd()
    chatd.add_user("alice")
    c = chatd.irc_connect()
    start_registration(c, "henry", caps=["sasl"])
    c.send("REGISTER * * :pw-henry")
    assert registration_answer(c).params[:2] == ["SUCCESS", "henry"]
    c.send("REGISTER * * :pw-henry")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "ALREADY_AUTHENTICATED", "henry"], answer.raw
    c.send("VERIFY henry 123456")
    answer = registration_answer(c, "VERIFY")
    assert answer.params[:3] == ["VERIFY", "ALREADY_AUTHENTICATED", "henry"], answer.raw
    # After SASL, before registration ends.
    d = chatd.irc_connect()
    start_registration(d, "alice", caps=["sasl"])
    assert d.authenticate_plain("alice", "pw-alice").command == "903"
    d.send("REGISTER * * :pw-other")
    answer = registration_answer(d)
    assert answer.params[:3] == ["REGISTER", "ALREADY_AUTHENTICATED", "alice"], answer.raw
    # After registration, for a client logged in with PASS.
    e = chatd.irc_login("ivan")
    e.send("REGISTER * * :pw-other")
    answer = registration_answer(e)
    assert answer.params[:3] == ["REGISTER", "ALREADY_AUTHENTICATED", "ivan"], answer.raw


def test_register_needs_three_parameters(irc_chatd):
    c = irc_chatd().irc_connect()
    start_registration(c, "judy")
    c.send("REGISTER * pw-judy")
    c.expect("461", lambda m: m.param(1) == "REGISTER")
    c.send("VERIFY judy")
    c.expect("461", lambda m: m.param(1) == "VERIFY")


def test_verify_has_no_code_to_check(irc_chatd):
    c = irc_chatd().irc_connect()
    start_registration(c, "kate")
    c.send("VERIFY kate 123456")
    answer = registration_answer(c, "VERIFY")
    assert answer.params[:3] == ["VERIFY", "INVALID_CODE", "kate"], answer.raw


def test_registration_off_no_cap_and_disallowed(irc_chatd):
    chatd = irc_chatd(registration=False)
    c = chatd.irc_connect()
    caps = start_registration(c, "leo")
    assert REG_CAP not in caps, caps
    assert c.cap_req([REG_CAP]) == ("NAK", [REG_CAP])
    c.send("REGISTER * * :pw-leo")
    answer = registration_answer(c)
    assert answer.params[:3] == ["REGISTER", "DISALLOWED", "leo"], answer.raw
    c.send("VERIFY leo 123456")
    answer = registration_answer(c, "VERIFY")
    assert answer.params[:3] == ["VERIFY", "DISALLOWED", "leo"], answer.raw
    assert "leo" not in chatd.ctl_ok("user", "list").split()
    # Turned on by a reload: offered to the next CAP LS, and REGISTER works.
    before = chatd.log_text().count("reloaded")
    chatd.settings["registration"] = True
    chatd.write_config()
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("reloaded") > before, "the reload")
    assert REG_CAP in c.cap_ls("302")
    c.send("REGISTER * * :pw-leo")
    assert registration_answer(c).params[:2] == ["SUCCESS", "leo"]


def test_a_guest_registers_its_nick(irc_chatd):
    chatd = irc_chatd(guests=True)
    guest = chatd.irc_connect("visitor")
    assert guest.register("visitor").command == "001"
    bob = chatd.irc_login("bob", caps=["account-tag"])
    guest.expect("JOIN", lambda m: m.nick == "bob")
    guest.privmsg("#lobby", "as a guest")
    said = bob.expect("PRIVMSG", lambda m: m.last == "as a guest")
    assert "account" not in said.tags, said.raw
    def listed_as_guest():
        line = [ln for ln in chatd.ctl_ok("users").splitlines() if ln.split()[:1] == ["visitor"]]
        assert len(line) == 1, line
        return line[0].split()[-1] == "guest"

    assert listed_as_guest()
    guest.send("REGISTER visitor * :pw-visitor")
    lines = guest.until("900")
    success = [m for m in lines if m.command == "REGISTER"]
    assert success and success[0].params[:2] == ["SUCCESS", "visitor"], lines
    assert "visitor" in chatd.ctl_ok("user", "list").split()
    assert not listed_as_guest()
    guest.send("WHOIS visitor")
    whois = guest.until("318")
    assert "330" in commands(whois) and "320" not in commands(whois), whois
    guest.privmsg("#lobby", "as an account")
    said = bob.expect("PRIVMSG", lambda m: m.last == "as an account")
    assert said.tags.get("account") == "visitor", said.raw
    guest.send("REGISTER * * :pw-visitor")
    answer = registration_answer(guest)
    assert answer.params[:3] == ["REGISTER", "ALREADY_AUTHENTICATED", "visitor"], answer.raw
    # The account logs in natively with that password (and takes the session over).
    chatd.login("visitor")


def test_a_guest_cannot_register_a_nick_registered_meanwhile(irc_chatd):
    chatd = irc_chatd(guests=True)
    guest = chatd.irc_connect("visitor")
    assert guest.register("visitor").command == "001"
    chatd.add_user("visitor", "owners-password")
    guest.send("REGISTER * * :pw-visitor")
    answer = registration_answer(guest)
    assert answer.params[:3] == ["REGISTER", "ACCOUNT_EXISTS", "visitor"], answer.raw
    guest.send("WHOIS visitor")
    assert "320" in commands(guest.until("318"))        # still a guest
    chatd.login("visitor", "owners-password")


def test_registering_an_online_guests_nick_replaces_the_guest(irc_chatd):
    """As with PASS: a guest holds no account, so registering its nick takes it over."""
    chatd = irc_chatd(guests=True)
    guest = chatd.irc_connect("guest")
    assert guest.register("mallory").command == "001"
    c = chatd.irc_connect("owner")
    start_registration(c, "mallory")
    c.send("REGISTER * * :pw-mallory")
    assert registration_answer(c).params[:2] == ["SUCCESS", "mallory"]
    c.send("CAP END")
    assert c.expect("001").params[0] == "mallory"
    rest = guest.expect_closed()
    assert commands(rest)[-1:] == ["ERROR"], rest


def test_plain_login_deny_refuses_register_on_the_plain_port(irc_chatd, pair):
    chatd = irc_chatd(plain_login="deny", **tls_settings(pair))
    c = chatd.irc_connect()
    c.cap_ls()
    c.send("NICK nora")
    c.send("REGISTER * * :pw-nora")
    lines = c.expect_closed()
    fails = [m for m in lines if m.command == "FAIL"]
    assert fails and fails[0].params[:3] == ["REGISTER", "DISALLOWED", "nora"], lines
    assert commands(lines)[-1:] == ["ERROR"], lines
    assert str(chatd.irc_tls_port) in fails[0].last, lines
    assert "nora" not in chatd.ctl_ok("user", "list").split()


def test_a_guests_register_waits_for_a_hash_turn_at_most_login_timeout(irc_chatd):
    """One hash slot and a hash that takes longer than login_timeout (yescrypt cost 11,
    the highest: 2-4 s on 2 shared cores; cost 9 took under 1 s on a quiet machine, and both
    registered; login_timeout 1 s): of two guests registering at once one gets its
    account, the other TEMPORARILY_UNAVAILABLE once its second is up, stays connected as
    a guest, and registers on its next try."""
    chatd = irc_chatd(guests=True, hash_cost=11, hash_concurrency=1, login_timeout=1)
    first = chatd.irc_connect("first")
    assert first.register("first").command == "001"
    second = chatd.irc_connect("second")
    assert second.register("second").command == "001"
    first.send("REGISTER * * :pw-first")
    second.send("REGISTER * * :pw-second")
    answers = {c.nick: registration_answer(c, "REGISTER", timeout=30).params
               for c in (first, second)}
    won = [n for n, a in answers.items() if a[0] == "SUCCESS"]
    assert len(won) == 1, answers
    waited = "second" if won == ["first"] else "first"
    assert answers[waited][:3] == ["REGISTER", "TEMPORARILY_UNAVAILABLE", waited], answers
    assert chatd.ctl_ok("user", "list").split().count(won[0]) == 1
    assert waited not in chatd.ctl_ok("user", "list").split()
    again = first if waited == "first" else second
    again.send("WHOIS " + waited)
    assert "320" in commands(again.until("318"))         # still a guest, still connected
    again.send(f"REGISTER * * :pw-{waited}")
    assert registration_answer(again, "REGISTER", timeout=30).params[:2] == ["SUCCESS", waited]
    chatd.login(waited, f"pw-{waited}")


# --- a long account parameter: the FAIL line keeps its description ---

NAME_RULE = ("An account name is 1-32 letters, digits, '_', '.' or '-', starting with a letter "
             "or digit")
NO_VERIFY = "chatd has no verification step: REGISTER logs you in at once"


def longest_param(head, tail, char):
    """char repeated as often as a 510-byte line HEAD PARAM TAIL holds (IRC's 512 with CR LF)."""
    return char * ((510 - len(head) - len(tail)) // len(char.encode("utf-8")))


def assert_whole_fail(answer, verb, code, sent, text):
    """FAIL VERB CODE ACCOUNT :TEXT with its text whole (the strict client checked that the line
    is valid UTF-8 within 512 bytes); ACCOUNT is what was sent, shortened, or *."""
    assert answer.command == "FAIL" and answer.params[:2] == [verb, code], answer.raw
    assert len(answer.params) == 4 and answer.last == text, answer.raw
    echoed = answer.params[2]
    assert echoed == "*" or (echoed and sent.startswith(echoed)), answer.raw


@pytest.mark.parametrize("char", ["a", "\u00e9"])
def test_a_long_account_parameter_keeps_the_fail_description(irc_chatd, char):
    """REGISTER and VERIFY with the longest account parameter a line holds (ASCII, and
    two-byte characters), before the welcome and as a guest after it, behind the longest
    nick: every FAIL line keeps its description.  (Echoed whole, the parameter pushed the
    line past 512 bytes and the description was cut off.)"""
    chatd = irc_chatd(guests=True)
    nick = "n" + "x" * 31
    c = chatd.irc_connect()
    start_registration(c, nick)
    for welcomed in (False, True):
        account = longest_param("REGISTER ", " * pw", char)
        c.send(f"REGISTER {account} * pw")
        assert_whole_fail(registration_answer(c), "REGISTER", "BAD_ACCOUNT_NAME", account,
                          NAME_RULE)
        account = longest_param("VERIFY ", " 1", char)
        c.send(f"VERIFY {account} 1")
        assert_whole_fail(registration_answer(c, "VERIFY"), "VERIFY", "INVALID_CODE", account,
                          NO_VERIFY)
        if not welcomed:
            c.send("CAP END")
            assert c.expect("001").params[0] == nick
    assert nick not in chatd.ctl_ok("user", "list").split()


def test_a_long_verify_parameter_keeps_the_description_while_registration_is_off(irc_chatd):
    chatd = irc_chatd(registration=False)
    c = chatd.irc_connect()
    start_registration(c, "n" + "x" * 31)
    account = longest_param("VERIFY ", " 1", "v")
    c.send(f"VERIFY {account} 1")
    assert_whole_fail(registration_answer(c, "VERIFY"), "VERIFY", "DISALLOWED", account,
                      "Registration is closed here")


# --- a guest online when chatctl user add registers its name ---

def history_names(chatd, text):
    """The name field of the history file's records whose text is text (~NAME: a guest's)."""
    names = []
    for line in chatd.history_path.read_text().splitlines():
        fields = line.split(" ", 5)
        if len(fields) == 6 and fields[3] == "msg" and fields[5] == text:
            names.append(fields[4])
    return names


def test_a_guest_online_when_its_name_is_added_stays_a_guest_until_the_account_logs_in(
        irc_chatd):
    """guests = true: an IRC guest and a native guest online when chatctl user add registers
    their names stay guests (docs/SECURITY.md): what they say after it carries no account=
    (live and in CHATHISTORY) and the history file records it as ~NAME, WHOIS still says
    320, REGISTER is ACCOUNT_EXISTS.  The account's first login (IRC PASS, native) replaces
    each guest (ERROR / BYE replaced), and only then do lines under the name carry account=."""
    chatd = irc_chatd(guests=True)
    bob = chatd.irc_login("bob", caps=["account-tag", "batch", "draft/chathistory"])
    guest = chatd.irc_connect("irc-guest")
    assert guest.register("visitor").command == "001"
    native = chatd.connect("native-guest")
    native.expect_hello()
    native.send_line("roamer")
    native.expect("PASS", "new")
    native.send_line("")
    native.finish_login()
    bob.expect("JOIN", lambda m: m.nick == "roamer")

    chatd.add_user("visitor")
    chatd.add_user("roamer")
    guest.privmsg("#lobby", "visitor after user add")
    native.say("roamer after user add")
    for nick in ("visitor", "roamer"):
        said = bob.expect("PRIVMSG", lambda m, n=nick: m.last == f"{n} after user add")
        assert said.nick == nick and "account" not in said.tags, said.raw
        assert history_names(chatd, f"{nick} after user add") == [f"~{nick}"]
    bob.send("CHATHISTORY LATEST #lobby * 10")
    replayed = [m for m in bob.until("BATCH", lambda m: m.params[0].startswith("-"))
                if m.command == "PRIVMSG"]
    assert sorted((m.nick, m.tags.get("account")) for m in replayed) == \
        [("roamer", None), ("visitor", None)], replayed
    guest.send("WHOIS visitor")
    assert "320" in commands(guest.until("318"))
    guest.send("REGISTER * * :pw-visitor")
    assert registration_answer(guest).params[:3] == ["REGISTER", "ACCOUNT_EXISTS", "visitor"]

    owner = chatd.irc_login("visitor", label="owner")           # pw-visitor: add_user's
    gone = guest.expect_closed()
    assert gone and gone[-1].command == "ERROR" and "replaced" in gone[-1].last, gone
    native_owner = chatd.login("roamer")
    gone = native.read_until_closed()
    assert gone and gone[-1].tag == "BYE" and gone[-1][0] == "replaced", gone
    owner.privmsg("#lobby", "visitor as the account")
    native_owner.say("roamer as the account")
    for nick in ("visitor", "roamer"):
        said = bob.expect("PRIVMSG", lambda m, n=nick: m.last == f"{n} as the account")
        assert said.tags.get("account") == nick, said.raw
        assert history_names(chatd, f"{nick} as the account") == [nick]
        assert history_names(chatd, f"{nick} after user add") == [f"~{nick}"]
