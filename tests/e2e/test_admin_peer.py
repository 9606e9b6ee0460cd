"""
test_admin_peer.py - chatctl checks who serves the admin socket before it
sends anything.  A stand-in for chatd runs as a process of its own that
binds a Unix socket, setuid()s to the user the test names and only then
calls listen() (the credentials the kernel reports for a listener are
those of the process that called listen()); it records every byte it
receives and answers OK to every request line, as a socket planted by
another local user would.  chatctl must talk only to a listener run by
root, by chatctl's own user, or by the `user` of the configuration it
read (chatctl(8), docs/SECURITY.md): to anything else it sends nothing,
not even a password, and exits 3.

The suite runs as root: the tests that need other users skip otherwise.
"""

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from chatproto import scaled
from conftest import CHATCTL_BIN

UNTRUSTED = 3  # chatctl(8): cannot reach a chatd it trusts

# argv: PATH UID GID SECONDS.  Prints "ready" once listening, then the hex
# of every byte of its one connection ("none" if nobody connected).
FAKE_ADMIN = r"""
import os, socket, sys
path, uid, gid, wait = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o666)
if uid != os.getuid():
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
s.listen(4)
print("ready", flush=True)
s.settimeout(wait)
try:
    conn, _ = s.accept()
except socket.timeout:
    print("none", flush=True)
    sys.exit(0)
conn.settimeout(wait)
got = b""
while True:
    try:
        chunk = conn.recv(65536)
    except socket.timeout:
        break
    if not chunk:
        break
    got += chunk
    if got.endswith(b"\n"):
        conn.sendall(b"OK done\n")
print(got.hex(), flush=True)
"""


def needs_root():
    if os.geteuid() != 0:
        pytest.skip("needs root: the stand-in for chatd runs as another user")


def ids(name):
    pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


class FakeAdmin:
    """A listener at path run by uid: got() is what it received, None if
    nobody connected."""

    def __init__(self, path, uid, gid):
        self.path = str(path)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FAKE_ADMIN, self.path, str(uid), str(gid),
             str(scaled(10))], stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        assert ready == "ready\n", f"the stand-in did not start: {ready!r}"

    def got(self):
        out, _ = self.proc.communicate(timeout=scaled(30))
        assert self.proc.returncode == 0, out
        out = out.strip()
        return None if out == "none" else bytes.fromhex(out)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if os.path.exists(self.path):
            os.unlink(self.path)


@pytest.fixture
def place():
    """A directory under /tmp every user can reach (pytest's are root's alone)."""
    path = tempfile.mkdtemp(prefix="chatctl-peer-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_admin(place):
    """start(user name) -> FakeAdmin at PLACE/admin.sock; stopped at teardown."""
    made = []

    def start(user):
        admin = FakeAdmin(os.path.join(place, "admin.sock"), *ids(user))
        made.append(admin)
        return admin

    yield start
    for admin in made:
        admin.stop()


def chatctl(*args, input_text=None, as_user=None):
    cmd = [CHATCTL_BIN, *args]
    if as_user is not None:
        uid, gid = ids(as_user)
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, input=input_text,
                          timeout=scaled(20), cwd="/")


def write_config(place, **settings):
    path = os.path.join(place, "chatd.conf")
    with open(path, "w") as f:
        for name, value in settings.items():
            f.write(f'{name} = "{value}";\n')
    os.chmod(path, 0o644)
    return path


def assert_refused(proc, admin, socket_path, uid_text):
    """Status 3, the reason on stderr, and not one byte at the listener."""
    assert proc.returncode == UNTRUSTED, proc
    assert socket_path in proc.stderr and uid_text in proc.stderr, proc.stderr
    assert "nothing was sent" in proc.stderr, proc.stderr
    assert proc.stdout == ""
    assert admin.got() == b"", "chatctl sent bytes to a listener it must not trust"


def test_a_listener_of_another_user_gets_no_command(fake_admin):
    needs_root()
    admin = fake_admin("nobody")
    proc = chatctl("-s", admin.path, "status")
    assert_refused(proc, admin, admin.path, "uid 65534 (nobody)")
    assert "root" in proc.stderr, proc.stderr


def test_a_listener_of_another_user_gets_no_password(fake_admin):
    needs_root()
    for command in (["user", "add", "alice"], ["user", "passwd", "alice"]):
        admin = fake_admin("nobody")
        proc = chatctl("-s", admin.path, *command, input_text="the-secret-pw\n")
        assert_refused(proc, admin, admin.path, "uid 65534 (nobody)")
        admin.stop()


def test_no_password_is_asked_for_a_listener_not_trusted(fake_admin):
    """user add / user passwd ask for the password only once connected to a
    chatd chatctl trusts: with standard input open and silent, a chatctl that
    asked first would wait for a line for ever; it must refuse at once."""
    needs_root()
    for command in (["user", "add", "alice"], ["user", "passwd", "alice"]):
        admin = fake_admin("nobody")
        ctl = subprocess.Popen([CHATCTL_BIN, "-s", admin.path, *command], cwd="/",
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        try:
            ctl.wait(timeout=scaled(10))  # standard input stays open and silent
        except subprocess.TimeoutExpired:
            ctl.kill()
            ctl.communicate()
            pytest.fail("chatctl waited for a password for a listener it does not trust")
        out, err = ctl.communicate()
        assert_refused(subprocess.CompletedProcess(ctl.args, ctl.returncode, out, err),
                       admin, admin.path, "uid 65534 (nobody)")
        admin.stop()


def test_a_listener_of_another_user_gets_nothing_from_the_console(fake_admin):
    """Commands from standard input: the one connection is checked too."""
    needs_root()
    admin = fake_admin("nobody")
    proc = chatctl("-s", admin.path, input_text="stop\nuser del alice\n")
    assert_refused(proc, admin, admin.path, "uid 65534 (nobody)")


def test_a_listener_of_root_is_trusted(fake_admin):
    needs_root()
    admin = fake_admin("root")
    proc = chatctl("-s", admin.path, "status")
    assert proc.returncode == 0, proc
    assert proc.stdout == "done\n"
    assert admin.got() == b"status\n"


def test_a_listener_of_the_configured_user_is_trusted(fake_admin, place):
    """`user` of -c CONFIG: with -s naming the socket, and with the socket
    taken from the configuration."""
    needs_root()
    config = write_config(place, user="nobody")
    admin = fake_admin("nobody")
    proc = chatctl("-s", admin.path, "-c", config, "user", "add", "alice",
                   input_text="the-secret-pw\n")
    assert proc.returncode == 0, proc
    assert admin.got() == b"user add alice the-secret-pw\n"
    admin.stop()
    config = write_config(place, user="nobody", admin_socket=admin.path)
    admin = fake_admin("nobody")
    proc = chatctl("-c", config, "status")
    assert proc.returncode == 0, proc
    assert admin.got() == b"status\n"


def test_a_listener_of_another_user_than_the_configured_one_is_refused(fake_admin, place):
    needs_root()
    config = write_config(place, user="daemon")
    admin = fake_admin("nobody")
    proc = chatctl("-s", admin.path, "-c", config, "stop")
    assert_refused(proc, admin, admin.path, "uid 65534 (nobody)")
    assert "daemon" in proc.stderr, proc.stderr


def test_a_listener_of_chatctls_own_user_is_trusted(fake_admin):
    """A user running their own chatd and chatctl; another user's listener
    is refused to them as to root."""
    needs_root()
    admin = fake_admin("nobody")
    proc = chatctl("-s", admin.path, "status", as_user="nobody")
    assert proc.returncode == 0, proc
    assert admin.got() == b"status\n"
    admin.stop()
    admin = fake_admin("daemon")
    proc = chatctl("-s", admin.path, "status", as_user="nobody")
    assert_refused(proc, admin, admin.path, f"uid {ids('daemon')[0]} (daemon)")


def test_a_console_reconnection_is_checked_too(fake_admin, place):
    """chatctl's console reconnects when chatd closed an idle connection: a
    listener of another user at the path by then gets the next command no
    more than a first connection would."""
    needs_root()
    path = os.path.join(place, "admin.sock")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.bind(path)
    first.listen(1)
    first.settimeout(scaled(10))
    ctl = subprocess.Popen([CHATCTL_BIN, "-s", path], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conn, _ = first.accept()
        with conn, conn.makefile("rb") as reader:
            conn.settimeout(scaled(10))
            ctl.stdin.write("status\n")
            ctl.stdin.flush()
            assert reader.readline() == b"status\n"
            conn.sendall(b"OK one\n")
            assert ctl.stdout.readline() == "one\n"
        first.close()
        os.unlink(path)
        admin = fake_admin("nobody")
        out, err = ctl.communicate("user del alice\n", timeout=scaled(20))
    finally:
        if ctl.poll() is None:
            ctl.kill()
            ctl.wait()
        first.close()
    proc = subprocess.CompletedProcess(ctl.args, ctl.returncode, out, err)
    assert_refused(proc, admin, path, "uid 65534 (nobody)")
