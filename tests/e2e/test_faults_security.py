"""
test_faults_security.py - what chatd leaves on disk and what a client can
smuggle through it: the modes of its files and directories (docs/FILES.md),
no password, chat text or resume token in any log, and no forged log line, protocol line or terminal
escape sequence reaching anyone else.
"""

import base64
import os
import socket
import stat

from chatproto import wait_until
import faults

# Passwords that must never show up in the log, the history or chatd's stderr.
PASSWORDS = {
    "register": "Reg1st3r-S3cret",
    "wrong": "Wr0ng-Gu3ss-S3cret",
    "passwd": "N3w-P4sswd-S3cret",
    "ctl_add": "Adm1n-Add-S3cret",
    "ctl_passwd": "Adm1n-Passwd-S3cret",
    "as_name": "Typ3d-As-Name-S3cret",
    "as_valid_name": "Typ3dAsValidNameS3cret",
    "as_irc_nick": "Typ3dAsIrcNickS3cret",
}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_modes_of_files_and_directories(chatd_factory, tmp_path):
    old_umask = os.umask(0o022)      # the usual one; chatd must not rely on it
    try:
        state = tmp_path / "new" / "state"
        logs = tmp_path / "new" / "logs"
        d = chatd_factory(start=False, state_dir=str(state), log_file=str(logs / "chatd.log"),
                          history_max_size=65536, history_memory=20)
        # Copies put back by hand with loose modes, and a temporary file left by a
        # crash during compaction.
        state.mkdir(parents=True)
        (state / "history").write_text("chatd-history 1\n")
        (state / "ident").write_text("chatd-ident 1\n")
        (state / "history.tmp").write_text("")
        for name in ("history", "ident", "history.tmp"):
            os.chmod(state / name, 0o644)
        d.start()
        alice = d.login("alice")
    finally:
        os.umask(old_umask)

    assert mode(d.history_path) == 0o600           # set at startup
    assert mode(d.ident_path) == 0o600             # set by every change
    assert mode(state / "chatd.lock") == 0o600
    assert mode(logs) == 0o750                     # directories chatd creates
    assert mode(d.log_path) == 0o640               # the log: readable by the group
    # Compaction writes a new history file: it gets mode 0600 too, whatever
    # the leftover temporary file had.
    text = "c" * 1000
    for _ in range(80):
        alice.say(text)
    wait_until(lambda: "compacted from" in d.log_text(), "a compaction", timeout=10)
    assert mode(d.history_path) == 0o600, oct(mode(d.history_path))


def test_no_password_in_any_log(irc_chatd, tmp_path):
    d = irc_chatd(log_level="debug", login_fail_delay_ms=0)
    alice = d.connect("alice")
    alice.login("alice", PASSWORDS["register"])
    other = d.connect("alice-again")
    other.expect_hello()
    other.send_line("alice")
    other.expect("PASS", "known")
    other.send_line(PASSWORDS["wrong"])
    other.expect("ERR", "401")
    # A password typed at the name prompt (an invalid name: it has a space).
    typo = d.connect("typo")
    typo.expect_hello()
    typo.send_line(PASSWORDS["as_name"] + " x")
    typo.expect("ERR")
    # One that makes a valid name, then the user notices and leaves (or not: a guest
    # would be a choice).  Natively and as an IRC nick.
    typo = d.connect("valid-typo", source_addr="127.0.0.51")
    typo.expect_hello()
    typo.send_line(PASSWORDS["as_valid_name"])
    typo.expect("PASS", "new")
    typo.close()
    nick = socket.create_connection(("127.0.0.1", d.irc_port), source_address=("127.0.0.52", 0))
    nick.sendall(b"NICK " + PASSWORDS["as_irc_nick"].encode() + b"\r\nUSER x 0 * :x\r\n")
    nick.close()
    for addr in ("127.0.0.51", "127.0.0.52"):
        wait_until(lambda: any(line.split(" ")[2:3] == ["disconnect"] and f" {addr}" in line
                               for line in d.log_text().splitlines()),
                   f"the departure from {addr} logged")
    _, final = alice.request("/passwd " + PASSWORDS["passwd"])
    assert final.tag == "OK", final.raw
    d.ctl_ok("user", "add", "carol", input=PASSWORDS["ctl_add"] + "\n")
    d.ctl_ok("user", "passwd", "carol", input=PASSWORDS["ctl_passwd"] + "\n")
    d.login("carol", PASSWORDS["ctl_passwd"])
    d.restart()         # stderr and the log get the shutdown and start-up too

    places = {"log": d.log_text(), "stderr": d.stderr_text(),
              "history": d.history_path.read_text(),
              "ident": d.ident_path.read_text(),
              "log show": d.ctl_ok("log", "show")}
    for where, text in places.items():
        for what, password in PASSWORDS.items():
            assert password not in text, f"the {what} password is in the {where}"
    assert "login failed for alice" in places["log"]     # the events are logged, though


# Text a client might use to forge something on someone else's screen or in the log.
HOSTILE = [
    b"hi\rMSG 999 2026-01-01T00:00:00.000Z root forged",  # CR: overwrite the line
    b"line\x00two",                                         # NUL
    b"\x1b[2J\x1b[31mred alert",                            # ESC: terminal control
    b"\xc2\x9b2Jcsi",                                       # C1 CSI, as UTF-8
    b"\x9b2Jraw",                                           # C1 CSI, a raw byte
    b"\xc2\x85next line",                                   # NEL
    b"\xe2\x80\xaeevil override",                           # U+202E bidi override
    b"\xe2\x81\xa6isolate",                                 # U+2066 bidi isolate
    b"tab\there",                                           # TAB
    b"\x7fdel",                                             # DEL
    b"\xed\xa0\x80surrogate",                               # UTF-16 surrogate
    b"\xc0\x8aoverlong newline",                            # overlong LF
]
FAKE_LOG = "x 2026-01-01T00:00:00.000Z error forged entry"


def clean(text):
    return all(" " <= ch != "\x7f" and not "\x80" <= ch <= "\x9f" and
               not "\u202a" <= ch <= "\u202e" and not "\u2066" <= ch <= "\u2069"
               for ch in text)


def test_nothing_a_client_sends_forges_a_line_or_an_escape(chatd_factory):
    d = chatd_factory(log_level="debug")
    mallory, bob = d.login("mallory"), d.login("bob")
    for payload in HOSTILE:
        for request in (payload, b"/msg bob " + payload, b"/quit " + payload,
                        b"/passwd " + payload, b"/who " + payload, b"/" + payload):
            mallory.send_line(request)
            _, final = mallory.collect_reply()
            assert final.tag == "ERR" and final[0] in ("400", "422"), (request, final.raw)
    # Before login, in a name or a password.
    for payload in HOSTILE:
        eve = d.connect("eve")
        eve.expect_hello()
        eve.send_line(payload)
        assert eve.read().tag == "ERR"
        eve.send_line("eve")
        eve.expect("PASS")
        eve.send_line(payload)
        assert eve.read().tag == "ERR"
        eve.close()
    # Text that looks like a log line is fine as text: it stays inside one line.
    mallory.say(FAKE_LOG)
    mallory.send_line("/quit " + FAKE_LOG)
    mallory.read_until_closed()

    part = bob.wait_for("PART", lambda p: p[1] == "mallory")
    assert part[2] == "quit" and part[3] == FAKE_LOG
    bob.sync()
    # bob got nothing but clean lines: one MSG (the harmless one), the PART.
    assert [m[3] for m in bob.live_of("MSG")] == [FAKE_LOG]
    assert all(clean(line.raw) for line in bob.live)
    assert not bob.live_of("PRIV")
    log = d.log_text()
    for line in log.splitlines():
        assert faults.LOG_LINE_RE.match(line), f"log line out of format: {line!r}"
        assert not line.split(" ", 2)[2].startswith("x 2026"), line
    assert " error " not in log


# What people write for each other, and every secret a login carries, on every
# way in: none of it may reach the log, at the most talkative level
# (README.md and chatd.conf(5): "never chat text or passwords").
SECRETS = {
    "native password": "N4tive-Pw-S3cret",
    "native message": "native-message-s3cret",
    "private message": "private-message-s3cret",
    "native topic": "native-topic-s3cret",
    "leave reason": "leave-reason-s3cret",
    "quit reason": "quit-reason-s3cret",
    "irc pass": "Irc-Pass-S3cret",
    "irc sasl": "Irc-Sasl-S3cret",
    "irc register": "Irc-Register-S3cret",
    "irc message": "irc-privmsg-s3cret",
    "irc private": "irc-private-s3cret",
    "irc to native": "irc-to-native-s3cret",
    "irc notice": "irc-notice-s3cret",
    "irc away": "irc-away-s3cret",
    "irc topic": "irc-topic-s3cret",
    "irc part": "irc-part-s3cret",
    "irc quit": "irc-quit-s3cret",
    "wrong token": "e" * 64,
}


def test_no_chat_text_password_or_token_in_the_log(irc_chatd):
    d = irc_chatd(log_level="debug", login_fail_delay_ms=0)
    s = SECRETS
    alice = d.login("alice", s["native password"])
    bob = d.login("bob")
    alice.say(s["native message"])
    _, final = alice.request("/msg bob " + s["private message"])
    assert final.tag == "OK", final.raw
    _, final = alice.request("/join side")
    _, final = alice.request("/topic side " + s["native topic"])
    assert final.tag == "OK", final.raw
    _, final = alice.request("/leave side " + s["leave reason"])
    assert final.tag == "OK", final.raw
    data, final = alice.request("/token")
    token = final[1].split(" ")[0]
    assert final.tag == "OK" and len(token) == 64, final.raw
    for t in (s["wrong token"], token):
        c = d.connect("resume")
        c.expect_hello()
        c.send_line(f"RESUME alice {t}")
        assert c.read(timeout=10).tag in ("ERR", "WELCOME")
        c.close()
    alice = d.login("alice", s["native password"])
    alice.send_line("/quit " + s["quit reason"])
    alice.read_until_closed()

    carol = d.irc_login("carol", s["irc pass"])
    dave = d.irc_login("dave", s["irc sasl"], sasl=True)
    erin = d.irc_connect("erin")
    erin.cap_ls("302")
    erin.send("NICK erin")
    erin.send("USER erin 0 * :x")
    erin.send("REGISTER * * :" + s["irc register"])
    erin.until("900")
    erin.send("CAP END")
    erin.expect("001")
    carol.send("PRIVMSG #lobby :" + s["irc message"])
    carol.send("NOTICE dave :" + s["irc notice"])
    carol.send("PRIVMSG dave :" + s["irc private"])
    carol.send("PRIVMSG bob :" + s["irc to native"])
    carol.send("AWAY :" + s["irc away"])
    carol.send("TOPIC #lobby :" + s["irc topic"])
    dave.expect("TOPIC")
    carol.send("PART #lobby :" + s["irc part"])
    dave.expect("PART")
    carol.send("QUIT :" + s["irc quit"])
    carol.expect_closed()
    bob.wait_for("MSG", lambda m: m[3] == s["irc message"])
    bob.wait_for("PRIV", lambda m: m[-1] == s["irc to native"])
    d.stop()

    # Private messages are never stored (PROTOCOL.md, IRC.md), whoever sends them.
    history = d.history_path.read_text()
    for what in ("private message", "irc notice", "irc private", "irc to native"):
        assert s[what] not in history, f"the {what} is in the history"
    assert s["native message"] in history and s["irc message"] in history

    log = d.log_text() + d.stderr_text()
    assert "registered alice" in log and "registered carol" in log   # the events are there
    sasl_blob = base64.b64encode(b"\0dave\0" + s["irc sasl"].encode()).decode()
    for what, text in list(SECRETS.items()) + [("the token", token), ("SASL", sasl_blob)]:
        assert text not in log, f"the {what} is in the log: " + next(
            line for line in log.splitlines() if text in line)
