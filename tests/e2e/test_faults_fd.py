"""
test_faults_fd.py - chatd out of file descriptors: a low RLIMIT_NOFILE set on
the running daemon and a connection flood.  The excess gets ERR 503 (never
silence), chatd does not spin, the client already online carries on, and a
new client is served again once the flood is gone.
"""

import socket
import time

from chatproto import Client, Closed, scaled, wait_until
import faults

FLOOD = 80
HEADROOM = 20           # descriptors left over the ones chatd holds at rest


def first_line(sock, timeout=5):
    """What chatd said first on a raw socket: a line, or "closed"."""
    client = Client("flood")
    client.sock = sock
    try:
        return client.read_line(timeout)
    except Closed:
        return "closed"


def test_descriptor_exhaustion_refuses_excess_and_recovers(chatd_factory):
    d = chatd_factory(max_clients=1000, max_clients_per_address=1000, login_timeout=60)
    alice = d.login("alice")
    watcher = d.login("watcher")
    at_rest = faults.open_fds(d.pid)
    faults.limit_open_files(d.pid, at_rest + HEADROOM)
    rss_before = faults.rss_kb(d.pid)
    cpu_before = faults.cpu_seconds(d.pid)

    flood = [socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
             for _ in range(FLOOD)]
    answers = [first_line(s) for s in flood]
    served = [s for s, a in zip(flood, answers) if a.startswith("HELLO ")]
    refused = [a for a in answers if a.startswith("ERR 503 ")]
    faults.report("fd exhaustion", limit=at_rest + HEADROOM, flood=FLOOD,
                  served=len(served), refused=len(refused))
    # Every connection got an answer: a greeting, or a refusal instead of silence.
    assert len(served) + len(refused) == FLOOD, answers
    assert refused and 0 < len(served) <= HEADROOM

    # Out of descriptors, a registration cannot write the identification file:
    # a clear error, and nothing half written.  The listener takes its spare
    # descriptor back just after it wrote the last refusal: wait for that, or
    # the registration may slip into the gap.
    wait_until(lambda: faults.open_fds(d.pid) >= at_rest + HEADROOM,
               "chatd to hold every descriptor again")
    ident_before = d.ident_path.read_bytes()
    newcomer = Client("newcomer")
    newcomer.sock = served[0]
    newcomer.send_line("newcomer")
    newcomer.expect("PASS", "new")
    newcomer.send_line("pw-newcomer")
    err = newcomer.read()
    assert err.tag == "ERR" and err[0] == "500", err.raw
    assert d.ident_path.read_bytes() == ident_before
    assert not d.ident_path.with_name("ident.tmp").exists()

    # An admin connection waiting while no descriptor is free must not make the
    # control thread spin on a socket that stays readable.
    admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    admin.connect(str(d.admin_socket))
    # Meanwhile the client already online is served as before.
    alice.say("still here")
    watcher.wait_for("MSG", lambda m: m[3] == "still here")
    cpu_idle_start = faults.cpu_seconds(d.pid)
    time.sleep(1.0)     # an interval to measure, not a condition to await
    cpu_idle = faults.cpu_seconds(d.pid) - cpu_idle_start
    faults.report("fd exhaustion", cpu_seconds_idle_1s=round(cpu_idle, 2))
    assert cpu_idle < 0.2, f"chatd used {cpu_idle} s of CPU in 1 s of quiet: spinning"
    admin.close()
    log = d.log_text()
    # Rate limited: one warning each, however long the shortage lasts.
    assert log.count("cannot accept: Too many open files") == 1, log
    assert log.count("admin: accept: Too many open files") == 1, log

    for s in flood:
        s.close()
    wait_until(lambda: faults.open_fds(d.pid) <= at_rest + 2, "the flood's descriptors to close",
               timeout=10)
    bob = d.login("bob")
    bob.sync()
    alice.say("after the flood")
    bob.wait_for("MSG", lambda m: m[3] == "after the flood")
    assert "clients:" in d.ctl_ok("status")
    rss_after = faults.rss_kb(d.pid)
    faults.report("fd exhaustion", rss_kb_before=rss_before, rss_kb_after=rss_after,
                  cpu_seconds=round(faults.cpu_seconds(d.pid) - cpu_before, 2))
    assert rss_after - rss_before < faults.RSS_GROWTH_MAX_KB
