"""
loginflood.py - users logging in while a crowd of connections from a few
addresses churns the login budget (docs/SECURITY.md, the row on connections
that never log in).

The attack: 10 connections from each of 20 loopback addresses (127.0.1.1 to
127.0.1.20), half of them registering a new name at once, half idle, each
reopened as soon as chatd drops or refuses it.  Meanwhile USERS users, each
from an address of their own (127.0.2.N), register one after another; their
login latencies are printed (FAIL: no answer within the client's 5 s), with
chatd's status at the end ("connected" counts the connections still open).

    CHATD_BIN=build/chatd CHATCTL_BIN=build/ctl/chatctl \
        python3 tests/e2e/loginflood.py [MAX_LOGINS [USERS]]

MAX_LOGINS defaults to 100 (the 20 addresses can hold 160 logins), USERS
to 10; hash_cost 5, login_fail_delay_ms 1000, login_timeout 30.
"""

import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402


def crowd(d, stop, stats, lock, src, idx):
    n = 0
    while not stop.is_set():
        n += 1
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(40)
        try:
            s.connect(("127.0.0.1", d.port))
            f = s.makefile("rb")
            first = f.readline()
            with lock:
                stats["opened"] += 1
            if not first.startswith(b"HELLO"):
                with lock:
                    stats["refused"] += 1
                s.close()
                time.sleep(0.05)
                continue
            if idx % 2 == 0:
                s.sendall(f"x{src.split('.')[-1]}_{idx}_{n}\npw\n".encode())
            while not stop.is_set():
                line = f.readline()
                if not line:
                    with lock:
                        stats["dropped"] += 1
                    break
                if line.startswith(b"WELCOME"):
                    with lock:
                        stats["registered"] += 1
                    break
        except OSError:
            pass
        s.close()


def main():
    max_logins = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    users = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    tmp = Path(tempfile.mkdtemp())
    (tmp / "state").mkdir()
    d = conftest.Chatd(tmp, conftest.base_settings(tmp / "state", dict(
        max_logins=max_logins, hash_cost=5, login_fail_delay_ms=1000, login_timeout=30,
        admin_socket=str(tmp / "admin.sock"))))
    d.start()
    stop = threading.Event()
    lock = threading.Lock()
    stats = {"opened": 0, "refused": 0, "dropped": 0, "registered": 0}
    threads = [threading.Thread(target=crowd, args=(d, stop, stats, lock, f"127.0.1.{a}", i),
                                daemon=True)
               for a in range(1, 21) for i in range(10)]
    for t in threads:
        t.start()
    time.sleep(3)
    latencies = []
    try:
        for u in range(users):
            t0 = time.monotonic()
            try:
                c = d.connect(f"u{u}", source_addr=f"127.0.2.{u + 1}")
                c.login(f"user{u}", "pw", hello_timeout=30)
                latencies.append(round(time.monotonic() - t0, 2))
            except Exception as e:  # noqa: BLE001 - a figure, not a test
                latencies.append(f"FAIL {e}")
            time.sleep(0.5)
        print("user login latencies (s):", latencies)
        print("crowd:", stats)
        print(d.ctl("status").stdout)
    finally:
        stop.set()
        d.stop()


if __name__ == "__main__":
    main()
