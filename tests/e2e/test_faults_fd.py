"""
test_faults_fd.py - chatd out of file descriptors: a low RLIMIT_NOFILE set on
the running daemon and a connection flood.  The excess gets ERR 503 (never
silence), chatd does not spin, the client already online carries on, the
operator keeps control (chatctl answers, SIGHUP reloads and reopens the log,
from the descriptors chatd keeps in reserve), and a new client is served
again once the flood is gone.  The refusals are not logged one by one, but
counted (daemon/lograte.h).
"""

import re
import signal
import socket
import time

from chatproto import Client, Closed, scaled, wait_until
from lograte import events
import faults

FLOOD = 100
HEADROOM = 40           # descriptors left over the ones chatd holds at rest
# Kept free of clients at the top of the limit: a quarter of it, at most 64 (listener.c).
RESERVE_MAX = 64


def first_line(sock, timeout=5):
    """What chatd said first on a raw socket: a line, or "closed"."""
    client = Client("flood")
    client.sock = sock
    try:
        return client.read_line(timeout)
    except Closed:
        return "closed"


def test_descriptor_exhaustion_keeps_control_and_recovers(chatd_factory):
    d = chatd_factory(max_clients=1000, max_clients_per_address=1000, max_logins=1000,
                      max_logins_per_address=1000, login_timeout=60)
    alice = d.login("alice")
    watcher = d.login("watcher")
    at_rest = faults.open_fds(d.pid)
    limit = at_rest + HEADROOM
    faults.limit_open_files(d.pid, limit)
    rss_before = faults.rss_kb(d.pid)
    cpu_before = faults.cpu_seconds(d.pid)

    flood = [socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
             for _ in range(FLOOD)]
    answers = [first_line(s) for s in flood]
    served = [s for s, a in zip(flood, answers) if a.startswith("HELLO ")]
    refused = [a for a in answers if a.startswith("ERR 503 ")]
    faults.report("fd exhaustion", limit=limit, flood=FLOOD, served=len(served),
                  refused=len(refused), open_fds=faults.open_fds(d.pid))
    # Every connection got an answer: a greeting, or a refusal instead of silence.
    assert len(served) + len(refused) == FLOOD, answers
    assert refused and served

    # The operator keeps control: chatctl answers, at once.
    start = time.monotonic()
    status = d.ctl("-t", "5", "status")
    assert status.returncode == 0, status.stderr
    assert "clients: 2 online" in status.stdout
    assert time.monotonic() - start < scaled(3)
    # The reserve is left free of clients.
    reserve = min(RESERVE_MAX, limit // 4)
    assert len(served) < HEADROOM - reserve + 2
    assert faults.open_fds(d.pid) <= limit - reserve + 1
    assert len(d.ctl_ok("log", "show", "5").splitlines()) == 5
    # SIGHUP reloads the settings and reopens the log (rotated away meanwhile).
    rotated = d.log_path.with_name("chatd.log.1")
    d.log_path.rename(rotated)
    d.settings["history_replay"] = 7
    d.write_config()
    d.send_signal(signal.SIGHUP)
    wait_until(lambda: "reloaded" in d.log_text(), "the reload in the reopened log")
    assert "cannot reopen" not in d.log_text() + rotated.read_text()
    assert "reload failed" not in d.log_text() + rotated.read_text()
    # A registration can still write the identification file.
    newcomer = Client("newcomer")
    newcomer.sock = served[0]
    newcomer.send_line("newcomer")
    newcomer.expect("PASS", "new")
    newcomer.send_line("pw-newcomer")
    newcomer.finish_login()
    assert b"newcomer:" in d.ident_path.read_bytes()

    # Meanwhile the client already online is served as before.
    alice.say("still here")
    watcher.wait_for("MSG", lambda m: m[3] == "still here")
    # More connections while full: each refused, none left waiting, no spinning.
    more = [socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
            for _ in range(10)]
    assert all(first_line(s).startswith("ERR 503 ") for s in more)
    cpu_idle_start = faults.cpu_seconds(d.pid)
    time.sleep(1.0)     # an interval to measure, not a condition to await
    cpu_idle = faults.cpu_seconds(d.pid) - cpu_idle_start
    faults.report("fd exhaustion", cpu_seconds_idle_1s=round(cpu_idle, 2))
    assert cpu_idle < 0.2, f"chatd used {cpu_idle} s of CPU in 1 s of quiet: spinning"
    log = d.log_text() + rotated.read_text()
    # Rate limited: one warning, however long the shortage lasts.
    assert log.count("out of descriptors for clients") == 1, log

    for s in flood + more:
        s.close()
    wait_until(lambda: faults.open_fds(d.pid) <= at_rest + 3,
               "the flood's descriptors to close", timeout=10)
    bob = d.login("bob")
    bob.sync()
    alice.say("after the flood")
    bob.wait_for("MSG", lambda m: m[3] == "after the flood")
    assert "clients:" in d.ctl_ok("status")
    rss_after = faults.rss_kb(d.pid)
    faults.report("fd exhaustion", rss_kb_before=rss_before, rss_kb_after=rss_after,
                  cpu_seconds=round(faults.cpu_seconds(d.pid) - cpu_before, 2))
    assert rss_after - rss_before < faults.RSS_GROWTH_MAX_KB
    # Every refusal is counted: for want of descriptors (in a summary, the last at
    # shutdown) or, had a thread failed to start, of a thread.
    assert d.stop() == 0
    log = d.log_text() + rotated.read_text()
    counted = sum(int(n) for n in re.findall(
        r"(\d+) connections refused for want of descriptors in the last \d+ s$", log, re.M))
    no_thread = events(log, "cannot start a thread", "connections refused for want of a thread")
    assert counted + no_thread == len(refused) + len(more), log


def test_reserve_used_up_too_refuses_and_does_not_spin(chatd_factory):
    """Admin connections can use up the reserve itself (a small limit keeps a
    quarter of it): then the listener's spare descriptor still answers each
    newcomer with ERR 503, neither the listener nor the control thread spins
    on a socket left readable, and all is well once the admins leave."""
    d = chatd_factory(max_clients=1000, max_clients_per_address=1000, max_logins=1000,
                      max_logins_per_address=1000, login_timeout=60)
    alice = d.login("alice")
    at_rest = faults.open_fds(d.pid)
    limit = at_rest + 24
    faults.limit_open_files(d.pid, limit)
    flood = [socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
             for _ in range(40)]
    assert all(first_line(s).startswith(("HELLO ", "ERR 503 ")) for s in flood)
    admins = []
    for _ in range(16):         # chatd serves 16 at once: more than the reserve here
        admin = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        admin.connect(str(d.admin_socket))
        admins.append(admin)
    wait_until(lambda: faults.open_fds(d.pid) >= limit, "every descriptor in use")
    late = [socket.create_connection(("127.0.0.1", d.port), timeout=scaled(5))
            for _ in range(5)]
    assert [first_line(s)[:8] for s in late] == ["ERR 503 "] * 5
    wait_until(lambda: faults.open_fds(d.pid) >= limit, "the spare to be taken back")
    cpu_idle_start = faults.cpu_seconds(d.pid)
    time.sleep(1.0)     # an interval to measure, not a condition to await
    cpu_idle = faults.cpu_seconds(d.pid) - cpu_idle_start
    assert cpu_idle < 0.2, f"chatd used {cpu_idle} s of CPU in 1 s of quiet: spinning"
    log = d.log_text()
    # Rate limited: one warning from each thread, however long the shortage lasts.
    assert (log.count("cannot accept: Too many open files") +
            log.count("out of descriptors for clients")) == 1, log
    assert log.count("admin: accept: Too many open files") == 1, log

    for s in admins + flood + late:
        s.close()
    wait_until(lambda: d.ctl("status").returncode == 0, "chatctl to be served again")
    alice.say("after it all")
    alice.sync()
