"""
test_tls_attack.py - attacks on chatd's TLS listener, on loopback, bounded in
count and time: handshakes stalled by the hundred, garbage, a huge
ClientHello and plain HTTP on the TLS port, renegotiation on TLS 1.2, a
member that never reads while a room floods, close_notify and half-closes
in the middle of a line, certificate and key files swapped or loosened
before a SIGHUP (links owned by others or in directories others may write,
a key with a pass phrase, a huge certificate; a whole chain still served),
and ways around plain_login = loopback.
"""

import fcntl
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import termios
import threading
import time

import pytest

from chatproto import Client, closed_without_reply, deadline_in, scaled, wait_until
from conftest import CHATD_BIN, config_text, free_port
from lograte import events, logged
from tlsfixtures import tls_client, tls_login



def is_closed(sock):
    """True once the peer closed (EOF or reset) with nothing unread; never
    waits, and leaves what was sent to be read."""
    try:
        return sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def logins_in_progress(chatd):
    line = next(l for l in chatd.ctl_ok("status").splitlines() if l.startswith("logins:"))
    return int(re.search(r"logins: (\d+)", line).group(1))


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# ---- handshakes that never end ----

def test_200_stalled_handshakes_keep_nobody_out_and_all_end(tls_chatd, ca):
    """200 connections from 20 addresses open TLS and stall (half silent,
    half with the start of a ClientHello): they count against
    max_logins_per_address (the excess is dropped at once, oldest first) and
    max_logins, a login from an address of its own gets in meanwhile, and
    every one left is dropped at handshake_timeout."""
    chatd = tls_chatd(handshake_timeout=3, max_logins=100, max_logins_per_address=8,
                      login_timeout=30)
    stalled = []
    for a in range(20):
        for i in range(10):
            s = socket.socket()
            s.bind((f"127.0.1.{a + 1}", 0))
            s.connect(("127.0.0.1", chatd.tls_port))
            if i % 2:
                s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            stalled.append(s)
    opened = time.monotonic()
    # Per address at most 8 stay: the two oldest of each are dropped at once.
    wait_until(lambda: sum(is_closed(s) for s in stalled) >= 40,
               "the excess over max_logins_per_address dropped")
    assert logins_in_progress(chatd) <= 100
    alice = tls_login(chatd, ca, "alice", host="127.0.0.1")
    alice.say("in while 200 stall")
    # Everyone left goes at handshake_timeout, not login_timeout.
    wait_until(lambda: all(is_closed(s) for s in stalled), "every stalled handshake dropped",
               timeout=10)
    assert time.monotonic() - opened < scaled(3 + 5)
    for s in stalled:
        s.close()
    wait_until(lambda: logins_in_progress(chatd) == 0, "no login left")
    alice.say("still here")
    # max_logins held 100 of them; alice's handshake took the place of one.  The log
    # shows the first few and sums up the rest (lograte.py), the last sum at shutdown.
    assert chatd.stop() == 0
    text = chatd.log_text()
    assert len(logged(text, "TLS handshake took too long")) < 99
    assert events(text, "TLS handshake took too long", "TLS handshakes that took too long") == 99


def test_sigterm_does_not_wait_for_stalled_handshakes(tls_chatd):
    """30 handshakes stalled mid-ClientHello with handshake_timeout far off:
    SIGTERM ends chatd at once, exit 0."""
    chatd = tls_chatd(handshake_timeout=60, max_logins_per_address=64)
    stalled = []
    for i in range(30):  # under max_clients_per_address (32), which they count against
        s = socket.create_connection(("127.0.0.1", chatd.tls_port))
        s.sendall(b"\x16\x03\x01\x02\x00\x01")
        stalled.append(s)
    wait_until(lambda: logins_in_progress(chatd) == 30, "all 30 in their handshake")
    start = time.monotonic()
    assert chatd.stop(timeout=10) == 0
    assert time.monotonic() - start < scaled(5)
    for s in stalled:
        s.close()


def test_stalled_handshakes_count_against_max_clients_per_address(tls_chatd):
    """40 handshakes from one address with max_clients_per_address 32 (and
    a login budget that would take them all): the 8 over it are closed at
    once, with no plain ERR 503 inside what should be TLS."""
    chatd = tls_chatd(max_clients_per_address=32, max_logins_per_address=64)
    conns = [socket.create_connection(("127.0.0.1", chatd.tls_port)) for _ in range(40)]
    wait_until(lambda: sum(is_closed(s) for s in conns) == 8, "8 refused")
    assert logins_in_progress(chatd) == 32
    refused = [s for s in conns if is_closed(s)]
    for s in refused:
        assert closed_without_reply(s) == b""
    assert chatd.log_text().count("too many connections from your address") == 8
    for s in conns:
        s.close()


# ---- not TLS, or too much of it ----

@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    bytes(range(256)) * 4,
    b"\x16\x03\x01\xff\xff" + b"\x01" * 4096,  # a record longer than TLS allows
], ids=["http", "garbage", "overlong-record"])
def test_not_tls_on_the_tls_port_is_closed_without_a_reply(tls_chatd, ca, payload):
    chatd = tls_chatd()
    with socket.create_connection(("127.0.0.1", chatd.tls_port)) as s:
        s.sendall(payload)
        got = closed_without_reply(s)
    assert b"HELLO" not in got and b"HTTP" not in got and b"ERR" not in got
    wait_until(lambda: "TLS handshake failed" in chatd.log_text(), "the failure logged")
    tls_login(chatd, ca, "alice").say("still serving")


def test_a_huge_client_hello_is_cut_short(tls_chatd, ca):
    """A ClientHello that says it is 16 MiB long, sent in full-size records:
    chatd gives up long before and does not grow by the amount."""
    chatd = tls_chatd()
    rss_before = rss_kib(chatd.pid)
    with socket.create_connection(("127.0.0.1", chatd.tls_port)) as s:
        s.settimeout(scaled(10))
        header = b"\x01\xff\xff\xff\x03\x03" + os.urandom(32) + b"\x00"
        first = header + b"\x00" * (16384 - len(header))
        sent = 0
        try:
            s.sendall(b"\x16\x03\x01" + len(first).to_bytes(2, "big") + first)
            sent += len(first)
            chunk = b"\x16\x03\x03\x40\x00" + b"\x00" * 16384
            while sent < 16 * 1048576:
                s.sendall(chunk)
                sent += 16384
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed_without_reply(s, timeout=10)
    assert sent < 4 * 1048576, f"chatd read {sent} bytes of a ClientHello"
    assert rss_kib(chatd.pid) - rss_before < 8192
    wait_until(lambda: "TLS handshake failed" in chatd.log_text(), "the failure logged")
    tls_login(chatd, ca, "alice").say("still serving")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---- renegotiation ----

def test_renegotiation_on_tls_1_2_is_refused(tls_chatd, ca):
    """openssl s_client's "R" asks for a renegotiation on TLS 1.2: chatd
    refuses it (no second handshake), and keeps serving everyone."""
    chatd = tls_chatd()
    bob = tls_login(chatd, ca, "bob")
    proc = subprocess.Popen(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{chatd.tls_port}", "-tls1_2",
         "-CAfile", str(ca.cert), "-servername", "localhost"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = []
    reader = threading.Thread(target=lambda: out.extend(iter(proc.stdout.readline, b"")))
    reader.start()
    try:
        wait_until(lambda: any(b"HELLO" in l for l in out), "s_client got HELLO")
        proc.stdin.write(b"R\n")
        proc.stdin.flush()
        wait_until(lambda: proc.poll() is not None
                   or any(re.search(rb"renegotiation|alert|error", l, re.I)
                          for l in out if b"RENEGOTIATING" not in l), "the answer", timeout=10)
        assert logins_in_progress(chatd) <= 1
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        reader.join()
    text = b"".join(out).decode(errors="replace")
    assert "RENEGOTIATING" in text
    # chatd answers the second ClientHello with a no_renegotiation alert.
    assert "no renegotiation" in text, text[-2000:]
    assert text.count("New, TLSv1.2") == 1
    bob.say("renegotiation did not hurt")


# ---- a member that never reads ----

def test_a_tls_member_that_never_reads_is_dropped_not_waited_for(tls_chatd, ca):
    """Its socket fills, SSL_write says "again", its queue passes
    send_queue_limit: it is dropped with overflow, and a reading member gets
    every message meanwhile."""
    chatd = tls_chatd(send_queue_limit=65536)
    deaf = tls_login(chatd, ca, "deaf", rcvbuf=4096)
    quick = tls_login(chatd, ca, "quick")
    sender = tls_login(chatd, ca, "sender")
    for c in (deaf, quick):
        c.sync()
    start = time.monotonic()
    parted = False
    for batch in range(100):  # at most 100 x 200 x 1 KiB: 20 MiB
        for i in range(200):
            sender.send_line(f"flood {batch}.{i} " + "z" * 1000)
        oks = 0
        while oks < 200:
            oks += sender.read(timeout=30).tag == "OK"
        got = 0
        while got < 200:  # quick gets all of them meanwhile
            line = quick.read(timeout=30)
            if line.tag == "MSG" and line[2] == "sender":
                assert line[3].startswith(f"flood {batch}.{got} ")
                got += 1
            elif line.tag == "PART" and "deaf" in line.raw:
                assert "overflow" in line.raw
                parted = True
        if parted:
            break
    assert parted, "the deaf member was never dropped"
    assert time.monotonic() - start < scaled(60)
    wait_until(lambda: "overflow" in chatd.log_text(), "the overflow logged")
    sender.say("after the flood")


# ---- ends in the middle of a line ----

@pytest.mark.parametrize("how", ["close_notify", "half_close", "garbage_record"])
def test_an_end_in_the_middle_of_a_line_sends_nothing(tls_chatd, ca, how):
    """A client ends its side (close_notify, a TCP half-close without one, or
    a record that does not decrypt) after half a message: the half is not
    sent, the session ends, and its thread does not spin."""
    chatd = tls_chatd()
    watcher = tls_login(chatd, ca, "watcher")
    quitter = tls_login(chatd, ca, "quitter")
    watcher.sync()
    quitter.sync()
    quitter.sock.sendall(b"half a messa")
    if how == "close_notify":
        raw = quitter.sock.unwrap()
        raw.shutdown(socket.SHUT_WR)
    elif how == "half_close":
        quitter.sock.shutdown(socket.SHUT_WR)
        raw = quitter.sock
    else:  # a record no key decrypts, under the TLS layer
        raw = socket.socket(fileno=os.dup(quitter.sock.fileno()))
        raw.sendall(b"\x17\x03\x03\x00\x20" + os.urandom(32))
    line = watcher.expect("PART")
    assert "quitter" in line.raw
    ticks = cpu_ticks(chatd.pid)
    raw.settimeout(scaled(5))
    try:
        while raw.recv(4096):
            pass
    except (OSError, ssl.SSLError):
        pass
    watcher.say("after")
    assert cpu_ticks(chatd.pid) - ticks < 50
    data, _ = watcher.request("/history 5")
    assert not any("half a messa" in l.raw for l in data)


# ---- certificate and key files changed before a reload ----

def live_pair(tmp_path, pair):
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(pair[0].read_bytes())
    key.write_bytes(pair[1].read_bytes())
    os.chmod(key, 0o600)
    return cert, key


def reload_refused(chatd, count, why):
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("keeping the TLS certificate loaded before")
               >= count, "the refused pair logged")
    last = [l for l in chatd.log_text().splitlines()
            if "keeping the TLS certificate loaded before" in l][-1]
    assert re.search(why, last, re.I), last


def test_a_broken_pair_at_sighup_keeps_the_old_one(tls_chatd, ca, pair, tmp_path):
    """A missing key, a key that does not match, a key of another type and a
    certificate where the key should be: each logged with the file named, and
    the old pair goes on serving."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    alice = tls_login(chatd, ca, "alice")
    good_key = key.read_bytes()

    key.unlink()
    reload_refused(chatd, 1, re.escape(str(key)))

    _, other_key = ca.server("other")
    key.write_bytes(other_key.read_bytes())
    reload_refused(chatd, 2, re.escape(str(key)) + ".*(mismatch|values)")

    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
                   check=True, capture_output=True)
    reload_refused(chatd, 3, re.escape(str(key)))

    key.write_bytes(cert.read_bytes())
    reload_refused(chatd, 4, re.escape(str(key)))

    key.write_bytes(good_key)
    cert.unlink()
    reload_refused(chatd, 5, re.escape(str(cert)))

    fresh = tls_client(chatd, ca, "fresh")
    assert fresh.sock.getpeercert()["subject"] == ((("commonName", "localhost"),),)
    fresh.expect_hello()
    alice.say("nobody dropped")


def test_a_key_others_can_write_is_refused_at_sighup(tls_chatd, ca, pair, tmp_path):
    """tls_key swapped for a symbolic link to a file anyone may write (who
    can write the key can put in their own pair): refused with the reason,
    the old pair stays."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    os.chmod(loose, 0o666)
    key.unlink()
    key.symlink_to(loose)
    reload_refused(chatd, 1, "writable by everyone")
    os.chmod(loose, 0o600)
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("TLS certificate loaded") >= 2,
               "the fixed pair loaded (after the one at start)")


def test_a_fifo_for_a_key_does_not_block_the_reload(tls_chatd, ca, pair, tmp_path):
    """A FIFO in the key's place would block the control thread in open():
    refused as not a regular file, and chatctl still answers."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    key.unlink()
    os.mkfifo(key, 0o600)
    reload_refused(chatd, 1, re.escape(str(key)) + ".*not a regular file")
    assert "subject: CN=localhost" in chatd.ctl_ok("status")
    tls_login(chatd, ca, "alice")


def test_a_certificate_others_can_write_is_refused_at_sighup(tls_chatd, ca, pair, tmp_path):
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    os.chmod(cert, 0o666)
    reload_refused(chatd, 1, re.escape(str(cert)) + ".*writable by everyone")


NOBODY = 65534  # a user and group that are neither root nor chatd's (the tests run as root)


def test_a_pair_owned_by_another_user_is_refused(tls_chatd, chatd_factory, ca, pair, tmp_path):
    """A key owned by someone other than root or chatd's user, mode 0600 and all: its owner
    may chmod it and put in a pair of their own. Refused at start (and by chatd -t) and at
    SIGHUP, with the owner named; the old pair stays."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    alice = tls_login(chatd, ca, "alice")
    os.chown(key, NOBODY, -1)
    reload_refused(chatd, 1, re.escape(str(key)) + f".*owned by uid {NOBODY}")
    os.chown(cert, NOBODY, -1)
    os.chown(key, 0, -1)
    reload_refused(chatd, 2, re.escape(str(cert)) + f".*owned by uid {NOBODY}")
    alice.say("still here")
    tls_login(chatd, ca, "bob")

    later = chatd_factory(start=False, tls_cert=str(cert), tls_key=str(key), tls_port=free_port())
    rc, out, err = later.run_expecting_exit("-t")
    assert rc == 1 and f"owned by uid {NOBODY}" in err, err
    rc, out, err = later.run_expecting_exit()
    assert rc != 0 and f"tls_cert {cert}: owned by uid {NOBODY}" in err, err


def test_chatd_t_as_root_trusts_the_user_chatd_runs_as(chatd_factory, pair, tmp_path):
    """chatd -t run as root judges the pair as the daemon will: with `user` set, a key that
    user owns is chatd's own (the daemon trusts it after dropping root), not a foreign file;
    one owned by anyone else is still refused."""
    cert, key = live_pair(tmp_path, pair)
    user = pwd.getpwuid(NOBODY).pw_name
    os.chown(key, NOBODY, NOBODY)
    later = chatd_factory(start=False, tls_cert=str(cert), tls_key=str(key),
                          tls_port=free_port(), user=user)
    rc, out, err = later.run_expecting_exit("-t")
    assert rc == 0 and "configuration OK" in out, err
    del later.settings["user"]
    rc, _, err = later.run_expecting_exit("-t")
    assert rc == 1 and f"tls_key {key}: owned by uid {NOBODY}" in err, err


def test_a_key_in_a_directory_another_user_owns_is_refused(tls_chatd, ca, pair, tmp_path):
    """A root-owned key, but in a directory someone else owns, reached through a symbolic
    link (as certbot's live/ files are): that someone can swap the file. Refused, the old
    pair stays; moved to a directory of root's, the same link loads."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, NOBODY, NOBODY)
    (theirs / "live.key").write_bytes(key.read_bytes())
    os.chmod(theirs / "live.key", 0o600)
    key.unlink()
    key.symlink_to(theirs / "live.key")
    reload_refused(chatd, 1, re.escape(str(key)) + r": through its symbolic link, .*theirs.*owned by uid " +
                   str(NOBODY))
    os.chown(theirs, 0, 0)
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("TLS certificate loaded") >= 2,
               "the pair loaded once the directory is root's")
    tls_login(chatd, ca, "alice")


def test_a_key_another_group_can_write_is_refused(tls_chatd, ca, pair, tmp_path):
    """Group-writable is as good as owned for the group's members: refused unless the group
    is root's or chatd's own."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    os.chown(key, 0, NOBODY)
    os.chmod(key, 0o620)
    reload_refused(chatd, 1, re.escape(str(key)) + f".*writable by group {NOBODY}")
    os.chown(key, 0, os.getegid())  # chatd's own group (it runs as the tests' user) may
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("TLS certificate loaded") >= 2,
               "the pair loaded with chatd's group writing it")
    tls_login(chatd, ca, "alice")


def test_a_key_others_can_read_is_warned_about(tls_chatd, ca, pair, tmp_path):
    cert, key = live_pair(tmp_path, pair)
    os.chmod(key, 0o644)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    wait_until(lambda: "readable by others" in chatd.log_text(), "the warning at start")
    tls_login(chatd, ca, "alice")


def test_a_link_another_user_owns_on_the_way_to_the_key_is_refused(tls_chatd, chatd_factory,
                                                                   ca, pair, tmp_path):
    """A link is as safe as its owner: one owned by someone else in a sticky directory (where
    its owner may still point it anywhere), at the key's place or in the middle of a chain of
    links, is refused by chatd -t and at SIGHUP, the old pair staying."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    real = tmp_path / "real.key"
    real.write_bytes(key.read_bytes())
    os.chmod(real, 0o600)
    theirs = sticky / "live.key"
    theirs.symlink_to(real)
    os.lchown(theirs, NOBODY, NOBODY)
    owned = re.escape(str(theirs)) + f" is a symbolic link owned by uid {NOBODY}"

    later = chatd_factory(start=False, tls_cert=str(cert), tls_key=str(theirs),
                          tls_port=free_port())
    rc, _, err = later.run_expecting_exit("-t")
    assert rc == 1 and re.search("tls_key " + re.escape(str(theirs)) + ": " + owned, err), err

    key.unlink()
    key.symlink_to(theirs)  # live.key -> sticky/live.key (theirs) -> real.key
    reload_refused(chatd, 1, re.escape(str(key)) + ": through its symbolic link, " + owned)
    later.settings["tls_key"] = str(key)
    rc, _, err = later.run_expecting_exit("-t")
    assert rc == 1 and re.search(owned, err), err
    tls_login(chatd, ca, "alice")

    os.lchown(theirs, 0, 0)
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("TLS certificate loaded") >= 2,
               "the chain loaded once every link in it is root's")


def test_a_link_in_a_directory_others_can_write_is_refused(tls_chatd, ca, pair, tmp_path):
    """key -> open/hop -> a good key: open/ is writable by everyone, so anyone can swap hop
    between the check and the read. Refused, though the file it ends at is fine."""
    cert, key = live_pair(tmp_path, pair)
    chatd = tls_chatd(tls_cert=str(cert), tls_key=str(key))
    real = tmp_path / "real.key"
    real.write_bytes(key.read_bytes())
    os.chmod(real, 0o600)
    hop_dir = tmp_path / "open"
    hop_dir.mkdir()
    os.chmod(hop_dir, 0o777)
    (hop_dir / "hop").symlink_to("../real.key")  # relative, as the kernel reads it
    key.unlink()
    key.symlink_to(hop_dir / "hop")
    reload_refused(chatd, 1, re.escape(str(key)) + ": through its symbolic link, " +
                   re.escape(str(hop_dir)) + r" is writable by everyone \(mode 0777\)")
    os.chmod(hop_dir, 0o755)
    chatd.send_signal(signal.SIGHUP)
    wait_until(lambda: chatd.log_text().count("TLS certificate loaded") >= 2,
               "the chain loaded once the directory is closed")
    tls_login(chatd, ca, "alice")


def test_a_key_with_a_pass_phrase_is_refused_without_asking(chatd_factory, pair, tmp_path):
    """OpenSSL would ask the terminal for the pass phrase (and chatd -t, or a reload of a
    chatd started from a terminal, would wait for it): refused with the reason instead."""
    enc = tmp_path / "enc.key"
    subprocess.run(["openssl", "pkey", "-in", str(pair[1]), "-aes256", "-passout",
                    "pass:secret", "-out", str(enc)], check=True, capture_output=True)
    os.chmod(enc, 0o600)
    later = chatd_factory(start=False, tls_cert=str(pair[0]), tls_key=str(enc),
                          tls_port=free_port())
    later.write_config()
    leader, follower = os.openpty()
    try:
        def controlling_terminal():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        proc = subprocess.Popen([CHATD_BIN, "-t", "-c", str(later.config_path)],
                                stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, preexec_fn=controlling_terminal)
        try:
            _, err = proc.communicate(timeout=scaled(10))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError("chatd -t waited for a pass phrase on its terminal") from None
    finally:
        os.close(leader)
        os.close(follower)
    err = err.decode()
    assert proc.returncode == 1 and f"tls_key {enc}: the key is encrypted" in err, err


def test_a_huge_certificate_is_refused_unread(chatd_factory, pair, tmp_path):
    """A certificate file of 2 MB (a chain is a few kB): refused by its size, not parsed."""
    big = tmp_path / "big.pem"
    big.write_bytes(pair[0].read_bytes() + b"# padding\n" * (2 * 1024 * 1024 // 10))
    later = chatd_factory(start=False, tls_cert=str(big), tls_key=str(pair[1]),
                          tls_port=free_port())
    rc, _, err = later.run_expecting_exit("-t")
    assert rc == 1 and re.search(re.escape(f"tls_cert {big}: ") + r"\d+ bytes, more than", err), err


def test_a_certificate_chain_is_served_whole(chatd_factory, tmp_path):
    """tls_cert as certbot's fullchain.pem: the server's certificate, then the intermediate
    that signed it; a client that trusts only the root verifies it."""
    d = tmp_path / "pki"
    d.mkdir()
    ext = d / "ca.ext"
    ext.write_text("basicConstraints=critical,CA:true\nkeyUsage=critical,keyCertSign\n")
    (d / "leaf.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "root.key", "-out", "root.pem", "-days", "30", "-subj", "/CN=test root")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "mid.key", "-out", "mid.csr", "-subj", "/CN=test intermediate")
    run("x509", "-req", "-in", "mid.csr", "-CA", "root.pem", "-CAkey", "root.key",
        "-CAcreateserial", "-out", "mid.pem", "-days", "30", "-extfile", "ca.ext")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "mid.pem", "-CAkey", "mid.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "30", "-extfile", "leaf.ext")
    (d / "fullchain.pem").write_bytes((d / "leaf.pem").read_bytes() + (d / "mid.pem").read_bytes())
    chatd = chatd_factory(tls_cert=str(d / "fullchain.pem"), tls_key=str(d / "leaf.key"),
                          tls_port=free_port())
    raw = socket.create_connection(("127.0.0.1", chatd.tls_port), timeout=scaled(10))
    ctx = ssl.create_default_context(cafile=str(d / "root.pem"))
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.getpeercert()["subject"] == ((("commonName", "localhost"),),)


# ---- plain_login = loopback ----

def refused_in_clear(port, host, first):
    remote = Client("remote")
    remote.connect(port, host=host)
    try:
        remote.expect_hello()
        remote.send_line(first)
        assert remote.expect("ERR")[0] == "426"
        remote.read_until_closed()
    finally:
        remote.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
def test_plain_login_loopback_on_a_dual_stack_socket(chatd_factory, tmp_path, ca):
    """systemd's [::] socket takes IPv4 too, as ::ffff:a.b.c.d: 127.0.0.1 so
    is loopback, another address is not, whether it sends a name or RESUME
    first (chatd's own "::" is IPv6 only)."""
    helper = chatd_factory(start=False)  # for its chatctl and admin socket path
    port, tls_port = free_port(), free_port()
    cert, key = ca.server("dual")
    state = tmp_path / "dual" / "state"
    state.mkdir(parents=True)
    config = tmp_path / "dual" / "chatd.conf"
    config.write_text(config_text({
        "state_dir": str(state), "admin_socket": str(helper.admin_socket), "hash_cost": 1,
        "tls_cert": str(cert), "tls_key": str(key), "plain_login": "loopback"}))
    with open(tmp_path / "dual" / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"[::]:{port}", "-l", f"127.0.0.1:{tls_port}",
             "-l", str(helper.admin_socket), "--fdname=listen:tls:admin", CHATD_BIN, "-c",
             str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            local = Client("local")
            deadline = deadline_in(10)
            while True:
                try:
                    local.connect(port, host="127.0.0.1")
                    break
                except ConnectionRefusedError:  # still binding
                    assert time.monotonic() < deadline, "never listened"
                    time.sleep(0.02)
            local.login("alice", "pw-alice")
            local.close()
            log = state / "chatd.log"
            # (The [::] socket took IPv4: chatd names it 127.0.0.1, not ::ffff:127.0.0.1.)
            addr = non_loopback_address()
            if addr is not None:
                for first in ("bob", "RESUME bob " + "0" * 64):
                    refused_in_clear(port, addr, first)
                assert f"refused a plain login from {addr}:" in log.read_text()
            addr6 = non_loopback_address(socket.AF_INET6, "2001:db8::1")
            if addr6 is not None:
                refused_in_clear(port, addr6, "RESUME bob " + "0" * 64)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(scaled(10)) == 0


def non_loopback_address(family=socket.AF_INET, far="192.0.2.1"):
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((far, 9))  # no packet is sent
            addr = s.getsockname()[0]
    except OSError:
        return None
    return None if addr.startswith("127.") or addr in ("::1", "::") else addr


def test_tls_1_2_never_runs_without_forward_secrecy(tls_chatd, tmp_path):
    """SECURITY.md: TLS 1.2 with chatd's ciphers uses ephemeral keys, so traffic
    recorded now stays secret if the key is stolen later.  With an RSA key (the
    README's self-signed pair), OpenSSL's default list also offers RSA key
    transport: a TLS 1.2 client offering only such ciphers must fail the
    handshake, and one that lists them first must still get (EC)DHE."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", "tls.key", "-out", "tls.pem"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=60)
    chatd = tls_chatd(tls_cert=str(tmp_path / "tls.pem"), tls_key=str(tmp_path / "tls.key"))

    def context(ciphers):
        ctx = ssl.create_default_context(cafile=str(tmp_path / "tls.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
        return ctx

    def handshake(ctx):
        raw = socket.create_connection(("127.0.0.1", chatd.tls_port), timeout=scaled(5))
        try:
            tls = ctx.wrap_socket(raw, server_hostname="localhost")
        except BaseException:
            raw.close()
            raise
        cipher = tls.cipher()
        tls.close()
        return cipher

    static_rsa = "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES128-SHA"
    with pytest.raises(ssl.SSLError, match="(?i)handshake.failure|no.shared.cipher"):
        handshake(context(static_rsa))
    name, version, _ = handshake(context(static_rsa + ":ECDHE-RSA-AES128-GCM-SHA256"))
    assert version == "TLSv1.2" and name.startswith(("ECDHE-", "DHE-")), name
    # A client of its own defaults still gets in, over TLS 1.3 or 1.2 with (EC)DHE.
    ctx = ssl.create_default_context(cafile=str(tmp_path / "tls.pem"))
    assert handshake(ctx)[1] == "TLSv1.3"
