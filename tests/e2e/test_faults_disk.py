"""
test_faults_disk.py - the disk fills up under chatd: a small tmpfs holds the
file under test and a filler file takes every free byte, so write() really
fails with ENOSPC.  For the history, the identification file and the log:
the client gets an error instead of an acknowledgement, nothing acknowledged
is lost, chatd keeps serving and recovers once the filler is removed.
"""

import re

import pytest

import faults
from chatproto import ok, wait_until

# Messages tried once the disk is full: the last page of the history file may
# still take a few (tmpfs hands out whole pages), then every one must fail.
FULL_TRIES = 200
STILL_FULL = 5


@pytest.fixture
def tmpfs_factory(tmp_path):
    """make(name, size) -> faults.Tmpfs under the test's directory; all unmounted at
    teardown.  Tests ask for it before chatd_factory, so chatd is stopped first."""
    made = []

    def make(name, size=1 << 20):
        fs = faults.Tmpfs(tmp_path / name, size)
        made.append(fs)
        return fs

    yield make
    for fs in made:
        fs.close()


def say_until_refused(client, prefix):
    """Sends messages until chatd refuses one with ERR 507, then STILL_FULL more,
    which must be refused too.  Returns (acknowledged {id: text}, refused texts)."""
    acked, refused = {}, []
    for i in range(FULL_TRIES + STILL_FULL):
        text = f"{prefix} {i} " + "x" * 200
        data, final = client.request(text)
        assert not data, data
        if final.tag == "OK":
            assert not refused, f"{text!r} acknowledged after a refusal: {final.raw}"
            acked[final.id] = text
            continue
        assert final.tag == "ERR" and final[0] == "507", final.raw
        refused.append(text)
        if len(refused) == STILL_FULL:
            return acked, refused
    raise AssertionError(f"no ERR 507 after {FULL_TRIES} messages on a full disk")


def test_history_on_a_full_disk(tmpfs_factory, chatd_factory, tmp_path):
    disk = tmpfs_factory("disk")
    d = chatd_factory(state_dir=str(disk.path / "state"), log_file=str(tmp_path / "chatd.log"))
    alice, bob = d.login("alice"), d.login("bob")
    acked = {alice.say(f"before {i}"): f"before {i}" for i in range(3)}

    disk.fill()
    more, refused = say_until_refused(alice, "full")
    acked.update(more)
    # Nobody saw a refused message; everyone saw every acknowledged one.
    bob.sync()
    seen = {m.id: m[3] for m in bob.live_of("MSG")}
    assert seen == acked
    assert not set(refused) & set(seen.values())
    assert all(h[3] not in refused for h in alice.request("/history 50")[0])
    # The refusals were logged once, not once each.
    assert d.log_text().count("write failed, unsynced messages refused") == 1
    status = d.ctl_ok("status")
    assert re.search(rf"messages: \d+ since start, {len(refused)} refused", status), status

    disk.free()
    after = alice.say("space is back")
    # A refused message's id goes to the next one: no gap in the sequence.
    assert after == max(acked) + 1
    acked[after] = "space is back"
    bob.wait_for("MSG", lambda m: m.id == after)

    d.restart()
    assert faults.history_ids(d.history_path) == sorted(acked)
    assert faults.history_texts(d.history_path) == acked
    carol = d.login("carol")
    assert [h.id for h in carol.hist] == sorted(acked)[-len(carol.hist):]
    faults.report("history disk full", acknowledged=len(acked), refused=len(refused))


ROOM = "d" * 32     # its deletion record is longer than the shortest message


def fill_to_the_last_byte(client):
    """On a full disk, the history file's last page (tmpfs hands out whole
    pages) taken with shorter and shorter messages, until none fits: a
    record longer than the shortest message cannot be written either."""
    for size in (300, 30, 1):
        for _ in range(400):
            if client.request("/say lobby " + "y" * size)[1].tag == "ERR":
                break
        else:
            raise AssertionError(f"no ERR 507 for messages of {size} bytes on a full disk")


def refused_count(d):
    return int(re.search(r"messages: \d+ since start, (\d+) refused", d.ctl_ok("status"))[1])


@pytest.mark.parametrize("how", ["made-again", "restart"])
def test_a_room_deleted_on_a_full_disk_never_gets_its_history_back(tmpfs_factory,
                                                                   chatd_factory, tmp_path,
                                                                   how):
    """The deletion record cannot be written: the old records must not count
    again after a restart, for a room made again by a user (whose first record
    comes after the deletion) or by the operator (no record stored before the
    restart)."""
    disk = tmpfs_factory("disk")
    d = chatd_factory(history_file=str(disk.path / "history"),
                      log_file=str(tmp_path / "chatd.log"))
    alice, bob = d.login("alice"), d.login("bob")
    ok(alice, f"/join {ROOM}")
    alice.say("the old room's secret")
    disk.fill()
    fill_to_the_last_byte(alice)
    refused = refused_count(d)
    d.ctl_ok("room", "del", ROOM)
    wait_until(lambda: refused_count(d) > refused, "the deletion record to be refused")
    disk.free()
    if how == "made-again":
        data, final = bob.request(f"/join {ROOM}")
        assert final.raw == f"OK - joined {ROOM}" and not [h for h in data if h.tag == "HIST"]
        bob.say("the new room")
    d.restart()
    if how == "restart":
        # Made again with nothing stored since: the room starts empty, and
        # must still be at the next start, which reads it from the rooms file.
        d.ctl_ok("room", "create", ROOM)
        d.restart()
    carol = d.login("carol")
    data, final = carol.request(f"/history {ROOM}")
    assert [h[3] for h in data] == (["the new room"] if how == "made-again" else []), final.raw


def test_ident_on_a_full_disk(tmpfs_factory, chatd_factory, tmp_path):
    disk = tmpfs_factory("disk")
    d = chatd_factory(state_dir=str(disk.path / "state"), log_file=str(tmp_path / "chatd.log"))
    alice = d.login("alice")
    before = d.ident_path.read_bytes()

    disk.fill()
    # A change is one record appended to the file, and one still fits in the
    # file's partly used last page (tmpfs hands out whole pages): the
    # operator's registrations go on until that is full too, then are refused.
    # Names no longer than alice's, so no record after them fits either.
    pads = []
    while True:
        before = d.ident_path.read_bytes()
        if d.ctl("user", "add", f"p{len(pads)}", input="pw\n").returncode != 0:
            break
        pads.append(f"p{len(pads)}")
        assert len(pads) < 64, "4 KiB of records stored on a full disk"
    # A registration that cannot be stored: a clear error, then another try works.
    newbie = d.connect("newbie")
    newbie.expect_hello()
    newbie.send_line("newbie")
    newbie.expect("PASS", "new")
    newbie.send_line("pw-newbie")
    err = newbie.read()
    assert err.tag == "ERR" and err[0] == "500", err.raw
    # A password change that cannot be stored is not made.
    data, final = alice.request("/passwd changed-while-full")
    assert final.tag == "ERR" and final[0] == "500", final.raw
    # Nor an operator's registration.
    refused = d.ctl("user", "add", "carol", input="pw-carol\n")
    assert refused.returncode == 1, refused
    # The old file stays, whole; no temporary file is left behind.
    assert d.ident_path.read_bytes() == before
    assert not d.ident_path.with_name("ident.tmp").exists()
    assert d.ctl_ok("status").count(f"registered users: {1 + len(pads)}") == 1
    alice.sync()

    disk.free()
    newbie.send_line("pw-newbie")
    newbie.finish_login()
    assert newbie.welcome[1] == "registered"
    d.ctl_ok("user", "add", "carol", input="pw-carol\n")

    d.restart()
    assert faults.ident_names(d.ident_path) == sorted(["alice", "carol", "newbie"] + pads,
                                                      key=str.lower)
    d.login("alice")                    # the old password still works
    d.login("newbie", expect_pass="known")


def lines_lost(d):
    status = d.ctl_ok("status")
    return int(re.search(r"log: \S+, (\d+) lines could not be written", status).group(1))


def test_log_on_a_full_disk(tmpfs_factory, chatd_factory):
    disk = tmpfs_factory("logs")
    d = chatd_factory(log_file=str(disk.path / "chatd.log"), max_clients_per_address=1000)
    alice = d.login("alice")

    disk.fill()
    # chatd goes on as if nothing happened: logins, messages, commands.  The log
    # file's last page may still take a few lines: registrations log until it is
    # full (each its own line; connections alone would be summed up, lograte.c).
    bob = d.login("bob")
    for i in range(300):
        d.login(f"newcomer{i}").close()
        lost = lines_lost(d)
        if lost > 0:
            break
    assert lost > 0, "no log line lost on a full disk"
    alice.say("the log is full")
    bob.wait_for("MSG", lambda m: m[3] == "the log is full")
    bob.sync()

    disk.free()
    carol = d.login("carol")
    carol.sync()
    assert re.search(r"info login carol from|notice registered carol from", d.log_text())
    assert all(faults.LOG_LINE_RE.match(line) for line in d.log_text().splitlines())
    faults.report("log disk full", lines_lost=lost)


def test_compaction_on_a_nearly_full_disk(tmpfs_factory, chatd_factory, tmp_path):
    """The history outgrows history_max_size while the disk has room for the
    appends but not for the compacted copy: the compaction fails, the old file
    stays whole, and no acknowledged message goes missing."""
    disk = tmpfs_factory("disk")
    d = chatd_factory(state_dir=str(disk.path / "state"), log_file=str(tmp_path / "chatd.log"),
                      history_max_size=65536, history_memory=20)
    alice = d.login("alice")
    text = "c" * 1000
    acked = {alice.say(f"{i} {text}"): f"{i} {text}" for i in range(50)}

    disk.fill()
    # Room for ~25 more messages: enough to pass 64 KiB, not for a 32 KiB copy too.
    with open(disk.filler, "r+b") as f:
        f.truncate(disk.filler.stat().st_size - 24 * 1024)
    refused = 0
    for i in range(50, 120):
        data, final = alice.request(f"{i} {text}")
        if final.tag == "OK":
            acked[final.id] = f"{i} {text}"
        else:
            assert final[:1] == ["507"], final.raw
            refused += 1
    log = d.log_text()
    assert "compaction failed, keeping the whole file" in log, log
    assert "compacted from" not in log
    assert not (d.state_dir / "history.tmp").exists()
    assert faults.history_ids(d.history_path) == sorted(acked)

    disk.free()
    alice.say("space is back")
    d.restart()
    assert set(faults.history_ids(d.history_path)) >= set(sorted(acked)[-10:])
    faults.report("compaction on a full disk", acknowledged=len(acked), refused=refused)


def test_start_on_a_full_disk(tmpfs_factory, chatd_factory, tmp_path):
    """A history file that cannot even get its first line: chatd says why and
    exits 1 instead of running without a history; it starts once there is room."""
    disk = tmpfs_factory("disk")
    d = chatd_factory(start=False, state_dir=str(disk.path / "state"),
                      log_file=str(tmp_path / "chatd.log"))
    (disk.path / "state").mkdir()
    disk.fill()
    rc, _, err = d.run_expecting_exit()
    assert rc == 1 and "No space left on device" in err, err
    disk.free()
    d.start()
    assert faults.history_ids(d.history_path) == []
    d.login("alice").say("hello")
