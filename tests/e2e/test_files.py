"""
test_files.py - chatd's own files: one chatd per history and identification
file whatever its state_dir (a lock on FILE.lock that outlives the renames
replacing FILE), no symbolic link, hard link, foreign file or directory
others may write ever used for them (docs/SECURITY.md, docs/FILES.md), and
their modes at start-up.  The tests run as root, as an init script would.
"""

import os
import pwd
import signal
import stat
import subprocess

import pytest

from chatproto import wait_until
from conftest import CHATD_BIN

# How long a chatd that wrongly starts gets before the test calls it a failure.
REFUSAL_TIMEOUT = 5.0


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def expect_refusal(daemon, *words):
    """chatd exits non-zero at start-up, before it listens, saying all of words."""
    rc, out, err = daemon.run_expecting_exit(timeout=REFUSAL_TIMEOUT)
    assert rc != 0, (rc, out, err)
    assert "listening" not in out, out
    for word in words:
        assert word in err, (word, err)
    return err


@pytest.mark.parametrize("setting", ["history_file", "ident_file", "rooms_file"])
def test_second_chatd_on_same_file_refused(chatd_factory, tmp_path, setting):
    shared = tmp_path / "shared"
    shared.mkdir()
    path = str(shared / setting)
    first = chatd_factory(**{setting: path})
    alice = first.login("alice")
    alice.say("before the second chatd")
    # Its own state_dir, its own port: only the file is shared.
    second = chatd_factory(start=False, **{setting: path})
    assert second.state_dir != first.state_dir
    expect_refusal(second, path, "in use by another chatd", f"pid {first.pid}")
    # It stopped before its admin socket, which comes before the port.
    assert not second.admin_socket.exists()
    # The first one is untouched and still stores what it acknowledges.
    alice.say("after the second chatd")
    first.login("bob")


def test_history_lock_outlives_compaction(chatd_factory, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    path = str(shared / "history")
    first = chatd_factory(history_file=path, history_max_size=65536, history_memory=20)
    inode = os.stat(path).st_ino
    alice = first.login("alice")
    for _ in range(80):
        alice.say("c" * 1000)
    wait_until(lambda: "compacted from" in first.log_text(), "a compaction", timeout=10)
    assert os.stat(path).st_ino != inode        # the file was replaced by a rename
    second = chatd_factory(start=False, history_file=path)
    expect_refusal(second, path, "in use by another chatd")
    assert mode(path + ".lock") == 0o600


VICTIM_TEXT = {
    # Contents chatd would happily use, so only the refusal can stop it.
    "history_file": "chatd-history 1\n",
    "ident_file": "chatd-ident 1\n",
    "log_file": "a file chatd must not write\n",
}


@pytest.mark.parametrize("setting", ["history_file", "ident_file", "log_file"])
def test_planted_symlink_refused(chatd_factory, tmp_path, setting):
    victim = tmp_path / "victim"
    victim.write_text(VICTIM_TEXT[setting])
    os.chmod(victim, 0o644)
    d = chatd_factory(start=False)
    link = d.state_dir / "planted"
    os.symlink(victim, link)
    d.settings[setting] = str(link)
    expect_refusal(d, str(link), "symbolic link")
    assert victim.read_text() == VICTIM_TEXT[setting]
    assert mode(victim) == 0o644
    assert os.path.islink(link)


def test_hard_link_and_foreign_file_refused(chatd_factory, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("chatd-history 1\n")
    os.chmod(victim, 0o644)
    d = chatd_factory(start=False)
    os.link(victim, d.state_dir / "history")
    expect_refusal(d, str(d.state_dir / "history"), "hard links")
    assert victim.read_text() == "chatd-history 1\n" and mode(victim) == 0o644

    # A file of someone else's (nobody's) in chatd's directory.
    if os.geteuid() != 0:
        return      # only root can give a file away
    os.unlink(d.state_dir / "history")
    (d.state_dir / "history").write_text("chatd-history 1\n")
    os.chown(d.state_dir / "history", 65534, 65534)
    expect_refusal(d, str(d.state_dir / "history"), "owned by uid 65534")


def test_directory_writable_by_others_refused(chatd_factory, tmp_path):
    d = chatd_factory(start=False)
    os.chmod(d.state_dir, 0o777)
    expect_refusal(d, str(d.state_dir), "writable by everyone")
    assert not (d.state_dir / "history").exists()

    # Above the state directory counts too.
    open_dir = tmp_path / "open"
    open_dir.mkdir()
    os.chmod(open_dir, 0o777)
    d.settings["state_dir"] = str(open_dir / "state")
    expect_refusal(d, str(open_dir), "writable by everyone")
    assert not (open_dir / "state").exists()

    # With the sticky bit (as /tmp) others cannot replace what is chatd's.
    os.chmod(open_dir, 0o1777)
    d.start()
    d.login("alice")


def test_symlinked_directory_of_root_followed(chatd_factory, tmp_path):
    """A link in a directory part is fine when only root could have made it."""
    real = tmp_path / "real"
    real.mkdir(mode=0o750)
    d = chatd_factory(start=False)
    os.symlink(real, tmp_path / "via")
    d.settings["state_dir"] = str(tmp_path / "via")
    d.start()
    d.login("alice").say("through a link")
    assert (real / "history").exists()


def test_ident_file_mode_0600_at_start(chatd_factory):
    d = chatd_factory(start=False)
    d.ident_path.write_text("chatd-ident 1\n")
    os.chmod(d.ident_path, 0o644)
    d.start()
    assert mode(d.ident_path) == 0o600
    assert mode(d.state_dir / "ident.lock") == 0o600
    assert mode(d.state_dir / "history.lock") == 0o600


def test_rooms_file_mode_0600_at_start(chatd_factory):
    """docs/FILES.md, "Modes": chatd sets 0600 on the rooms file at start-up,
    not only when it next rewrites it."""
    d = chatd_factory(start=False)
    rooms = d.state_dir / "rooms"
    rooms.write_text("chatd-rooms 1\n")
    os.chmod(rooms, 0o644)
    d.start()
    assert mode(rooms) == 0o600


def test_root_gives_what_it_creates_to_the_user(chatd_factory, admin_users, shared_dir):
    """Started as root with `user`: the directories, lock files and log chatd creates
    are the user's, and the log (opened after the drop) has the start-up lines too."""
    _, (uid, gid), _ = admin_users
    user = pwd.getpwuid(uid).pw_name
    state = os.path.join(shared_dir, "state")
    logs = os.path.join(shared_dir, "logs", "chatd")
    d = chatd_factory(user=user, state_dir=state, log_file=os.path.join(logs, "chatd.log"),
                      runtime_dir=os.path.join(shared_dir, "run"),
                      admin_socket=os.path.join(shared_dir, "run", "admin.sock"))
    d.login("alice").say("hello")
    for path in (os.path.dirname(logs), logs, d.log_path, os.path.join(state, "chatd.lock"),
                 str(d.history_path) + ".lock", str(d.ident_path) + ".lock"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (uid, gid), path
    log = d.log_text()
    assert log.index("starting, config") < log.index(f"running as user {user}")
    assert "chatd: " not in d.stderr_text()


def test_planted_ident_temp_file_refused(chatd_factory):
    """A hard link or a FIFO planted at the identification file's temp path
    while chatd runs: the rewrite that needs it (after the file's mode was
    changed) refuses it instead of truncating the link's target or hanging in
    open(); the registration is answered with an error."""
    d = chatd_factory()
    d.login("alice")
    ident = d.ident_path
    tmp = str(ident) + ".tmp"
    victim = os.path.join(os.path.dirname(ident), "victim")
    with open(victim, "w") as f:
        f.write("keep me\n")
    os.link(victim, tmp)
    os.chmod(ident, 0o640)          # the next change rewrites the file through the temp file
    c = d.connect("bob")
    c.expect_hello()
    c.send_line("bob")
    c.expect("PASS")
    c.send_line("pw")
    err = c.expect("ERR", timeout=10)
    assert err[0] == "500", err
    with open(victim) as f:
        assert f.read() == "keep me\n", "the temp file's hard link target was overwritten"
    assert "hard links" in d.log_text()
    os.unlink(tmp)
    os.mkfifo(tmp, 0o600)
    c.send_line("pw")                   # the dialogue asks bob's password again
    err = c.expect("ERR", timeout=10)   # not stuck in open() on the FIFO
    assert err[0] == "500", err
    os.unlink(tmp)
    c.send_line("pw")
    c.finish_login()
    assert os.stat(ident).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("plant", ["symlink", "hard link", "fifo", "fifo with a reader",
                                   "nothing"])
def test_a_link_or_fifo_put_in_place_of_the_ident_file_is_never_written_through(
        chatd_factory, tmp_path, plant):
    """SECURITY.md: something planted in place of the identification file while
    chatd runs (or the file deleted) is never written through nor blocks chatd: the
    next change rewrites the file from memory, a file of chatd's own again (0600,
    one link) in its place; the target is untouched and every user is still there
    after a restart."""
    d = chatd_factory()
    d.login("alice").close()
    ident = d.ident_path
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    victim.chmod(0o644)
    os.unlink(ident)
    reader = None
    if plant == "symlink":
        os.symlink(victim, ident)
    elif plant == "hard link":
        os.link(victim, ident)
    elif plant.startswith("fifo"):
        os.mkfifo(ident, 0o600)
        if plant == "fifo with a reader":
            reader = os.open(ident, os.O_RDONLY | os.O_NONBLOCK)
    c = d.connect("bob")
    c.expect_hello()
    c.send_line("bob")
    c.expect("PASS")
    c.send_line("pw-bob")
    first = c.read(timeout=10)          # not stuck on the FIFO
    assert first.tag == "WELCOME", first.raw
    assert victim.read_text() == "keep me\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    if reader is not None:
        assert os.read(reader, 4096) == b"", "a record went into the FIFO"
        os.close(reader)
    st = os.lstat(ident)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and stat.S_IMODE(st.st_mode) == 0o600
    assert "rewritten" in d.log_text() or "rewrote" in d.log_text()
    d.restart()
    d.login("alice").close()
    d.login("bob").close()


def test_planted_resume_tokens_file_refused(chatd_factory, tmp_path):
    """The resume tokens file is read at start like the others chatd keeps: a FIFO there
    does not hang chatd in open() (where SIGTERM, blocked for signalfd, could not end it),
    and a hard link or another user's file is refused, not read and replaced."""
    d = chatd_factory(start=False)
    tokens = d.state_dir / "resume-tokens"
    os.mkfifo(tokens, 0o600)
    expect_refusal(d, str(tokens), "not a regular file")
    os.unlink(tokens)

    victim = tmp_path / "victim"
    victim.write_text("chatd-resume-tokens 1\n")
    os.link(victim, tokens)
    expect_refusal(d, str(tokens), "hard links")
    assert victim.read_text() == "chatd-resume-tokens 1\n"
    os.unlink(tokens)

    if os.geteuid() == 0:
        tokens.write_text("chatd-resume-tokens 1\n")
        os.chown(tokens, 65534, 65534)
        expect_refusal(d, str(tokens), "owned by uid 65534")
        os.unlink(tokens)
    d.start()
    d.login("alice")
    assert mode(tokens) == 0o600


def stopped(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
def test_state_dir_made_by_someone_else_after_the_check_refused(chatd_factory, tmp_path):
    """state_dir does not exist yet, in a sticky directory anyone may create in (as /tmp):
    the check at start-up passes (chatd will create it), but another user creates it first,
    mode 0777, between that check and chatd's mkdir (test fault paths-checked-stop holds
    chatd there). chatd must not take that directory as its own."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    state = sticky / "state"
    d = chatd_factory(start=False, state_dir=str(state), log_file=str(tmp_path / "chatd.log"))
    d.write_config()
    proc = subprocess.Popen([CHATD_BIN, "-c", str(d.config_path)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d.workdir,
                            env={**os.environ, "CHATD_TEST_FAULT": "paths-checked-stop"})
    try:
        wait_until(lambda: stopped(proc.pid) or proc.poll() is not None,
                   "chatd stopped after its check")
        assert proc.poll() is None, proc.communicate()
        state.mkdir()
        os.chown(state, 65534, 65534)
        os.chmod(state, 0o777)
        os.kill(proc.pid, signal.SIGCONT)
        try:
            out, err = proc.communicate(timeout=REFUSAL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError("chatd runs in the directory another user made") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    err = err.decode()
    assert proc.returncode != 0 and b"listening" not in out, (out, err)
    assert f"{state} is owned by uid 65534" in err, err
    assert os.listdir(state) == [], "chatd created files in the other user's directory"
