"""
test_admin_command_docs.py - the admin command table (common/admin_proto.c,
which drives chatd's dispatch, "help" and "chatctl --help") against
docs/ADMIN.md's table of commands and the COMMANDS of docs/chatctl.8: the
same commands, the same usages, the same help texts and short forms.
"""

import re

from conftest import DOCS, man_sections, roff_text


def admin_md_rows():
    """{usage: (short form or None, text)} from ADMIN.md's table of commands."""
    rows = {}
    for line in (DOCS / "ADMIN.md").read_text().split("\n"):
        m = re.fullmatch(r"\| `([^`]+)` \| *(?:`([\w-]+)`)? *\| (.+) \|", line)
        if m:
            assert m.group(1) not in rows, f"ADMIN.md lists {m.group(1)!r} twice"
            rows[m.group(1)] = (m.group(2), m.group(3))
    assert rows, "no table of commands in ADMIN.md"
    return rows


def plain(roff_line):
    """A .TP head as read: "log show [N]" from '.BR "log show " [ \\fIN\\fP ]'."""
    text = roff_text(roff_line).replace('"', " ")
    text = " ".join(text.split())
    return text.replace("[ ", "[").replace(" ]", "]")


def man_commands():
    """{usage as chatctl takes it: entry text} from the COMMANDS of chatctl(8)."""
    entries, head = {}, None
    lines = man_sections("chatctl.8")["COMMANDS"].split("\n")
    for i, line in enumerate(lines):
        if line == ".TP":
            head = plain(lines[i + 1])
            assert head not in entries, f"chatctl(8) describes {head!r} twice"
            entries[head] = ""
        elif head is not None and lines[i - 1] != ".TP":
            entries[head] += line + "\n"
    return entries


def test_admin_md_lists_the_table(admin_cmds):
    table = {usage: (alias, text) for _w, alias, usage, _ctl, text in admin_cmds}
    assert admin_md_rows() == table


def test_admin_md_lists_in_table_order(admin_cmds):
    assert list(admin_md_rows()) == [usage for _w, _a, usage, _ctl, _t in admin_cmds]


def test_chatctl_page_describes_every_command_and_no_other(admin_cmds):
    described = set(man_commands())
    table = {ctl_usage for _w, _a, _u, ctl_usage, _t in admin_cmds}
    assert sorted(table - described) == [], "commands missing from chatctl(8), COMMANDS"
    assert sorted(described - table) == [], "chatctl(8) describes commands chatctl lacks"


def test_chatctl_page_names_the_short_forms(admin_cmds):
    entries = man_commands()
    for _words, alias, _usage, ctl_usage, _text in admin_cmds:
        shorts = re.findall(r"^Short form:\n\.BR ([\w-]+) \.$", entries[ctl_usage], re.M)
        assert shorts == ([alias] if alias else []), (
            f"chatctl(8): {ctl_usage!r} should name the short form {alias}, names {shorts}")
