"""
test_crowd.py - many clients at once: a crowded room still shuts down
promptly, even with clients that stopped reading.
"""

import signal
import time

from chatproto import scaled

CROWD = 200
NON_READERS = 3


def test_shutdown_with_a_crowd_and_clients_that_do_not_read(chatd_factory):
    d = chatd_factory(max_clients=CROWD + NON_READERS + 10,
                      max_clients_per_address=CROWD + NON_READERS + 10,
                      room_notice_limit=10, send_queue_limit=64 << 20)
    crowd = [d.login(f"user{i}") for i in range(CROWD)]
    stuck = []
    for i in range(NON_READERS):
        c = d.connect(f"stuck{i}", rcvbuf=4096)
        c.login(f"stuck{i}", f"pw-stuck{i}")
        stuck.append(c)

    # Fill the non-readers' sockets: about 2 MB of room traffic they never read.
    talker = crowd[0]
    talker.send_raw(b"".join(f"filler {i} {'x' * 1000}\n".encode() for i in range(2000)))
    finals = [talker.collect_reply(timeout=60)[1] for _ in range(2000)]
    assert all(f.tag == "OK" for f in finals)
    # Some readers keep up; the other clients' sockets stay full.
    readers = crowd[1:50]
    for c in readers:
        c.wait_for("MSG", lambda l: l.id == finals[-1].id, timeout=30)

    started = time.monotonic()
    d.send_signal(signal.SIGTERM)
    assert d.wait(timeout=10) == 0
    took = time.monotonic() - started
    assert took < scaled(5), f"shutdown took {took:.2f} s"

    for c in readers:
        lines = c.read_until_closed(timeout=30)
        assert [l.tag for l in lines] == ["BYE"] and lines[0][0] == "shutdown", (c.label, lines)
