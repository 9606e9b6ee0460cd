"""
test_readme_tls.py - README.md's "TLS" commands as a newcomer types them,
read from README.md, in a source tree and a network of the test's own
(readmetree.py), ports unchanged.  The openssl, cp and echo lines of its
code block run as written (bash, from the tree's top); chatd starts as
`scripts/run -c tls.conf` starts it, on the tls.conf they made and nothing
else, and its listening line must end as the block's comment says; the
block's `chat --ca tls.pem localhost` must verify the certificate by the
name localhost on port 7778, log in and talk.  Then the fingerprint the
README's openssl line prints pins the certificate: `chat --tls
--fingerprint SHA256:HEX localhost` logs in, and another fingerprint ends
chat with status 8 before anything is sent.  `chat --tls localhost` trusts
the system's CA store (SSL_CERT_FILE stands for it here) and nothing else.
"""

import os
import re
import shlex
import shutil

import pytest

from chatclient import EXIT_OK
from chatproto import Client
from readmetree import code_blocks, readme_section, tree  # noqa: F401

EXIT_CERTIFICATE = 8


def readme_tls_block():
    """The command lines of README.md's TLS code block."""
    block = code_blocks(readme_section("TLS"))[0]
    return [line for line in block if line.strip()]


def chat_logs_in(terminals, args, name, password):
    """chat ARGS in a terminal, from the current directory: log in as a new name, say hello."""
    term = terminals(args)
    term.wait_text("Name [")
    term.line(name)
    term.wait_text(f"{name} is a new name; choose a password:")
    term.line(password)
    term.wait_text("Repeat the password:")
    term.line(password)
    term.wait_text(f"-- logged in as {name} (registered)")
    return term


def test_readme_tls_commands_serve_chat_over_tls(tree, terminals, monkeypatch):
    if shutil.which("openssl") is None:
        pytest.fail("openssl is missing: scripts/deps installs it")
    lines = readme_tls_block()
    words = [shlex.split(line, comments=True) for line in lines]
    assert [w[0] for w in words] == ["openssl", "cp", "echo", "scripts/run", "chat"], lines

    for line in lines[:3]:
        r = tree.sh(line)
        assert r.returncode == 0, f"{line}: {r.stderr}"

    # scripts/run -c tls.conf, and the listening line its comment shows.
    daemon = tree.scripts_run(*words[3][1:])
    said = re.search(r"#\s*(chatd: listening on \.\.\., (.*))$", lines[3]).group(2)
    assert daemon.first_line.endswith(", " + said), (daemon.first_line, said)
    bob = Client("bob").connect(7777)
    bob.login("bob", "Bob-tls-pw")

    cwd = os.getcwd()
    os.chdir(tree.top)  # chat reads tls.pem relative to where it runs
    try:
        # chat --ca tls.pem localhost, as written: port 7778, the name checked.
        term = chat_logs_in(terminals, words[4][1:], "alice", "Tls-readme-pw")
        term.line("hello over tls")
        assert bob.wait_for("MSG")[2:] == ["alice", "hello over tls"]
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK

        # The fingerprint, as README.md prints it, pins the certificate.
        m = re.search(r"`(openssl x509 -noout -fingerprint -sha256 -in tls\.pem)`",
                      readme_section("TLS").replace("\n", " "))
        assert m, "README.md no longer shows how to print the fingerprint"
        r = tree.sh(m.group(1))
        assert r.returncode == 0, r.stderr
        hexpart = re.fullmatch(r"(?i)sha256 Fingerprint=([0-9A-F:]+)\n", r.stdout).group(1)
        assert "`chat --tls --fingerprint SHA256:…`" in readme_section(
            "Installing as a Debian package").replace("\n", " ")
        term = chat_logs_in(terminals, ["--tls", "--fingerprint", f"SHA256:{hexpart}",
                                        "localhost"], "carol", "Tls-pinned-pw")
        term.line("pinned hello")
        assert bob.wait_for("MSG")[2:] == ["carol", "pinned hello"]
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK
        # chat --tls HOST: the system's CA store (here: SSL_CERT_FILE naming
        # the certificate) and the host name, on port 7778.
        assert "`chat --tls HOST` checks the server against the system's CA store" in \
            readme_section("TLS").replace("\n", " ")
        monkeypatch.setenv("SSL_CERT_FILE", str(tree.top / "tls.pem"))
        term = chat_logs_in(terminals, ["--tls", "localhost"], "erin", "Tls-store-pw")
        monkeypatch.delenv("SSL_CERT_FILE")
        term.line("/quit")
        assert term.wait_exit() == EXIT_OK
        term = terminals(["--tls", "localhost"])     # the store without that certificate
        term.wait_text("Name [")
        term.line("frank")
        assert term.wait_exit() == EXIT_CERTIFICATE

        wrong = "00" * 32
        term = terminals(["--tls", "--fingerprint", f"SHA256:{wrong}", "localhost"])
        term.wait_text("Name [")
        term.line("dave")
        assert term.wait_exit() == EXIT_CERTIFICATE
        assert "dave" not in (tree.top / "chatd-data" / "chatd.log").read_text()
    finally:
        os.chdir(cwd)
