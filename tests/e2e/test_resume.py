"""
test_resume.py - resume tokens (docs/PROTOCOL.md "Resume tokens"): /token
issues one, a first line "RESUME NAME TOKEN" logs in without a password
hash, a new password and chatctl revoke them, they survive a restart, a
wrong one is refused and counted like a wrong password; and chat presents
its token when it reconnects after a chatd restart.
"""

import hashlib
import re
import time

from chatclient import RunningPlain
from chatproto import wait_until

TOKEN_OK = re.compile(r"([0-9a-f]{64}) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ")


def get_token(client):
    data, final = client.request("/token")
    assert data == [] and final.tag == "OK" and final[0] == "-", final.raw
    m = TOKEN_OK.match(final[1])
    assert m, final.raw
    return m.group(1)


def resume(chatd, name, token, label="resumed"):
    """A connection that sends RESUME NAME TOKEN; returns (client, first reply)."""
    client = chatd.connect(label)
    client.expect_hello()
    client.send_line(f"RESUME {name} {token}")
    return client, client.read(timeout=10)


def resume_ok(chatd, name, token, label="resumed"):
    client, first = resume(chatd, name, token, label)
    assert first.tag == "WELCOME", first.raw
    client.welcome = first
    client.users = client.expect("USERS")
    while (line := client.read()).tag == "HIST":
        pass
    assert line.tag == "OK" and line[0] == "-", line.raw
    return client


def refused(chatd, name, token):
    client, first = resume(chatd, name, token, "refused")
    assert first.tag == "ERR" and first[0] == "401", first.raw
    return client


def test_a_token_logs_in_without_a_hash(chatd):
    alice = chatd.login("Alice", "pw-alice")
    token = get_token(alice)
    assert get_token(alice) != token          # each /token is a new one
    again = resume_ok(chatd, "alice", token)  # any case: the registered spelling comes back
    assert again.welcome[0] == "Alice"
    alice.wait_for("BYE")                      # like a password login: the session moves
    assert again.request("/ping hi")[1].tag == "OK"
    wait_until(lambda: "login Alice from 127.0.0.1" in chatd.log_text() and
               "with a resume token" in chatd.log_text(), "the token login in the log")
    assert "resume tokens: 2" in chatd.ctl_ok("status")
    # A token is bound to its name.
    chatd.login("bob")
    refused(chatd, "bob", token)


def test_the_transcript_without_tokens_is_unchanged(chatd):
    c = chatd.connect("plain")
    hello = c.expect_hello()
    assert hello.raw.endswith("welcome to chatd; who are you?")
    c.send_line("carol")
    assert c.expect("PASS").raw == "PASS new carol choose a password to register carol"


def test_a_wrong_token_is_refused_counted_and_the_password_still_works(chatd_factory):
    chatd = chatd_factory(login_fail_delay_ms=1500)
    chatd.login("dave")
    chatd.login("erin").request("/quit")
    wrong = chatd.connect("wrong")
    wrong.expect_hello()
    wrong.send_line("RESUME dave " + "0" * 64)
    wait_until(lambda: "resume token refused for dave from 127.0.0.1" in chatd.log_text(),
               "the refusal in the log")
    # Counted against the address like a wrong password: another name from it waits.
    other = chatd.connect("other")
    other.expect_hello()
    other.send_line("erin")
    other.expect("PASS")
    other.send_line("pw-erin")
    assert other.read(timeout=10).raw.startswith("ERR 429")
    # The refusal comes after the delay; the same connection goes on with the password.
    assert wrong.read(timeout=10).raw.startswith("ERR 401 resume token refused for dave")
    wrong.send_line("dave")
    wrong.expect("PASS", "known")
    wrong.send_line("pw-dave")
    assert wrong.finish_login() is not None
    # Malformed: a usage error, not counted.
    bad = chatd.connect("bad")
    bad.expect_hello()
    bad.send_line("RESUME dave short")
    assert bad.read().raw.startswith("ERR 400")


def test_wrong_tokens_use_up_the_attempts(chatd):
    c = chatd.connect("guesser")
    c.expect_hello()
    for i in range(2):
        c.send_line(f"RESUME frank {i:064x}")
        assert c.read(timeout=10).raw.startswith("ERR 401")
    c.send_line("RESUME frank " + "f" * 64)
    assert c.read(timeout=10).raw.startswith("BYE refused")


def test_tokens_survive_a_restart(chatd):
    gina = chatd.login("gina")
    token = get_token(gina)
    state = chatd.state_dir / "resume-tokens"
    assert state.stat().st_mode & 0o777 == 0o600
    assert token not in state.read_text()      # only its hash is stored
    chatd.restart()
    resume_ok(chatd, "gina", token)


def test_passwd_revokes_tokens(chatd):
    hank = chatd.login("hank")
    token = get_token(hank)
    assert hank.request("/passwd a new one")[1].tag == "OK"
    refused(chatd, "hank", token)
    wait_until(lambda: "resume tokens: 0" in chatd.ctl_ok("status"), "no token left")


def test_chatctl_user_passwd_and_del_revoke_tokens(chatd):
    ivy = chatd.login("ivy")
    token = get_token(ivy)
    chatd.ctl_ok("user", "passwd", "ivy", input="changed by root\n")
    refused(chatd, "ivy", token)

    jo = chatd.login("jo")
    token = get_token(jo)
    chatd.ctl_ok("user", "del", "jo")
    # Registered again by someone else: the old token must not open the new account.
    chatd.connect("newjo").login("jo", "another person")
    refused(chatd, "jo", token)


def test_no_tokens_when_turned_off(chatd_factory):
    chatd = chatd_factory(resume_token_ttl=0)
    kim = chatd.login("kim")
    _, final = kim.request("/token")
    assert final.tag == "ERR" and final[0] == "403", final.raw


def test_help_lists_token(chatd):
    data, _ = chatd.login("lee").request("/help")
    assert any("/token" in line.raw for line in data)


def plain_logged_in_count(chat):
    return sum(1 for line in chat.lines if line.startswith("OK - logged in as"))


def test_chat_reconnects_with_its_token_after_a_restart(chatd, tmp_path):
    chat = RunningPlain(["--name", "mia", "--reconnect", "127.0.0.1", str(chatd.port)],
                        password="pw-mia")
    try:
        chat.wait_line(lambda line: line.startswith("OK - logged in as mia"))
        wait_until(lambda: "resume tokens: 1" in chatd.ctl_ok("status"), "chat's token")
        assert not any(re.search(r"[0-9a-f]{64}", line) for line in chat.lines)
        chatd.restart()
        wait_until(lambda: plain_logged_in_count(chat) == 2, "chat logged in again", timeout=15)
        assert re.search(r"login mia from \S+ with a resume token", chatd.log_text())
        chat.send("back again")
        chat.wait_line(lambda line: re.match(r"OK \d+ sent", line) is not None)
        rc, err = chat.finish()
        assert rc == 0, err
        assert "reconnecting in" in err
    finally:
        chat.kill()


def test_chat_falls_back_to_the_password_when_its_token_is_refused(chatd):
    chat = RunningPlain(["--name", "nico", "--reconnect", "127.0.0.1", str(chatd.port)],
                        password="pw-nico")
    try:
        chat.wait_line(lambda line: line.startswith("OK - logged in as nico"))
        wait_until(lambda: "resume tokens: 1" in chatd.ctl_ok("status"), "chat's token")
        # The token file lost while chatd was down: the token is refused.
        chatd.stop()
        (chatd.state_dir / "resume-tokens").unlink()
        chatd.settings["port"] = chatd.port
        chatd.start()
        wait_until(lambda: plain_logged_in_count(chat) == 2, "chat logged in again", timeout=15)
        log = chatd.log_text()
        assert "resume token refused for nico" in log
        assert re.search(r"login nico from \S+\n", log)     # with the password
        # ... and it asked for a new token.
        wait_until(lambda: "resume tokens: 1" in chatd.ctl_ok("status"), "a new token")
        rc, err = chat.finish()
        assert rc == 0, err
    finally:
        chat.kill()


def test_plain_without_reconnect_still_ends_with_the_server(chatd):
    chat = RunningPlain(["--name", "olga", "127.0.0.1", str(chatd.port)], password="pw-olga")
    try:
        chat.wait_line(lambda line: line.startswith("OK - logged in as olga"))
        assert "resume tokens: 0" in chatd.ctl_ok("status")   # no token asked for
        chatd.restart()
        rc, err = chat.finish(close_input=False)
        assert rc == 5 and "shutdown" in err
    finally:
        chat.kill()


def test_the_terminal_mode_reconnects_with_its_token(chatd):
    from chatclient import Terminal
    term = Terminal(["--name", "pia", "127.0.0.1", str(chatd.port)], password="pw-pia")
    try:
        term.wait_for(lambda rows: any(row.startswith("pia #lobby>") for row in rows), "the prompt")
        wait_until(lambda: "resume tokens: 1" in chatd.ctl_ok("status"), "chat's token")
        assert not re.search(r"[0-9a-f]{64}", term.everything())   # never shown
        chatd.restart()
        term.wait_text("-- logged in again as pia", timeout=30)
        assert re.search(r"login pia from \S+ with a resume token", chatd.log_text())
        # /passwd revokes it: the next login uses the new password, and asks for a new token.
        term.line("/passwd brand new")
        term.wait_text("password changed")
        wait_until(lambda: "resume tokens: 0" in chatd.ctl_ok("status"), "the token revoked")
        chatd.restart()
        wait_until(lambda: term.everything().count("logged in again as pia") >= 2,
                   "the second login", timeout=30)
        assert "resume token refused" not in chatd.log_text()
        wait_until(lambda: "resume tokens: 1" in chatd.ctl_ok("status"), "a new token")
    finally:
        term.close()


def test_chatbench_login_storm_with_tokens(chatd_factory, tmp_path):
    """chatbench --tokens --restart: the bench's storm case, small (not a measurement)."""
    import json
    import os
    import signal
    import subprocess
    from chatproto import scaled
    from conftest import CHATD_BIN
    bench = os.path.abspath(os.environ.get("CHATBENCH_BIN", ""))
    if not os.access(bench, os.X_OK):
        import pytest
        pytest.skip("chatbench not built; set CHATBENCH_BIN")
    # 30 logins at once from one address: above the shipped max_logins_per_address (8).
    chatd = chatd_factory(max_clients_per_address=100, max_logins_per_address=100)
    chatd.settings["port"] = chatd.port
    chatd.write_config()
    pidfile = tmp_path / "pid"
    pidfile.write_text(str(chatd.pid))
    restart = tmp_path / "restart"
    restart.write_text("#!/bin/bash\n"
                       f"pid=$(cat {pidfile})\nkill -TERM $pid\n"
                       # Exited: gone, or a zombie its parent (pytest) has not reaped.
                       "while kill -0 $pid 2>/dev/null && "
                       "[ \"$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null)\" != Z ]; do sleep 0.02; done\n"
                       f"echo $$ > {pidfile}\n"
                       f"exec {CHATD_BIN} -c {chatd.config_path} >> {tmp_path}/out2 2>&1\n")
    restart.chmod(0o755)
    chatd.stopped = True        # the restart stops it; the new one is stopped below
    try:
        proc = subprocess.run([bench, "-p", str(chatd.port), "-n", "30", "-s", "0",
                               "--settle", "0.2", "--tokens", "--restart", str(restart),
                               "--storm-timeout", str(scaled(60))],
                              capture_output=True, text=True, timeout=scaled(90))
        assert proc.returncode == 0, proc.stderr
        storm = json.loads(proc.stdout)["storm"]
        assert storm["online"] == 30 and storm["tokens_held"] == 30, storm
        assert storm["back"] == 30 and storm["resumed"] == 30, storm
        assert storm["password"] == 0 and storm["tokens_refused"] == 0, storm
    finally:
        chatd.proc.wait(scaled(10))
        chatd.proc.stdout.close()
        new = int(pidfile.read_text())
        if new != chatd.pid:
            os.kill(new, signal.SIGTERM)
            wait_until(lambda: not os.path.exists(f"/proc/{new}"), "the restarted chatd to exit",
                       timeout=10)


def test_ident_clear_revokes_every_token(chatd):
    tokens = {name: get_token(chatd.login(name)) for name in ("quinn", "ruth")}
    chatd.ctl_ok("ident", "clear")
    assert "resume tokens: 0" in chatd.ctl_ok("status")
    chatd.connect("newquinn").login("quinn", "someone else")     # the name goes to another
    refused(chatd, "quinn", tokens["quinn"])
    chatd.restart()                                              # and it stays revoked
    chatd.connect("newruth").login("ruth", "another one")
    refused(chatd, "ruth", tokens["ruth"])


# --- tokens an older chatd issued to guests ---

def planted_token(n):
    """A token (64 hex digits) and its record's hash: the SHA-256 of the digits, in hex."""
    token = f"{n:02x}" * 32
    return token, hashlib.sha256(token.encode("ascii")).hexdigest()


def test_tokens_planted_for_guests_names_never_log_in(irc_chatd):
    """An older chatd gave guests tokens (before "guests get ERR 403 for /token"): a
    resume-tokens file holding tokens for names nobody registered.  Such a token is refused
    (RESUME looks the name up first), and registering the name (chatctl user add, a native
    registration, IRC REGISTER) revokes it, for good across a restart, so it never opens
    the new account.  A planted token of a registered name logs in: the file is read."""
    chatd = irc_chatd(guests=True)
    chatd.add_user("keeper")
    chatd.stop()
    names = ["keeper", "drifter", "visitor", "newbie", "ircnew"]
    tokens = {name: planted_token(i) for i, name in enumerate(names)}
    expiry = int(time.time() * 1000) + 7 * 24 * 3600 * 1000
    (chatd.state_dir / "resume-tokens").write_text(
        "chatd-resume-tokens 1\n" +
        "".join(f"I {name} {digest} {expiry}\n" for name, (_, digest) in tokens.items()))
    chatd.settings["port"] = chatd.port
    chatd.start()
    assert "resume tokens: 5" in chatd.ctl_ok("status")
    resume_ok(chatd, "keeper", tokens["keeper"][0]).close()
    for name in ("drifter", "visitor", "newbie", "ircnew"):
        refused(chatd, name, tokens[name][0]).close()

    chatd.add_user("visitor")
    chatd.login("newbie").close()                          # registers newbie natively
    irc = chatd.irc_connect("ircnew")
    irc.cap_ls("302")
    irc.send("NICK ircnew")
    irc.send("REGISTER * * :pw-ircnew")
    assert irc.expect("REGISTER").params[:2] == ["SUCCESS", "ircnew"]
    irc.close()
    for name in ("drifter", "visitor", "newbie", "ircnew"):
        refused(chatd, name, tokens[name][0]).close()
    # keeper's and drifter's are left (drifter's opens nothing while nobody has the name).
    wait_until(lambda: "resume tokens: 2" in chatd.ctl_ok("status"), "two tokens left")
    chatd.restart()
    assert "resume tokens: 2" in chatd.ctl_ok("status")
    for name in ("visitor", "newbie", "ircnew"):
        refused(chatd, name, tokens[name][0]).close()
    resume_ok(chatd, "keeper", tokens["keeper"][0]).close()


def test_a_short_max_line_keeps_out_no_password_or_token(chatd_factory):
    """max_line may be 64 (chatd.conf(5)), but a password may be 256 bytes
    (chatctl user add, IRC REGISTER) and RESUME NAME TOKEN is up to 104: both
    got ERR 413 at login, so such an account could never log in natively and
    no token could be used.  max_line still holds once logged in, for a line
    pipelined behind the password too."""
    d = chatd_factory(max_line=64)
    password = "p" * 256
    d.ctl_ok("user", "add", "longpw", input=password + "\n")
    c = d.connect("longpw")
    c.login("longpw", password, expect_pass="known")
    name = "n" * 32
    owner = d.login(name)
    token = get_token(owner)
    back = resume_ok(d, name.upper(), token)
    data, final = back.request("x" * 65)
    assert final.raw.startswith("ERR 413 line longer than 64 bytes"), final.raw
    late = d.connect("late")
    late.send_raw(("late\npw-late\n" + "y" * 65 + "\n").encode())
    late.expect_hello()
    late.expect("PASS")
    late.finish_login()
    assert late.read().raw.startswith("ERR 413 line longer than 64 bytes")
