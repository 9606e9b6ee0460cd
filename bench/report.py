#!/usr/bin/env python3
"""report.py - bench/RESULTS.md from chatbench's JSON lines (called by bench/run).

usage: report.py RESULTS.jsonl RESULTS.md MACHINE-NOTE REPS [BASELINE-NAME]
       report.py --summary < one-json-line     (a one-line summary for the log)
Each line is one run, labelled "server|case".  Every figure is the median of
the repetitions, with the spread (lowest..highest) beside it.  The profile
notes in bench/findings.md (where chatd's time goes, which targets it
misses and why) are appended as they are.
"""
import json
import os
import statistics
import sys
from collections import defaultdict

SERVERS = ["chatd", "chatd-irc", "base", "ngircd", "inspircd", "ref"]
TITLES = {"chatd": "chatd", "chatd-irc": "chatd, IRC port", "base": "chatd baseline",
          "ngircd": "ngIRCd", "inspircd": "InspIRCd", "ref": "bare epoll fan-out"}
PEERS = ["ngircd", "inspircd"]


def load(path):
    runs = defaultdict(list)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                d = json.loads(line)
                runs[d["label"]].append(d)
    return runs


def get(d, path):
    for key in path.split("."):
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def values(runs, label, path):
    return [v for v in (get(d, path) for d in runs.get(label, [])) if v is not None]


def median(runs, label, path):
    v = values(runs, label, path)
    return statistics.median(v) if v else None


def fmt(runs, label, path, scale=1.0, digits=1, unit=""):
    v = values(runs, label, path)
    if not v:
        return "–"
    m = statistics.median(v) * scale
    text = f"{m:.{digits}f}{unit}"
    if len(v) > 1:
        text += f" ({min(v) * scale:.{digits}f}–{max(v) * scale:.{digits}f})"
    return text


def ratio(runs, case, path, lower_is_better=False, server="chatd"):
    mine = median(runs, f"{server}|{case}", path)
    peers = [m for m in (median(runs, f"{p}|{case}", path) for p in PEERS) if m]
    if mine is None or not peers or mine == 0:
        return "–"
    best = min(peers) if lower_is_better else max(peers)
    return f"{(best / mine if lower_is_better else mine / best):.2f}×"


def ratio_to(runs, label, other, path):
    mine, theirs = median(runs, label, path), median(runs, other, path)
    if not mine or not theirs:
        return "–"
    return f"{mine / theirs:.3f}"


def lossline(runs, label):
    lost = values(runs, label, "lost")
    errs = [sum(d.get("errors", {}).values()) for d in runs.get(label, [])]
    if not lost:
        return "–"
    return f"{max(lost)} / {max(errs)}"


def summary(d):
    lat = d.get("latency_ms", {})
    joined = ""
    if d.get("join"):
        j = d["join"]
        joined = (f"{j['memberships']} memberships in {j['join_s']:.2f} s "
                  f"({get(d, 'server.rss_per_membership_kib')} KiB RSS each), ")
    if d.get("send_cpu"):
        joined += f"server CPU {d['send_cpu']['server_cpu_us_per_delivery']} µs per delivery, "
    if d.get("tls"):
        t = d["tls"]
        joined += (f"TLS: {t['handshakes']} handshakes at {t['handshakes_per_s']}/s "
                   f"(p50 {t['handshake_ms']['p50']} ms, server CPU "
                   f"{t['server_cpu_us_per_handshake']} µs each"
                   f"{'' if t['handshake_only'] else ' with the login'}), ")
    if d.get("tls_resume"):
        r = d["tls_resume"]
        joined += (f"resumed: {r['tickets']} tickets ({r['no_ticket']} clients got none), "
                   f"{r['reused']} of {r['handshakes']} resumed at {r['handshakes_per_s']}/s "
                   f"(server CPU {r['server_cpu_us_per_handshake']} µs each), ")
    return (f"logged in {d['logged_in']}/{d['clients']} in {d['login_s']:.2f} s, {joined}"
            f"{d['deliveries_per_s'] / 1e6:.2f} M deliveries/s, p50 {lat.get('p50')} ms, "
            f"p99 {lat.get('p99')} ms, lost {d['lost']}, errors {sum(d['errors'].values())}")


def has(runs, prefix):
    return any(k.split("|", 1)[1].startswith(prefix) for k in runs)


def rooms_layouts(runs, prefix):
    """The (N, R[, J]) of the labels "server|PREFIX-N-R[-J]" present."""
    found = set()
    for k in runs:
        case = k.split("|", 1)[1]
        if case.startswith(prefix + "-"):
            found.add(tuple(int(x) for x in case[len(prefix) + 1:].split("-")))
    return sorted(found)


def rooms_sections(runs, servers, w):
    for n, r in rooms_layouts(runs, "f-max"):
        fm, fr = f"f-max-{n}-{r}", f"f-rate-{n}-{r}"
        window = int(median(runs, f"chatd|{fm}", "window") or 32)
        rate = int(median(runs, f"chatd|{fr}", "rate") or 0) or 1
        w(f"## (f) rooms: {n:,} clients in {r:,} rooms of {n // r:,}")
        w("")
        w(f"Everyone logs in, then each client joins its room (client i: room r<i mod {r}>; chatd "
          f"`/join`, IRC `JOIN #r…`, the bare reference `/join`), then: **max**, one sender per "
          f"room ({r:,} senders) as fast as possible, at most {window} messages in flight each; "
          f"**rate**, every client sends, one message every {n / rate:g} s ({rate:,} messages/s, "
          f"{rate * (n // r - 1):,} deliveries/s offered). Deliveries are counted per room: each "
          "receiver checks that every message came, in order, from a member of its room.")
        w("")
        w("| server | login s | max: deliveries/s | max: p50 ms | max: p99 ms | max: server CPU µs per delivery | "
          "rate: deliveries/s | rate: p50 ms | rate: p99 ms | rate: p99.9 ms | rate: server CPU µs per delivery | "
          "lost / errors |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for s in servers:
            if f"{s}|{fm}" not in runs and f"{s}|{fr}" not in runs:
                continue
            w(f"| {TITLES[s]} | {fmt(runs, f'{s}|{fm}', 'login_s', digits=1)} | "
              f"{fmt(runs, f'{s}|{fm}', 'deliveries_per_s', 1e-6, 2, ' M')} | "
              f"{fmt(runs, f'{s}|{fm}', 'latency_ms.p50')} | {fmt(runs, f'{s}|{fm}', 'latency_ms.p99')} | "
              f"{fmt(runs, f'{s}|{fm}', 'send_cpu.server_cpu_us_per_delivery', digits=2)} | "
              f"{fmt(runs, f'{s}|{fr}', 'deliveries_per_s', 1e-3, 0, ' k')} | "
              f"{fmt(runs, f'{s}|{fr}', 'latency_ms.p50', digits=2)} | "
              f"{fmt(runs, f'{s}|{fr}', 'latency_ms.p99', digits=2)} | "
              f"{fmt(runs, f'{s}|{fr}', 'latency_ms.p999', digits=2)} | "
              f"{fmt(runs, f'{s}|{fr}', 'send_cpu.server_cpu_us_per_delivery', digits=2)} | "
              f"{lossline(runs, f'{s}|{fm}')}, {lossline(runs, f'{s}|{fr}')} |")
        w(f"| chatd ÷ best peer | | {ratio(runs, fm, 'deliveries_per_s')} | | "
          f"{ratio(runs, fm, 'latency_ms.p99', True)} better | "
          f"{ratio(runs, fm, 'send_cpu.server_cpu_us_per_delivery', True)} better | | | "
          f"{ratio(runs, fr, 'latency_ms.p99', True)} better | | "
          f"{ratio(runs, fr, 'send_cpu.server_cpu_us_per_delivery', True)} better | |")
        if f"chatd-irc|{fm}" in runs or f"chatd-irc|{fr}" in runs:
            irc = "chatd-irc"
            w(f"| chatd, IRC port ÷ best peer | | {ratio(runs, fm, 'deliveries_per_s', server=irc)} | | "
              f"{ratio(runs, fm, 'latency_ms.p99', True, irc)} better | "
              f"{ratio(runs, fm, 'send_cpu.server_cpu_us_per_delivery', True, irc)} better | | | "
              f"{ratio(runs, fr, 'latency_ms.p99', True, irc)} better | | "
              f"{ratio(runs, fr, 'send_cpu.server_cpu_us_per_delivery', True, irc)} better | |")
            w(f"| chatd, IRC port ÷ chatd | | {ratio_to(runs, f'{irc}|{fm}', f'chatd|{fm}', 'deliveries_per_s')} | | | | "
              f"{ratio_to(runs, f'{irc}|{fr}', f'chatd|{fr}', 'deliveries_per_s')} | | | | | |")
        w("")
    for n, r, j in rooms_layouts(runs, "g-join"):
        w(f"## (g) joining: {n:,} clients each join {j} of {r:,} rooms")
        w("")
        w(f"Everyone logs in (and nothing else), the server's memory is read, then every client "
          f"joins its {j} rooms (client i: r<(i×{j}+k) mod {r}>, k < {j}; {n * j // r:,} members a "
          "room), 500 clients' joins in progress at once (50 for ngIRCd), each client's joins sent "
          "at once; the time is from the first join sent to the last one answered (chatd "
          "`OK - joined`, IRC the end of the name list, 366). Each join also tells the room's "
          "members (chatd `JOIN`, below `room_notice_limit`; IRC `JOIN`). The memory per membership "
          "is the server's RSS after the joins (and 1 s of rest) less before, over the memberships.")
        w("")
        w("| server | memberships | join s | joins/s | server CPU µs per join | RSS per membership KiB | cgroup per membership KiB | lost / errors |")
        w("|---|---|---|---|---|---|---|---|")
        lab = f"g-join-{n}-{r}-{j}"
        for s in servers:
            if f"{s}|{lab}" not in runs:
                continue
            m, t = median(runs, f"{s}|{lab}", "join.memberships"), median(runs, f"{s}|{lab}", "join.join_s")
            w(f"| {TITLES[s]} | {fmt(runs, f'{s}|{lab}', 'join.memberships', digits=0)} | "
              f"{fmt(runs, f'{s}|{lab}', 'join.join_s', digits=2)} | "
              f"{(m / t / 1e3 if m and t else 0):.1f} k | "
              f"{fmt(runs, f'{s}|{lab}', 'join.server_cpu_us_per_join', digits=0)} | "
              f"{fmt(runs, f'{s}|{lab}', 'server.rss_per_membership_kib', digits=2)} | "
              f"{fmt(runs, f'{s}|{lab}', 'server.cgroup_per_membership_kib', digits=2)} | "
              f"{lossline(runs, f'{s}|{lab}')} |")
        w("")


def tls_cost(runs, s, n):
    """Server CPU µs per delivery over TLS less in clear, (t) against (b)."""
    tls = median(runs, f"{s}|t-{n}", "send_cpu.server_cpu_us_per_delivery")
    plain = median(runs, f"{s}|b-{n}", "send_cpu.server_cpu_us_per_delivery")
    if tls is None or plain is None or tls < 0 or plain < 0:
        return "–"
    return f"{tls - plain:+.3f}"


def resume_cell(runs, s):
    """'tickets of clients, handshakes/s' of the --resume run (none without tickets)."""
    lab = f"{s}|t-resume"
    tickets, clients = median(runs, lab, "tls_resume.tickets"), median(runs, lab, "clients")
    if tickets is None:
        return "–"
    if not tickets:
        return f"no ticket (0 of {clients:.0f})"
    return (f"{tickets:.0f} of {clients:.0f}, "
            f"{fmt(runs, lab, 'tls_resume.handshakes_per_s', digits=0)} "
            f"({fmt(runs, lab, 'tls_resume.reused', digits=0)} resumed)")


def tls_section(runs, servers, w):
    hs = sorted({k.split("|", 1)[1] for k in runs if "|t-handshakes-" in k})
    w("## (t) TLS: fan-out over each server's TLS port, and handshakes")
    w("")
    w("(b) again over TLS (chatbench `--tls`: TLS 1.3 where the server offers it, the server's "
      "self-signed ECDSA P-256 certificate made by bench/run, not verified), and the handshakes: "
      "clients that each close once their handshake is done (`--handshake-only`, "
      f"{hs[0].rsplit('-', 1)[1] if hs else '?'} clients, 50 at a time, ngIRCd 10: its listen "
      "backlog); then resumption (`--resume`): each client waits up to 1 s for the server's "
      "session ticket, closes, and a second round resumes every ticket (the peers send none: "
      "they get 50 clients). The cost of encryption "
      "is the server's CPU per delivery over TLS less in clear, from (b) of the same run.")
    w("")
    w("| server | N=100: deliveries/s | N=100: p99 ms | N=1,000: deliveries/s | N=1,000: p99 ms | "
      "CPU µs per delivery N=100 / 1,000 | TLS cost µs per delivery N=100 / 1,000 | handshakes/s | "
      "server CPU µs per handshake | handshake p50 / p99 ms | resumed: tickets, handshakes/s | "
      "resumed: server CPU µs per handshake | lost / errors |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in servers:
        if not any(k.startswith(f"{s}|t-") for k in runs):
            continue
        h = f"{s}|{hs[0]}" if hs else ""
        w(f"| {TITLES[s]} | {fmt(runs, f'{s}|t-100', 'deliveries_per_s', 1e-6, 2, ' M')} | "
          f"{fmt(runs, f'{s}|t-100', 'latency_ms.p99')} | "
          f"{fmt(runs, f'{s}|t-1000', 'deliveries_per_s', 1e-6, 2, ' M')} | "
          f"{fmt(runs, f'{s}|t-1000', 'latency_ms.p99')} | "
          f"{fmt(runs, f'{s}|t-100', 'send_cpu.server_cpu_us_per_delivery', digits=3)} / "
          f"{fmt(runs, f'{s}|t-1000', 'send_cpu.server_cpu_us_per_delivery', digits=3)} | "
          f"{tls_cost(runs, s, 100)} / {tls_cost(runs, s, 1000)} | "
          f"{fmt(runs, h, 'tls.handshakes_per_s', digits=0)} | "
          f"{fmt(runs, h, 'tls.server_cpu_us_per_handshake', digits=0)} | "
          f"{fmt(runs, h, 'tls.handshake_ms.p50', digits=2)} / {fmt(runs, h, 'tls.handshake_ms.p99', digits=2)} | "
          f"{resume_cell(runs, s)} | "
          f"{fmt(runs, f'{s}|t-resume', 'tls_resume.server_cpu_us_per_handshake', digits=0)} | "
          f"{lossline(runs, f'{s}|t-100')}, {lossline(runs, f'{s}|t-1000')} |")
    if any(p in servers for p in PEERS):
        w(f"| chatd ÷ best peer | {ratio(runs, 't-100', 'deliveries_per_s')} | "
          f"{ratio(runs, 't-100', 'latency_ms.p99', True)} better | "
          f"{ratio(runs, 't-1000', 'deliveries_per_s')} | {ratio(runs, 't-1000', 'latency_ms.p99', True)} better | "
          f"{ratio(runs, 't-1000', 'send_cpu.server_cpu_us_per_delivery', True)} better (N=1,000) | | "
          f"{ratio(runs, hs[0], 'tls.handshakes_per_s') if hs else '–'} | "
          f"{ratio(runs, hs[0], 'tls.server_cpu_us_per_handshake', True) if hs else '–'} better | | | | |")
    w("")


def main():
    if sys.argv[1] == "--summary":
        print(summary(json.loads(sys.stdin.readline())))
        return
    runs = load(sys.argv[1])
    if len(sys.argv) > 5:
        TITLES["base"] = f"chatd {sys.argv[5]} (baseline)"
    out = []
    w = out.append
    w("# Benchmark results")
    w("")
    w(f"Written by `bench/run` (see [README.md](README.md) for the method). Machine: {sys.argv[3]}. "
      f"Each figure is the median of {sys.argv[4]} run(s), with the lowest and highest in "
      f"parentheses. Raw chatbench output: [{os.path.basename(sys.argv[1])}]({os.path.basename(sys.argv[1])}).")
    w("")
    servers = [s for s in SERVERS if any(k.startswith(s + "|") for k in runs)]

    if has(runs, "b-"):
        w("## (b) fan-out, 10 senders as fast as possible")
        w("")
        w("| server | N=100: deliveries/s | N=100: p99 ms | N=1,000: deliveries/s | N=1,000: p99 ms | lost / errors |")
        w("|---|---|---|---|---|---|")
        for s in servers:
            w(f"| {TITLES[s]} | {fmt(runs, f'{s}|b-100', 'deliveries_per_s', 1e-6, 2, ' M')} | "
              f"{fmt(runs, f'{s}|b-100', 'latency_ms.p99')} | "
              f"{fmt(runs, f'{s}|b-1000', 'deliveries_per_s', 1e-6, 2, ' M')} | "
              f"{fmt(runs, f'{s}|b-1000', 'latency_ms.p99')} | "
              f"{lossline(runs, f'{s}|b-100')}, {lossline(runs, f'{s}|b-1000')} |")
        if any(p in servers for p in PEERS):
            w(f"| chatd ÷ best peer | {ratio(runs, 'b-100', 'deliveries_per_s')} | "
              f"{ratio(runs, 'b-100', 'latency_ms.p99', True)} better | "
              f"{ratio(runs, 'b-1000', 'deliveries_per_s')} | {ratio(runs, 'b-1000', 'latency_ms.p99', True)} better | |")
        if "chatd-irc" in servers and any(p in servers for p in PEERS):
            w(f"| chatd, IRC port ÷ best peer | {ratio(runs, 'b-100', 'deliveries_per_s', server='chatd-irc')} | "
              f"{ratio(runs, 'b-100', 'latency_ms.p99', True, 'chatd-irc')} better | "
              f"{ratio(runs, 'b-1000', 'deliveries_per_s', server='chatd-irc')} | "
              f"{ratio(runs, 'b-1000', 'latency_ms.p99', True, 'chatd-irc')} better | |")
        if "chatd-irc" in servers and "chatd" in servers:
            w(f"| chatd, IRC port ÷ chatd | {ratio_to(runs, 'chatd-irc|b-100', 'chatd|b-100', 'deliveries_per_s')} | | "
              f"{ratio_to(runs, 'chatd-irc|b-1000', 'chatd|b-1000', 'deliveries_per_s')} | | |")
        for s in ("chatd", "chatd-irc", "base"):
            if f"{s}|b-100" in runs and "ref|b-100" in runs:
                w(f"| {TITLES[s]} ÷ bare reference | {ratio_to(runs, f'{s}|b-100', 'ref|b-100', 'deliveries_per_s')} | | "
                  f"{ratio_to(runs, f'{s}|b-1000', 'ref|b-1000', 'deliveries_per_s')} | | |")
        w("")
        if any(get(d, "send_cpu") for k, v in runs.items() if "|b-" in k for d in v):
            w("Server CPU time per delivery, µs (what the server spent while the messages were sent "
              "and drained, over the deliveries: less sensitive to a busy machine than the rate):")
            w("")
            w("| server | N=100 | N=1,000 |")
            w("|---|---|---|")
            for s in servers:
                w(f"| {TITLES[s]} | {fmt(runs, f'{s}|b-100', 'send_cpu.server_cpu_us_per_delivery', digits=3)} | "
                  f"{fmt(runs, f'{s}|b-1000', 'send_cpu.server_cpu_us_per_delivery', digits=3)} |")
            w("")
    rooms_sections(runs, servers, w)
    if has(runs, "t-"):
        tls_section(runs, servers, w)

    if has(runs, "c-"):
        w("## (c) latency, N=1,000, 10 senders, 200 messages/s (200,000 deliveries/s)")
        w("")
        w("| server | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | deliveries/s | lost / errors |")
        w("|---|---|---|---|---|---|---|---|")
        for s in servers:
            lab = f"{s}|c-1000"
            w(f"| {TITLES[s]} | {fmt(runs, lab, 'latency_ms.p50', digits=2)} | {fmt(runs, lab, 'latency_ms.p90', digits=2)} | "
              f"{fmt(runs, lab, 'latency_ms.p99', digits=2)} | {fmt(runs, lab, 'latency_ms.p999', digits=2)} | "
              f"{fmt(runs, lab, 'latency_ms.max', digits=2)} | {fmt(runs, lab, 'deliveries_per_s', 1e-3, 0, ' k')} | "
              f"{lossline(runs, lab)} |")
        w("")
    if has(runs, "a-"):
        w("## (a) idle scale: N clients logged in to one room")
        w("")
        w("With the bench settings (bench/conf/chatd.conf), not the shipped ones: `hash_cost` 1, every user "
          "registered before the run (no registration, no re-hash), clients from 250 source addresses. "
          "Logins at the shipped settings are in (e).")
        w("")
        w("| server | N | logged in | login s | RSS per client KiB | cgroup per client KiB | threads | stack RSS MiB |")
        w("|---|---|---|---|---|---|---|---|")
        for s in servers:
            for n in (1000, 5000, 10000):
                lab = f"{s}|a-{n}"
                if lab not in runs:
                    continue
                w(f"| {TITLES[s]} | {n:,} | {fmt(runs, lab, 'logged_in', digits=0)} | {fmt(runs, lab, 'login_s', digits=2)} | "
                  f"{fmt(runs, lab, 'server.rss_per_client_kib')} | {fmt(runs, lab, 'server.cgroup_per_client_kib')} | "
                  f"{fmt(runs, lab, 'server.loaded.threads', digits=0)} | "
                  f"{fmt(runs, lab, 'server.loaded.stack_rss_kib', 1 / 1024, 1)} |")
        w("")
        w("RSS counts user-space pages only. The cgroup column (when bench/run could give the servers a "
          "memory cgroup of their own) adds what the kernel spends for the server: socket buffers, and for "
          "a thread per client its kernel stack (16 KiB on x86-64) and task struct; '-1' means no cgroup "
          "was available, and then at least 16 KiB per thread must be added to chatd's RSS figure.")
        w("")
    if any(k.startswith("chatd|d-") for k in runs) or "chatd|a-10000" in runs:
        w("## (d) chatd only")
        w("")
        w("| case | figure |")
        w("|---|---|")
        w(f"| start-up with 1,000,000 history messages | {fmt(runs, 'chatd|d-startup-1m', 'startup_ms', digits=0, unit=' ms')} |")
        w(f"| shutdown with 10,000 clients online | {fmt(runs, 'chatd|a-10000', 'server.shutdown_ms', digits=0, unit=' ms')} |")
        w(f"| one non-reading client among 1,000, others' p99 (same as (c) otherwise) | "
          f"{fmt(runs, 'chatd|d-stalled-1000', 'latency_ms.p99', digits=2, unit=' ms')} against "
          f"{fmt(runs, 'chatd|c-1000', 'latency_ms.p99', digits=2, unit=' ms')} |")
        w(f"| fan-out N=1,000: durable acknowledgement (group commit) | "
          f"{fmt(runs, 'chatd|b-1000', 'deliveries_per_s', 1e-6, 2, ' M/s')} |")
        w(f"| fan-out N=1,000: relaxed sync (history_sync_ms = 100) | "
          f"{fmt(runs, 'chatd|d-relaxed-1000', 'deliveries_per_s', 1e-6, 2, ' M/s')} |")
        w("")
    storms = sorted({int(k.split("-")[2]) for k in runs if k.startswith("chatd|e-storm-")})
    if storms:
        w("## (e) chatd only: logins at the shipped settings, and the login storm")
        w("")
        w("`hash_cost` as shipped (etc/chatd.conf: 5), every user registered at its first login (as a "
          "new user is), clients from 250 source addresses, at most 500 logins in progress at once. "
          "Then the storm: with everyone online, a `systemctl restart`-style restart (SIGTERM, wait "
          "for the exit, start again on the same port); every client reconnects as `chat` does (first "
          "try after 1 s, doubling up to 30 s, each wait a random 50–150 % of that), all at once, "
          "either with the password only or presenting the resume token it asked for after its "
          "password login (`chatbench --tokens`, as `chat` does). \"Back\" is the time from the "
          "SIGTERM until the last client is logged in again (chatd's own shutdown, about 0.5 s, "
          "included). A client that hears nothing for 30 s during a login gives up and tries again, as `chat` "
          "does (its `--timeout`); chatd drops a login whose client went away without hashing for it, "
          "and serves waiting logins in arrival order (the hash gate). Without tokens, at 10,000 clients "
          "many waited longer than that for their hash, gave up and came back, and every one of them "
          "needed a hash. With tokens nobody waits for a hash.")
        w("")
        w("| clients online | first login of all (registration), s | resume tokens | back after the restart, s | back | by token / by password | logins given up (30 s silent) |")
        w("|---|---|---|---|---|---|---|")
        for n in storms:
            for tokens in ("no", "yes"):
                lab = f"chatd|e-storm-{n}-tokens-{tokens}"
                if lab not in runs:
                    continue
                back, online = median(runs, lab, "storm.back"), median(runs, lab, "storm.online")
                took = (fmt(runs, lab, "storm.back_s", digits=1) if back == online else
                        f"not all within {median(runs, lab, 'storm.timeout_s'):.0f} s")
                w(f"| {n:,} | {fmt(runs, lab, 'login_s', digits=1)} | {tokens} | {took} | "
                  f"{fmt(runs, lab, 'storm.back', digits=0)} of {fmt(runs, lab, 'storm.online', digits=0)} | "
                  f"{fmt(runs, lab, 'storm.resumed', digits=0)} / {fmt(runs, lab, 'storm.password', digits=0)} | "
                  f"{fmt(runs, lab, 'storm.silent_30s', digits=0)} |")
        w("")
    findings = os.path.join(os.path.dirname(os.path.abspath(__file__)), "findings.md")
    # The notes go with the main results, not with a separate run's (--out).
    if os.path.exists(findings) and os.path.basename(sys.argv[2]) == "RESULTS.md":
        with open(findings) as f:
            out.append(f.read().rstrip("\n"))
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
