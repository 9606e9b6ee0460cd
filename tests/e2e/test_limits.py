"""
test_limits.py - resource limits: a client that does not read, max_clients
and max_clients_per_address.
"""

import threading
import time

from chatproto import deadline_in


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
