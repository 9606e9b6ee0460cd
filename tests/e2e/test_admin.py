"""
test_admin.py - every admin command through the real chatctl, with clients
connected, asserting what the command did and not just its OK.
"""

import os
import re
import select
import socket
import subprocess
import threading
import time

import pytest

import faults
from chatproto import Client, deadline_in, scaled, wait_until
from conftest import CHATCTL_BIN

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                      r"(?:error|warning|notice|info|debug) \S")




def run_chatctl(*args):
    """chatctl without a daemon fixture: a CompletedProcess (text)."""
    return subprocess.run([CHATCTL_BIN, *args], capture_output=True, text=True,
                          timeout=scaled(10))


def status_fields(chatd):
    out = chatd.ctl_ok("status")
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_status(chatd):
    alice = chatd.login("alice")
    chatd.login("bob")
    lurker = chatd.connect("lurker")
    lurker.expect_hello()
    for i in range(3):
        alice.say(f"m{i}")
    fields = status_fields(chatd)
    assert fields["pid"] == str(chatd.pid)
    assert fields["listening"] == f"127.0.0.1:{chatd.port}"
    assert fields["clients"] == "2 online, 3 connected"
    assert fields["messages"].startswith("3 since start")
    assert fields["config"] == str(chatd.config_path)
    assert fields["registered users"] == "2"
    assert re.fullmatch(r"\d+d \d\d:\d\d:\d\d \(since \S+Z\)", fields["uptime"])


def test_users(chatd):
    chatd.login("alice")
    chatd.login("Bob")
    lines = chatd.ctl_ok("users").splitlines()
    assert [line.split()[:2] for line in lines] == [["alice", "127.0.0.1"],
                                                    ["Bob", "127.0.0.1"]]
    for line in lines:
        assert re.fullmatch(r"\S+ \S+ \d{4}-\d\d-\d\dT\S+Z line", line)


def test_users_empty_says_so(chatd):
    assert chatd.ctl_ok("users") == "0 online\n"


def test_stop(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")
    msg_id = alice.say("before stop")
    bob.wait_for("MSG")

    proc = chatd.ctl("stop")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "stopping\n"
    for client in (alice, bob):
        lines = client.read_until_closed()
        assert [(line.tag, line[0]) for line in lines if line.tag == "BYE"] == \
            [("BYE", "shutdown")], lines
    assert chatd.wait() == 0
    assert f"{msg_id} " in chatd.history_path.read_text()
    assert "stop requested by uid 0" in chatd.log_text()
    assert not chatd.admin_socket.exists()


def test_pause_and_resume(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")

    assert chatd.ctl_ok("pause") == "paused\n"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", chatd.port), timeout=scaled(5)).close()
    # Those online carry on undisturbed.
    msg_id = alice.say("still here")
    assert bob.wait_for("MSG").id == msg_id
    assert status_fields(chatd)["listening"].startswith("paused")
    assert chatd.ctl_ok("pause") == "already paused\n"

    assert chatd.ctl_ok("resume") == f"listening on 127.0.0.1:{chatd.port}\n"
    carol = chatd.login("carol")
    carol.say("back in")
    assert chatd.ctl_ok("resume") == f"already listening on 127.0.0.1:{chatd.port}\n"
    log = chatd.log_text()
    assert "paused by uid 0" in log and "resumed by uid 0" in log


def test_pause_during_a_connection_burst_leaves_nobody_hanging(chatd_factory):
    """ADMIN.md: while paused a connect is refused at once, and connections still
    waiting in the backlog are reset, so nobody is left hanging.  300 connections
    opened as fast as possible while pause comes: each one, within a few seconds,
    gets chatd's greeting or is closed or reset; none waits on with no answer."""
    d = chatd_factory(max_logins=1000, max_logins_per_address=1000,
                      max_clients_per_address=1000)
    socks, refused = [], 0
    paused = threading.Event()

    def pause():
        d.ctl_ok("pause")
        paused.set()

    pauser = threading.Thread(target=pause)
    try:
        for i in range(300):
            if i == 100:
                pauser.start()
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", d.port))
            except BlockingIOError:
                pass
            except ConnectionRefusedError:
                refused += 1
                s.close()
                continue
            socks.append(s)
        pauser.join()
        assert paused.is_set()
        pending = {s.fileno(): s for s in socks}
        answered = 0
        deadline = deadline_in(10)
        poller = select.poll()
        for fd in pending:
            poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        while pending and time.monotonic() < deadline:
            for fd, _ in poller.poll(max(deadline - time.monotonic(), 0) * 1000):
                s = pending.pop(fd, None)
                if s is None:
                    continue
                poller.unregister(fd)
                try:
                    s.recv(256)     # HELLO, or the end
                except OSError:
                    pass            # reset from the backlog, or refused
                answered += 1
        assert not pending, f"{len(pending)} of {len(socks)} connections left hanging " \
                            f"({answered} answered, {refused} refused at connect)"
    finally:
        for s in socks:
            s.close()
    assert d.ctl_ok("resume").startswith("listening on")
    d.login("after").say("back")


def test_resume_when_the_port_was_taken(chatd):
    alice = chatd.login("alice")
    chatd.ctl_ok("pause")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", chatd.port))
    squatter.listen()
    try:
        proc = chatd.ctl("resume")
        assert proc.returncode == 1
        assert "still paused" in proc.stderr and "in use" in proc.stderr
        assert status_fields(chatd)["listening"].startswith("paused")
        alice.say("chatd is healthy")
    finally:
        squatter.close()
    chatd.ctl_ok("resume")
    chatd.login("bob").say("in again")


def test_log_show(chatd):
    chatd.login("alice")
    log_lines = chatd.log_text().splitlines()
    out = chatd.ctl_ok("log", "show").splitlines()
    # chatctl's own connection may log after the file was read here: a prefix.
    assert out[:len(log_lines)] == log_lines
    assert any("listening on" in line for line in out)
    tail = chatd.ctl_ok("show-log", "2").splitlines()
    assert len(tail) == 2
    assert all(LOG_LINE.match(line) for line in tail)
    assert tail[-1] in chatd.log_text().splitlines()


def test_log_show_is_streamed_in_full(chatd):
    # Far more than a socket buffer: the reply is sent as the peer reads.
    with open(chatd.log_path, "a") as f:
        for i in range(40000):
            f.write(f"2026-01-01T00:00:00.000Z info filler line {i:05d} " + "x" * 60 + "\n")
    out = chatd.ctl_ok("log", "show").splitlines()
    filler = [line for line in out if "filler line" in line]
    assert len(filler) == 40000
    assert filler[-1].startswith("2026-01-01T00:00:00.000Z info filler line 39999")


def test_log_clear_while_50_clients_chat(chatd_factory):
    chatd = chatd_factory(max_clients_per_address=100)
    clients = [chatd.login(f"user{i:02d}") for i in range(50)]
    stop = threading.Event()
    errors = []

    def chatter():
        # Logins and departures keep the log busy while it is cleared.
        i = 0
        try:
            while not stop.is_set():
                c = Client(f"churn{i}")
                c.connect(chatd.port)
                c.login(f"churn{i % 5}", f"pw-churn{i % 5}")
                c.say("hello")
                c.request("/quit")
                c.close()
                i += 1
        except Exception as e:  # reported below, in the test's thread
            errors.append(e)

    churn = threading.Thread(target=chatter)
    churn.start()
    try:
        for i, c in enumerate(clients):
            c.say(f"message {i}")
        chatd.ctl_ok("log", "clear")
        for i, c in enumerate(clients):
            c.say(f"after {i}")
    finally:
        stop.set()
        churn.join()
    assert not errors, errors

    def cleared_log():
        return chatd.log_path.read_bytes()

    data = cleared_log()
    assert b"\0" not in data, "a hole of NULs at the start of the log"
    lines = data.decode().splitlines()
    assert all(LOG_LINE.match(line) for line in lines), lines[:5]
    assert "log cleared by uid 0" in data.decode()
    assert "starting, config" not in data.decode()
    size = len(data)
    chatd.login("latecomer")
    wait_until(lambda: len(cleared_log()) > size, "the log to grow after clearing")
    assert b"\0" not in cleared_log()


def test_ident_clear(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")
    assert "2" in chatd.ctl_ok("clear-ident")
    assert "chatd-ident 1" in chatd.ident_path.read_text()
    assert chatd.ctl_ok("user", "list") == "0 registered\n"
    # People online stay online.
    msg_id = alice.say("still online")
    assert bob.wait_for("MSG").id == msg_id
    # A known name registers anew, with any password.
    carol = chatd.connect("again")
    carol.login("alice2", "whatever")
    newcomer = chatd.connect("alice-again")
    newcomer.login("alice", "a-new-password", expect_pass="new")
    assert "identification file cleared by uid 0" in chatd.log_text()


def test_ident_clear_needs_force_without_registration(chatd_factory):
    chatd = chatd_factory(registration=False)
    chatd.ctl_ok("user", "add", "alice", input="pw-alice\n")
    proc = chatd.ctl("ident", "clear")
    assert proc.returncode == 1
    assert "--force" in proc.stderr
    assert chatd.ctl_ok("user", "list") == "alice\n"
    chatd.ctl_ok("ident", "clear", "--force")
    assert chatd.ctl_ok("user", "list") == "0 registered\n"


def test_ident_clear_racing_registrations(chatd):
    # Registrations racing with the clear: the file ends up holding exactly
    # what the store holds, never the old file brought back.
    for i in range(5):
        chatd.login(f"old{i}")
    stop = threading.Event()
    registered = []

    def register():
        i = 0
        while not stop.is_set():
            c = Client(f"new{i}")
            c.connect(chatd.port)
            c.login(f"new{i}", "pw")
            c.close()
            registered.append(f"new{i}")
            i += 1

    t = threading.Thread(target=register)
    t.start()
    try:
        wait_until(lambda: len(registered) >= 3, "some registrations")
        chatd.ctl_ok("ident", "clear")
        n = len(registered)
        wait_until(lambda: len(registered) >= n + 3, "registrations after the clear")
    finally:
        stop.set()
        t.join()
    listed = set(chatd.ctl_ok("user", "list").splitlines())
    in_file = set(faults.ident_names(chatd.ident_path))
    assert listed == in_file
    assert not any(name.startswith("old") for name in in_file)


def test_user_commands_round_trip(chatd_factory):
    chatd = chatd_factory(registration=False)
    assert chatd.ctl_ok("user", "add", "carol", input="first pass\n") == "carol registered\n"
    assert chatd.ctl_ok("user", "list") == "carol\n"
    carol = chatd.connect("carol")
    carol.login("carol", "first pass", expect_pass="known")
    carol.request("/quit")

    proc = chatd.ctl("user", "add", "carol", input="again\n")
    assert proc.returncode == 1 and "already registered" in proc.stderr

    chatd.ctl_ok("user", "passwd", "carol", input="second pass\n")
    old = chatd.connect("old")
    old.expect_hello()
    old.send_line("carol")
    old.expect("PASS", "known")
    old.send_line("first pass")
    old.expect("ERR", "401")
    chatd.connect("new").login("carol", "second pass")

    assert "carol deleted" in chatd.ctl_ok("user", "del", "carol")
    refused = chatd.connect("refused")
    refused.expect_hello()
    refused.send_line("carol")
    assert refused.read().tag == "ERR"
    assert chatd.ctl_ok("user", "list") == "0 registered\n"
    proc = chatd.ctl("user", "passwd", "carol", input="x\n")
    assert proc.returncode == 1 and "not registered" in proc.stderr
    log = chatd.log_text()
    assert "registered carol by uid 0" in log and "user carol deleted by uid 0" in log
    assert "first pass" not in log and "second pass" not in log


def test_user_del_ends_the_session(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")
    chatd.ctl_ok("user", "del", "bob")
    bye = [line for line in bob.read_until_closed() if line.tag == "BYE"]
    assert bye and bye[0][0] == "kicked"
    part = alice.wait_for("PART")
    assert part[1:3] == ["bob", "kicked"]


@pytest.mark.parametrize("front", ["native", "irc"])
def test_user_del_while_the_password_is_checked_leaves_nobody_online(irc_chatd, front):
    """chatctl user del while the user's password is being hashed (hash_cost 10:
    most of a second): the login may succeed, as the account was there when it
    began, but its session must not stay online once it is, since the sessions
    online when the account went were ended."""
    # Registration closed: on IRC nothing tells when the login looked the name up, and
    # one that looks after the deletion would register bob anew, rightly online.
    d = irc_chatd(hash_cost=10, registration=False)
    d.add_user("bob")
    if front == "native":
        c = d.connect("bob")
        c.expect_hello()
        c.send_line("bob")
        c.expect("PASS", "known")
        c.send_line("pw-bob")
    else:
        c = d.irc_connect("bob")
        c.send("PASS pw-bob")
        c.send("NICK bob")
        c.send("USER bob 0 * :bob")
    d.ctl_ok("user", "del", "bob")
    # Either the password found no account any more, or the session ended.
    if front == "native":
        lines = []
        while not lines or lines[-1].tag not in ("ERR", "BYE"):
            lines.append(c.read(timeout=10))
        if lines[-1].tag == "BYE":
            assert lines[-1].raw == "BYE kicked account deleted", lines
    else:
        lines = c.until("ERROR", timeout=10)
        assert "001" not in [m.command for m in lines] or "account deleted" in lines[-1].raw
    assert d.ctl_ok("users") == "0 online\n", d.ctl_ok("users")


def held_login(chatd_factory, password):
    """A chatd with the slow-account fault, and bob's login with password held
    there (2 s) between its password check and going online: (chatd, client)."""
    d = chatd_factory(start=False)
    d.env["CHATD_TEST_FAULT"] = "slow-account"
    d.start()
    d.add_user("bob", password)
    c = d.connect("bob")
    c.expect_hello()
    c.send_line("bob")
    c.expect("PASS", "known")
    c.send_line(password)
    wait_until(lambda: "login bob from" in d.log_text(), "the password checked")
    return d, c


def test_a_name_deleted_and_registered_again_during_a_login_is_not_its_account(chatd_factory):
    """chatctl user del, then user add of the same name with another password, while a
    login with the old password is between its check and going online (the
    slow-account fault holds it there 2 s): the login must not come online as the
    new account, which only the new password opens."""
    d, c = held_login(chatd_factory, "old-pw")
    d.ctl_ok("user", "del", "bob")
    d.add_user("bob", "new-pw")
    lines = []
    while not lines or lines[-1].tag not in ("ERR", "BYE"):
        lines.append(c.read(timeout=10))
    assert lines[-1].raw == "BYE kicked account deleted", lines
    assert d.ctl_ok("users") == "0 online\n", d.ctl_ok("users")
    d.login("bob", "new-pw").sync()


def test_a_login_under_way_at_ident_clear_stays_as_those_online_do(chatd_factory):
    """chatctl ident clear forgets every account but keeps the sessions online; a login
    whose password was checked just before (held 2 s by the slow-account fault) comes
    online too, like them, rather than being ended as by user del."""
    d, c = held_login(chatd_factory, "pw-bob")
    d.ctl_ok("ident", "clear")
    c.expect("WELCOME")
    assert "bob " in d.ctl_ok("users")


def test_kick(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")
    assert chatd.ctl_ok("kick", "bob", "too", "loud") == "bob kicked\n"
    lines = bob.read_until_closed()
    assert [line[:2] for line in lines if line.tag == "BYE"] == [["kicked", "too loud"]]
    part = alice.wait_for("PART")
    assert part[1:] == ["bob", "kicked", "too loud"]
    proc = chatd.ctl("kick", "bob")
    assert proc.returncode == 1 and "not online" in proc.stderr


def test_notice(chatd):
    clients = [chatd.login(name) for name in ("alice", "bob", "carol")]
    assert chatd.ctl_ok("notice", "maintenance at", "noon") == "notice sent to 3 online\n"
    for c in clients:
        assert c.wait_for("NOTICE")[1] == "maintenance at noon"


def test_help_lists_every_command(chatd):
    out = chatd.ctl_ok("help").splitlines()
    words = [line.split("  ")[0].strip() for line in out]
    for usage in ("status", "users", "stop", "pause", "resume", "log show [N]", "log clear",
                  "ident clear [--force]", "user list", "user add NAME PASSWORD",
                  "user passwd NAME PASSWORD", "user del NAME", "kick NAME [REASON]",
                  "notice TEXT", "help"):
        assert usage in words, (usage, words)


def test_console_reads_commands_from_a_pipe(chatd):
    chatd.login("alice")
    proc = chatd.ctl(input="status\n\n# a comment\nusers\nbogus\nshow-log 1\n")
    assert proc.returncode == 2, proc.stderr      # the worst of the lines: a usage error
    assert f"pid: {chatd.pid}" in proc.stdout
    assert "alice 127.0.0.1" in proc.stdout
    assert "unknown command 'bogus'" in proc.stderr
    assert "chatctl>" not in proc.stdout          # no prompt for a pipe
    proc = chatd.ctl(input="pause\nresume\n")
    assert proc.returncode == 0 and proc.stdout.startswith("paused\nlistening on")


def test_console_password_from_the_pipe(chatd_factory):
    chatd = chatd_factory(registration=False)
    proc = chatd.ctl(input="user add dave\ns3cret words\nuser list\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "dave registered\ndave\n"
    chatd.connect("dave").login("dave", "s3cret words", expect_pass="known")


def test_an_empty_password_is_a_usage_error(chatd):
    """user add and user passwd with an empty password: exit 2, nothing sent.
    chatctl sent it and exited 1 with chatd's "PASSWORD is missing; usage: user
    add NAME PASSWORD", an argument chatctl never takes."""
    chatd.ctl_ok("user", "add", "erin", input="first\n")
    for args in (("user", "add", "frank"), ("user", "passwd", "erin")):
        proc = chatd.ctl(*args, input="\n")
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert proc.stderr == "chatctl: the password is empty; nothing was sent\n", proc.stderr
    assert chatd.ctl_ok("user", "list") == "erin\n"
    assert "frank" not in chatd.log_text()


def test_usage_errors_exit_2_without_a_daemon(tmp_path):
    missing = str(tmp_path / "none.sock")
    for args, message in ((["frobnicate"], "unknown command"),
                          (["log", "show", "x"], "usage: log show [N]"),
                          (["log"], "needs one of: show, clear"),
                          (["kick"], "NAME is missing"),
                          (["ident", "clear", "--now"], "unknown option"),
                          (["--bogus-option"], "usage: chatctl")):
        proc = run_chatctl("-s", missing, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)


def test_no_daemon_exit_3(tmp_path):
    missing = str(tmp_path / "none.sock")
    proc = run_chatctl("-s", missing, "status")
    assert proc.returncode == 3
    assert proc.stderr == f"chatctl: chatd is not running: no socket at {missing}\n"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(missing)
    stale.close()
    proc = run_chatctl("-s", missing, "status")
    assert proc.returncode == 3 and "nobody answers" in proc.stderr


def test_chatctl_finds_the_socket_through_the_config(chatd):
    proc = run_chatctl("-c", str(chatd.config_path), "status")
    assert proc.returncode == 0, proc.stderr
    assert f"pid: {chatd.pid}" in proc.stdout


def test_version_and_help():
    proc = run_chatctl("--version")
    assert proc.returncode == 0 and re.fullmatch(r"chatctl \d+\.\d+\.\d+\n", proc.stdout)
    proc = run_chatctl("--help")
    assert proc.returncode == 0
    for alias in ("show-log", "clear-log", "clear-ident"):
        assert alias in proc.stdout


class Terminal:
    """chatctl on a pseudo-terminal, read and typed at like a person would."""

    def __init__(self, *args):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen([CHATCTL_BIN, *args], stdin=slave, stdout=slave,
                                     stderr=slave, start_new_session=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text, timeout=10):
        deadline = deadline_in(timeout)
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; saw {self.seen!r}"
            if select.select([self.master], [], [], left)[0]:
                self.seen += os.read(self.master, 4096)

    def type(self, text):
        os.write(self.master, text.encode())

    def close(self):
        self.proc.wait(scaled(10))
        os.close(self.master)
        return self.proc.returncode


def test_console_prompt_and_hidden_password_on_a_terminal(chatd_factory):
    chatd = chatd_factory(registration=False)
    term = Terminal("-s", str(chatd.admin_socket))
    try:
        term.expect("chatctl> ")
        term.type("user add erin\n")
        term.expect("Password for erin: ")
        term.type("hidden words\n")
        term.expect("Again: ")
        term.type("hidden words\n")
        term.expect("erin registered\r\nchatctl> ")     # the prompt comes back
        term.type("quit\n")
    finally:
        rc = term.close()
    assert rc == 0
    assert b"hidden words" not in term.seen
    assert term.seen.count(b"chatctl> ") == 2
    chatd.connect("erin").login("erin", "hidden words", expect_pass="known")


def test_chatctl_never_hangs_on_a_silent_daemon(tmp_path):
    # Something accepts on the socket but never answers: chatctl gives up.
    path = str(tmp_path / "silent.sock")
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(path)
    silent.listen()
    try:
        proc = run_chatctl("-s", path, "-t", "1", "status")     # run_chatctl's own timeout: 10 s
        assert proc.returncode == 3
        assert proc.stderr == "chatctl: no answer from chatd within 1 s\n"
    finally:
        silent.close()


def test_a_long_kick_reason_stays_valid_text(chatd):
    alice = chatd.login("alice")
    bob = chatd.login("bob")
    reason = "x" + "é" * 300    # 601 bytes: longer than a reason is kept, cut inside "é"
    chatd.ctl_ok("kick", "bob", reason)
    # chatproto decodes strictly: a character cut in two would fail here.
    bye = [line for line in bob.read_until_closed() if line.tag == "BYE"]
    assert bye and bye[0][0] == "kicked"
    part = alice.wait_for("PART")
    for text in (bye[0][1], part[3]):
        assert reason.startswith(text) and len(text.encode()) == 127


def test_a_session_kept_by_ident_clear_cannot_take_the_next_account_of_its_name(chatd):
    """chatctl ident clear keeps the sessions online; when the operator then
    registers the same name anew (user add), the old session must neither set
    the new account's password (/passwd) nor get a resume token that would log
    in to it (/token): that session's account is gone."""
    old = chatd.login("bob", "old-pw")
    chatd.ctl_ok("ident", "clear")
    chatd.add_user("bob", "admin-pw")
    _, final = old.request("/passwd taken-over")
    assert final.tag == "ERR" and final[0] == "403", final.raw
    _, final = old.request("/token")
    assert final.tag == "ERR" and final[0] == "403", final.raw
    assert "resume tokens: 0" in chatd.ctl_ok("status")
    probe = chatd.connect("probe")
    probe.expect_hello()
    probe.send_line("bob")
    probe.expect("PASS", "known")
    probe.send_line("taken-over")
    assert probe.read(timeout=10).tag == "ERR"      # the new account's password is the admin's
    chatd.login("bob", "admin-pw").sync()
