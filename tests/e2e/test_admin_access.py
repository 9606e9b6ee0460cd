"""
test_admin_access.py - who may use the admin socket, how chatd creates and
guards it, and what junk or stuck admin clients cannot do.

The access tests create a group and two users (the suite runs as root) and
run chatctl as those users through setpriv.
"""

import grp
import os
import re
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from chatproto import scaled, wait_until
from conftest import CHATCTL_BIN

def reachable_socket_dir(chatd):
    """The socket's directory opened to everyone: access is then up to chatd."""
    os.chmod(chatd.admin_socket.parent, 0o755)


def test_socket_mode_and_group(chatd_factory, admin_users):
    group, _, _ = admin_users
    chatd = chatd_factory(admin_group=group)
    st = chatd.admin_socket.lstat()
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam(group).gr_gid


def test_supplementary_member_is_let_in(chatd_factory, admin_users):
    group, member, _ = admin_users
    chatd = chatd_factory(admin_group=group)
    reachable_socket_dir(chatd)
    out = chatd.ctl_ok("status", user=member)
    assert f"pid: {chatd.pid}" in out
    chatd.ctl_ok("pause", user=member)
    assert f"paused by uid {member[0]}" in chatd.log_text()
    chatd.ctl_ok("resume", user=member)


def test_outsider_is_refused_by_the_file_mode(chatd_factory, admin_users):
    group, _, outsider = admin_users
    chatd = chatd_factory(admin_group=group)
    reachable_socket_dir(chatd)
    proc = chatd.ctl("status", user=outsider)
    assert proc.returncode == 3
    assert proc.stderr.startswith("chatctl: permission denied: ")


def test_outsider_is_refused_by_chatd_itself(chatd_factory, admin_users):
    # Even if the file mode lets them through (a mistake, a pre-created or
    # symlinked path), the peer's credentials decide.
    group, _, outsider = admin_users
    chatd = chatd_factory(admin_group=group)
    reachable_socket_dir(chatd)
    os.chmod(chatd.admin_socket, 0o666)
    proc = chatd.ctl("stop", user=outsider)
    assert proc.returncode == 3
    assert proc.stderr == "chatctl: permission denied\n"
    wait_until(lambda: f"admin: refused uid {outsider[0]}" in chatd.log_text(),
               "the refusal in the log")
    link = chatd.admin_socket.parent / "link.sock"
    os.symlink(chatd.admin_socket, link)
    proc = chatd.ctl("stop", user=outsider, socket_path=link)
    assert proc.returncode == 3
    assert chatd.alive()
    chatd.ctl_ok("status")


def test_no_group_means_root_and_own_user_only(chatd_factory, admin_users):
    _, member, _ = admin_users
    chatd = chatd_factory()
    reachable_socket_dir(chatd)
    os.chmod(chatd.admin_socket, 0o666)
    proc = chatd.ctl("status", user=member)
    assert proc.returncode == 3 and "permission denied" in proc.stderr


def test_unknown_admin_group_stops_chatd(chatd_factory):
    chatd = chatd_factory(start=False, admin_group="no-such-group-here")
    rc, _, err = chatd.run_expecting_exit()
    assert rc == 1
    assert "admin_group no-such-group-here: no such group" in err


def test_stale_socket_is_replaced(chatd_factory):
    chatd = chatd_factory(start=False)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(chatd.admin_socket))
    stale.close()
    chatd.start()
    chatd.ctl_ok("status")
    assert "replaced the stale socket" in chatd.log_text()


def test_second_chatd_on_the_same_socket_refuses_to_start(chatd_factory):
    first = chatd_factory()
    second = chatd_factory(start=False, admin_socket=str(first.admin_socket))
    rc, out, err = second.run_expecting_exit()
    assert rc == 1
    assert f"another chatd is running: it answers on {first.admin_socket}" in err
    assert "listening" not in out
    first.ctl_ok("status")


def test_path_that_is_not_a_socket_is_left_alone(chatd_factory):
    chatd = chatd_factory(start=False)
    chatd.admin_socket.write_text("precious\n")
    rc, _, err = chatd.run_expecting_exit()
    assert rc == 1
    assert "exists and is not a socket" in err
    assert chatd.admin_socket.read_text() == "precious\n"


def test_symlink_at_the_socket_path_is_refused(chatd_factory, tmp_path):
    chatd = chatd_factory(start=False)
    target = tmp_path / "elsewhere.sock"
    os.symlink(target, chatd.admin_socket)
    rc, _, err = chatd.run_expecting_exit()
    assert rc == 1
    assert "is not a socket" in err
    assert not target.exists()


def test_overlong_socket_path_is_a_clear_error(chatd_factory, tmp_path):
    chatd = chatd_factory(start=False, admin_socket="/tmp/" + "x" * 120 + "/admin.sock")
    rc, _, err = chatd.run_expecting_exit()
    assert rc == 1
    assert "is too long: at most 107 bytes" in err


class AdminConn:
    """A raw admin protocol connection."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(scaled(10))
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """(data lines, status line) of the next reply."""
        data = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                assert chunk, f"closed; pending {self.buf!r}"
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            text = line.decode()
            if text.startswith("- "):
                data.append(text[2:])
                continue
            assert text == "OK" or text.startswith(("OK ", "ERR ")), text
            return data, text

    def close(self):
        self.sock.close()


def test_junk_gets_errors_and_the_connection_stays_usable(chatd):
    conn = AdminConn(chatd.admin_socket)
    try:
        conn.send(b"frobnicate\n")
        assert conn.reply() == ([], "ERR 404 unknown command 'frobnicate'; try 'help'")
        conn.send(b"\xff\xfe\x00junk\x1b[2J\n")
        assert conn.reply()[1].startswith("ERR 422 ")
        conn.send(b"notice " + b"x" * 5000 + b"\n")
        assert conn.reply()[1].startswith("ERR 413 ")
        conn.send(b"\n")
        assert conn.reply()[1].startswith("ERR 400 empty request")
        conn.send(b"log show 0\n")
        assert conn.reply()[1].startswith("ERR 400 N must be a number")
        # Several requests in one write, answered in order.
        conn.send(b"users\r\nSTATUS\nuser list\n")
        assert conn.reply() == ([], "OK 0 online")
        data, status = conn.reply()
        assert status == "OK running" and f"pid: {chatd.pid}" in data
        assert conn.reply() == ([], "OK 0 registered")
    finally:
        conn.close()
    chatd.ctl_ok("status")


def test_a_stuck_admin_client_blocks_nobody(chatd):
    with open(chatd.log_path, "a") as f:
        for i in range(60000):
            f.write(f"2026-01-01T00:00:00.000Z info filler {i} " + "y" * 80 + "\n")
    stuck = AdminConn(chatd.admin_socket)
    half = AdminConn(chatd.admin_socket)
    try:
        stuck.send(b"log show\n")       # and never read the megabytes that follow
        half.send(b"stat")              # half a request, never finished
        alice = chatd.login("alice")
        bob = chatd.login("bob")
        msg_id = alice.say("unaffected")
        assert bob.wait_for("MSG").id == msg_id
        assert f"pid: {chatd.pid}" in chatd.ctl_ok("status")
        chatd.ctl_ok("notice", "still", "fine")
        assert alice.wait_for("NOTICE")[1] == "still fine"
    finally:
        stuck.close()
        half.close()
    chatd.ctl_ok("status")


def test_too_many_admin_connections(chatd):
    conns = [AdminConn(chatd.admin_socket) for _ in range(16)]
    try:
        for c in conns:          # every one of them admitted and served
            c.send(b"users\n")
            assert c.reply() == ([], "OK 0 online")
        proc = chatd.ctl("status")
        assert proc.returncode == 1
        assert "too many admin connections" in proc.stderr
    finally:
        for c in conns:
            c.close()
    wait_until(lambda: chatd.ctl("status").returncode == 0, "the admin slots to be freed")


DOCS = Path(__file__).resolve().parents[2] / "docs"


def exit_status_texts():
    """{status: its description} from docs/ADMIN.md, docs/chatctl.8 and chatctl --help."""
    texts = {}
    admin = (DOCS / "ADMIN.md").read_text()
    para = admin[admin.index("- Exit status:"):]
    para = " ".join(para[:para.index("\n- ") if "\n- " in para else None].split())
    texts["ADMIN.md"] = dict(re.findall(r"\*\*(\d)\*\* (.*?)(?= \*\*\d\*\*|$)", para))
    man = (DOCS / "chatctl.8").read_text()
    section = man[man.index(".SH EXIT STATUS"):]
    section = section[:section.index(".SH", 4)]
    texts["chatctl.8"] = {m[0]: " ".join(m[1].split()) for m in
                          re.findall(r"\.TP\n\.B (\d)\n(.*?)(?=\.TP|\.PP|$)", section, re.S)}
    usage = subprocess.run([CHATCTL_BIN, "--help"], capture_output=True, text=True).stdout
    line = " ".join(usage[usage.index("Exit status:"):].split())
    texts["--help"] = dict(re.findall(r"(\d) (.*?)(?=, \d |$)", line))
    return texts


def test_every_documented_exit_status(chatd_factory, admin_users, tmp_path):
    """0 done, 1 chatd answered ERR to the command, 2 usage, 3 chatd cannot be
    reached: not running, nobody answers, permission denied by the file mode or
    by chatd itself (ERR 403, before any command runs), no answer in time.  The
    three places that document it say the same."""
    for where, statuses in exit_status_texts().items():
        assert sorted(statuses) == ["0", "1", "2", "3"], (where, statuses)
        # A peer chatd refuses is "cannot reach" (3), like a refusal by the file mode.
        assert "403" in statuses["3"], (where, statuses["3"])
        assert "403" not in statuses["1"], (where, statuses["1"])

    group, _, outsider = admin_users
    chatd = chatd_factory(admin_group=group)
    assert chatd.ctl("status").returncode == 0
    proc = chatd.ctl("kick", "nobody")
    assert proc.returncode == 1 and proc.stderr == "chatctl: nobody is not online\n"
    assert chatd.ctl("frobnicate").returncode == 2
    proc = chatd.ctl("status", socket_path=tmp_path / "none.sock")
    assert proc.returncode == 3 and "chatd is not running" in proc.stderr

    reachable_socket_dir(chatd)
    os.chmod(chatd.admin_socket, 0o666)
    proc = chatd.ctl("stop", user=outsider)
    assert proc.returncode == 3 and proc.stderr == "chatctl: permission denied\n"
    assert chatd.alive()

    # A socket that takes the connection and never answers: 3 after -t seconds.
    mute_path = tmp_path / "mute.sock"
    mute = socket.socket(socket.AF_UNIX)
    mute.bind(str(mute_path))
    mute.listen(1)
    try:
        start = time.monotonic()
        proc = chatd.ctl("-t", "1", "status", socket_path=mute_path)
        assert proc.returncode == 3 and "no answer from chatd within 1 s" in proc.stderr
        assert time.monotonic() - start < scaled(5)
    finally:
        mute.close()
