"""
test_readme_irc.py - README.md's "IRC clients" commands as a newcomer types
them: the irssi and WeeChat lines of its code block, against a real chatd
with irc = true, only the port changed to the test's own (and each client
given a home directory of its own).  irssi runs in tmux as typed; WeeChat's
line runs with weechat-headless, the same program without a terminal, which
takes the same arguments.  Each must be logged in (chatctl users: protocol
irc) and in #lobby.
"""

import os
import re
import shlex
import shutil
import subprocess
import time

import pytest

from chatproto import deadline_in

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def readme_irc_lines():
    """The irssi and weechat command lines of README.md's IRC code block."""
    text = open(README, encoding="utf-8").read()
    section = text.split("## IRC clients", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S).group(1)
    lines = {}
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] in ("irssi", "weechat"):
            lines[words[0]] = words
    assert set(lines) == {"irssi", "weechat"}, block
    return lines


def with_port(words, port):
    """The words with 6667 replaced by the test's port."""
    return [w.replace("6667", str(port)) for w in words]


def wait_online(chatd, name, timeout=30):
    deadline = deadline_in(timeout)
    while True:
        users = chatd.ctl_ok("users")
        line = next((x for x in users.splitlines() if x.split()[:1] == [name]), None)
        if line is not None:
            return line
        assert time.monotonic() < deadline, f"{name} never logged in; users: {users!r}"
        time.sleep(0.1)


def test_readme_irc_commands_log_in(irc_chatd, tmp_path):
    for tool in ("irssi", "tmux", "weechat-headless"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/deps installs it")
    lines = readme_irc_lines()
    chatd = irc_chatd(irc_listen=["127.0.0.1"])
    port = chatd.irc_port

    # irssi, as typed, in a terminal of tmux's
    irssi = with_port(lines["irssi"], port) + ["--home", str(tmp_path / "irssi")]
    sock = f"chatd-readme-{os.getpid()}"
    subprocess.run(["tmux", "-L", sock, "new-session", "-d", "-x", "200", "-y", "50",
                    shlex.join(irssi)], check=True)
    weechat = None
    try:
        line = wait_online(chatd, "alice")
        assert line.split()[3].startswith("irc"), line
        # WeeChat, the same arguments
        args = with_port(lines["weechat"], port)[1:]
        weechat = subprocess.Popen(["weechat-headless", "--dir", str(tmp_path / "weechat")]
                                   + args, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        line = wait_online(chatd, "bob")
        assert line.split()[3].startswith("irc"), line
    finally:
        subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True)
        if weechat is not None:
            weechat.terminate()
            try:
                weechat.wait(timeout=10)
            except subprocess.TimeoutExpired:
                weechat.kill()
                weechat.wait()
