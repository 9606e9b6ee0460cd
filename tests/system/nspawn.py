"""
nspawn.py - a Debian 12 container booted with systemd-nspawn, for testing
chatd under a real systemd.

The root file system is a debootstrap minbase with systemd, dbus and chatd's
runtime libraries, built once and cached under /var/cache/chatd-test (the
debootstrap downloads are cached there too).  Each boot runs on an overlay
of it, so the cache stays clean and a boot takes well under a second.

How it boots on a host whose PID 1 is not systemd: nspawn runs in its own
mount namespace (unshare -m: the overlay and nspawn's mounts vanish with
it), with --register=no (no machined) and --keep-unit (no transient scope),
inside a cgroup of its own made here in each hierarchy, so that two
containers never share the cgroups their systemd creates.  Commands run
inside through nsenter into the container's PID 1; test code reaches the
container's private network by entering its network namespace on one
thread (setns), so the daemon's fixed port never meets the host's.
"""

import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

CACHE_DIR = os.environ.get("CHATD_TEST_CACHE", "/var/cache/chatd-test")
SUITE = "bookworm"
# What chatd needs at run time besides minbase (its package's Depends: "dpkg
# -i" installs no dependency, and the container has no network), and what the
# tests use (openssl prints the certificate's fingerprint).
PACKAGES = ["systemd", "systemd-sysv", "dbus", "libsystemd0", "libconfig9",
            "libcrypt1", "libreadline8", "logrotate", "ssl-cert", "openssl"]
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLONE_NEWNET = 0x40000000


class ContainerError(RuntimeError):
    pass


def apt_mirror():
    """The Debian mirror apt uses here (deb822 or one-line sources)."""
    candidates = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        candidates += [os.path.join(d, f) for f in sorted(os.listdir(d))
                       if f.endswith((".list", ".sources"))]
    for path in candidates:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if path.endswith(".sources") and words[:1] == ["URIs:"]:
                for uri in words[1:]:
                    if uri.rstrip("/").endswith("/debian"):
                        return uri
            elif words[:1] == ["deb"]:
                uri = next((w for w in words[1:] if "://" in w), "")
                if uri.rstrip("/").endswith("/debian"):
                    return uri
    return "http://deb.debian.org/debian"


def rootfs_path():
    key = hashlib.sha256(" ".join([SUITE] + PACKAGES).encode()).hexdigest()[:12]
    return os.path.join(CACHE_DIR, f"rootfs-{SUITE}-{key}")


def ensure_rootfs(log):
    """Returns the cached root file system, building it first if missing."""
    path = rootfs_path()
    if os.path.isfile(os.path.join(path, "etc/os-release")):
        return path
    debs = os.path.join(CACHE_DIR, "debs")
    os.makedirs(debs, exist_ok=True)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
           "--include=" + ",".join(PACKAGES), SUITE, tmp, apt_mirror()]
    with open(log, "w") as out:
        rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT)
    if rc != 0:
        raise ContainerError(f"debootstrap failed ({rc}); see {log}")
    # Machine-specific files a booted copy would otherwise wait for.
    with open(os.path.join(tmp, "etc/hostname"), "w") as f:
        f.write("chatd-test\n")
    machine_id = os.path.join(tmp, "etc/machine-id")
    if os.path.exists(machine_id):
        os.unlink(machine_id)
    open(machine_id, "w").close()
    os.rename(tmp, path)
    return path


def _cgroup_roots():
    """The hierarchies nspawn's systemd will use: v1 name=systemd and v2."""
    roots = []
    for sub in ("systemd", "unified"):
        p = os.path.join("/sys/fs/cgroup", sub)
        if os.path.isfile(os.path.join(p, "cgroup.procs")):
            roots.append(p)
    if not roots and os.path.isfile("/sys/fs/cgroup/cgroup.procs"):
        roots.append("/sys/fs/cgroup")
    return roots


def _own_cgroup(root):
    with open("/proc/self/cgroup", encoding="ascii") as f:
        lines = f.read().splitlines()
    want = "name=systemd" if root.endswith("/systemd") else ""
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == want:
            return path
    return "/"


def _remove_cgroup_tree(path):
    for dirpath, _dirs, _files in sorted(os.walk(path), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


class Container:
    def __init__(self, rootfs, workdir, share_dir, name="chatd-test"):
        self.rootfs = rootfs
        self.workdir = workdir
        self.share_dir = share_dir
        self.name = name
        self.proc = None
        self.leader = None
        self.cgroups = []
        self.console_log = os.path.join(workdir, "console.log")

    # --- life cycle ---

    def boot(self, timeout=60):
        upper, work, merged = (os.path.join(self.workdir, d)
                               for d in ("upper", "work", "merged"))
        for d in (upper, work, merged):
            os.makedirs(d, exist_ok=True)
        tag = f"chatd-test-{os.getpid()}-{int(time.monotonic() * 1000)}"
        for root in _cgroup_roots():
            cg = os.path.join(root, _own_cgroup(root).lstrip("/"), tag)
            os.makedirs(cg, exist_ok=True)
            self.cgroups.append(cg)
        script = (
            'set -e\n'
            'for cg in "$@"; do echo $$ > "$cg/cgroup.procs"; done\n'
            f'mount -t overlay overlay -o lowerdir={self.rootfs},upperdir={upper},'
            f'workdir={work} {merged}\n'
            f'exec systemd-nspawn --quiet --register=no --keep-unit --private-network '
            f'--machine={self.name} --directory={merged} '
            f'--bind-ro={self.share_dir}:/mnt/chatd --console=pipe --boot\n')
        console = open(self.console_log, "w")
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private",
             "sh", "-c", script, "sh"] + self.cgroups,
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
            start_new_session=True)
        console.close()
        deadline = time.monotonic() + timeout
        self.leader = self._find_leader(deadline)
        while True:
            r = self.run("systemctl", "is-system-running", "--wait", check=False,
                         timeout=max(1, deadline - time.monotonic()))
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                return self
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise ContainerError(f"container did not boot ({state!r}); "
                                     f"see {self.console_log}")
            time.sleep(0.1)

    def _find_leader(self, deadline):
        children = f"/proc/{self.proc.pid}/task/{self.proc.pid}/children"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited with {self.proc.returncode}; "
                                     f"see {self.console_log}")
            try:
                with open(children, encoding="ascii") as f:
                    pids = f.read().split()
                if pids and self._is_container_init(int(pids[0])):
                    return int(pids[0])
            except OSError:
                pass
            time.sleep(0.02)
        raise ContainerError("the container's init did not appear")

    def _is_container_init(self, pid):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("NSpid:"):
                        return line.split()[-1] == "1"
        except OSError:
            pass
        return False

    def shutdown(self, timeout=20):
        if self.proc is not None and self.proc.poll() is None:
            # nspawn turns SIGTERM into an orderly poweroff of the container.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for cg in self.cgroups:
            _remove_cgroup_tree(cg)
        self.cgroups = []

    # --- inside ---

    def run(self, *argv, check=True, timeout=60, user=None, input=None):
        """Runs argv inside the container (as root, or as user) and returns
        the CompletedProcess (text); check=True raises on a non-zero exit."""
        cmd = ["nsenter", f"--target={self.leader}", "--all", "--",
               "env", "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", "TERM=dumb"]
        if user is not None:
            cmd += ["runuser", "-u", user, "--"]
        cmd += list(argv)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise ContainerError(f"{' '.join(argv)} exited with {r.returncode}:\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def sh(self, script, **kw):
        return self.run("sh", "-c", script, **kw)

    def in_netns(self, fn, *args, **kw):
        """Calls fn on a thread that lives in the container's network
        namespace: sockets it creates stay there for any thread to use."""
        result = {}

        def target():
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/proc/{self.leader}/ns/net", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                result["value"] = fn(*args, **kw)
            except BaseException as e:     # handed to the caller
                result["error"] = e

        t = threading.Thread(target=target)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def connect(self, port, timeout=5.0):
        """A TCP connection to the container's 127.0.0.1:port."""
        return self.in_netns(socket.create_connection, ("127.0.0.1", port), timeout)
