"""
faults.py - what the fault-injection tests (test_faults_*.py) share: a
small tmpfs to fill up, a network namespace of the test's own in which a
peer can vanish, a look at chatd's process from /proc (RSS, CPU time, open
descriptors) and its resource limits, strict readers for the history and
identification files (docs/FILES.md), and a sender that pipelines room
messages and records what was acknowledged.

Everything here observes or constrains the real daemon from outside; no
test hook inside chatd is needed.
"""

import contextlib
import ctypes
import errno
import os
import re
import resource
import subprocess
import threading
from pathlib import Path

import pytest

from chatproto import Closed, ProtocolError

# How much chatd's RSS may grow across an abuse that is over.  Sanitizer
# builds keep freed memory in quarantine and shadow every thread's 1 MiB
# stack (hundreds at once in the crowd tests): their bound only catches
# growth without end.
RSS_GROWTH_MAX_KB = (400 if os.environ.get("CHATD_SANITIZE") else 50) * 1024

HISTORY_HEADER = "chatd-history 2\n"
IDENT_HEADER = "chatd-ident 1\n"
HISTORY_LINE_RE = re.compile(r"([1-9]\d*) (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \S+ msg (\S+) (.+)\Z")
IDENT_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}\Z")
IDENT_LINE_RE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.-]{0,31}):(\$[!-9;-~]{1,126})\Z")
# "TIME LEVEL message": every line of the service log (log.c).
LOG_LINE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                         r"(error|warning|notice|info|debug) [ -~]*\Z")


# --- a filesystem that fills up ---

class Tmpfs:
    """A tmpfs of `size` bytes mounted on `path` (needs root), unmounted by close().

    fill() takes every free byte with a filler file, so write() on the
    filesystem fails with ENOSPC (a file's partly used last page excepted:
    tmpfs hands out whole pages); free() gives the space back.
    """

    def __init__(self, path, size):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.filler = self.path / "filler"
        self.mounted = False
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                               "tmpfs", str(self.path)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs (needs root): {proc.stderr.strip()}")
        self.mounted = True

    def fill(self):
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Big pieces first, then the last crumbs byte by byte.
            for chunk in (b"\0" * 65536, b"\0" * 4096, b"\0"):
                try:
                    while os.write(fd, chunk) == len(chunk):
                        pass
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        st = os.statvfs(self.path)
        assert st.f_bavail == 0, f"{self.path} still has {st.f_bavail} free blocks"

    def free(self):
        self.filler.unlink(missing_ok=True)

    def close(self):
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.mounted = False


# --- a network of the test's own ---

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args):
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def private_network():
    """Runs the calling thread, and every process it starts meanwhile, in a
    network namespace of its own with just a loopback interface (needs root).
    Its routes may then be changed without touching anyone else's traffic."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            pytest.skip(f"no network namespace: {os.strerror(ctypes.get_errno())}")
        try:
            _ip("link", "set", "lo", "up")
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "cannot return to the test's network")
    finally:
        os.close(home)


def vanish(address):
    """From now on nothing reaches `address` (a 127.x address other than
    127.0.0.1) and it answers nothing: a peer that vanished without a FIN or
    RST.  Only inside private_network()."""
    _ip("route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
    _ip("route", "add", "unreachable", f"{address}/32")


# --- the process from outside ---

def proc_status(pid, key):
    """A field of /proc/PID/status, in kB for the Vm* ones."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def rss_kb(pid):
    return proc_status(pid, "VmRSS")


def thread_count(pid):
    return proc_status(pid, "Threads")


def cpu_seconds(pid):
    """User plus system CPU time the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def limit_open_files(pid, n):
    """Lowers the running process's RLIMIT_NOFILE (soft and hard) to n."""
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, n))


def report(what, **figures):
    """Figures the fault report quotes; shown with pytest -s, kept in the log otherwise."""
    print(f"\nFAULTS {what}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# --- files ---

def history_ids(path):
    """The ids in a history file, checking every line against docs/FILES.md."""
    data = Path(path).read_bytes().decode("utf-8")
    assert data.startswith(HISTORY_HEADER), f"{path}: bad header {data[:40]!r}"
    assert data.endswith("\n"), f"{path}: last line has no LF"
    ids = []
    for line in data[len(HISTORY_HEADER):].splitlines():
        m = HISTORY_LINE_RE.match(line)
        assert m, f"{path}: bad line {line!r}"
        ids.append(int(m.group(1)))
    assert ids == sorted(set(ids)), f"{path}: ids do not strictly increase"
    return ids


def history_texts(path):
    data = Path(path).read_text()
    return {int(m.group(1)): m.group(4)
            for m in map(HISTORY_LINE_RE.match, data[len(HISTORY_HEADER):].splitlines())}


def ident_users(path):
    """{name: hash} of an identification file, checking every line against
    docs/FILES.md: the base lines "NAME:HASH", then the records replayed in
    order ("+NAME:HASH" sets, "-NAME" deletes).  Names in file order."""
    data = Path(path).read_text()
    assert data.startswith(IDENT_HEADER), f"{path}: bad header {data[:40]!r}"
    assert data.endswith("\n"), f"{path}: last line has no LF"
    users = {}
    for line in data[len(IDENT_HEADER):].splitlines():
        if line.startswith("-"):
            m = IDENT_NAME_RE.match(line[1:])
            assert m, f"{path}: bad record {line!r}"
            key = [k for k in users if k.lower() == line[1:].lower()]
            assert key, f"{path}: deletion of a name not registered: {line!r}"
            del users[key[0]]
            continue
        m = IDENT_LINE_RE.match(line[1:] if line.startswith("+") else line)
        assert m, f"{path}: bad line {line!r}"
        same = [k for k in users if k.lower() == m.group(1).lower()]
        assert line.startswith("+") or not same, f"{path}: name twice in the base: {line!r}"
        for k in same:
            del users[k]
        users[m.group(1)] = m.group(2)
    return users


def ident_names(path):
    """Names in an identification file (see ident_users())."""
    return list(ident_users(path))


# --- traffic ---

class Sender(threading.Thread):
    """Logs in, then pipelines room messages in bursts until stopped or cut
    off; records the id of every OK it got (the acknowledged messages)."""

    def __init__(self, chatd, name, burst=20, text="m"):
        super().__init__(daemon=True)
        self.client = chatd.login(name)
        self.burst = burst
        self.text = text
        self.acked = []
        self.errors = []
        self.stopping = threading.Event()
        self.ended = None

    def run(self):
        try:
            n = 0
            while not self.stopping.is_set():
                lines = [f"{self.text} {self.client.name} {n + i}" for i in range(self.burst)]
                n += self.burst
                self.client.send_raw(("\n".join(lines) + "\n").encode())
                for _ in lines:
                    _, final = self.client.collect_reply(timeout=20)
                    if final.tag == "OK":
                        self.acked.append(final.id)
                    else:
                        self.errors.append(final.raw)
        except (Closed, ProtocolError, OSError) as e:
            self.ended = e
