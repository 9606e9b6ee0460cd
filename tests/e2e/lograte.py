"""
lograte.py - counting events in chatd's log when some of them were left
out of it: lines anyone can cause (refused connections, failed TLS
handshakes, departures before login...) are logged up to a burst per kind
and window, the rest summed up in one line per window (daemon/lograte.h):

    ... and 4213 more refused connections (over max_clients) in the last 10 s
"""

import re

WINDOW_S = 10   # LOG_RATE_WINDOW_MS
BURST = 10      # LOG_RATE_BURST

SUMMARY = re.compile(r"\.\.\. and (\d+) more (.+) in the last (\d+) s$", re.M)


def summaries(text, what):
    """The counts of the summary lines of kind what, in order."""
    return [int(m.group(1)) for m in SUMMARY.finditer(text) if m.group(2) == what]


def logged(text, needle):
    """Lines containing needle that are not summaries."""
    return [l for l in text.splitlines() if needle in l and not SUMMARY.search(l)]


def events(text, needle, what):
    """How many events of kind what happened: the lines that contain needle,
    and those summed up."""
    return len(logged(text, needle)) + sum(summaries(text, what))
