"""
readmetree.py - README.md's commands run as a newcomer types them, for the
test_readme*.py files.

- readme_section(TITLE), code_blocks(TEXT): README.md's own text, so that a
  test fails when README.md and chatd drift apart; first_example_login():
  the account README.md's first example registers.
- The `tree` fixture: a directory laid out as the source tree is where
  README.md's commands run (etc/chatd.conf, the one shipped; build/chatd,
  build/ctl/chatctl, build/client/chat, the binaries under test), in a
  network namespace of the test's own (faults.private_network, needs root),
  so that README.md's own ports (7777, 7778, 6667) are free whatever else
  runs on the machine: no port is changed.  Its loopback device also holds
  documentation addresses (192.0.2.1, 2001:db8::1), as a machine on a
  network has addresses besides loopback's.
- Tree.scripts_run(ARGS): chatd as `scripts/run ARGS` starts it, the command
  scripts/run ends with (read from scripts/run itself) plus ARGS, run from
  the tree's top; scripts/run adds only scripts/deps and the build.
- Tree.sh(LINE): one command line of README.md, run by bash from the tree's
  top, with `chat` and `chatctl` on PATH as README.md says (build/client,
  build/ctl).

Every chatd started here is stopped at teardown, inside the namespace.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import faults
from chatclient import CHAT_BIN
from conftest import CHATCTL_BIN, CHATD_BIN, Chatd

SRC = Path(__file__).resolve().parent.parent.parent
README = SRC / "README.md"


def readme_text():
    return README.read_text(encoding="utf-8")


def readme_section(title):
    """The text of README.md's "## TITLE" section."""
    text = readme_text()
    assert f"\n## {title}\n" in text, f"README.md has no section {title!r}"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text):
    """The fenced code blocks of text, each a list of its lines."""
    return [block.rstrip("\n").split("\n")
            for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)]


def first_example_login():
    """(name, password) that README.md's first example (its "$ nc" block)
    types after HELLO: the account it registers, which the sections after
    it find in ./chatd-data when a newcomer goes on from there."""
    for block in code_blocks(readme_text()):
        if block[0].startswith("$ nc "):
            typed = [line for line in block[1:] if not re.match(r"[A-Z]+( |\Z)", line)]
            return typed[0], typed[1]
    pytest.fail("README.md shows no nc transcript")


def scripts_run_argv():
    """The chatd command line scripts/run ends with (its exec line), without "$@"."""
    text = (SRC / "scripts" / "run").read_text()
    m = re.search(r"^exec (.*)$", text, re.M)
    assert m, "scripts/run does not end by exec'ing chatd"
    argv = shlex.split(m.group(1))
    assert argv[-1] == "$@" and argv[0] == "build/chatd", argv
    return argv[:-1]


class TreeChatd(Chatd):
    """A chatd started with a command line of README.md's, from the tree's top,
    on the configuration file as the commands left it (nothing added)."""

    def __init__(self, tree, argv, config):
        state = tree / "chatd-data"
        super().__init__(tree, {"state_dir": str(state),
                                "admin_socket": str(state / "admin.sock")})
        self.config_path = tree / config
        self.argv = argv

    def write_config(self, text=None):
        pass

    def command(self):
        return self.argv

    def start(self, timeout=30.0):
        return super().start(timeout)

    def _first_line(self, timeout):
        self.first_line = super()._first_line(timeout)
        return self.first_line


class Tree:
    def __init__(self, top):
        self.top = Path(top)
        (self.top / "etc").mkdir(parents=True)
        (self.top / "etc" / "chatd.conf").write_text((SRC / "etc" / "chatd.conf").read_text())
        for rel, binary in (("build/chatd", CHATD_BIN), ("build/ctl/chatctl", CHATCTL_BIN),
                            ("build/client/chat", CHAT_BIN)):
            (self.top / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.top / rel).symlink_to(binary)
        self.daemons = []

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if k != "CHAT_PASSWORD"}
        env["PATH"] = f"{self.top}/build/client:{self.top}/build/ctl:{env.get('PATH', '')}"
        env["HOME"] = str(self.top / "home")
        (self.top / "home").mkdir(exist_ok=True)
        env["LANG"] = "C.UTF-8"
        env.pop("LC_ALL", None)
        env.update(extra)
        return env

    def scripts_run(self, *args):
        """chatd as `scripts/run ARGS` starts it; waits for its listening line."""
        argv = scripts_run_argv() + list(args)
        config = argv[len(argv) - 1 - argv[::-1].index("-c") + 1]   # the last -c wins
        daemon = TreeChatd(self.top, argv, config)
        self.daemons.append(daemon)
        return daemon.start()

    def sh(self, line, input=None, timeout=60, **env):
        """One shell line of README.md, as typed, from the tree's top."""
        return subprocess.run(["bash", "-c", line], cwd=self.top, env=self.env(**env),
                              input=input, capture_output=True, text=True, timeout=timeout)

    def cleanup(self):
        problems = []
        for daemon in self.daemons:
            problems += daemon.cleanup()
        return problems


@pytest.fixture
def tree(tmp_path):
    """A source tree of the test's own, in a network of its own (README's ports free)."""
    with faults.private_network():
        # An address besides loopback's, as a machine on a network has: name
        # lookups with AI_ADDRCONFIG (WeeChat's) find no IPv4 or IPv6 without.
        for args in (["192.0.2.1/32"], ["2001:db8::1/128", "nodad"]):
            subprocess.run(["ip", "addr", "add", args[0], "dev", "lo", *args[1:]],
                           check=True, capture_output=True, timeout=30)
        t = Tree(tmp_path / "src")
        try:
            yield t
        finally:
            problems = t.cleanup()
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)
