"""
test_guessing.py - password guessing over many connections and addresses
(docs/SECURITY.md): one password check at a time per name and per address,
the owner still gets in from an address it logged in from, and losing a
registration race is no wrong password.
"""

import re
from collections import Counter

from chatproto import wait_until
from guessrate import OWNER_ADDRESS, attack


def failure_delays(chatd):
    return [int(m) for m in re.findall(r"login failed for \S+ from \S+; next try in (\d+) ms",
                                       chatd.log_text())]


def guessers(chatd, name, sources):
    """One connection per source address, each waiting for the password of name."""
    out = []
    for i, source in enumerate(sources):
        g = chatd.connect(f"guesser{i}@{source}", source_addr=source)
        g.expect_hello()
        g.send_line(name)
        g.expect("PASS", "known")
        out.append(g)
    return out


def guess_at_once(conns):
    """Every connection sends a wrong password at once; the codes of the replies."""
    for i, g in enumerate(conns):
        g.send_line(f"wrong-guess-{i}")
    return Counter(g.expect("ERR", timeout=15)[0] for g in conns)


def test_parallel_connections_get_one_check_at_a_time(chatd_factory):
    # The shipped hash cost: the ~20 ms a hash takes was the gap guesses slipped through.
    # Logins from one address are let through beyond the shipped max_logins_per_address (8).
    chatd = chatd_factory(hash_cost=5, login_fail_delay_ms=2000, login_fail_delay_max_ms=2000,
                          max_logins_per_address=32)
    chatd.login("bob").close()
    codes = guess_at_once(guessers(chatd, "bob", ["127.0.0.1"] * 16))
    # One password was checked (and got ERR 401 after the delay); the rest waited for
    # its outcome and were refused unchecked.
    assert codes == {"401": 1, "429": 15}, codes
    assert failure_delays(chatd) == [2000]


def test_many_addresses_get_one_check_at_a_time_for_a_name(chatd_factory):
    chatd = chatd_factory(hash_cost=5, login_fail_delay_ms=2000, login_fail_delay_max_ms=2000)
    chatd.login("bob").close()
    sources = [f"127.0.0.{2 + i}" for i in range(10) for _ in range(2)]
    codes = guess_at_once(guessers(chatd, "bob", sources))
    assert codes == {"401": 1, "429": 19}, codes


def test_the_owner_gets_in_from_a_known_address_during_an_attack(chatd_factory):
    chatd = chatd_factory(login_fail_delay_ms=20000, login_fail_delay_max_ms=20000)
    chatd.login("bob", "owners-pw").close()      # from 127.0.0.1: an address bob uses
    guesser = guessers(chatd, "bob", ["127.0.0.2"])[0]
    guesser.send_line("a guess")
    wait_until(lambda: failure_delays(chatd) == [20000], "the guess to be counted")

    # Elsewhere, even the right password waits for the name's delay...
    stranger = chatd.connect("stranger", source_addr="127.0.0.3")
    stranger.expect_hello()
    stranger.send_line("bob")
    stranger.expect("PASS", "known")
    stranger.send_line("owners-pw")
    stranger.expect("ERR", "429")
    # ... but from where bob logged in before, bob gets in.
    owner = chatd.connect("owner")
    owner.login("bob", "owners-pw")
    assert owner.name == "bob"


def test_guessing_rate_under_attack_with_the_owner_online(chatd_factory):
    """A short run of guessrate.py: 10 addresses x 3 connections for 3 s."""
    chatd = chatd_factory(hash_cost=5, login_fail_delay_ms=1000, login_fail_delay_max_ms=1000)
    owner = chatd.connect("owner", source_addr=OWNER_ADDRESS)
    owner.login("victim", "owners-pw")
    owner.close()
    tally = attack(chatd.port, "victim", "owners-pw", addresses=10, conns=3, seconds=3)
    # The name's delay is a second: about one check a second, whatever the connections.
    assert 1 <= tally.checked <= 4, tally
    assert tally.owner_tries >= 2 and tally.owner_in == tally.owner_tries, \
        (tally, tally.owner_refusals)


def test_losers_of_a_registration_race_are_told_the_name_was_taken(chatd_factory):
    chatd = chatd_factory(hash_cost=5, login_fail_delay_ms=20000, login_fail_delay_max_ms=20000,
                          max_logins_per_address=32)
    chatd.login("other", "other-pw").close()
    racers = []
    for i in range(12):
        r = chatd.connect(f"racer{i}")
        r.expect_hello()
        r.send_line("newbie")
        r.expect("PASS", "new")
        racers.append(r)
    for i, r in enumerate(racers):
        r.send_line(f"password-{i}")
    replies = [r.read(timeout=15) for r in racers]
    winners = [i for i, line in enumerate(replies) if line.tag == "WELCOME"]
    losers = [r for r, line in zip(racers, replies) if line.tag != "WELCOME"]
    assert len(winners) == 1, replies
    for line in replies:
        if line.tag != "WELCOME":
            assert line.tag == "ERR" and line[0] == "409", line
            assert line[1] == "newbie was registered by someone else just now; " \
                              "choose another name", line
    # A loser is asked for a name again: the name is taken now.
    losers[0].send_line("newbie")
    losers[0].expect("PASS", "known")
    # Nothing counted as a wrong password: the address is not held back.
    assert failure_delays(chatd) == []
    again = chatd.connect("again")
    again.login("other", "other-pw")
    assert again.name == "other"
