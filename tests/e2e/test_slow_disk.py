"""
test_slow_disk.py - what a slow disk costs, and who pays (docs/PROTOCOL.md,
"When a message counts as sent").  Every sync of the history is made 100 ms
slower with the slow-sync fault.

In durable mode (history_sync_ms = 0, the default) a member sees a message
only once it is on disk, at the moment its sender gets OK: so nobody ever
sees a message that a failed sync or a crash takes back (a failed sync is
tested in test_faults_disk.py and tests/unit/test_history.c), and the room
waits for the disk.  With history_sync_ms > 0 nobody waits for it.
"""

import time

import pytest

# daemon/fault.h: FAULT_SLOW_SYNC_MS
SLOW_SYNC = 0.100
ROUNDS = 10


def slow_chatd(chatd_factory, sync_ms):
    d = chatd_factory(start=False, history_sync_ms=sync_ms)
    d.env["CHATD_TEST_FAULT"] = "slow-sync"
    return d.start()


def round_trips(alice, bob):
    """Alice says ROUNDS messages one at a time: for each, the seconds until
    bob had it and until alice had its OK."""
    times = []
    for i in range(ROUNDS):
        start = time.monotonic()
        alice.send_line(f"round {i}")
        msg = bob.wait_for("MSG", lambda m, i=i: m[3] == f"round {i}")
        seen = time.monotonic() - start
        data, final = alice.collect_reply()
        acked = time.monotonic() - start
        assert not data and final.tag == "OK" and final.id == msg.id, final.raw
        times.append((seen, acked))
    return times


def test_durable_members_see_a_message_only_once_it_is_on_disk(chatd_factory):
    d = slow_chatd(chatd_factory, 0)
    alice, bob = d.login("alice"), d.login("bob")
    for seen, acked in round_trips(alice, bob):
        # Neither before its sync, which takes SLOW_SYNC at least.
        assert seen >= SLOW_SYNC, f"bob saw a message {seen * 1000:.0f} ms after it was sent"
        assert acked >= SLOW_SYNC
    assert "a disk sync took" in d.log_text()


@pytest.mark.parametrize("sync_ms", [1, 50])
def test_relaxed_nobody_waits_for_the_disk(chatd_factory, sync_ms):
    d = slow_chatd(chatd_factory, sync_ms)
    alice, bob = d.login("alice"), d.login("bob")
    times = sorted(acked for _, acked in round_trips(alice, bob))
    # The commit thread is syncing nearly all the time; the messages do not
    # wait for it (the median, so one late scheduling does not decide).
    assert times[len(times) // 2] < SLOW_SYNC, f"round trips {times}"
