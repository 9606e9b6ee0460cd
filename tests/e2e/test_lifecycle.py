"""
test_lifecycle.py - the daemon's life: signals, ports, the state lock,
the log file and the files it keeps.
"""

import itertools
import os
import re
import signal
import socket
import stat
import time

import pytest

import faults
from chatproto import deadline_in, scaled, wait_until

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                      r"(?i:error|warning|notice|info|debug) \S")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_shutdown_with_clients(chatd, sig):
    a = chatd.login("alpha")
    b = chatd.login("beta")
    lurker = chatd.connect("lurker")
    lurker.expect_hello()
    last = a.say("last words")
    b.wait_for("MSG")

    started = time.monotonic()
    chatd.send_signal(sig)
    for client in (a, b, lurker):
        lines = client.read_until_closed()
        assert lines and lines[-1].tag == "BYE" and lines[-1][0] == "shutdown", \
            f"{client.label}: {lines!r}"
    assert chatd.wait(timeout=5) == 0
    assert time.monotonic() - started < scaled(5)

    history = chatd.history_path.read_text()
    assert re.search(rf"^{last} \S+ lobby msg alpha last words$", history, re.M), history


def test_restart_keeps_users(chatd):
    chatd.login("persist", "secret1").close()
    chatd.restart()
    c = chatd.connect("persist")
    c.login("persist", "secret1", expect_pass="known")


def hold_port_pair():
    """A socket listening on 127.0.0.1:P while P+1 is free; returns (socket, P)."""
    for _ in range(50):
        holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(("127.0.0.1", port + 1))
        except OSError:
            holder.close()
            continue
        finally:
            probe.close()
        holder.listen()
        return holder, port
    pytest.fail("no pair of free ports found")


def test_busy_port_falls_back_to_next(chatd_factory):
    holder, port = hold_port_pair()
    with holder:
        d = chatd_factory(port=port)
        assert d.port == port + 1, d.addresses
        d.login("moved")


def test_busy_port_without_tries_fails(chatd_factory):
    holder, port = hold_port_pair()
    with holder:
        d = chatd_factory(start=False, port=port, port_tries=0)
        rc, out, err = d.run_expecting_exit()
        assert rc == 1, (rc, out, err)
        assert "listening" not in out
        assert err.startswith("chatd: ") and str(port) in err, err


def test_second_chatd_on_same_state_dir_refused(chatd_factory):
    first = chatd_factory()
    second = chatd_factory(start=False, state_dir=str(first.state_dir))
    rc, out, err = second.run_expecting_exit()
    assert rc == 1, (rc, out, err)
    assert "in use by another chatd" in err, err
    assert "listening" not in out
    # The first one is untouched.
    first.login("still")


def test_log_lines_and_secrecy(chatd_factory):
    d = chatd_factory(log_level="debug")
    password = "Sup3r-S3cret-pw"
    a = d.login("alice", password)
    wrong = d.connect("wrong")
    wrong.expect_hello()
    wrong.send_line("alice")
    wrong.expect("PASS", "known")
    wrong.send_line("Wr0ng-Guess-pw")
    wrong.expect("ERR", "401")
    wrong.close()
    b = d.login("bob")
    a.say("chat-text-marker-7431")
    b.wait_for("MSG")
    a.close()
    b.wait_for("PART")

    log = d.log_text()
    lines = log.splitlines()
    assert lines, "nothing logged"
    bad = [line for line in lines if not LOG_LINE.match(line)]
    assert not bad, bad[:5]
    assert "alice" in log and "127.0.0.1" in log, "logins and connections are not logged"
    for secret in (password, "Wr0ng-Guess-pw", "pw-bob", "chat-text-marker-7431"):
        assert secret not in log, f"{secret!r} in the log"

    ident = d.ident_path
    assert stat.S_IMODE(ident.stat().st_mode) == 0o600
    text = ident.read_text()
    assert password not in text and "pw-bob" not in text
    assert text.splitlines()[0] == "chatd-ident 1"
    users = faults.ident_users(ident)
    assert sorted(users) == ["alice", "bob"]
    assert all(h.startswith("$y$") for h in users.values()), users
    assert stat.S_IMODE(d.history_path.stat().st_mode) == 0o600


def test_sighup_reopens_rotated_log(chatd_factory):
    d = chatd_factory(log_level="info")
    d.login("before").close()
    rotated = d.log_path.with_name("chatd.log.1")
    wait_until(lambda: "before" in d.log_text(), "the first login in the log")
    d.log_path.rename(rotated)
    d.send_signal(signal.SIGHUP)
    wait_until(d.log_path.exists, "a new chatd.log after SIGHUP")
    d.login("afterrotate").close()
    wait_until(lambda: "afterrotate" in d.log_text(), "the new login in the new log")
    assert "afterrotate" not in rotated.read_text()
    assert all(LOG_LINE.match(line) for line in d.log_text().splitlines())


@pytest.mark.parametrize("plant", ["symlink", "hard link", "fifo"])
def test_sighup_never_reopens_the_log_through_a_planted_link_or_fifo(chatd_factory, tmp_path,
                                                                     plant):
    """SECURITY.md: a link or a FIFO put at the log's path while chatd runs (here
    after a rotation, where logrotate would make the new file) is refused at the
    SIGHUP: nothing is written through it, chatd does not block on the FIFO, and it
    goes on logging to the file it had, which says why."""
    d = chatd_factory(log_level="info")
    d.login("before").close()
    rotated = d.log_path.with_name("chatd.log.1")
    wait_until(lambda: "before" in d.log_text(), "the first login in the log")
    d.log_path.rename(rotated)
    victim = tmp_path / "victim"
    victim.write_text("not chatd's\n")
    victim.chmod(0o644)
    if plant == "symlink":
        d.log_path.symlink_to(victim)
    elif plant == "hard link":
        os.link(victim, d.log_path)
    else:           # with a reader, so that opening it for writing would succeed
        os.mkfifo(d.log_path, 0o640)
        reader = os.open(d.log_path, os.O_RDONLY | os.O_NONBLOCK)
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "cannot reopen" in rotated.read_text(), "the refusal in the old log")
    if plant == "fifo":
        d.login("through").close()
        wait_until(lambda: "through" in rotated.read_text(), "a later line in the old log")
        # End of file: nothing was written, and chatd holds no end of the FIFO open.
        assert os.read(reader, 4096) == b"", "the log was written into the FIFO"
        os.close(reader)
    d.ctl_ok("status")                      # the control thread was not held up
    d.login("after").close()
    wait_until(lambda: "login after" in rotated.read_text() or
               "registered after" in rotated.read_text(), "the next login in the old log")
    assert victim.read_text() == "not chatd's\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert d.alive()


def registration_open(d, name):
    """PASS new (True) or ERR 403 (False) for an unknown name."""
    c = d.connect(name)
    c.expect_hello()
    c.send_line(name)
    line = c.read()
    c.close()
    assert line.tag == "PASS" or line.raw.startswith("ERR 403"), line
    return line.tag == "PASS"


def test_sighup_reloads_settings(chatd_factory):
    d = chatd_factory(registration=True)
    assert registration_open(d, "first")
    d.settings["registration"] = False
    d.write_config()
    d.send_signal(signal.SIGHUP)
    probes = itertools.count()
    wait_until(lambda: not registration_open(d, f"probe{next(probes)}"), "registration to close")


def test_registration_closed_by_sighup_stops_dialogues_under_way(irc_chatd):
    """SECURITY.md: registration = false (SIGHUP) stops registration flooding.  A
    dialogue that was offered PASS new before the reload (or an IRC client whose
    PASS waits for CAP END) must not register its name after it: the native one
    gets ERR 403 and is asked for a name again, the IRC one is refused."""
    d = irc_chatd(registration=True)
    held = []
    for i in range(3):
        c = d.connect(f"early{i}")
        c.expect_hello()
        c.send_line(f"early{i}")
        c.expect("PASS", "new")
        held.append(c)
    irc = d.irc_connect("earlyirc")
    irc.cap_ls("302")
    irc.send("PASS pw-earlyirc")
    irc.send("NICK earlyirc")
    irc.send("USER earlyirc 0 * :x")
    irc.sync()
    d.settings["registration"] = False
    d.write_config()
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in d.log_text(), "the reload")
    for i, c in enumerate(held):
        c.send_line(f"pw-early{i}")
        err = c.read(timeout=10)
        assert err.tag == "ERR" and err[0] == "403", err.raw
        c.send_line(f"early{i}")                # asked for a name again: still closed
        assert c.read().raw.startswith("ERR 403")
    irc.send("CAP END")
    lines = irc.expect_closed()
    assert not any(m.command == "001" for m in lines), lines
    assert d.ctl_ok("user", "list").strip().endswith("0 registered")
    assert "registered early" not in d.log_text()


def sighup(d):
    """Sends SIGHUP for the config as written; returns once it was taken or refused."""
    def done():
        text = d.log_text()
        return text.count("reloaded ") + text.count("reload failed")

    before = done()
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: done() > before, "the reload")


def test_a_reload_leaves_settings_fixed_until_restart_as_they_were(chatd_factory):
    """chatd.conf(5): a change to a setting not under "Behaviour (SIGHUP)" is
    logged and waits for the next restart.  max_line lowered by a reload was
    applied to new connections (a 100-byte line got ERR 413) and to chatctl
    notice, though the log said it takes a restart."""
    d = chatd_factory(log_level="info")
    d.settings["max_line"] = 64
    d.write_config()
    sighup(d)
    assert re.search(r"reload: .*max_line.* changed; that takes a restart", d.log_text())
    a, b = d.login("early"), d.login("late")
    msg_id = a.say("x" * 100)
    assert b.wait_for("MSG").id == msg_id
    assert "sent to 2 online" in d.ctl_ok("notice", "y" * 100)
    d.restart()                                 # now it counts
    c = d.login("after")
    data, final = c.request("z" * 100)
    assert final.raw.startswith("ERR 413"), final.raw


def test_a_reload_holds_history_replay_to_the_running_history_memory(chatd_factory):
    """history_memory is fixed until restart: a reload raising it with
    history_replay is refused (file:line, the old settings stay), as one
    raising history_replay alone past it would be."""
    d = chatd_factory(log_level="info", history_memory=50, history_replay=20,
                      registration=True)
    d.settings.update(history_memory=500, history_replay=200, registration=False)
    d.write_config()
    sighup(d)
    assert re.search(rf"reload failed.*{re.escape(str(d.config_path))}:\d+: 'history_replay' "
                     r"\(200\) must not exceed 'history_memory' \(50, as chatd runs",
                     d.log_text()), d.log_text()
    assert d.alive()
    assert registration_open(d, "newbie"), "the refused config's registration = false was applied"


def test_guests_turned_off_by_sighup_answer_the_empty_line_offered_before(chatd_factory):
    """A dialogue told "an empty line comes in as a guest" (PASS guest, PASS new)
    before a reload turned guests off: its empty line went unanswered (a blank
    line) and the client waited for login_timeout.  Now ERR 403 and a name
    again, as for registration closed since PASS new."""
    d = chatd_factory(guests=True, registration=False, log_level="info")
    c = d.connect("visitor")
    c.expect_hello()
    c.send_line("visitor")
    c.expect("PASS", "guest")
    d.settings["guests"] = False
    d.write_config()
    sighup(d)
    c.send_line("")
    err = c.read(timeout=5)
    assert err.raw == "ERR 403 no guests are let in now; choose another name", err.raw
    c.send_line("visitor")                      # a name again: no guests, no registration
    assert c.read().raw.startswith("ERR 403 no user visitor"), "not asked for a name again"
    assert d.ctl_ok("users").strip() == "0 online"


def test_sighup_with_broken_config_keeps_old_settings(chatd_factory):
    d = chatd_factory(registration=True, log_level="info")
    a = d.login("steady")
    text = d.config_path.read_text().replace("registration = true;", "registration = false;")
    d.write_config(text + "this is = = broken;\n")
    broken_line = len(text.splitlines()) + 1
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: f"{d.config_path}:{broken_line}" in d.log_text(),
               "the config error in the log")
    assert d.alive()
    assert registration_open(d, "newbie"), "the broken config's registration = false was applied"
    b = d.login("other")
    msg_id = a.say("still chatting")
    assert b.wait_for("MSG").id == msg_id
