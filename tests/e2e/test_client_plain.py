"""
test_client_plain.py - chat's plain mode (stdin and stdout not a terminal)
against the real chatd: what it sends and prints, its exit codes, where the
password comes from, long lines, and what it does with text a server
should never have sent.
"""

import signal
import subprocess
import time

from chatclient import (CHAT_BIN, EXIT_CONNECT, EXIT_LOGIN, EXIT_LOST, EXIT_OK, EXIT_REFUSED,
                        EXIT_RESOLVE, EXIT_USAGE, FakeServer, RunningPlain, answer_by_check,
                        client_env, fake_login, run_plain)
from chatproto import scaled
from conftest import free_port


def addr(chatd):
    return ["127.0.0.1", str(chatd.port)]


def test_sends_each_line_and_prints_the_protocol(chatd):
    bob = chatd.login("bob")
    res = run_plain(["--name", "alice", *addr(chatd)], "hello bob\n\n/ping are you there\n",
                    password="pw-alice")
    assert res.rc == EXIT_OK, res
    assert res.lines[0].startswith("HELLO 2 chatd/")
    assert res.tagged("WELCOME") == ["WELCOME alice registered"]
    oks = res.tagged("OK")
    assert oks[0] == "OK - logged in as alice"
    assert oks[1].split(" ")[0] == "OK" and oks[1].endswith(" sent"), res
    assert "PONG are you there" in res.lines and "OK - pong" in res.lines
    # The end of input is a clean /quit: all was acknowledged before it.
    assert res.lines[-1].startswith("BYE quit"), res
    msg = bob.wait_for("MSG")
    assert msg[2:] == ["alice", "hello bob"]
    assert int(oks[1].split(" ")[1]) == msg.id
    assert bob.wait_for("PART", lambda p: p[1] == "alice")[2] == "quit"


def test_a_quit_line_the_server_refuses_has_its_answer(chatd):
    """chatd answers /quit with BYE, or with ERR when it refuses the line itself
    (here: too long): that ERR is the answer to it, no broken protocol."""
    res = run_plain(["--name", "alice", *addr(chatd)], "/quit " + "x" * 5000 + "\n",
                    password="pw-alice")
    assert res.rc == EXIT_REFUSED, res
    assert res.tagged("ERR")[0].startswith("ERR 413"), res
    assert "broke the protocol" not in res.err, res
    assert res.lines[-1].startswith("BYE quit"), res


def test_a_line_chatd_takes_for_blank_is_not_sent(chatd):
    """A lone CR before the CR LF: chatd drops a CR before the LF too, and does
    not answer a blank line; sent, it would wait for a reply that never comes."""
    res = run_plain(["--name", "alice", "--timeout", "3", *addr(chatd)], "\r\r\nhello\n",
                    password="pw-alice")
    assert res.rc == EXIT_OK, res
    assert res.tagged("OK")[1].endswith(" sent"), res


def test_each_line_waits_for_its_reply_in_order(chatd):
    lines = [f"line {i}" for i in range(30)]
    res = run_plain(["--name", "alice", *addr(chatd)], "\n".join(lines) + "\n",
                    password="pw-alice")
    assert res.rc == EXIT_OK, res
    acks = [line for line in res.tagged("OK") if line.endswith(" sent")]
    ids = [int(line.split(" ")[1]) for line in acks]
    assert len(ids) == 30 and ids == sorted(ids), res
    watcher = chatd.login("watcher")
    data, _ = watcher.request("/history 30")
    assert [h[3] for h in data] == lines


def batching_server(reply=b"OK - fine\n", extra=b""):
    def play(server, conn, reader):
        fake_login(server, conn, reader)
        answer_by_check(server, conn, reader, reply=reply, extra=extra)
    return FakeServer(play=play)


def test_the_lines_of_a_pipe_go_together_behind_one_check():
    """chatd answers a command (the check's /ping) only once the messages
    before it are stored: a check behind each line would cost each line a
    disk commit of its own, one after the other."""
    server = batching_server()
    lines = [f"line {i}" for i in range(20)]
    res = run_plain(["--name", "al", "127.0.0.1", str(server.port)],
                    "\n".join(lines[:10]) + "\n/quit\n" + "\n".join(lines[10:]) + "\n",
                    password="pw")
    server.join()
    assert res.rc == EXIT_OK, res
    # /quit goes alone, once the lines before it are answered; none after it.
    assert server.batches == [[f"{line}\n".encode() for line in lines[:10]]], server.batches
    assert server.received[-1] == b"/quit\n"
    assert res.tagged("OK") == ["OK - logged in as al"] + ["OK - fine"] * 10, res


def test_one_reply_too_many_for_the_lines_sent_together_breaks_the_protocol():
    server = batching_server(extra=b"ERR 507 message not stored (disk)\n")
    res = run_plain(["--name", "al", "127.0.0.1", str(server.port)], "a\nb\nc\n",
                    password="pw")
    assert res.rc == EXIT_LOST, res
    assert "ERR 507 message not stored (disk)" in res.err and "answers no request" in res.err


def test_a_pipe_shares_the_disk_commits(chatd_factory):
    """Durable history on a disk whose every sync takes 100 ms: the lines of
    a pipe share group commits instead of waiting for one each."""
    d = chatd_factory(start=False, history_sync_ms=0)
    d.env["CHATD_TEST_FAULT"] = "slow-sync"  # daemon/fault.h: 100 ms per sync
    d.start()
    lines = [f"line {i}" for i in range(30)]
    start = time.monotonic()
    res = run_plain(["--name", "al", *addr(d)], "\n".join(lines) + "\n", password="pw")
    took = time.monotonic() - start
    assert res.rc == EXIT_OK, res
    assert len([line for line in res.tagged("OK") if line.endswith(" sent")]) == 30, res
    # One commit each would be 3 s at least.
    assert took < 1.5, f"30 lines took {took:.2f} s"
    data, _ = d.login("watcher").request("/history 30")
    assert [h[3] for h in data] == lines


def test_password_file_and_no_password_on_the_command_line(chatd, tmp_path):
    pwfile = tmp_path / "pw"
    pwfile.write_text("file-secret\nsecond line is ignored\n")
    pwfile.chmod(0o600)
    first = run_plain(["--name", "carol", "--password-file", str(pwfile), *addr(chatd)],
                      "hi\n")
    assert first.rc == EXIT_OK, first
    assert "warning" not in first.err
    # The file's password is the one registered: it logs in over the protocol too.
    chatd.login("carol", "file-secret")

    refused = run_plain(["--name", "carol", "--password", "file-secret", *addr(chatd)])
    assert refused.rc == EXIT_USAGE
    assert "--password-file" in refused.err and "file-secret" not in refused.err


def test_a_readable_password_file_is_warned_about(chatd, tmp_path):
    pwfile = tmp_path / "pw"
    pwfile.write_text("open-secret\n")
    pwfile.chmod(0o644)
    res = run_plain(["--name", "dave", "-p", str(pwfile), *addr(chatd)], "")
    assert res.rc == EXIT_OK, res
    assert "can be read by others" in res.err


def test_missing_name_or_password_is_a_usage_error(chatd, tmp_path):
    no_name = run_plain(addr(chatd), "hi\n", password="pw")
    assert no_name.rc == EXIT_USAGE and "--name" in no_name.err
    no_password = run_plain(["--name", "erin", *addr(chatd)], "hi\n")
    assert no_password.rc == EXIT_USAGE and "CHAT_PASSWORD" in no_password.err
    missing_file = run_plain(["--name", "erin", "-p", str(tmp_path / "none"), *addr(chatd)])
    assert missing_file.rc == EXIT_USAGE and "cannot open password file" in missing_file.err
    bad_port = run_plain(["--name", "erin", "127.0.0.1", "70000"], password="pw")
    assert bad_port.rc == EXIT_USAGE and "invalid port" in bad_port.err


def test_wrong_password_is_refused(chatd):
    chatd.login("frank", "right").close()
    res = run_plain(["--name", "frank", *addr(chatd)], "never sent\n", password="wrong")
    assert res.rc == EXIT_LOGIN, res
    assert "wrong password" in res.err and "registered" in res.err
    assert res.tagged("ERR")[0].startswith("ERR 401")
    watcher = chatd.login("watcher")
    data, _ = watcher.request("/history 5")
    assert "never sent" not in [h[3] for h in data]


def test_invalid_name_and_closed_registration_are_refused(chatd_factory):
    chatd = chatd_factory(registration=False)
    bad = run_plain(["--name", "-nope", *addr(chatd)], "", password="pw")
    assert bad.rc == EXIT_LOGIN and "invalid name" in bad.err, bad
    closed = run_plain(["--name", "newcomer", *addr(chatd)], "", password="pw")
    assert closed.rc == EXIT_LOGIN and "not register" in closed.err, closed


def test_refused_connection_and_unknown_host():
    refused = run_plain(["--name", "gina", "127.0.0.1", str(free_port())], "hi\n",
                        password="pw")
    assert refused.rc == EXIT_CONNECT and "cannot connect" in refused.err, refused
    # An empty label fails inside the resolver, without asking any name server.
    unknown = run_plain(["--name", "gina", "no..such.invalid", "7777"], "hi\n", password="pw")
    assert unknown.rc == EXIT_RESOLVE and "cannot resolve" in unknown.err, unknown


def test_a_refused_line_makes_the_exit_code_but_the_rest_is_sent(chatd):
    res = run_plain(["--name", "hank", *addr(chatd)], "/msg nobody hi\nstill sent\n",
                    password="pw")
    assert res.rc == EXIT_REFUSED, res
    assert res.tagged("ERR")[0].startswith("ERR 404")
    assert any(line.endswith(" sent") and line.startswith("OK ") for line in res.lines), res


def test_live_traffic_is_printed_while_input_stays_open(chatd):
    chat = RunningPlain(["--name", "ivy", *addr(chatd)], password="pw")
    try:
        chat.wait_line(lambda line: line == "OK - logged in as ivy")
        bob = chatd.login("bob")
        bob.say("are you there, ivy?")
        line = chat.wait_line(lambda line: line.startswith("MSG "))
        assert line.split(" ", 5)[4:] == ["bob", "are you there, ivy?"]
        chat.send("/msg bob yes")
        assert bob.wait_for("PRIV")[1:] == ["ivy", "bob", "yes"]
        rc, err = chat.finish()
    finally:
        chat.kill()
    assert rc == EXIT_OK, err


def test_a_lost_connection_is_an_error(chatd):
    chat = RunningPlain(["--name", "jack", *addr(chatd)], password="pw")
    try:
        chat.wait_line(lambda line: line == "OK - logged in as jack")
        assert chatd.stop() == 0
        rc, err = chat.finish(close_input=False)
    finally:
        chat.kill()
    assert rc == EXIT_LOST
    assert "ended the session" in err or "closed the connection" in err, err
    assert any(line.startswith("BYE shutdown") for line in chat.lines)


def test_output_to_a_pipe_stays_utf8_whatever_the_locale():
    """Only a terminal gets its own character set (chat(1)): a script reads
    the protocol's UTF-8 even with LANG=C."""
    server = FakeServer("MSG lobby 1 2026-11-21T09:30:00.000Z eve caf\u00e9\n".encode())
    res = run_plain(["--name", "jo", "127.0.0.1", str(server.port)], "",
                    env=client_env("pw", LANG="C"))
    server.join()
    assert res.rc == EXIT_OK, res
    assert "MSG lobby 1 2026-11-21T09:30:00.000Z eve caf\u00e9" in res.lines, res


def test_longest_lines_pass_whole_both_ways(chatd_factory):
    chatd = chatd_factory(max_line=65536)
    text = "x" * 65536
    bob = chatd.login("bob")
    bob.say("y" * 65536)
    res = run_plain(["--name", "kim", *addr(chatd)], text + "\n" + text + "z\n", password="pw")
    # The longest allowed line goes through; one byte more is refused (413), not cut.
    assert res.rc == EXIT_REFUSED, res.err
    hist = [line for line in res.tagged("HIST") if line.endswith("y" * 100)]
    assert len(hist) == 1 and hist[0].split(" ", 5)[5] == "y" * 65536
    assert bob.wait_for("MSG")[3] == text
    assert res.tagged("ERR")[0].startswith("ERR 413")


def test_escape_sequences_from_a_server_never_reach_the_output():
    # OSC title, clear screen, a C1 CSI, a bidi override, NUL and a stray byte.
    evil = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\x00".encode() + b"\xff"
    server = FakeServer(b"MSG lobby 1 2026-11-21T09:30:00.000Z eve " + evil + b" caf\xc3\xa9\n")
    res = run_plain(["--name", "lee", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert server.error is None
    assert res.rc == EXIT_OK, res
    msg = res.tagged("MSG")[0]
    assert "\x1b" not in res.out and "\x07" not in res.out and "\x00" not in res.out
    assert "\x9b" not in res.out and "\u202e" not in res.out
    assert msg.endswith("caf\u00e9"), msg          # valid text is left alone
    assert "]0;pwned" in msg and "\ufffd" in msg
    assert server.received[0] == b"pw\n"


def test_an_overlong_server_line_is_reported_not_cut():
    server = FakeServer(b"MSG lobby 1 2026-11-21T09:30:00.000Z eve " + b"a" * 70000 + b"\n")
    res = run_plain(["--name", "lee", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert res.rc == EXIT_LOST, res
    assert "longer than the protocol allows" in res.err
    assert not res.tagged("MSG")


def test_guest_logs_in_without_a_password(chatd_factory):
    """--guest: in as a guest (server setting guests) with no password at all,
    whether registration is open (PASS new offers the empty line) or closed
    (PASS guest); --reconnect asks no resume token a guest cannot have."""
    for registration in (True, False):
        d = chatd_factory(guests=True, registration=registration)
        member = d.login("member", "pw") if registration else None
        res = run_plain(["--guest", "--reconnect", "--name", "visitor", *addr(d)],
                        "hello as a guest\n")
        assert res.rc == EXIT_OK, res
        assert res.tagged("WELCOME") == ["WELCOME visitor guest"], res
        assert res.tagged("OK")[0] == "OK - logged in as visitor", res
        assert res.tagged("OK")[1].endswith(" sent") and res.tagged("ERR") == [], res
        if member is not None:
            msg = member.wait_for("MSG")
            assert msg[2:] == ["~visitor", "hello as a guest"], msg.raw


def test_guest_login_refused_where_the_server_has_none(chatd_factory):
    """--guest against a server without guests, or for a registered name:
    exit status 4 (login) with a sentence that says so, no hang, nothing sent
    as a password; --guest with --password-file is a usage error."""
    d = chatd_factory(guests=False)
    res = run_plain(["--guest", "--timeout", "5", "--name", "visitor", *addr(d)], "hi\n")
    assert res.rc == EXIT_LOGIN, res
    assert "offers no guest login" in res.err, res
    assert not d.ident_path.exists() or "visitor" not in d.ident_path.read_text(), res

    d = chatd_factory(guests=True)
    d.login("owner", "pw").close()
    res = run_plain(["--guest", "--timeout", "5", "--name", "owner", *addr(d)], "hi\n")
    assert res.rc == EXIT_LOGIN, res
    assert "'owner' is registered" in res.err, res

    res = run_plain(["--guest", "--password-file", "/dev/null", "--name", "x", *addr(d)], "")
    assert res.rc == EXIT_USAGE and "a guest has no password" in res.err, res


def test_output_that_cannot_be_written_ends_the_session_with_status_1(chatd):
    """A full disk under `chat ... > FILE`: not status 0 as if every line had
    been kept (chat(1), EXIT STATUS 1)."""
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([CHAT_BIN, "--name", "fay", *addr(chatd)], input=b"hello\n",
                              stdout=full, stderr=subprocess.PIPE, env=client_env("pw-fay"),
                              timeout=scaled(20))
    err = proc.stderr.decode()
    assert proc.returncode == EXIT_USAGE, err
    assert "cannot write to standard output: No space left on device" in err, err


def test_a_reader_gone_with_sigpipe_ignored_ends_the_session(chatd):
    """`sleep infinity | chat ... | grep -m1 ...` where SIGPIPE is ignored (a
    systemd service's default): once grep is gone, the next line chat prints
    ends it, instead of a session kept up for nobody."""
    def ignore_sigpipe():
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    proc = subprocess.Popen([CHAT_BIN, "--name", "gus", *addr(chatd)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=client_env("pw-gus"), preexec_fn=ignore_sigpipe)
    try:
        for line in proc.stdout:
            if line == b"OK - logged in as gus\n":
                break
        proc.stdout.close()  # the reader goes; chat's stdin stays open
        chatd.login("bob").say("anyone there?")
        rc = proc.wait(scaled(10))
        err = proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stderr.close()
    assert rc == EXIT_USAGE, err
    assert "cannot write to standard output: Broken pipe" in err, err
