"""
test_limits.py - resource limits: a client that does not read, max_clients,
max_clients_per_address, and the budget of connections logging in
(max_logins, max_logins_per_address).
"""

import select
import signal
import socket
import subprocess
import threading
import time

from chatproto import Client, ProtocolError, deadline_in, scaled, wait_until
from conftest import CHATD_BIN, config_text, free_port


class Counter(threading.Thread):
    """Reads a client's lines in the background, counting flood messages."""

    def __init__(self, client, sender, total):
        super().__init__(daemon=True)
        self.client = client
        self.sender = sender
        self.total = total
        self.seq = []
        self.parts = []
        self.error = None
        self.progress = threading.Condition()

    def run(self):
        try:
            while len(self.seq) < self.total:
                line = self.client.read(timeout=60)
                if line.tag == "MSG" and line[2] == self.sender:
                    with self.progress:
                        self.seq.append(int(line[3].split(" ", 2)[1]))
                        self.progress.notify_all()
                elif line.tag == "PART":
                    self.parts.append(line)
        except AssertionError as e:
            self.error = e
        with self.progress:
            self.progress.notify_all()

    def wait_count(self, count, deadline):
        """Waits until count flood messages arrived (or the reader failed)."""
        with self.progress:
            self.progress.wait_for(lambda: len(self.seq) >= count or not self.is_alive(),
                                   timeout=max(deadline - time.monotonic(), 0))
        assert self.error is None, self.error
        assert len(self.seq) >= count, f"{self.client.label}: {len(self.seq)} of {count}"


def test_client_that_never_reads_is_dropped(chatd_factory):
    d = chatd_factory(send_queue_limit=65536)
    slow = d.connect("slow", rcvbuf=4096)
    slow.login("slow", "pw")
    b = d.login("reader1")
    c = d.login("reader2")
    flooder = d.login("flooder")
    for client in (b, c):
        client.sync()
        client.live.clear()

    total = 2500
    filler = "x" * 2000
    counters = [Counter(b, "flooder", total), Counter(c, "flooder", total)]
    for counter in counters:
        counter.start()
    # About 5 MB, far beyond what the slow client's socket buffers and send
    # queue hold.  Sent in windows of half the queue limit, the next one only
    # once both readers have the last: however slow chatd runs (sanitizers),
    # a reader never has more than one window waiting, so only the slow
    # client may overflow.
    acks = []
    window = 16
    deadline = deadline_in(120)
    for start in range(0, total, window):
        end = min(start + window, total)
        flooder.send_raw(b"".join(f"flood {i} {filler}\n".encode() for i in range(start, end)))
        acks += [flooder.collect_reply(timeout=30)[1] for _ in range(start, end)]
        for counter in counters:
            counter.wait_count(end, deadline)
    for counter in counters:
        counter.join(timeout=max(deadline - time.monotonic(), 0))

    assert len(acks) == total and all(a.tag == "OK" for a in acks)
    for counter in counters:
        assert counter.error is None, counter.error
        assert counter.seq == list(range(total)), "a reader missed or reordered messages"
    for client, counter in zip((b, c), counters):
        client.live = counter.parts
        part = client.wait_for("PART", lambda l: l[1] == "slow", timeout=10)
        assert part[2] == "overflow", part

    # The slow client was disconnected: after what was queued, the end.
    rest = slow.read_until_closed(timeout=30)
    flood_seen = sum(1 for line in rest if line.tag == "MSG")
    assert flood_seen < total, "the slow client got everything: it was never dropped"
    assert all(line[0] == "overflow" for line in rest if line.tag == "BYE"), rest[-3:]


def expect_refused(d, label, **kwargs):
    c = d.connect(label, **kwargs)
    err = c.expect("ERR")
    assert err[0] == "503", err
    assert c.read_until_closed() == [], "more than one line before the close"


def connect_when_free(d, label, **kwargs):
    """Retries until chatd greets instead of refusing (it notices departures asynchronously)."""
    deadline = deadline_in(5)
    while True:
        c = d.connect(label, **kwargs)
        line = c.read()
        if line.tag == "HELLO":
            return c
        assert line.tag == "ERR" and line[0] == "503", line
        assert time.monotonic() < deadline, "chatd never took a new client after one left"
        # Waiting for the refusal's close paces the retries.
        c.read_until_closed()
        c.close()


def test_max_clients(chatd_factory):
    d = chatd_factory(max_clients=3)
    clients = [d.login(f"user{i}") for i in range(3)]
    expect_refused(d, "fourth")
    # The ones inside are unaffected.
    msg_id = clients[0].say("still serving")
    assert clients[1].wait_for("MSG").id == msg_id

    clients[2].close()
    clients[0].wait_for("PART", lambda l: l[1] == "user2")
    newcomer = connect_when_free(d, "newcomer")
    newcomer.send_line("newcomer")
    newcomer.expect("PASS", "new")
    newcomer.send_line("pw")
    newcomer.finish_login()
    expect_refused(d, "fifth")


def test_max_clients_per_address(chatd_factory):
    d = chatd_factory(max_clients_per_address=2)
    first = d.login("local1")
    d.login("local2")
    expect_refused(d, "local3")
    other = d.connect("other-address", source_addr="127.0.0.2")
    other.login("remote", "pw")
    assert other.users[0] == "3"
    msg_id = other.say("from another address")
    assert first.wait_for("MSG", lambda l: l[2] == "remote").id == msg_id


def test_sender_of_a_big_burst_is_not_dropped(chatd_factory):
    """A sender gets no copy of its messages, only small OKs: nothing can overflow."""
    d = chatd_factory(send_queue_limit=65536)
    sender = d.login("burst")
    count = 100
    sender.send_raw(b"".join(f"burst {i} {'b' * 2000}\n".encode() for i in range(count)))
    finals = [sender.collect_reply(timeout=30)[1] for _ in range(count)]
    assert all(f.tag == "OK" for f in finals), [f for f in finals if f.tag != "OK"][:3]
    sender.sync()


def raw_connection(port, source):
    """A socket from source that never logs in, and chatd's first line on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(scaled(5))
    sock.connect(("127.0.0.1", port))
    first = b""
    while not first.endswith(b"\n"):
        chunk = sock.recv(256)
        if not chunk:
            break
        first += chunk
    return sock, first.decode(errors="replace")


class Attacker(threading.Thread):
    """Keeps max_logins_per_address idle connections open from each of its
    addresses, opening a new one whenever chatd drops one, until stopped."""

    def __init__(self, port, sources, per_address):
        super().__init__(daemon=True)
        self.port = port
        self.sources = sources
        self.per_address = per_address
        self.socks = {source: [] for source in sources}
        self.stopping = threading.Event()
        self.firsts = []
        self.opened = 0
        self.error = None
        self.filled = threading.Event()

    def fill(self, source):
        while len(self.socks[source]) < self.per_address and self.opened < 400:
            sock, first = raw_connection(self.port, source)
            self.opened += 1
            self.firsts.append(first)
            if first.startswith("HELLO "):
                self.socks[source].append(sock)
            else:
                sock.close()
                return

    def run(self):
        try:
            while not self.stopping.is_set():
                for source in self.sources:
                    self.fill(source)
                self.filled.set()
                # Which of ours did chatd drop?  (A dropped socket reads EOF.)
                everything = [s for socks in self.socks.values() for s in socks]
                readable, _, _ = select.select(everything, [], [], 0.05)
                for sock in readable:
                    if sock.recv(256, socket.MSG_PEEK) == b"":
                        for socks in self.socks.values():
                            if sock in socks:
                                socks.remove(sock)
                        sock.close()
        except Exception as e:          # reported by the test
            self.error = e
            self.filled.set()

    def stop(self):
        self.stopping.set()
        self.join(scaled(10))
        for socks in self.socks.values():
            for sock in socks:
                sock.close()


def test_connections_that_never_log_in_cannot_lock_users_out(chatd_factory):
    """8 addresses each hold their max_logins_per_address idle connections (32,
    twice max_logins) and reopen every one chatd drops; a user from an address
    of their own still logs in at once, and those logged in stay."""
    d = chatd_factory(max_clients=20, max_clients_per_address=8, max_logins=16,
                      max_logins_per_address=4, login_timeout=60)
    alice = d.login("alice")
    bob = d.login("bob")
    attacker = Attacker(d.port, [f"127.0.0.{i}" for i in range(11, 19)], 4)
    attacker.start()
    try:
        assert attacker.filled.wait(scaled(20)) and attacker.error is None, attacker.error
        wait_until(lambda: "logins in progress (max_logins): dropped the oldest of 127.0.0.1"
                   in d.log_text(), "a login dropped for the budget")

        for i in range(3):
            start = time.monotonic()
            user = d.connect(f"user{i}", source_addr=f"127.0.0.{100 + i}")
            user.login(f"user{i}", "pw")
            assert time.monotonic() - start < scaled(5)
        assert attacker.error is None, attacker.error
        assert attacker.opened > 32, "chatd dropped nobody: the test proves nothing"
    finally:
        attacker.stop()
    msg_id = alice.say("still here")
    assert bob.wait_for("MSG", lambda m: m[3] == "still here").id == msg_id
    # The budget counted only the attacker's and the users' connections.
    status = d.ctl_ok("status")
    assert "clients: 5 online" in status, status


def test_logins_over_max_logins_per_address_are_refused(chatd_factory):
    d = chatd_factory(max_logins_per_address=2, max_logins=16)
    held = [raw_connection(d.port, "127.0.0.21") for _ in range(2)]
    assert [first for _, first in held] == [held[0][1]] * 2 and held[0][1].startswith("HELLO ")
    sock, first = raw_connection(d.port, "127.0.0.21")
    sock.close()
    assert first == "ERR 503 too many logins in progress from your address (2)\n", first
    # Another address is not held back, and a login that ends frees its place.
    d.connect("alice", source_addr="127.0.0.22").login("alice", "pw-alice")
    held.pop()[0].close()

    def admitted():
        sock, first = raw_connection(d.port, "127.0.0.21")
        held.append((sock, first))
        return first.startswith("HELLO ")

    wait_until(admitted, "the closed login's place to be free")
    for sock, _ in held:
        sock.close()


def test_max_clients_counts_logged_in_users_at_welcome(chatd_factory):
    d = chatd_factory(max_clients=2, max_logins=4)
    d.login("alice")
    second = d.connect("second")
    third = d.connect("third")
    second.expect_hello()
    third.expect_hello()
    second.send_line("second")
    second.expect("PASS")
    second.send_line("pw")
    second.finish_login()
    # Full now: a login in progress is refused at its WELCOME, a newcomer at once.
    third.send_line("third")
    third.expect("PASS")
    third.send_line("pw")
    err = third.expect("ERR")
    assert err.raw == "ERR 503 server is full (2 clients)", err
    assert third.read_until_closed() == []
    expect_refused(d, "fourth")
    assert "refused a login from 127.0.0.1: server is full (2 clients)" in d.log_text()


def test_a_dropped_login_leaves_its_hash_slot_wait(chatd_factory):
    """A login dropped for the budget while it waits for a hash slot (a
    registration queued behind a slow hash) ends at once: it neither lives on
    outside the budget, holding its thread and descriptor until its turn,
    nor computes its hash and registers its name afterwards."""
    d = chatd_factory(max_logins=2, max_logins_per_address=3, max_clients_per_address=8,
                      hash_concurrency=1, hash_cost=10, login_timeout=30)
    src = "127.0.0.21"
    hog = d.connect("hog", source_addr=src)
    hog.expect_hello()
    hog.send_line("hog")
    hog.expect("PASS")
    hog.send_line("pw")             # its hash holds the only slot for ~0.7 s
    queued = d.connect("queued", source_addr=src)
    queued.expect_hello()
    queued.send_line("queued")
    queued.expect("PASS")
    queued.send_line("pw")          # waits for the slot
    # The budget (2) is full: each newcomer from the address drops its oldest login.
    third = d.connect("third", source_addr=src)
    third.expect_hello()            # drops hog (hashing: it finishes, and registers nothing)
    fourth = d.connect("fourth", source_addr=src)
    fourth.expect_hello()           # drops queued (waiting)
    wait_until(lambda: "dropped the oldest of 127.0.0.21" in d.log_text()
               and d.log_text().count("dropped the oldest") >= 2, "two logins dropped")
    wait_until(lambda: "gave up registering queued from 127.0.0.21" in d.log_text()
               or "registered queued" in d.log_text(), "the dropped registration ended")
    assert "registered queued" not in d.log_text(), \
        "a login dropped for the budget waited for a hash slot and registered its name"
    third.close()
    fourth.close()


def test_a_login_dropped_while_its_hash_runs_registers_nothing(chatd_factory):
    """SECURITY.md: a login dropped for the budget never registers its name later.
    One dropped while its hash is being computed (it had its slot) cannot stop the
    hash, but throws it away: the name stays free and the log says it gave up."""
    d = chatd_factory(max_logins=2, max_logins_per_address=3, max_clients_per_address=8,
                      hash_concurrency=1, hash_cost=10, login_timeout=30)
    src = "127.0.0.22"
    hog = d.connect("hog", source_addr=src)
    hog.expect_hello()
    hog.send_line("hog")
    hog.expect("PASS")
    hog.send_line("pw")             # its hash runs for a good part of a second
    others = []
    for label in ("second", "third"):
        c = d.connect(label, source_addr=src)
        c.expect_hello()            # the third drops the oldest: hog, mid-hash
        others.append(c)
    wait_until(lambda: "dropped the oldest of 127.0.0.22" in d.log_text(), "hog dropped")
    wait_until(lambda: "gave up registering hog" in d.log_text()
               or "registered hog" in d.log_text(), "hog's hash to end", timeout=20)
    assert "registered hog" not in d.log_text(), "a login dropped mid-hash registered its name"
    assert "hog" not in d.ctl_ok("user", "list").split()
    for c in others:
        c.close()


def connected(d):
    status = d.ctl_ok("status")
    line = next(l for l in status.splitlines() if l.startswith("clients:"))
    return int(line.split(",")[1].split()[0])


def test_a_dropped_login_leaves_its_delay_after_a_wrong_password(chatd_factory):
    """A login dropped for the budget while it sits out the delay after a wrong
    password ends at once instead of holding its thread and descriptor,
    uncounted, for the rest of the delay."""
    d = chatd_factory(max_logins=2, max_logins_per_address=3, max_clients_per_address=8,
                      login_fail_delay_ms=20000, login_fail_delay_max_ms=20000,
                      login_timeout=30)
    d.login("alice").send_line("/quit")
    wait_until(lambda: connected(d) == 0, "alice gone")
    src = "127.0.0.22"
    guesser = d.connect("guesser", source_addr=src)
    guesser.expect_hello()
    guesser.send_line("alice")
    guesser.expect("PASS")
    guesser.send_line("wrong")
    wait_until(lambda: "login failed for alice from 127.0.0.22" in d.log_text(),
               "the wrong password counted")
    idle = d.connect("idle", source_addr=src)
    idle.expect_hello()
    newcomer = d.connect("newcomer", source_addr=src)
    newcomer.expect_hello()         # the budget (2) is full: drops the guesser
    wait_until(lambda: "dropped the oldest of 127.0.0.22" in d.log_text(), "the guesser dropped")
    wait_until(lambda: connected(d) == 2, "the dropped guesser's connection closed", timeout=5)
    idle.close()
    newcomer.close()


def test_ipv4_clients_of_a_dual_stack_socket_are_limited_each_by_its_own_address(
        chatd_factory, tmp_path):
    """The packaged chatd.socket listens on [::], where IPv4 clients come as
    ::ffff:a.b.c.d: an IPv6 address counts as its /64, but all of IPv4 shares one
    /64 there.  Each IPv4 address must still be limited on its own, as on an
    IPv4 socket: max_clients_per_address, max_logins_per_address and the failed
    logins' delay of one address never reach another."""
    helper = chatd_factory(start=False)      # for its admin socket path
    port = free_port()
    state = tmp_path / "dual" / "state"
    state.mkdir(parents=True)
    config = tmp_path / "dual" / "chatd.conf"
    config.write_text(config_text({
        "state_dir": str(state), "admin_socket": str(helper.admin_socket), "hash_cost": 1,
        "max_clients_per_address": 3, "max_logins_per_address": 2,
        "login_fail_delay_ms": 5000, "login_fail_delay_max_ms": 5000}))
    with open(tmp_path / "dual" / "stderr", "w") as stderr:
        proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"[::]:{port}", "-l", str(helper.admin_socket),
             "--fdname=listen:admin", CHATD_BIN, "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        opened = []

        def connect(src, label):
            c = Client(label)
            opened.append(c)
            return c.connect(port, source_addr=src)

        try:
            deadline = deadline_in(10)
            while True:
                try:
                    connect("127.0.0.1", "probe").expect_hello()
                    break
                except (ConnectionRefusedError, ProtocolError):  # still binding
                    assert time.monotonic() < deadline, "never listened"
                    time.sleep(0.02)
            opened.pop().close()
            a = "127.0.0.31"
            first = connect(a, "a1")
            first.login("owner", "pw-owner")
            idle = [connect(a, f"a{i}") for i in (2, 3)]
            for c in idle:
                c.expect_hello()
            # The address is at both its limits: logins (2) and connections (3).
            refused = connect(a, "a4")
            assert refused.read().raw.startswith("ERR 503"), "a 4th connection from one address"
            # Other IPv4 addresses are not: each gets its own budget.
            for i, src in enumerate(("127.0.0.32", "127.0.0.33")):
                connect(src, f"b{i}").login(f"user{i}", "pw")
                for k in range(2):
                    connect(src, f"b{i}{k}").expect_hello()
            # A wrong password from one address delays that address only.
            idle[0].send_line("owner")
            idle[0].expect("PASS", "known")
            idle[0].send_line("wrong")
            wait_until(lambda: "login failed for owner from 127.0.0.31" in
                       (state / "chatd.log").read_text(), "the failure in the log")
            fresh = connect("127.0.0.34", "fresh")
            fresh.login("newcomer", "pw")       # no ERR 429 for another address
            assert "::ffff:" not in (state / "chatd.log").read_text()
        finally:
            for c in opened:
                c.close()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(scaled(10)) == 0
