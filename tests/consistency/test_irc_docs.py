"""
test_irc_docs.py - the IRC gateway's command table (daemon/irc_commands.c,
which drives its dispatch) and capability table (daemon/irc_caps.c, which
drives CAP LS) against docs/IRC.md: its table of commands shows every
command with the table's own summary and no other, its table of
capabilities every capability chatd offers and no other.
"""

import re

from conftest import DOCS


def table(heading):
    """{first cell: second cell} of the first Markdown table whose header is heading."""
    rows, in_table = {}, False
    for line in (DOCS / "IRC.md").read_text().split("\n"):
        if re.fullmatch(heading, line):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        m = re.match(r"\| `([^`]+)` \| (.*) \|$", line) if in_table else None
        if m:
            rows[m.group(1)] = m.group(2)
    assert rows, f"no table {heading!r} in docs/IRC.md"
    return rows


def test_every_command_documented_with_its_summary(irc_cmds):
    rows = table(r"\| command \| what chatd does \|")
    names = {name for name, _min, _summary in irc_cmds}
    assert sorted(names - set(rows)) == [], "commands missing from docs/IRC.md"
    assert sorted(set(rows) - names) == [], "docs/IRC.md documents commands chatd lacks"
    for name, _min, summary in irc_cmds:
        assert rows[name] == summary, f"docs/IRC.md: {name}: {rows[name]!r}, the table says {summary!r}"


def test_every_capability_documented(irc_caps):
    rows = table(r"\| capability \| what it gives \|")
    assert sorted(set(irc_caps) - set(rows)) == [], "capabilities missing from docs/IRC.md"
    assert sorted(set(rows) - set(irc_caps)) == [], "docs/IRC.md documents capabilities chatd lacks"
