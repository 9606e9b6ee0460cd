"""
test_irc_clients.py - real IRC clients (WeeChat, irssi, The Lounge in
chromium; drivers in ircclients.py) logging in, joining #lobby, talking to
each other and coming back after a drop.

The server is chosen by IRC_CLIENTS_SERVER: "chatd" (the default: chatd's
IRC port; the tests are skipped while chatd has no irc_port setting) or
"ngircd" (ngIRCd as a stand-in, with a server password instead of
accounts).  The SASL tests at the end need no server: a scripted peer
(ircservers.SaslRecorder) checks what each client sends.
"""

import os
import shutil
from pathlib import Path

import pytest

from conftest import CHATD_BIN
from ircclients import Irssi, Lounge, WeeChat
from ircservers import ChatdIrc, Ngircd, NoSasl, SaslRecorder, chatd_has_irc

SERVER = os.environ.get("IRC_CLIENTS_SERVER", "chatd")
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
CHANNEL = "#lobby"
# ngIRCd's NICKLEN is 9: the nicks fit.
ALICE, BOB, CAROL = "alice", "bob", "carol"


@pytest.fixture
def irc_server(request, tmp_path):
    """The IRC server the clients connect to (ircservers.py: host, port,
    login(nick, sasl), restart()), stopped at teardown."""
    if SERVER == "ngircd":
        server = Ngircd(tmp_path / "ngircd").start()
        yield server
        server.stop()
    elif SERVER == "chatd":
        ok, why = chatd_has_irc(CHATD_BIN, tmp_path / "probe")
        if not ok:
            pytest.skip(f"chatd has no IRC port yet ({why}); "
                        "IRC_CLIENTS_SERVER=ngircd runs these tests against ngIRCd")
        server = ChatdIrc(request.getfixturevalue("chatd_factory")).start()
        yield server  # chatd_factory stops chatd
    else:
        raise pytest.UsageError(f"IRC_CLIENTS_SERVER={SERVER!r}: chatd or ngircd")


@pytest.fixture
def clients(irc_server, tmp_path):
    """make(Driver, nick, sasl=None, **kwargs) -> a started client logged in
    as the server's login(nick) says; every one is closed at teardown."""
    made = []

    def make(driver, nick, sasl=None, start=True, **kwargs):
        if sasl is None:
            sasl = irc_server.name == "chatd"
        try:
            login = irc_server.login(nick, sasl=sasl)
        except NoSasl as err:
            pytest.skip(str(err))
        client = driver(tmp_path / f"{driver.kind}-{nick}-{len(made)}", irc_server.port,
                        login.nick, login.password, sasl=login.sasl, host=irc_server.host,
                        **kwargs)
        made.append(client)
        return client.start() if start else client

    yield make
    for client in made:
        client.close()


def exchange(a, b, channel, tag):
    """a says something b sees, then b says something a sees."""
    text_a = f"{tag}: from {a.nick} to {b.nick}"
    a.say(channel, text_a)
    b.wait_message(channel, a.nick, text_a)
    text_b = f"{tag}: from {b.nick} to {a.nick}, with ümlauts"
    b.say(channel, text_b)
    a.wait_message(channel, b.nick, text_b)
    # Each also shows its own message.
    a.wait_message(channel, a.nick, text_a)
    b.wait_message(channel, b.nick, text_b)


def test_weechat_and_irssi_talk_both_ways(clients):
    alice = clients(WeeChat, ALICE)
    alice.wait_joined(CHANNEL)
    bob = clients(Irssi, BOB)
    bob.wait_joined(CHANNEL)
    alice.wait_joined(CHANNEL, nick=BOB)
    exchange(alice, bob, CHANNEL, "first")
    exchange(bob, alice, CHANNEL, "second")


def test_a_wrong_password_is_refused(clients, irc_server):
    if irc_server.name == "ngircd":
        login = irc_server.login(ALICE)
    else:
        login = irc_server.login(ALICE, sasl=False)
    alice = clients(WeeChat, ALICE, start=False, autoreconnect=False)
    alice.password = login.password + "-wrong"
    alice.sasl = False
    alice.start()
    alice.wait_line(None, r"(?i)password", timeout=15)
    alice.wait_line(None, r"disconnected from server")
    assert alice.lines(CHANNEL) == []


def test_a_wrong_sasl_password_is_refused(clients):
    alice = clients(WeeChat, ALICE, sasl=True, start=False, autoreconnect=False)
    alice.password += "-wrong"
    alice.start()
    # The server's 904 "SASL authentication failed"; with sasl_fail
    # disconnect (ircclients.py), WeeChat then leaves.
    alice.wait_line(None, r"(?i)sasl authentication failed", timeout=15)
    alice.wait_line(None, r"disconnected from server")
    assert alice.lines(CHANNEL) == []


def test_a_client_reconnects(clients):
    alice = clients(WeeChat, ALICE)
    alice.wait_joined(CHANNEL)
    bob = clients(Irssi, BOB)
    bob.wait_joined(CHANNEL)
    alice.wait_joined(CHANNEL, nick=BOB)

    # WeeChat leaves and comes back by hand.
    since_bob = bob.mark(CHANNEL)
    since_alice = alice.mark(CHANNEL)
    alice.disconnect()
    bob.wait_line(CHANNEL, rf"^-!- {ALICE} \[.*\] has quit", since=since_bob)
    alice.connect()
    alice.wait_joined(CHANNEL, since=since_alice)
    bob.wait_joined(CHANNEL, nick=ALICE, since=since_bob)
    exchange(alice, bob, CHANNEL, "after weechat came back")

    # irssi likewise.
    since_bob = bob.mark(CHANNEL)
    since_alice = alice.mark(CHANNEL)
    bob.disconnect()
    alice.wait_line(CHANNEL, rf"^<--\t{BOB} .*has quit", since=since_alice)
    bob.connect()
    bob.wait_joined(CHANNEL, since=since_bob)
    alice.wait_joined(CHANNEL, nick=BOB, since=since_alice)
    exchange(bob, alice, CHANNEL, "after irssi came back")


def test_clients_come_back_after_a_server_restart(clients, irc_server):
    alice = clients(WeeChat, ALICE)
    alice.wait_joined(CHANNEL)
    bob = clients(Irssi, BOB)
    bob.wait_joined(CHANNEL)
    since_alice, since_bob = alice.mark(CHANNEL), bob.mark(CHANNEL)
    irc_server.restart()
    # Both reconnect on their own (ircclients.py sets the delays to 1 s) and
    # rejoin the channel.
    alice.wait_joined(CHANNEL, since=since_alice, timeout=30)
    bob.wait_joined(CHANNEL, since=since_bob, timeout=30)
    since_alice = alice.mark(CHANNEL)
    exchange(alice, bob, CHANNEL, "after the restart")


def save_artifact(path):
    """Keeps a copy of path in build/test-artifacts/ when that directory exists."""
    if ARTIFACTS.is_dir():
        shutil.copy(path, ARTIFACTS / path.name)


def test_the_lounge_in_chromium(clients, tmp_path):
    alice = clients(WeeChat, ALICE)
    alice.wait_joined(CHANNEL)
    carol = clients(Lounge, CAROL)
    carol.wait_joined(CHANNEL)
    alice.wait_joined(CHANNEL, nick=CAROL)

    alice.say(CHANNEL, "hello carol, from weechat")
    carol.wait_message(CHANNEL, ALICE, "hello carol, from weechat")
    carol.say(CHANNEL, "hello alice, from the lounge")
    alice.wait_message(CHANNEL, CAROL, "hello alice, from the lounge")
    carol.wait_message(CHANNEL, CAROL, "hello alice, from the lounge")

    shown = [(m["from"], m["text"]) for m in carol.messages(CHANNEL) if m["type"] == "message"]
    assert shown == [(ALICE, "hello carol, from weechat"),
                     (CAROL, "hello alice, from the lounge")]
    shot = carol.screenshot(tmp_path / "thelounge-lobby.png")
    assert shot.stat().st_size > 10000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_artifact(shot)


# --- SASL PLAIN as each driver sets it up, checked against a scripted peer ---

@pytest.fixture
def recorder():
    peer = SaslRecorder(password="sasl-secret").start()
    yield peer
    peer.close()


@pytest.mark.parametrize("driver", [WeeChat, Irssi, Lounge], ids=lambda d: d.kind)
def test_sasl_plain_is_what_the_client_sends(driver, recorder, tmp_path):
    with driver(tmp_path / driver.kind, recorder.port, "dave", "sasl-secret", sasl=True,
                host=recorder.host) as client:
        client.start()
        client.wait_joined(CHANNEL)
        assert [(authcid, password) for _, authcid, password in recorder.credentials] == \
            [("dave", "sasl-secret")]
        assert not any(line.startswith("PASS") for line in recorder.received)
        client.quit()


def test_the_weechat_setup_names_sasl_plain(tmp_path):
    client = WeeChat(tmp_path, 6667, "dave", "sasl-secret", sasl=True)
    cmds = client.setup_commands("3.8")
    assert "/set irc.server.chatd.sasl_mechanism plain" in cmds
    assert "/set irc.server.chatd.sasl_username dave" in cmds
    assert '/set irc.server.chatd.sasl_password "sasl-secret"' in cmds
    assert not any(".password " in c for c in cmds)
    assert "/set irc.server.chatd.tls off" in client.setup_commands("4.1")
    plain = WeeChat(tmp_path, 6667, "dave", "server-pw").setup_commands("3.8")
    assert '/set irc.server.chatd.password "server-pw"' in plain
    assert not any("sasl" in c for c in plain)


def test_the_irssi_config_names_sasl_plain(tmp_path):
    text = Irssi(tmp_path, 6667, "dave", "sasl-secret", sasl=True).config_text()
    assert 'sasl_mechanism = "PLAIN";' in text
    assert 'sasl_username = "dave";' in text
    assert 'sasl_password = "sasl-secret";' in text
    assert "password = \"sasl-secret\"; " not in text.split("chatnets")[0]
    plain = Irssi(tmp_path, 6667, "dave", "server-pw").config_text()
    assert 'password = "server-pw";' in plain.split("chatnets")[0]
    assert "sasl" not in plain


def test_drivers_refuse_values_they_cannot_quote(tmp_path):
    for bad in ('pa"ss', "pa;ss", "pa$ss", "pa\nss"):
        with pytest.raises(ValueError):
            WeeChat(tmp_path, 6667, "dave", bad)
    with pytest.raises(ValueError):
        Irssi(tmp_path, 6667, "dave", None, sasl=True)


def test_sasl_on_ngircd_is_refused_by_the_fixture(tmp_path):
    with pytest.raises(NoSasl):
        Ngircd(tmp_path).login("dave", sasl=True)
