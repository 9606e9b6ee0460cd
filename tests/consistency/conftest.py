"""
conftest.py - what the consistency tests compare the documentation with:
the tables chatd is built from, read from the built programs (never from a
copy in the test).

  settings   {name: (reloadable, default as written by "chatd -T")}
  chat_cmds  the slash command table (daemon/commands.c): [(name, usage, help)]
  tab_cmds   what chat's Tab offers for "/" (client/complete.c): ["/name"]
  admin_cmds the admin command table (common/admin_proto.c):
             [(words, alias or None, usage, chatctl usage, help)]

CHATD_BIN and PRINT_TABLES_BIN name the programs (ctest sets both); by hand
they default to build/chatd and build/tests/print_tables.  DOCS_DIR and
ETC_DIR point the tests at another copy of docs/ and etc/ (to see a test
fail on a drifted copy).
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
DOCS = Path(os.environ.get("DOCS_DIR", SRC / "docs"))
ETC = Path(os.environ.get("ETC_DIR", SRC / "etc"))
CHATD_BIN = os.environ.get("CHATD_BIN", str(SRC / "build" / "chatd"))
PRINT_TABLES_BIN = os.environ.get("PRINT_TABLES_BIN", str(SRC / "build" / "tests" / "print_tables"))

# "# help (SIGHUP changes it)" then "name = value;", commented out or not.
SETTING_RE = re.compile(r"^# (.*) \((SIGHUP changes it|fixed until restart)\)\n"
                        r"(?:# )?(\w+) = (.*);$", re.M)


def show_config(path):
    """chatd -T on path, with no systemd directories in the environment."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("STATE_DIRECTORY", "LOGS_DIRECTORY", "RUNTIME_DIRECTORY")}
    r = subprocess.run([CHATD_BIN, "-T", "-c", str(path)], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    empty = tmp_path_factory.mktemp("conf") / "empty.conf"
    empty.write_text("")
    found = {m.group(3): (m.group(2) == "SIGHUP changes it", m.group(4))
             for m in SETTING_RE.finditer(show_config(empty))}
    assert len(found) >= 20, found
    return found


def _tables():
    r = subprocess.run([PRINT_TABLES_BIN], capture_output=True, text=True, check=True,
                       timeout=30)
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    return rows


@pytest.fixture(scope="session")
def chat_cmds():
    cmds = [tuple(row[1:]) for row in _tables() if row[0] == "chat"]
    assert len(cmds) >= 5, cmds
    return cmds


@pytest.fixture(scope="session")
def tab_cmds():
    return [row[1] for row in _tables() if row[0] == "tab"]


@pytest.fixture(scope="session")
def admin_cmds():
    cmds = [(row[1], None if row[2] == "-" else row[2], row[3], row[4], row[5])
            for row in _tables() if row[0] == "admin"]
    assert len(cmds) >= 10, cmds
    return cmds


@pytest.fixture(scope="session")
def irc_cmds():
    cmds = [(row[1], int(row[2]), row[3]) for row in _tables() if row[0] == "irc"]
    assert len(cmds) >= 10, cmds
    return cmds


@pytest.fixture(scope="session")
def irc_caps():
    caps = [row[1] for row in _tables() if row[0] == "ircap"]
    assert len(caps) >= 5, caps
    return caps


def roff_text(text):
    """Roff source as read: fonts, escapes and macro names gone."""
    text = re.sub(r"\\f[BIRP]", "", text)
    text = re.sub(r'^\.(?:B|I|BI|BR|IR|RB|RI|IB)\s+', "", text, flags=re.M)
    return text.replace("\\-", "-").replace("\\(dq", '"').replace("\\(em", "-").replace("\\e", "\\")


def man_sections(page):
    """{.SH title: its source text (subsections included)}."""
    sections, title = {}, None
    for line in (DOCS / page).read_text().split("\n"):
        if line.startswith(".SH "):
            title = line[4:].strip().strip('"')
            sections[title] = ""
        elif title is not None:
            sections[title] += line + "\n"
    return sections
