"""
test_irc_clients.py - real IRC clients (WeeChat, irssi, The Lounge in
chromium; drivers in ircclients.py) logging in, joining #lobby, talking to
each other and coming back after a drop; and, on chatd, sitting in a room
#dev that a user of chatd's own client `chat` made: reading its history,
talking with that user both ways and, after a reconnect, reading what was
said while they were away.

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

from chatclient import RunningPlain
from conftest import CHATD_BIN
from ircclients import Irssi, Lounge, WeeChat
from ircservers import ChatdIrc, Ngircd, NoSasl, SaslRecorder, chatd_has_irc

SERVER = os.environ.get("IRC_CLIENTS_SERVER", "chatd")
# What a test keeps for people to look at (The Lounge's screenshot): beside
# the chatd under test (BUILD/test-artifacts: one per build that ran).
ARTIFACTS = Path(CHATD_BIN).parent / "test-artifacts"
CHANNEL = "#lobby"
# ngIRCd's NICKLEN is 9: the nicks fit.
ALICE, BOB, CAROL = "alice", "bob", "carol"
# The user of chatd's own client, and the room it makes.
NINA, DEV = "nina", "#dev"


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


def test_irssi_sets_user_mode_i_without_an_error(clients):
    """irssi sends MODE nick +i on every connect: its status window shows
    the mode set, not 501 Unknown MODE flag."""
    bob = clients(Irssi, BOB)
    bob.wait_joined(CHANNEL)
    bob.command("/window 1")
    bob.wait_screen(r"[Mm]ode.*\+i.*" + BOB)
    assert "Unknown MODE flag" not in bob.screen(history=True), bob.screen(history=True)


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


# --- with a user of chatd's own client (chatd only) ---

class Native:
    """chatd's own client, chat, in its plain mode (chatclient.RunningPlain):
    lines go to its stdin as typed, and every line the server sends it is
    printed (docs/PROTOCOL.md: MSG room id time name text, JOIN room time
    name text, PART room time name reason text)."""

    def __init__(self, irc_server, name):
        login = irc_server.login(name, sasl=False)  # the account, made by chatctl
        self.name = name
        self.room = None
        self.chat = RunningPlain(["--name", name, irc_server.host, str(irc_server.daemon.port)],
                                 password=login.password)
        self.wait(lambda words: words == ["OK", "-", "logged", "in", "as", name])

    def mark(self):
        return len(self.chat.lines)

    def wait(self, match, since=0, timeout=10.0, split=-1):
        """The first printed line from index since on whose words (str.split
        with maxsplit split) match."""
        return self.chat.wait_line(lambda line: match(line.split(" ", split)), timeout, since)

    def join(self, channel):
        """/join ROOM as typed: makes the room, which becomes the current one."""
        self.room = channel.lstrip("#")
        since = self.mark()
        self.chat.send(f"/join {self.room}")
        self.wait(lambda w: w == ["OK", "-", "joined", self.room], since)

    def say(self, text):
        """A line to the current room; returns once chatd stored it (OK ID sent)."""
        since = self.mark()
        self.chat.send(text)
        self.wait(lambda w: len(w) == 3 and w[0] == "OK" and w[2] == "sent", since)

    def wait_message(self, nick, text, since=0):
        return self.wait(lambda w: w[:2] == ["MSG", self.room] and w[4:] == [nick, text],
                         since, split=5)

    def wait_joined(self, nick, since=0):
        return self.wait(lambda w: w[:2] == ["JOIN", self.room] and w[3:4] == [nick], since)

    def wait_left(self, nick, since=0):
        return self.wait(lambda w: w[:2] == ["PART", self.room] and w[3:4] == [nick], since)

    def finish(self):
        """End of input: chat quits, and exits 0 once every line was acknowledged."""
        rc, err = self.chat.finish()
        assert rc == 0, err

    def kill(self):
        self.chat.kill()


@pytest.fixture
def native(irc_server):
    """native(name) -> a Native logged in to the chatd of irc_server (killed at
    teardown if still running); skipped on ngIRCd, which has no chat users."""
    if irc_server.name != "chatd":
        pytest.skip("a chat user needs chatd")
    made = []

    def make(name):
        made.append(Native(irc_server, name))
        return made[-1]

    yield make
    for user in made:
        user.kill()


def test_weechat_and_irssi_with_a_user_of_chat(clients, native):
    """nina (chat) makes #dev and talks there; WeeChat (SASL PLAIN) and irssi
    (PASS) join it, read its history, talk with her both ways, and each,
    back after a disconnect, reads what she said meanwhile."""
    nina = native(NINA)
    nina.join(DEV)
    history = ["before anyone came on IRC", "a second line, with ümlauts"]
    for text in history:
        nina.say(text)

    # One after the other: bob's JOIN reaches alice only if she was in #dev first.
    alice = clients(WeeChat, ALICE, sasl=True, channels=(DEV,))
    alice.wait_joined(DEV)
    bob = clients(Irssi, BOB, sasl=False, channels=(DEV,))
    for client in (alice, bob):
        client.wait_joined(DEV)
        at = 0
        for text in history:  # replayed on JOIN, in order
            line = client.wait_message(DEV, NINA, text, since=at)
            at = client.lines(DEV).index(line, at) + 1
    alice.wait_joined(DEV, nick=BOB)
    nina.wait_joined(ALICE)
    nina.wait_joined(BOB)

    nina.say("hello both, from chat")
    alice.wait_message(DEV, NINA, "hello both, from chat")
    bob.wait_message(DEV, NINA, "hello both, from chat")
    alice.say(DEV, "hello nina, from weechat")
    nina.wait_message(ALICE, "hello nina, from weechat")
    bob.wait_message(DEV, ALICE, "hello nina, from weechat")
    bob.say(DEV, "hello nina, from irssi: ümlauts")
    nina.wait_message(BOB, "hello nina, from irssi: ümlauts")
    alice.wait_message(DEV, BOB, "hello nina, from irssi: ümlauts")

    # Each leaves, nina speaks, and the replay of the rejoin shows it.
    for client, other in ((alice, bob), (bob, alice)):
        since, since_nina = client.mark(DEV), nina.mark()
        client.disconnect()
        nina.wait_left(client.nick, since_nina)
        missed = f"said while {client.nick} was away"
        nina.say(missed)
        other.wait_message(DEV, NINA, missed)
        client.connect()
        client.wait_joined(DEV, since=since)
        client.wait_message(DEV, NINA, missed, since=since)
        nina.wait_joined(client.nick, since_nina)
        back = f"{client.nick} is back"
        client.say(DEV, back)
        nina.wait_message(client.nick, back, since_nina)
        other.wait_message(DEV, client.nick, back)
    nina.finish()


def save_artifact(path):
    """Keeps a copy of path in ARTIFACTS (replacing the last run's)."""
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)


def test_the_lounge_in_chromium(clients, native, tmp_path):
    """A person's view in a real browser: the history of #dev, a message from
    chatd's own client and one back, and one from WeeChat."""
    nina = native(NINA)
    nina.join(DEV)
    history = ["the build is green again", "who has the release notes?"]
    for text in history:
        nina.say(text)
    alice = clients(WeeChat, ALICE, channels=(DEV,))
    alice.wait_joined(DEV)
    carol = clients(Lounge, CAROL, channels=(DEV,))  # SASL PLAIN
    carol.wait_joined(DEV)
    alice.wait_joined(DEV, nick=CAROL)
    nina.wait_joined(CAROL)
    # The replay on JOIN: the history, before anything said since.
    for text in history:
        carol.wait_message(DEV, NINA, text)

    nina.say("hello carol, from chat")
    carol.wait_message(DEV, NINA, "hello carol, from chat")
    carol.say(DEV, "hello nina, from the lounge: ümlauts too")
    nina.wait_message(CAROL, "hello nina, from the lounge: ümlauts too")
    alice.wait_message(DEV, CAROL, "hello nina, from the lounge: ümlauts too")
    carol.wait_message(DEV, CAROL, "hello nina, from the lounge: ümlauts too")
    alice.say(DEV, "hello carol, from weechat")
    carol.wait_message(DEV, ALICE, "hello carol, from weechat")
    nina.wait_message(ALICE, "hello carol, from weechat")

    shown = [(m["from"], m["text"]) for m in carol.messages(DEV) if m["type"] == "message"]
    assert shown == [*((NINA, text) for text in history),
                     (NINA, "hello carol, from chat"),
                     (CAROL, "hello nina, from the lounge: ümlauts too"),
                     (ALICE, "hello carol, from weechat")]
    shot = carol.screenshot(tmp_path / "thelounge-dev.png")
    assert shot.stat().st_size > 10000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    save_artifact(shot)
    nina.finish()


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
