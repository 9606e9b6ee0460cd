"""
test_readme_irc.py - README.md's "IRC clients" block as a newcomer types it,
read from README.md, in a source tree and a network of the test's own
(readmetree.py), ports unchanged: its cp/echo line makes irc.conf, chatd
starts as `scripts/run -c irc.conf` starts it (its listening line ending as
the block's comment says), and the irssi and weechat lines run word for
word, each in a terminal of tmux's, in a home directory of the test's own.
Each must be logged in (chatctl users: protocol irc) and in #lobby, on the
state README.md's first example left (its user registered first, with the
password it typed), as a newcomer reading on from there has it.  And
docs/IRC.md's irssi /connect line for a client without SASL, typed into
irssi as written, the host aside.
"""

import re
import shlex
import shutil
import subprocess
import time

import pytest

from chatproto import Client, deadline_in
from conftest import irc_unsupported_reason
from readmetree import (SRC, code_blocks, first_example_login, readme_section,  # noqa: F401
                        tree)


def readme_irc_block():
    """The command lines of README.md's IRC code block."""
    block = code_blocks(readme_section("IRC clients"))[0]
    return [line for line in block if line.strip()]


def wait_online(tree, name, timeout=30):
    deadline = deadline_in(timeout)
    while True:
        r = tree.sh("build/ctl/chatctl -c irc.conf users")
        assert r.returncode == 0, r.stderr
        line = next((x for x in r.stdout.splitlines() if x.split()[:1] == [name]), None)
        if line is not None:
            return line
        assert time.monotonic() < deadline, f"{name} never logged in; users: {r.stdout!r}"
        time.sleep(0.1)


def in_lobby(tree):
    """chatctl room list's line of the room lobby."""
    r = tree.sh("build/ctl/chatctl -c irc.conf room list")
    return next(x for x in r.stdout.splitlines() if x.split()[:1] == ["lobby"])


def test_readme_irc_commands_log_in(tree):
    reason = irc_unsupported_reason()
    if reason:
        pytest.skip(reason)
    for tool in ("irssi", "tmux", "weechat"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/deps installs it")
    lines = readme_irc_block()
    words = [shlex.split(line, comments=True) for line in lines]
    assert [w[0] for w in words] == ["cp", "scripts/run", "irssi", "weechat"], lines

    r = tree.sh(lines[0])
    assert r.returncode == 0, f"{lines[0]}: {r.stderr}"
    daemon = tree.scripts_run(*words[1][1:])
    said = re.search(r"#\s*(chatd: listening on \.\.\., (.*))$", lines[1]).group(2)
    assert daemon.first_line.endswith(", " + said), (daemon.first_line, said)
    # The first example was run before, on the same ./chatd-data.
    first = Client("first-example").connect(7777)
    first.login(*first_example_login())
    first.close()

    sock = f"chatd-readme-{id(tree)}"
    tmux = ["tmux", "-L", sock]
    try:
        for line, name in ((lines[2], "alice"), (lines[3], "bob")):
            # The line as typed, by a shell in a terminal, from the tree's top.
            window = (["new-session", "-d", "-x", "200", "-y", "50"] if name == "alice"
                      else ["new-window", "-d"])
            subprocess.run(tmux + window + ["-c", str(tree.top), line], check=True,
                           env=tree.env(), timeout=30)
            online = wait_online(tree, name)
            assert online.split()[3].startswith("irc"), online
        lobby = in_lobby(tree).split()
        assert lobby[1] == "2", lobby
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True, timeout=30)


def start_irssi(tree, tmux):
    """irssi with no server, in a tmux terminal of its own, ready for commands."""
    subprocess.run(tmux + ["new-session", "-d", "-x", "200", "-y", "50", "-c", str(tree.top),
                           "irssi -n someone"], check=True, env=tree.env(), timeout=30)
    deadline = deadline_in(30)
    while b"[(status)]" not in subprocess.run(tmux + ["capture-pane", "-p"],
                                              capture_output=True, timeout=30).stdout:
        assert time.monotonic() < deadline, "irssi never showed its status window"
        time.sleep(0.1)


def test_irc_md_irssi_connect_line_logs_in(tree):
    reason = irc_unsupported_reason()
    if reason:
        pytest.skip(reason)
    text = re.sub(r"\s+", " ", (SRC / "docs" / "IRC.md").read_text(encoding="utf-8"))
    m = re.search(r"Clients without SASL send the password with `PASS` \(irssi: `(/connect [^`]+)`",
                  text)
    assert m, "docs/IRC.md no longer shows irssi's /connect with a password"
    command = m.group(1).replace(" host ", " 127.0.0.1 ")
    assert command != m.group(1), f"{m.group(1)!r} names no host"
    lines = readme_irc_block()
    assert tree.sh(lines[0]).returncode == 0
    tree.scripts_run(*shlex.split(lines[1], comments=True)[1:])
    tmux = ["tmux", "-L", f"chatd-irc-md-{id(tree)}"]
    try:
        start_irssi(tree, tmux)
        subprocess.run(tmux + ["send-keys", command, "Enter"], check=True, timeout=30)
        nick = command.split()[-1]
        online = wait_online(tree, nick)
        assert online.split()[3] == "irc", online
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True, timeout=30)


def irc_md_blocks():
    """docs/IRC.md's "Connecting" code blocks: irssi's, then WeeChat's."""
    text = (SRC / "docs" / "IRC.md").read_text(encoding="utf-8")
    section = text.split("\n## Connecting\n", 1)[1].split("\n## ", 1)[0]
    return section, code_blocks(section)


def test_irc_md_sasl_blocks_log_in(tree):
    """docs/IRC.md's irssi block, with the plain-port line it gives for a test
    on the server itself, and its WeeChat block as written (WeeChat over TLS
    to 6697, trusting the tree's certificate), each logs alice in."""
    reason = irc_unsupported_reason()
    if reason:
        pytest.skip(reason)
    section, blocks = irc_md_blocks()
    irssi_block, weechat_block = blocks[0], blocks[1]
    m = re.search(r"for a test on the server itself, the\s+plain port instead: `([^`]+)`", section)
    assert m, "docs/IRC.md no longer gives irssi's line for a test"
    irssi_lines = [m.group(1) if line.startswith("/server add") else line
                   for line in irssi_block]
    weechat_lines = [line.replace("chat.example.org", "localhost") for line in weechat_block]

    tls_line = next(line for line in code_blocks(readme_section("TLS"))[0]
                    if line.startswith("openssl req"))
    assert tree.sh(tls_line).returncode == 0
    (tree.top / "irc.conf").write_text((tree.top / "etc" / "chatd.conf").read_text() +
                                       'tls_cert = "tls.pem"; tls_key = "tls.key";\n'
                                       "irc = true;\n")
    tree.scripts_run("-c", "irc.conf")
    tmux = ["tmux", "-L", f"chatd-irc-md-sasl-{id(tree)}"]
    weechat = None
    try:
        start_irssi(tree, tmux)
        for line in irssi_lines:
            subprocess.run(tmux + ["send-keys", line, "Enter"], check=True, timeout=30)
        assert wait_online(tree, "alice").split()[3] == "irc"
        subprocess.run(tmux + ["kill-server"], capture_output=True, timeout=30)
        deadline = deadline_in(30)
        while tree.sh("build/ctl/chatctl -c irc.conf users").stdout.split()[:1] == ["alice"]:
            assert time.monotonic() < deadline, "irssi's alice never left"
            time.sleep(0.1)

        home = tree.top / "home" / "weechat"
        commands = [f"/set weechat.network.gnutls_ca_user {tree.top / 'tls.pem'}", *weechat_lines]
        weechat = subprocess.Popen(["weechat-headless", "--dir", str(home), "-r",
                                    ";".join(commands)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=tree.env())
        assert wait_online(tree, "alice").split()[3] == "irc+tls"
    finally:
        subprocess.run(tmux + ["kill-server"], capture_output=True, timeout=30)
        if weechat is not None:
            weechat.kill()
            weechat.wait()
