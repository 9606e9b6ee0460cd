"""
test_readme_tls.py - README.md's "TLS" commands as a newcomer types them.
The openssl, cp and echo lines of its code block run as written (bash, in a
directory that holds etc/chatd.conf as the source tree does); chatd then
starts on the tls.conf they made, as `scripts/run -c tls.conf` starts it
(scripts/run adds only the build), with only what a test must add appended:
loopback addresses, ports of its own, a state directory and admin socket of
its own.  Its listening line must name a TLS listener, and the block's `chat
--ca tls.pem localhost` (given the test's port) must verify the certificate
by the name localhost, log in and talk.
"""

import os
import re
import shlex
import shutil
import subprocess

import pytest

from chatclient import EXIT_OK
from conftest import Chatd, free_port

SRC = os.path.join(os.path.dirname(__file__), "..", "..")
README = os.path.join(SRC, "README.md")


def readme_tls_block():
    """The command lines of README.md's TLS code block."""
    text = open(README, encoding="utf-8").read()
    section = text.split("\n## TLS\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)^```", section, re.M | re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_readme_tls_commands_serve_chat_over_tls(tmp_path, terminals):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: scripts/deps installs it")
    lines = readme_tls_block()
    words = [shlex.split(line, comments=True) for line in lines]
    programs = [w[0] for w in words]
    assert programs == ["openssl", "cp", "echo", "scripts/run", "chat"], lines

    # The source tree as far as the block needs it.
    (tmp_path / "etc").mkdir()
    shutil.copy(os.path.join(SRC, "etc", "chatd.conf"), tmp_path / "etc" / "chatd.conf")
    for line in lines[:3]:
        r = subprocess.run(["bash", "-euc", line], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, f"{line}: {r.stderr}"
    assert words[3][1:] == ["-c", "tls.conf"], lines[3]

    # scripts/run -c tls.conf: chatd -c tls.conf, from the tree's top.
    state = tmp_path / "state"
    state.mkdir()
    admin_dir = tmp_path / "a"
    admin_dir.mkdir()
    port = free_port()
    tls_port = free_port()
    while tls_port == port:
        tls_port = free_port()
    with open(tmp_path / "tls.conf", "a") as conf:
        conf.write(f'\nlisten = "127.0.0.1";\nport = {port};\ntls_port = {tls_port};\n'
                   f'state_dir = "{state}";\nadmin_socket = "{admin_dir}/admin.sock";\n'
                   "hash_cost = 1;\n")
    daemon = Chatd(tmp_path, {"state_dir": str(state),
                              "admin_socket": str(admin_dir / "admin.sock")})
    daemon.config_path = tmp_path / "tls.conf"
    daemon.write_config = lambda text=None: None  # run on the block's file as it is
    cwd = os.getcwd()
    try:
        daemon.start()
        assert daemon.tls_port == tls_port, daemon.listeners
        bob = daemon.login("bob")

        # chat --ca tls.pem localhost, with the test's port, from the same directory.
        args = words[4][1:] + [str(tls_port)]
        assert args[:3] == ["--ca", "tls.pem", "localhost"], args
        os.chdir(tmp_path)  # chat reads tls.pem relative to where it runs
        term = terminals(args)
        term.wait_text("Name [")
        term.line("alice")
        term.wait_text("alice is a new name; choose a password:")
        term.line("Tls-readme-pw")
        term.wait_text("Repeat the password:")
        term.line("Tls-readme-pw")
        term.wait_text("-- logged in as alice (registered)")
        term.line("hello over tls")
        assert bob.wait_for("MSG")[2:] == ["alice", "hello over tls"]
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK
    finally:
        os.chdir(cwd)
        problems = daemon.cleanup()
    assert not problems, problems
