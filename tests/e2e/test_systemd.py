"""
test_systemd.py - chatd as systemd sees it: readiness, status, stopping and
the watchdog (the test plays systemd's part with its own NOTIFY_SOCKET),
and socket activation through Debian's systemd-socket-activate.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from chatproto import Client, deadline_in, scaled, wait_until
from conftest import CHATD_BIN, config_text, free_port


class NotifySocket:
    """What chatd sends to $NOTIFY_SOCKET, as (monotonic time, {key: value})."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="chatd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []

    def receive(self, timeout):
        """The next message, or None after timeout seconds (scaled)."""
        self.sock.settimeout(scaled(timeout))
        try:
            data = self.sock.recv(4096)
        except socket.timeout:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
        self.messages.append((time.monotonic(), fields))
        return fields

    def wait_for(self, key, value=None, timeout=10):
        """The first message with key (and value, or value(v) true); fails on timeout."""
        deadline = deadline_in(timeout)
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {key}={value} from chatd; got {self.messages}"
            fields = self.receive(left)
            if fields is None or key not in fields:
                continue
            if value is None or (value(fields[key]) if callable(value) else fields[key] == value):
                return fields

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify():
    ns = NotifySocket()
    yield ns
    ns.close()


def start_notified(chatd_factory, notify, watchdog_usec=None, fault=None, **settings):
    chatd = chatd_factory(start=False, **settings)
    chatd.env["NOTIFY_SOCKET"] = notify.path
    if watchdog_usec is not None:
        chatd.env["WATCHDOG_USEC"] = str(watchdog_usec)
    if fault is not None:
        chatd.env["CHATD_TEST_FAULT"] = fault
    return chatd.start()


def test_ready_only_once_it_serves(chatd_factory, notify):
    chatd = chatd_factory(start=False)
    chatd.env["NOTIFY_SOCKET"] = notify.path
    chatd.write_config()
    port = chatd.settings["port"]
    proc = subprocess.Popen([CHATD_BIN, "-c", str(chatd.config_path)], cwd=chatd.workdir,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **chatd.env})
    try:
        ready = notify.wait_for("READY", "1")
        # At READY=1 both the chat port and the admin socket must answer.
        client = Client("first").connect(port)
        client.expect_hello()
        client.close()
        assert chatd.ctl_ok("status").startswith("version:")
        assert ready.get("STATUS", "").startswith("listening on 127.0.0.1:") or any(
            m.get("STATUS", "").startswith("listening on") for _, m in notify.messages)
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING", "1")
        assert proc.wait(scaled(10)) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_status_follows_pause_resume_and_users(chatd_factory, notify):
    chatd = start_notified(chatd_factory, notify)
    notify.wait_for("READY", "1")
    chatd.login("alice")
    notify.wait_for("STATUS", lambda v: v.endswith("; 1 online"))
    chatd.ctl_ok("pause")
    notify.wait_for("STATUS", lambda v: v.startswith("paused"))
    chatd.ctl_ok("resume")
    notify.wait_for("STATUS", lambda v: v.startswith(f"listening on 127.0.0.1:{chatd.port}"))
    chatd.ctl_ok("stop")
    notify.wait_for("STOPPING", "1")
    assert chatd.wait() == 0


def test_reload_is_bracketed(chatd_factory, notify):
    chatd = start_notified(chatd_factory, notify)
    notify.wait_for("READY", "1")
    chatd.send_signal(signal.SIGHUP)
    notify.wait_for("RELOADING", "1")
    notify.wait_for("READY", "1")


def watchdog_pings(notify, seconds):
    """Times of the WATCHDOG=1 messages received within seconds (scaled)."""
    deadline = deadline_in(seconds)
    times = []
    while (left := deadline - time.monotonic()) > 0:
        fields = notify.receive(left)
        if fields and fields.get("WATCHDOG") == "1":
            times.append(time.monotonic())
    return times


@pytest.mark.parametrize("fault", ["listener-hang", "room-hang"])
def test_watchdog_pings_on_time_and_stop_when_chatd_hangs(chatd_factory, notify, fault):
    interval = 0.4      # WATCHDOG_USEC; chatd pings at half of it
    chatd = start_notified(chatd_factory, notify, watchdog_usec=int(interval * 1e6),
                           fault=fault)
    notify.wait_for("READY", "1")
    pings = watchdog_pings(notify, 2.0)
    assert len(pings) >= 4, pings
    gaps = [b - a for a, b in zip(pings, pings[1:])]
    assert max(gaps) < scaled(interval), gaps

    # Make the fault happen: a connection for the listener, a message for the room.
    if fault == "listener-hang":
        socket.create_connection(("127.0.0.1", chatd.port), timeout=scaled(5)).close()
    else:
        alice = chatd.login("alice")
        alice.send_line("this message never gets through")
    watchdog_pings(notify, interval)        # pings already on their way
    assert watchdog_pings(notify, 3 * interval) == []
    assert "withholding the watchdog ping" in chatd.log_text()
    # SIGTERM still ends it, well before a service manager's stop timeout: the
    # control thread never waits on the hung part for long.
    start = time.monotonic()
    chatd.send_signal(signal.SIGTERM)
    assert chatd.wait(timeout=8) == (1 if fault == "room-hang" else 0)
    assert time.monotonic() - start < scaled(6)


def test_stuck_room_lock_is_reported_and_admin_still_answers(chatd_factory, notify):
    """The control thread never blocks on the room lock: with the room hung the
    log says so within a bounded time, the watchdog pings stop, every admin
    command answers (those that need the room with ERR 503 "room is busy"), and
    SIGTERM ends chatd at once."""
    interval = 0.4
    chatd = start_notified(chatd_factory, notify, watchdog_usec=int(interval * 1e6),
                           fault="room-hang")
    notify.wait_for("READY", "1")
    chatd.login("bob")
    alice = chatd.login("alice")
    notify.wait_for("STATUS", lambda v: v.endswith("; 2 online"))
    alice.send_line("this message hangs the room")
    wait_until(lambda: "unhealthy: the room lock is stuck" in chatd.log_text(),
               "the stuck room lock in the log", timeout=5)
    watchdog_pings(notify, interval)        # pings already on their way
    assert watchdog_pings(notify, 3 * interval) == []
    # A newcomer gets the listener thread stuck too (on the room lock).
    newcomer = socket.create_connection(("127.0.0.1", chatd.port), timeout=scaled(5))
    try:
        status = chatd.ctl("-t", "5", "status")
        assert status.returncode == 0, status.stderr
        assert "clients: unknown: the room lock was not free within" in status.stdout
        for args in (["users"], ["kick", "bob"], ["notice", "hello"], ["pause"],
                     ["user", "del", "bob"]):
            proc = chatd.ctl("-t", "5", *args)
            if args[0] == "user":       # deleted; the session could not be ended
                assert proc.returncode == 0 and "the room is busy" in proc.stdout, proc
                continue
            assert proc.returncode == 1 and "the room is busy" in proc.stderr, (args, proc)
        start = time.monotonic()
        chatd.send_signal(signal.SIGTERM)
        assert chatd.wait(timeout=8) == 1
        assert time.monotonic() - start < scaled(4)
    finally:
        newcomer.close()
    assert "the room lock is stuck (not free within 1000 ms): exiting" in chatd.log_text()


def test_unknown_test_fault_is_refused(chatd_factory):
    chatd = chatd_factory(start=False)
    chatd.env["CHATD_TEST_FAULT"] = "no-such-fault"
    chatd.write_config()
    proc = subprocess.run([CHATD_BIN, "-c", str(chatd.config_path)], capture_output=True,
                          text=True, timeout=scaled(10), cwd=chatd.workdir,
                          env={**os.environ, **chatd.env})
    assert proc.returncode == 1
    assert "CHATD_TEST_FAULT=no-such-fault names no fault" in proc.stderr


class Activated:
    """chatd started by systemd-socket-activate on its first connection, with
    both its chat port and its admin socket passed in."""

    def __init__(self, workdir, admin_socket):
        self.port = free_port()
        self.admin_socket = admin_socket
        state = workdir / "state"
        state.mkdir(parents=True)
        self.config = workdir / "chatd.conf"
        self.config.write_text(config_text({
            "state_dir": str(state), "admin_socket": admin_socket, "hash_cost": 1,
            "login_fail_delay_ms": 50}))
        self.stderr = open(workdir / "stderr", "w")
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}", "-l", admin_socket,
             "--fdname=chat:admin", CHATD_BIN, "-c", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            cwd=workdir)

    def connect(self, label):
        deadline = deadline_in(10)
        while True:
            try:
                return Client(label).connect(self.port)
            except ConnectionRefusedError:      # systemd-socket-activate still binding
                assert time.monotonic() < deadline, "systemd-socket-activate never listened"
                time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(scaled(10))
        finally:
            self.stderr.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_socket_activation_with_pause_and_resume(chatd_factory, tmp_path):
    helper = chatd_factory(start=False)      # only for its chatctl and admin socket path
    activated = Activated(tmp_path / "activated", str(helper.admin_socket))
    try:
        alice = activated.connect("alice")
        alice.login("alice", "pw-alice")
        bob = activated.connect("bob")
        bob.login("bob", "pw-bob")
        msg_id = alice.say("through systemd's socket")
        assert bob.wait_for("MSG").id == msg_id
        status = helper.ctl_ok("status")
        assert f"listening: 127.0.0.1:{activated.port}" in status

        # Paused, systemd's socket is kept: a newcomer is told, not left hanging.
        assert helper.ctl_ok("pause") == "paused\n"
        newcomer = activated.connect("newcomer")
        lines = newcomer.read_until_closed()
        assert [line.raw for line in lines] == ["ERR 503 server is paused; try again later"]
        msg_id = alice.say("still chatting")
        assert bob.wait_for("MSG").id == msg_id

        helper.ctl_ok("resume")
        carol = activated.connect("carol")
        carol.login("carol", "pw-carol")
        assert carol.say("in again") > msg_id
    finally:
        rc = activated.stop()
    assert rc == 0
    log = (tmp_path / "activated" / "state" / "chatd.log").read_text()
    assert "admin: serving the socket systemd passed" in log
    assert "socket from systemd" in (tmp_path / "activated" / "state" / "chatd.log").read_text()
