"""
test_daemon_mode.py - chatd started outside systemd: --daemon (detach only
once serving, a locked pid file) and, started as root, running as the
configured user.
"""

import os
import pwd
import signal
import socket
import stat
import subprocess

import pytest

from chatproto import Client, scaled, wait_until
from conftest import CHATD_BIN


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def proc_ids(pid, field):
    """The real, effective, saved and filesystem ids of /proc/PID/status's Uid/Gid line."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Detached:
    """A chatd --daemon from a Chatd's config: stopped through chatctl, killed if need be."""

    def __init__(self, chatd):
        self.chatd = chatd
        self.pid = None

    def start(self):
        self.chatd.write_config()
        proc = subprocess.run([CHATD_BIN, "--daemon", "-c", str(self.chatd.config_path)],
                              capture_output=True, text=True, timeout=scaled(20),
                              cwd=self.chatd.workdir)
        return proc

    def read_pid(self, pidfile):
        self.pid = int(pidfile.read_text())
        return self.pid

    def stop(self):
        if self.pid is None or not pid_alive(self.pid):
            return
        self.chatd.ctl("stop")
        try:
            wait_until(lambda: not pid_alive(self.pid), "the daemon to exit", timeout=10)
        finally:
            if pid_alive(self.pid):
                os.kill(self.pid, 9)


@pytest.fixture
def detached(chatd_factory):
    made = []

    def make(**settings):
        d = Detached(chatd_factory(start=False, **settings))
        made.append(d)
        return d
    yield make
    for d in made:
        d.stop()


def test_daemon_returns_once_serving(detached, tmp_path):
    runtime = tmp_path / "run"
    d = detached(runtime_dir=str(runtime))
    proc = d.start()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("chatd: listening on 127.0.0.1:")
    # The parent is gone; the port and the admin socket answer already.
    port = d.chatd.settings["port"]
    client = Client("first").connect(port)
    client.login("alice", "pw-alice")
    pid = d.read_pid(runtime / "chatd.pid")
    assert pid_alive(pid)
    assert f"pid: {pid}" in d.chatd.ctl_ok("status")
    assert os.getsid(pid) == pid, "the daemon leads its own session"

    second = d.start()
    assert second.returncode == 1
    assert "in use by another chatd" in second.stderr

    d.stop()
    assert not (runtime / "chatd.pid").exists()


def test_pid_file_refuses_a_second_daemon(detached, tmp_path):
    runtime = tmp_path / "run"
    first = detached(runtime_dir=str(runtime))
    assert first.start().returncode == 0
    pid = first.read_pid(runtime / "chatd.pid")
    other = detached(runtime_dir=str(runtime))      # its own state dir, the same pid file
    proc = other.start()
    assert proc.returncode == 1
    assert f"chatd is already running (pid {pid}, pid file {runtime}/chatd.pid)" in proc.stderr


def test_daemon_failure_reaches_the_caller(detached):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    try:
        d = detached(port=blocker.getsockname()[1], port_tries=0)
        proc = d.start()
    finally:
        blocker.close()
    assert proc.returncode == 1
    assert "Address already in use" in proc.stderr


def test_root_drops_to_the_configured_user(chatd_factory, admin_users, shared_dir):
    _, (uid, gid), _ = admin_users
    user = pwd.getpwuid(uid).pw_name
    state = os.path.join(shared_dir, "state")
    chatd = chatd_factory(user=user, state_dir=state,
                          runtime_dir=os.path.join(shared_dir, "run"),
                          admin_socket=os.path.join(shared_dir, "run", "admin.sock"))
    assert proc_ids(chatd.pid, "Uid") == [uid] * 4
    assert proc_ids(chatd.pid, "Gid") == [gid] * 4
    alice = chatd.login("alice")            # registers: the ident file is written as the user
    alice.say("hello")
    for path in (state, chatd.ident_path, chatd.history_path, chatd.log_path):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (uid, gid), path
    assert f"running as user {user}" in chatd.log_text()
    assert "pid:" in chatd.ctl_ok("status")   # root still reaches it
    chatd.send_signal(signal.SIGHUP)          # reopens the log as the user
    chatd.login("bob")
    assert chatd.stop() == 0


def task_status(pid):
    """{tid: {field: value}} of every thread of pid, from /proc/PID/task/*/status."""
    tasks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                tasks[tid] = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except FileNotFoundError:
            pass            # a thread that ended meanwhile
    return tasks


def test_root_leaves_nothing_of_root_in_any_thread(chatd_factory, admin_users, shared_dir):
    """SECURITY.md: started as root, chatd drops to user once its port is bound.
    Every thread, those started before the drop and after it (client threads,
    the admin worker of user add, after a SIGHUP), has only the user's ids, the
    user's own groups (none of root's) and no capability left."""
    _, (uid, gid), _ = admin_users
    user = pwd.getpwuid(uid).pw_name
    groups = sorted(set(os.getgrouplist(user, gid)))
    chatd = chatd_factory(user=user, state_dir=os.path.join(shared_dir, "state"),
                          runtime_dir=os.path.join(shared_dir, "run"),
                          admin_socket=os.path.join(shared_dir, "run", "admin.sock"))
    clients = [chatd.login(f"user{i}") for i in range(3)]
    chatd.add_user("added")                     # a hash in the admin worker thread
    chatd.send_signal(signal.SIGHUP)
    # (The config, in pytest's directory, is root's alone: the user cannot read it
    # again, and the reload says so; the log is reopened all the same.)
    wait_until(lambda: "reload" in chatd.log_text(), "the reload in the log")
    clients.append(chatd.login("late"))
    clients[0].say("all there")
    tasks = task_status(chatd.pid)
    assert len(tasks) >= 3, tasks.keys()
    for tid, st in tasks.items():
        name = st.get("Name")
        assert [int(x) for x in st["Uid"].split()] == [uid] * 4, (tid, name, st["Uid"])
        assert [int(x) for x in st["Gid"].split()] == [gid] * 4, (tid, name, st["Gid"])
        assert sorted(int(x) for x in st["Groups"].split()) == groups, (tid, name, st["Groups"])
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            assert int(st[cap], 16) == 0, (tid, name, cap, st[cap])
    assert chatd.stop() == 0


def test_unknown_user_is_a_clear_error(chatd_factory):
    if os.geteuid() != 0:
        pytest.skip("only root drops privileges")
    chatd = chatd_factory(start=False, user="no-such-user-here")
    rc, _, err = chatd.run_expecting_exit()
    assert rc == 1
    assert "user no-such-user-here: no such user" in err


@pytest.mark.parametrize("plant", ["symlink", "hard link", "fifo"])
def test_a_link_or_fifo_planted_at_the_pid_file_is_refused(detached, tmp_path, plant):
    """SECURITY.md: the pid file is opened with O_NOFOLLOW and checked on the
    descriptor; chatd --daemon refuses a link or a FIFO there rather than write
    through it (or hang on the FIFO), and leaves the target alone."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o750)
    victim = tmp_path / "victim"
    victim.write_text("not chatd's\n")
    os.chmod(victim, 0o644)
    pidfile = runtime / "chatd.pid"
    if plant == "symlink":
        os.symlink(victim, pidfile)
    elif plant == "hard link":
        os.link(victim, pidfile)
    else:
        os.mkfifo(pidfile, 0o644)
    d = detached(runtime_dir=str(runtime))
    proc = d.start()                    # bounded by Detached.start's timeout
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "cannot open the pid file" in proc.stderr, proc.stderr
    assert victim.read_text() == "not chatd's\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert pidfile.is_symlink() if plant == "symlink" else pidfile.exists()
    port = d.chatd.settings["port"]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
