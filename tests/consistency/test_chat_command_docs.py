"""
test_chat_command_docs.py - the slash command table (daemon/commands.c,
which drives chatd's dispatch and /help) against docs/PROTOCOL.md's command
table and the commands docs/chat.1 names in TERMINAL MODE: no command left
out, none documented that chatd does not have, every argument of a usage
described; and chat's Tab completion (client/complete.c) offers every
command of the table and no other.
"""

import re

from conftest import DOCS, man_sections, roff_text

# An argument placeholder in a usage: NAME, TEXT, ROOM, ID...
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]+\b")


def protocol_rows():
    """{command name: [the first cells of its rows]} from PROTOCOL.md's table of commands."""
    rows, in_table = {}, False
    for line in (DOCS / "PROTOCOL.md").read_text().split("\n"):
        if re.fullmatch(r"\| *command *\| *reply *\|", line):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        m = re.match(r"\| `/(\w+)([^`]*)` \|", line) if in_table else None
        if m:
            rows.setdefault(m.group(1), []).append("/" + m.group(1) + m.group(2))
    assert rows, "no '| command | reply |' table in PROTOCOL.md"
    return rows


def terminal_mode_text():
    return roff_text(man_sections("chat.1")["TERMINAL MODE"])


def test_protocol_lists_every_command_and_no_other(chat_cmds):
    documented = set(protocol_rows())
    table = {name for name, _usage, _help in chat_cmds}
    assert sorted(table - documented) == [], "commands missing from PROTOCOL.md's table"
    assert sorted(documented - table) == [], "PROTOCOL.md documents commands chatd lacks"


def test_protocol_describes_every_argument(chat_cmds):
    rows = protocol_rows()
    for name, usage, _help in chat_cmds:
        if name not in rows:
            continue  # test_protocol_lists_every_command_and_no_other says so
        described = " ".join(rows[name])
        for arg in PLACEHOLDER.findall(usage):
            assert re.search(rf"\b{arg}\b", described), (
                f"PROTOCOL.md: /{name} takes {arg} (usage {usage!r}), its rows {rows[name]} "
                "do not show it")


def test_chat_page_names_every_command(chat_cmds):
    text = terminal_mode_text()
    for name, _usage, _help in chat_cmds:
        assert re.search(rf"(?<![\w/])/{name}\b", text), f"chat(1), TERMINAL MODE: no /{name}"


def test_chat_page_names_no_other_server_command(chat_cmds):
    table = {name for name, _usage, _help in chat_cmds}
    named = set(re.findall(r"(?<![\w/])/([a-z]+)\b(?!/)", terminal_mode_text()))
    assert sorted(named - table) == [], "chat(1) names commands chatd lacks"


def test_tab_completes_every_command_and_no_other(chat_cmds, tab_cmds):
    table = ["/" + name for name, _usage, _help in chat_cmds]
    assert sorted(set(table) - set(tab_cmds)) == [], "commands chat's Tab does not complete"
    assert sorted(set(tab_cmds) - set(table)) == [], "chat's Tab completes commands chatd lacks"
