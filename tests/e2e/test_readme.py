"""
test_readme.py - README.md's first example, as a newcomer types it: the real
nc (netcat-openbsd, which scripts/deps installs) against a real chatd over
loopback, sending the transcript's input lines and getting exactly its
server lines, byte for byte.  Only the port differs (the test's own).
"""

import os
import re
import select
import shutil
import subprocess
import time

import pytest

from chatproto import deadline_in

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
SERVER_LINE = re.compile(r"[A-Z]+( |\Z)")


def first_transcript():
    """The command and the lines of README.md's first "$ nc" code block."""
    text = open(README, encoding="utf-8").read()
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        lines = block.rstrip("\n").split("\n")
        if lines[0].startswith("$ nc "):
            return lines[0][2:], lines[1:]
    pytest.fail("README.md shows no nc transcript")


def read_line(proc, buf, timeout=5):
    deadline = deadline_in(timeout)
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        assert left > 0, f"nc printed no whole line in time (so far {bytes(buf)!r})"
        ready, _, _ = select.select([proc.stdout], [], [], left)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 4096)
            assert chunk, f"nc ended (so far {bytes(buf)!r}): {proc.stderr.read()!r}"
            buf += chunk
    line, _, rest = bytes(buf).partition(b"\n")
    buf[:] = rest
    return line.decode("utf-8")


def test_readme_first_example_with_the_real_nc(chatd):
    command, transcript = first_transcript()
    argv = command.split()
    assert argv[:2] == ["nc", "127.0.0.1"] and argv[2] == "7777", command
    nc = shutil.which("nc")
    assert nc, "no nc on PATH: scripts/deps installs netcat-openbsd"
    proc = subprocess.Popen([nc, "127.0.0.1", str(chatd.port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    buf = bytearray()
    try:
        for line in transcript:
            if SERVER_LINE.match(line):
                assert read_line(proc, buf) == line
            else:
                proc.stdin.write(line.encode() + b"\n")
                proc.stdin.flush()
        # Nothing more than the transcript shows.
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        assert not buf and not ready, bytes(buf) + (os.read(proc.stdout.fileno(), 4096)
                                                    if ready else b"")
    finally:
        proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout, proc.stderr):
            f.close()
