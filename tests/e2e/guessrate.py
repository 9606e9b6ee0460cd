"""
guessrate.py - how many password guesses an attacker gets checked per minute,
and whether the owner still gets in meanwhile (docs/SECURITY.md).

The attack: CONNS connections from each of ADDRESSES loopback addresses
(127.0.0.2, 127.0.0.3, ...) guess the password of one registered name as
fast as chatd answers: a wrong password on every connection, again at once
after ERR 401, 10 ms after ERR 429, a new connection after BYE.  A guess is
"checked" when chatd computed its hash: it logs "login failed", and answers
ERR 401 (or the BYE refused that ends a connection's last attempt) after
the delay.  Meanwhile the owner, who logged in from
127.0.0.100 before the attack, logs in there with the right password once a
second.

Run against a chatd binary at the shipped settings (hash_cost 5,
login_fail_delay_ms 1000, login_fail_delay_max_ms 30000, login_attempts 3,
hash_concurrency 0, max_clients_per_address 32):

    CHATD_BIN=build/chatd python3 tests/e2e/guessrate.py [SECONDS]

The tests in test_guessing.py use attack() with short runs.
"""

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

OWNER_ADDRESS = "127.0.0.100"


class Tally:
    def __init__(self):
        self.checked = 0        # ERR 401 or BYE refused: a hash was computed
        self.refused = 0        # ERR 429: not checked
        self.connections = 0
        self.owner_tries = 0
        self.owner_in = 0
        self.owner_refusals = []

    def __repr__(self):
        return (f"checked={self.checked} refused={self.refused} "
                f"connections={self.connections} owner={self.owner_in}/{self.owner_tries}")


async def _line(reader, timeout):
    raw = await asyncio.wait_for(reader.readline(), timeout)
    if not raw:
        raise ConnectionError("closed")
    return raw.decode("utf-8", "replace").rstrip("\n")


async def _guesser(port, source, name, tally, stop_at):
    guess = 0
    while time.monotonic() < stop_at:
        writer = None
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                           local_addr=(source, 0))
            tally.connections += 1
            if not (await _line(reader, 10)).startswith("HELLO"):
                await asyncio.sleep(0.05)
                continue
            writer.write(f"{name}\n".encode())
            if not (await _line(reader, 10)).startswith("PASS"):
                continue
            while time.monotonic() < stop_at:
                guess += 1
                writer.write(f"guess-{source}-{guess}\n".encode())
                line = await _line(reader, 60)
                if line.startswith("ERR 401"):
                    tally.checked += 1
                elif line.startswith("ERR 429"):
                    tally.refused += 1
                    await asyncio.sleep(0.01)
                elif line.startswith("BYE refused"):
                    tally.checked += 1
                    break
                else:
                    break
        except (ConnectionError, OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05)
        finally:
            if writer is not None:
                writer.close()


async def owner_login(port, name, password, source=OWNER_ADDRESS, timeout=10):
    """Logs in once; returns the reply to the password (WELCOME ... or ERR ...)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        await _line(reader, timeout)
        writer.write(f"{name}\n{password}\n".encode())
        await _line(reader, timeout)
        return await _line(reader, timeout)
    finally:
        writer.close()


async def _owner(port, name, password, tally, stop_at):
    while time.monotonic() < stop_at:
        started = time.monotonic()
        tally.owner_tries += 1
        try:
            reply = await owner_login(port, name, password)
        except (ConnectionError, OSError, asyncio.TimeoutError) as e:
            reply = repr(e)
        if reply.startswith("WELCOME"):
            tally.owner_in += 1
        elif len(tally.owner_refusals) < 3:
            tally.owner_refusals.append(reply)
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def _attack(port, name, password, addresses, conns, seconds):
    tally = Tally()
    stop_at = time.monotonic() + seconds
    tasks = [_guesser(port, f"127.0.0.{2 + a}", name, tally, stop_at)
             for a in range(addresses) for _ in range(conns)]
    if password is not None:
        tasks.append(_owner(port, name, password, tally, stop_at))
    await asyncio.gather(*tasks)
    return tally


def attack(port, name, password, addresses, conns, seconds):
    """Runs the attack for seconds; returns a Tally."""
    return asyncio.run(_attack(port, name, password, addresses, conns, seconds))


def main():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import Chatd, free_port
    from lograte import events

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 60
    for addresses, conns in ((1, 32), (10, 32)):
        with tempfile.TemporaryDirectory(prefix="guessrate-") as tmp:
            state = Path(tmp) / "state"
            state.mkdir()
            # The shipped settings, but for where chatd listens and keeps its files.
            daemon = Chatd(Path(tmp), {"listen": ["127.0.0.1"], "port": free_port(),
                                       "state_dir": str(state),
                                       "admin_socket": os.path.join(tmp, "admin.sock")})
            daemon.start()
            try:
                first = asyncio.run(owner_login(daemon.port, "victim", "the-owners-password"))
                assert first.startswith("WELCOME"), first
                tally = attack(daemon.port, "victim", "the-owners-password",
                               addresses, conns, seconds)
            finally:
                problems = daemon.cleanup()
            # A wrong password is answered after its delay, perhaps after the run: the
            # log says when each was checked, the first few of each window one by one and
            # the rest in its summary (lograte.py), the last written at shutdown.  Only
            # the victim's passwords are wrong.
            checked = events(daemon.log_text(), "login failed for victim from ", "failed logins")
            per_minute = checked * 60 / seconds
            print(f"{addresses} address(es) x {conns} connections, {seconds:.0f} s: "
                  f"{checked} checked ({per_minute:.0f}/min; {tally.checked} answered in the run), "
                  f"{tally.refused} ERR 429, "
                  f"{tally.connections} connections; owner logged in "
                  f"{tally.owner_in} of {tally.owner_tries} tries {tally.owner_refusals[:2]}",
                  flush=True)
            if problems:
                print("\n".join(problems), file=sys.stderr)


if __name__ == "__main__":
    main()
