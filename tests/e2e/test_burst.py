"""
test_burst.py - one member (or a few) pipelines a burst of short messages
far longer than the fan-out ring while others stay in the room: idle ones
(their threads asleep, the room writing to their sockets), and one that chats
itself.  Only the senders may be slowed down: nobody is disconnected, every
member gets every message in order, every sender gets every OK.

The burst's messages are one or two bytes each, pipelined from a thread of
the sender's own.  The members' sockets are read raw by one thread each (a strict line-by-line
parse could not keep up with a burst), and the lines are checked afterwards.
"""

import socket
import threading
import time

import pytest

from chatproto import SCALE, scaled

# Short messages, as many as a pipelining client gets into the socket at once.
BURST = 200_000 // SCALE
# Each sync slowed down (the slow-sync fault): what queues meanwhile is one batch.
SLOW_BURST = 40_000 // SCALE
SENDERS = 3
# A member that stops reading for STALL seconds, with a small receive buffer.
STALL = 1.0
STALLED_RCVBUF = 16384


class Reader(threading.Thread):
    """Everything a logged-in client's socket receives, raw, until closed or stopped."""

    def __init__(self, client, stall=0.0):
        super().__init__(daemon=True)
        self.client = client
        self.stall = stall
        self.chunks = [client.buf[client.pos:]]
        self.lines = self.chunks[0].count(b"\n")
        client.buf, client.pos = b"", 0
        self.closed = False
        self.done = threading.Event()

    def run(self):
        sock = self.client.sock
        sock.settimeout(0.2)
        if self.stall:
            time.sleep(self.stall)    # a member that stops reading for a while
        while not self.done.is_set():
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                continue
            except (ConnectionResetError, OSError):
                data = b""
            if not data:
                self.closed = True
                return
            self.chunks.append(data)
            self.lines += data.count(b"\n")

    def text(self):
        return b"".join(self.chunks)

    def parsed(self):
        """Every complete line as (tag, fields...), a MSG's room left out."""
        data = self.text()
        assert data.endswith(b"\n") or not data, f"{self.client.label}: torn last line"
        return [unroom(line.split(b" ", 5)) if line.startswith(b"MSG ") else line.split(b" ", 4)
                for line in data.split(b"\n")[:-1]]


def unroom(fields):
    """MSG ROOM ID TIME NAME TEXT -> MSG ID TIME NAME TEXT; everything here is in lobby."""
    assert fields[1] == b"lobby", fields
    return fields[:1] + fields[2:]


def send_burst(client, texts, errors):
    """Pipelines texts from a thread of its own: chatd may stop reading meanwhile."""
    data = b"".join(t.encode() + b"\n" for t in texts)
    try:
        for off in range(0, len(data), 65536):
            client.sock.sendall(data[off:off + 65536])
    except OSError as e:
        errors.append(f"{client.label}: sending failed: {e}")


def await_lines(readers, wanted, timeout):
    """Until every reader has its number of lines, or one was disconnected."""
    deadline = time.monotonic() + scaled(timeout)
    while time.monotonic() < deadline:
        if all(r.lines >= wanted[r] or r.closed for r in readers):
            return
        time.sleep(0.05)


def check_member(reader, sent):
    """Every message of every sender in `sent` ({name: texts}), in order, nothing else."""
    got = {name: [] for name in sent}
    last_id = 0
    for fields in reader.parsed():
        assert fields[0] == b"MSG", (f"{reader.client.label} got {b' '.join(fields)!r} "
                                     f"during the burst")
        msg_id, name = int(fields[1]), fields[3].decode()
        assert msg_id > last_id, f"{reader.client.label}: id {msg_id} after {last_id}"
        last_id = msg_id
        got[name].append(fields[4].decode())
    for name, texts in sent.items():
        assert got[name] == texts, (f"{reader.client.label} got {len(got[name])} of "
                                    f"{len(texts)} messages from {name}, or out of order")


def check_sender(reader, count, others):
    """count OKs, ids rising; the other senders' messages (MSG) in between."""
    oks, last_ok = 0, 0
    for fields in reader.parsed():
        if fields[0] == b"MSG" and fields[3].decode() in others:
            continue
        assert fields[0] == b"OK" and fields[2] == b"sent", (
            f"{reader.client.label} got {b' '.join(fields)!r} during its burst")
        assert int(fields[1]) > last_ok
        last_ok = int(fields[1])
        oks += 1
    assert oks == count, f"{reader.client.label}: {oks} OKs for {count} messages"


def chat_during(chatter, reader, sender_reader, count, errors):
    """Once the burst has begun, the chatter says count messages one at a time,
    each after the OK of the one before: chatting as usual."""
    deadline = time.monotonic() + scaled(30)

    def oks(r):
        return (b"\n" + r.text()).count(b"\nOK ")

    while oks(sender_reader) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    for i in range(count):
        chatter.send_line(f"chat{i}")
        while oks(reader) <= i:
            if time.monotonic() > deadline or reader.closed:
                errors.append(f"{chatter.label}: no OK for chat{i}")
                return
            time.sleep(0.01)


def login_small_window(d, name):
    """A member whose socket buffers take little: its queue in chatd fills sooner."""
    c = d.connect(name, rcvbuf=STALLED_RCVBUF)
    c.login(name, f"pw-{name}")
    return c


def run_burst(d, senders, count, idle, chatter=None, chats=3, stalled=(), timeout=60):
    """senders pipeline count messages each while `idle` members only listen (the
    `stalled` ones after STALL seconds) and the chatter, if any, says a few messages as the burst
    goes on.  Returns the seconds until everyone had everything, and {name: reader}."""
    names = senders + idle + ([chatter] if chatter else [])
    clients = {name: d.login(name) for name in names if name not in stalled}
    clients.update({name: login_small_window(d, name) for name in stalled})
    # Everyone is in before the burst: no JOIN lands in the middle of it.
    for c in clients.values():
        c.sync()
    readers = {name: Reader(c, STALL if name in stalled else 0.0)
               for name, c in clients.items()}
    texts = {name: [f"{name[0]}{i}" for i in range(count)] for name in senders}
    if chatter:
        texts[chatter] = [f"chat{i}" for i in range(chats)]
    for r in readers.values():
        r.start()
    errors = []
    writers = [threading.Thread(target=send_burst, args=(clients[name], texts[name], errors),
                                daemon=True) for name in senders]
    if chatter:
        writers.append(threading.Thread(
            target=chat_during, args=(clients[chatter], readers[chatter], readers[senders[0]],
                                      chats, errors), daemon=True))
    start = time.monotonic()
    for w in writers:
        w.start()
    # Everyone gets a line (MSG, or OK for its own) for every message said.
    total = sum(len(t) for t in texts.values())
    await_lines(list(readers.values()), {r: total for r in readers.values()}, timeout)
    elapsed = time.monotonic() - start
    for r in readers.values():
        r.done.set()
    for r in readers.values():
        r.join(scaled(5))
    for w in writers:
        w.join(scaled(5))
    dropped = [name for name, r in readers.items() if r.closed]
    assert not dropped, (f"disconnected during the burst: {dropped}; "
                         f"log:\n{d.log_text()[-2000:]}")
    assert not errors, errors
    for name, r in readers.items():
        if name in texts:
            check_sender(r, len(texts[name]), [s for s in texts if s != name])
        else:
            check_member(r, texts)
    return elapsed, readers


def ok_ids(reader):
    return [int(f[1]) for f in reader.parsed() if f[0] == b"OK"]


def slow_chatd(chatd_factory, sync_ms):
    """Every sync of the history takes 100 ms more (the slow-sync fault): what a
    pipelining client sends meanwhile piles up behind it."""
    d = chatd_factory(start=False, history_sync_ms=sync_ms)
    d.env["CHATD_TEST_FAULT"] = "slow-sync"
    return d.start()


@pytest.mark.parametrize("sync_ms", [0, 50], ids=["durable", "relaxed"])
def test_one_members_burst_disconnects_nobody(chatd_factory, sync_ms):
    d = slow_chatd(chatd_factory, sync_ms)
    elapsed, readers = run_burst(d, ["alice"], SLOW_BURST, ["bob", "carol", "dave"],
                                 chatter="erin")
    # Only the sender waited: erin's first message, said once the burst had
    # begun, went out in the middle of it, not behind it.
    assert ok_ids(readers["erin"])[0] < ok_ids(readers["alice"])[-1]
    print(f"slow sync: {SLOW_BURST} messages from one member in {elapsed:.2f} s "
          f"({SLOW_BURST / elapsed:.0f}/s), 4 members listening, nobody dropped")


def test_burst_on_a_plain_disk(chatd):
    elapsed, _ = run_burst(chatd, ["alice"], BURST, ["bob", "carol", "dave"], chatter="erin")
    print(f"plain disk: {BURST} messages from one member in {elapsed:.2f} s "
          f"({BURST / elapsed:.0f}/s), 4 members listening, nobody dropped")


@pytest.mark.parametrize("sync_ms", [0, 50], ids=["durable", "relaxed"])
def test_several_senders_burst_at_once(chatd_factory, sync_ms):
    d = slow_chatd(chatd_factory, sync_ms)
    senders = ["alice", "bob", "carol"][:SENDERS]
    run_burst(d, senders, SLOW_BURST // SENDERS, ["dave"], chatter="erin")


def test_a_member_that_stops_reading_a_while_slows_the_burst_down(chatd_factory):
    """A member that stops reading for a second (a terminal paused with Ctrl-S)
    while a burst comes is not pushed over its send queue limit: once more than
    half of it waits, the burst waits for the member, not the other way round.
    The burst is longer than what its socket buffers and queue hold."""
    d = chatd_factory(send_queue_limit=262144)
    elapsed, _ = run_burst(d, ["alice"], BURST, ["bob"], stalled=["sam"])
    print(f"{BURST} messages from one member in {elapsed:.2f} s ({BURST / elapsed:.0f}/s) "
          f"with a member that stopped reading for {STALL} s")


def test_a_sender_that_stops_reading_a_while_is_not_dropped(chatd_factory):
    """Three members burst at once while one of them (bob) stops reading for a
    second with a small receive buffer and a small send queue: what waits for
    it passes its limit while its thread is busy publishing, and it takes it in
    turns as it reads again (the others paced meanwhile), instead of being
    dropped for overflow."""
    d = chatd_factory(start=False, history_sync_ms=50, send_queue_limit=65536)
    d.start()
    run_burst(d, ["alice", "bob", "carol"], SLOW_BURST // SENDERS, ["dave"], stalled=["bob"])
