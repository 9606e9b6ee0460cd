"""
test_bench_smoke.py - a short chatbench run against the real chatd.

Not a measurement (figures belong in bench/): it checks that the load
generator and chatd agree end to end, with nothing lost.  50 clients log
in (registering on the way), 5 of them send for 2 seconds, and every
message must reach the other 49 in order.
"""

import json
import os
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


def test_refuses_addresses_off_loopback():
    for host in ("192.0.2.1", "::ffff:192.0.2.1", "example.org"):
        rc, out, err = run_chatbench("-H", host, "-p", "7777", timeout=10)
        assert rc == 2, (host, out, err)
        assert "loopback" in err
