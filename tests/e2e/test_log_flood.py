"""
test_log_flood.py - what a flood of connections from someone without an
account does to chatd's log (docs/SECURITY.md, "log flooding"): a few
hundred refused connections, or plaintext on the TLS port, on loopback.
The log grows by a bounded number of lines (a burst per kind of event and
window, then one summary line, daemon/lograte.h), and no event is lost from
the counts: the lines logged plus the summaries' counts are exactly the
connections made, the summary coming from the control thread once the
window is over even if nothing follows, or at shutdown.
"""

import math
import socket
import time

from chatproto import closed_without_reply, wait_until
from lograte import BURST, WINDOW_S, events, logged, summaries

PER_ADDRESS = "refused connections (over max_clients_per_address)"
TOO_MANY = "too many connections from your address"


def line_count(chatd):
    return len(chatd.log_text().splitlines())


def bound(kinds, seconds):
    """Most lines kinds of events may log in seconds: each window they touch
    logs BURST of each and one summary."""
    windows = math.ceil(seconds / WINDOW_S) + 1
    return kinds * (BURST + 1) * windows


def full_from_one_address(chatd_factory, held=2):
    """A chatd whose max_clients_per_address is taken by held connections
    logging in from 127.0.0.1, which are returned with it."""
    chatd = chatd_factory(max_clients_per_address=held, max_logins_per_address=held)
    conns = [chatd.connect(f"held{i}") for i in range(held)]
    for c in conns:
        c.expect_hello()
    wait_until(lambda: len(logged(chatd.log_text(), "connection from")) == held,
               "the held connections logged")
    return chatd, conns


def refused_flood(chatd, n):
    """n connections refused one after the other with ERR 503 (over
    max_clients_per_address)."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", chatd.port)) as s:
            assert TOO_MANY.encode() in closed_without_reply(s)


def test_refused_connections_grow_the_log_by_a_bounded_number_of_lines(chatd_factory):
    chatd, held = full_from_one_address(chatd_factory)
    before = line_count(chatd)
    start = time.monotonic()
    refused_flood(chatd, 300)
    elapsed = time.monotonic() - start
    grown = line_count(chatd) - before
    assert grown <= bound(1, elapsed), f"{grown} lines for 300 refusals in {elapsed:.1f} s"
    for c in held:
        c.close()
    assert chatd.stop() == 0
    # Every refusal is a line or counted in a summary, the last at shutdown.
    text = chatd.log_text()
    assert summaries(text, PER_ADDRESS), text[-2000:]
    assert events(text, TOO_MANY, PER_ADDRESS) == 300
    assert text.index(summaries_line(text, PER_ADDRESS)) < text.index("chatd stopped")


def summaries_line(text, what):
    return next(l for l in text.splitlines() if l.endswith(" s") and f" more {what} " in l)


def test_the_summary_comes_when_the_flood_stops(chatd_factory):
    """Nothing follows the flood and chatd keeps running: the control
    thread's tick sums the window up once it is over."""
    chatd, _ = full_from_one_address(chatd_factory)
    refused_flood(chatd, BURST + 15)
    wait_until(lambda: events(chatd.log_text(), TOO_MANY, PER_ADDRESS) == BURST + 15,
               "every refusal logged or summed up", timeout=3 * WINDOW_S)
    assert len(logged(chatd.log_text(), TOO_MANY)) <= 2 * BURST


def test_plaintext_on_the_tls_port_grows_the_log_by_a_bounded_number_of_lines(tls_chatd):
    chatd = tls_chatd()
    wait_until(lambda: "listening" in chatd.log_text(), "started")
    before = line_count(chatd)
    start = time.monotonic()
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", chatd.tls_port)) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert closed_without_reply(s) == b""
    # Each connection's thread logs its departure after closing: wait for the last.
    wait_until(lambda: chatd.ctl_ok("status").count("logins: 0 in progress") == 1,
               "every connection gone")
    elapsed = time.monotonic() - start
    grown = line_count(chatd) - before
    # Two kinds: the connections, and the handshakes that failed.
    assert grown <= bound(2, elapsed), f"{grown} lines for 200 connections in {elapsed:.1f} s"
    assert chatd.stop() == 0
    text = chatd.log_text()
    assert events(text, "connection from 127.0.0.1 (TLS)", "connections") == 200
    assert events(text, "TLS handshake failed", "TLS handshakes that failed") == 200


def test_guests_coming_and_going_grow_the_log_by_a_bounded_number_of_lines(chatd_factory):
    """guests = true: a guest has no account, so anyone can log in as one
    as often as they like; its login and its departure are bounded too."""
    chatd = chatd_factory(guests=True)
    wait_until(lambda: "listening" in chatd.log_text(), "started")
    before = line_count(chatd)
    start = time.monotonic()
    for i in range(60):
        g = chatd.connect(f"guest{i}")
        g.login(f"visitor{i}", "", expect_pass="new")
        g.close()
    assert chatd.stop() == 0
    elapsed = time.monotonic() - start
    text = chatd.log_text()
    grown = len(text.splitlines()) - before
    # Three kinds (connections, guest logins, guest departures), and chatd's own
    # lines at shutdown.
    assert grown <= bound(3, elapsed) + 5, f"{grown} lines for 60 guests in {elapsed:.1f} s"
    assert events(text, "connection from 127.0.0.1", "connections") == 60
    assert events(text, " as a guest", "guest logins") == 60
    assert events(text, "disconnect visitor", "guest departures") == 60


def test_a_login_budget_flood_is_counted_exactly_in_every_kind(chatd_factory):
    """Each newcomer past max_logins drops the oldest login: three kinds of
    lines per connection (its connection, the drop, the dropped one's
    departure), logged by the listener and by as many client threads at
    once; each kind is bounded and its count exact."""
    n = 150
    chatd = chatd_factory(max_logins=2, max_logins_per_address=1000,
                          max_clients_per_address=1000)
    wait_until(lambda: "listening" in chatd.log_text(), "started")
    before = line_count(chatd)
    start = time.monotonic()
    conns = []
    for i in range(n):
        c = chatd.connect(f"c{i}")
        c.expect_hello()
        conns.append(c)
    for c in conns:
        c.close()
    wait_until(lambda: chatd.ctl_ok("status").count("logins: 0 in progress") == 1,
               "every connection gone")
    elapsed = time.monotonic() - start
    grown = line_count(chatd) - before
    # Connections, drops, and departures before login of one reason or two.
    assert grown <= bound(4, elapsed), f"{grown} lines for {n} connections in {elapsed:.1f} s"
    assert chatd.stop() == 0
    text = chatd.log_text()
    assert events(text, "connection from 127.0.0.1", "connections") == n
    assert events(text, "dropped the oldest of 127.0.0.1",
                  "logins dropped for newcomers (max_logins)") == n - 2
    departures = len(logged(text, " before login: ")) + sum(
        sum(summaries(text, f"departures before login ({why})")) for why in ("lost", "timeout"))
    assert departures == n
