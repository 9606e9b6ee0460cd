"""
test_bench_smoke.py - a short chatbench run against the real chatd.

Not a measurement (figures belong in bench/): it checks that the load
generator and chatd agree end to end, with nothing lost.  50 clients log
in (registering on the way), 5 of them send for 2 seconds, and every
message must reach the other 49 in order.  The rooms layout: 40 clients
join 4 rooms (/join), one sender a room, every message must reach the
other 9 members of its room and no one else; then 20 clients join 3 rooms
each and every membership is counted.  The IRC module against chatd's
IRC port (bench/run's server chatd-irc): the same two runs, logging in
with PASS, the one room being #lobby, which chatd joins everyone to.
"""

import json
import os
import socket
import subprocess

import pytest

from chatproto import scaled

CHATBENCH_BIN = os.path.abspath(os.environ.get("CHATBENCH_BIN", "/work/main/build-e/bench/chatbench"))

pytestmark = pytest.mark.skipif(not os.access(CHATBENCH_BIN, os.X_OK),
                                reason=f"chatbench not built ({CHATBENCH_BIN}); set CHATBENCH_BIN")


def run_chatbench(*args, timeout=120):
    proc = subprocess.run([CHATBENCH_BIN, *args], capture_output=True, text=True,
                          timeout=scaled(timeout))
    return proc.returncode, proc.stdout, proc.stderr


def test_smoke_run_loses_nothing(chatd_factory):
    daemon = chatd_factory(max_clients_per_address=100, max_logins_per_address=100)
    rc, out, err = run_chatbench("-P", "chatd", "-p", str(daemon.port), "-n", "50", "-s", "5",
                                 "-d", "2", "--login-timeout", str(scaled(60)),
                                 "--drain", str(scaled(10)), "--server-pid", str(daemon.pid))
    assert rc == 0, err
    result = json.loads(out)
    assert result["logged_in"] == 50, result
    assert result["sent"] > 0, result
    assert result["expected"] == result["sent"] * 49, result
    assert result["delivered"] == result["expected"], result
    assert result["lost"] == 0, result
    assert result["acked"] == result["sent"], result
    assert all(count == 0 for count in result["errors"].values()), result["errors"]
    assert result["server"]["loaded"]["threads"] >= 50, result["server"]


def protocol_version(port):
    """The version chatd's HELLO announces (rooms came with protocol 2)."""
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as sock:
        hello = sock.makefile("rb").readline().decode()
    assert hello.startswith("HELLO "), hello
    return int(hello.split()[1])


def rooms_chatd(chatd_factory):
    daemon = chatd_factory(max_clients_per_address=100, max_logins_per_address=100)
    if protocol_version(daemon.port) < 2:
        pytest.skip("this chatd speaks protocol 1, before rooms")
    return daemon


def test_rooms_layout_loses_nothing(chatd_factory):
    daemon = rooms_chatd(chatd_factory)
    rc, out, err = run_chatbench("-P", "chatd", "-p", str(daemon.port), "-n", "40", "-s", "4",
                                 "-d", "2", "--rooms", "4", "--login-timeout", str(scaled(60)),
                                 "--drain", str(scaled(10)), "--server-pid", str(daemon.pid))
    assert rc == 0, err
    result = json.loads(out)
    assert result["logged_in"] == 40, result
    assert result["join"]["clients"] == 40 and result["join"]["memberships"] == 40, result
    assert result["sent"] > 0, result
    assert result["expected"] == result["sent"] * 9, result
    assert result["delivered"] == result["expected"], result
    assert result["lost"] == 0, result
    assert result["acked"] == result["sent"], result
    assert all(count == 0 for count in result["errors"].values()), result["errors"]


def test_joins_are_counted(chatd_factory):
    daemon = rooms_chatd(chatd_factory)
    rc, out, err = run_chatbench("-P", "chatd", "-p", str(daemon.port), "-n", "20", "-s", "0",
                                 "--rooms", "5", "--joins", "3", "--settle", "0",
                                 "--login-timeout", str(scaled(60)), "--server-pid", str(daemon.pid))
    assert rc == 0, err
    result = json.loads(out)
    assert result["join"]["clients"] == 20 and result["join"]["memberships"] == 60, result
    assert all(count == 0 for count in result["errors"].values()), result["errors"]
    assert "rss_per_membership_kib" in result["server"], result["server"]


def bench_irc_chatd(irc_chatd):
    """chatd with its IRC port on, flood control out of the way (bench/conf/chatd-irc.conf)."""
    daemon = irc_chatd(max_clients_per_address=100, max_logins_per_address=100,
                       irc_flood_burst=100000, irc_flood_rate=100000)
    return daemon, daemon.irc_port


def test_irc_port_one_room_loses_nothing(irc_chatd):
    daemon, port = bench_irc_chatd(irc_chatd)
    rc, out, err = run_chatbench("-P", "irc", "--irc-pass", "--channel", "#lobby", "-p", str(port),
                                 "-n", "30", "-s", "3", "-d", "2",
                                 "--login-timeout", str(scaled(60)), "--drain", str(scaled(10)),
                                 "--server-pid", str(daemon.pid))
    assert rc == 0, err
    result = json.loads(out)
    assert result["irc"] == {"pass": True, "channel": "#lobby"}, result
    assert result["logged_in"] == 30, result
    assert result["sent"] > 0, result
    assert result["expected"] == result["sent"] * 29, result
    assert result["delivered"] == result["expected"], result
    assert result["lost"] == 0, result
    assert all(count == 0 for count in result["errors"].values()), result["errors"]


def test_irc_port_rooms_layout_loses_nothing(irc_chatd):
    daemon, port = bench_irc_chatd(irc_chatd)
    rc, out, err = run_chatbench("-P", "irc", "--irc-pass", "-p", str(port), "-n", "40", "-s", "4",
                                 "-d", "2", "--rooms", "4", "--login-timeout", str(scaled(60)),
                                 "--drain", str(scaled(10)), "--server-pid", str(daemon.pid))
    assert rc == 0, err
    result = json.loads(out)
    # Each client's welcome ends with #lobby's name list, which is not one of its rooms.
    assert result["join"]["clients"] == 40 and result["join"]["memberships"] == 40, result
    assert result["sent"] > 0, result
    assert result["expected"] == result["sent"] * 9, result
    assert result["delivered"] == result["expected"], result
    assert all(count == 0 for count in result["errors"].values()), result["errors"]


def test_irc_options_are_for_irc():
    for args in (["--irc-pass"], ["--channel", "#lobby"]):
        rc, out, err = run_chatbench("-P", "chatd", "-p", "7777", *args, timeout=10)
        assert rc == 2 and "are for irc" in err, (args, out, err)
    rc, out, err = run_chatbench("-P", "irc", "-p", "7777", "--channel", "lobby", timeout=10)
    assert rc == 2 and "--channel" in err, (out, err)


def test_refuses_addresses_off_loopback():
    for host in ("192.0.2.1", "::ffff:192.0.2.1", "example.org"):
        rc, out, err = run_chatbench("-H", host, "-p", "7777", timeout=10)
        assert rc == 2, (host, out, err)
        assert "loopback" in err
