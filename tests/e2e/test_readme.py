"""
test_readme.py - README.md's commands outside its TLS and IRC sections, as a
newcomer types them, read from README.md itself: chatd started as
`scripts/run` starts it on the shipped etc/chatd.conf, with the listening
line README.md quotes; the first example with the real nc (netcat-openbsd,
which scripts/deps installs) on port 7777, sending the transcript's input
lines and getting exactly its server lines, byte for byte; the plain-mode
`chat` example; `build/ctl/chatctl -c etc/chatd.conf` with every command of
the chatctl block (and docs/ADMIN.md's examples of chatctl commands and
their short forms); the "Running" block's `chatd -t` and `chatd -d`; and
the manual pages as README.md opens them (`man docs/chat.1`); `chat`
with no arguments, README's defaults (localhost, 7777) taken; and
`cmake --install` of the build under test as the Debian section says it
works: the unit it installs runs the chatd and the configuration it installs,
and another `--prefix` than the configured one is refused.
Nothing is changed, ports included: each test has a network of its own
(readmetree.py).
"""

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from chatproto import Client, deadline_in, wait_until
from conftest import CHATD_BIN
from readmetree import SRC, code_blocks, readme_section, readme_text, tree  # noqa: F401

SERVER_LINE = re.compile(r"[A-Z]+( |\Z)")


def first_transcript():
    """The command and the lines of README.md's first "$ nc" code block."""
    for lines in code_blocks(readme_text()):
        if lines[0].startswith("$ nc "):
            return lines[0][2:], lines[1:]
    pytest.fail("README.md shows no nc transcript")


def listening_line():
    """The listening line README.md says scripts/run prints."""
    m = re.search(r"`scripts/run` prints where chatd listens \(`(chatd: listening on [^`]+)`\)",
                  readme_text())
    assert m, "README.md no longer quotes scripts/run's listening line"
    return m.group(1)


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


def test_scripts_run_listens_where_readme_says(tree):
    daemon = tree.scripts_run()
    assert daemon.first_line == listening_line()
    # "keeps its state in ./chatd-data/"
    assert (tree.top / "chatd-data" / "admin.sock").exists()
    assert (tree.top / "chatd-data" / "chatd.log").exists()


def test_readme_first_example_with_the_real_nc(tree):
    command, transcript = first_transcript()
    assert command == "nc 127.0.0.1 7777", command
    assert shutil.which("nc"), "no nc on PATH: scripts/deps installs netcat-openbsd"
    tree.scripts_run()
    proc = subprocess.Popen(shlex.split(command), stdin=subprocess.PIPE,
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


def test_readme_plain_chat_example(tree):
    section = readme_section("The chat client")
    lines = [line[2:] for block in code_blocks(section) for line in block
             if line.startswith("$ ")]
    assert len(lines) == 1 and " chat " in lines[0], lines
    daemon = tree.scripts_run()
    r = tree.sh(lines[0])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK - joined ops" in r.stdout.splitlines(), r.stdout
    history = daemon.history_path.read_text().splitlines()
    assert any("ops" in h.split() and h.endswith(" backup done") for h in history), history


# The commands of README.md's chatctl block, as it writes them, in the order
# they run here, with what they run as ("" is the console: no command); None:
# a short form docs/ADMIN.md names.  The examples docs/ADMIN.md gives are
# among them as it writes them.
CHATCTL_RUN = [
    ("status", "status"),
    ("users", "users"),
    ("pause", "pause"),
    ("resume", "resume"),
    ("log show", "log show"),
    ("log show N", "log show 50"),
    (None, "show-log"),
    ("user add NAME", "user add bob"),
    ("user passwd NAME", "user passwd bob"),
    ("user list", "user list"),
    ("room create NAME", "room create dev"),
    ("room create NAME TOPIC", "room create games cards and dice"),
    ("room list", "room list"),
    ("room topic NAME TEXT", "room topic dev all about chatd"),
    ("room notice ROOM TEXT", "room notice dev deploy at noon"),
    ("room kick ROOM NAME", "room kick dev bob"),
    ("room kick ROOM NAME REASON", "room kick dev bob off topic"),
    ("notice TEXT", "notice back in 5 minutes"),
    ("kick NAME REASON", "kick bob flooding"),
    ("kick NAME", "kick bob"),
    ("room del NAME", "room del dev"),
    ("user del NAME", "user del bob"),
    ("ident clear", "ident clear"),
    (None, "clear-ident"),
    ("log clear", "log clear"),
    (None, "clear-log"),
    ("", ""),
    ("stop", "stop"),
]


def expand(command):
    """'user add|passwd|del NAME' and 'log show [N]' -> every form, brackets dropped."""
    forms = [[]]
    for word in command.split():
        if word.startswith("[") and word.endswith("]"):
            forms += [f + [word[1:-1]] for f in forms]
        else:
            forms = [f + [alt] for f in forms for alt in word.split("|")]
    return {" ".join(f) for f in forms}


def readme_chatctl_commands():
    """Every command README.md's chatctl block shows (and `log clear`, which
    its comment names)."""
    section = readme_section("Administering a running chatd")
    block = next(b for b in code_blocks(section) if b[0].startswith("chatctl "))
    commands = set()
    for line in block:
        shown, _, comment = line.partition("#")
        assert shown.startswith("chatctl"), line
        for part in shown[len("chatctl"):].split(","):
            for alt in re.split(r" \| ", part.strip()):
                commands |= expand(alt)
        if "log clear" in comment:
            commands.add("log clear")
    return commands


def admin_md_chatctl_examples():
    """docs/ADMIN.md's "spelled as people type them" examples and short forms."""
    text = re.sub(r"\s+", " ", (SRC / "docs" / "ADMIN.md").read_text(encoding="utf-8"))
    m = re.search(r"Commands are spelled as people type them \((.*?)\), or by their short "
                  r"forms \((.*?)\)\.", text)
    assert m, "docs/ADMIN.md no longer gives chatctl's examples"
    examples = re.findall(r"`chatctl ([^`]+)`", m.group(1))
    short = re.findall(r"`([^`]+)`", m.group(2))
    assert examples and short, m.group(0)
    return examples + short


def test_readme_chatctl_commands_from_the_source_tree(tree):
    assert readme_chatctl_commands() == {shown for shown, _ in CHATCTL_RUN if shown is not None}
    assert set(admin_md_chatctl_examples()) <= {command for _, command in CHATCTL_RUN}
    source_form = re.search(r"`(build/ctl/chatctl -c etc/chatd\.conf)\s+status`",
                            readme_section("Administering a running chatd"))
    assert source_form, "README.md no longer shows chatctl's source-tree form"
    ctl = source_form.group(1)
    daemon = tree.scripts_run()
    bob = None
    for shown, command in CHATCTL_RUN:
        stdin = {"user add bob": "Bob-pw-1\n", "user passwd bob": "Bob-pw-2\n",
                 "": "status\nquit\n"}.get(command)
        if shown == "room notice ROOM TEXT":
            bob = Client("bob").connect(7777)
            bob.login("bob", "Bob-pw-2")
            bob.request("/join dev")
        if shown in ("room kick ROOM NAME REASON", "kick NAME"):
            if shown == "kick NAME":
                bob = Client("bob").connect(7777)
                bob.login("bob", "Bob-pw-2")
            bob.request("/join dev")
        r = tree.sh(f"{ctl} {command}".rstrip(), input=stdin)
        assert r.returncode == 0, f"chatctl {command}: {r.returncode} {r.stdout}{r.stderr}"
        if shown == "status":
            assert "listening: 0.0.0.0:7777, [::]:7777" in r.stdout.splitlines(), r.stdout
        elif shown == "room notice ROOM TEXT":
            assert bob.wait_for("NOTICE", lambda n: n[-1] == "deploy at noon").target == "dev"
        elif shown == "room kick ROOM NAME REASON":
            part = bob.wait_for("PART", lambda p: p[-1] == "off topic")
            assert part.room == "dev" and part[1:3] == ["bob", "kicked"], part.raw
        elif shown == "notice TEXT":
            assert bob.wait_for("NOTICE", lambda n: n[-1] == "back in 5 minutes").target == "*"
        elif shown == "kick NAME REASON":
            assert [x.raw for x in bob.read_until_closed() if x.tag == "BYE"] == \
                ["BYE kicked flooding"]
        elif shown == "":
            assert "version: " in r.stdout, r.stdout
        elif shown == "stop":
            daemon.stopped = True
            assert daemon.proc.wait(timeout=10) == 0


def running_block():
    """The synopses of README.md's "Running" block: ["chatd [-c FILE]", ...]."""
    block = code_blocks(readme_section("Running"))[0]
    return [re.split(r"\s{2,}", line)[0] for line in block]


def test_readme_running_block_from_the_source_tree(tree):
    synopses = running_block()
    assert synopses == ["chatd [-c FILE]", "chatd -d [-c FILE]", "chatd -t [-c FILE]"], synopses
    as_typed = {s: "build/" + s.replace("[-c FILE]", "-c etc/chatd.conf") for s in synopses}

    r = tree.sh(as_typed["chatd -t [-c FILE]"])
    assert r.returncode == 0, r.stderr
    (tree.top / "etc" / "bad.conf").write_text('port = "7777";\n')
    r = tree.sh(as_typed["chatd -t [-c FILE]"].replace("chatd.conf", "bad.conf"))
    assert r.returncode == 1 and re.search(r"bad\.conf:\d+: ", r.stderr), r.stderr

    # -d: back once serving, its pid in RUNTIME/chatd.pid (./chatd-data here).
    r = tree.sh(as_typed["chatd -d [-c FILE]"])
    assert r.returncode == 0, r.stderr
    pid = int((tree.top / "chatd-data" / "chatd.pid").read_text())
    try:
        c = Client("after-d").connect(7777)
        c.expect_hello()
        c.close()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "chatd -d to stop", timeout=10)

    # Without -d: the foreground chatd scripts/run starts.
    assert tree.scripts_run().first_line.startswith("chatd: listening on ")


def test_readme_man_commands_render(tree):
    commands = re.findall(r"`(man docs/[\w.]+)`", readme_text())
    assert {"man docs/chat.1", "man docs/chatctl.8"} <= set(commands), commands
    for command in commands:
        (tree.top / "docs").mkdir(exist_ok=True)
        page = command.split()[1]
        shutil.copy(SRC / page, tree.top / page)
        r = tree.sh(command, MANPAGER="cat", MANWIDTH="80")
        assert r.returncode == 0 and not r.stderr, f"{command}: {r.stderr}"
        name = os.path.basename(page).rsplit(".", 1)[0]
        assert re.match(rf"{re.escape(name.upper())}\(\d\)", r.stdout), r.stdout[:200]


def test_readme_chat_without_arguments(tree, terminals):
    """`chat` with no arguments asks for the host and the port, README's
    defaults taken with Enter, then the name and the password."""
    m = re.search(r"Without arguments it asks for the host and the port \(defaults `(\S+)`, "
                  r"`(\d+)`\), then the name and the password",
                  re.sub(r"\s+", " ", readme_section("The chat client")))
    assert m, "README.md no longer says what chat asks without arguments"
    tree.scripts_run()
    bob = Client("bob").connect(7777)
    bob.login("bob", "Bob-pw-1")
    term = terminals([])
    term.wait_text(f"Host [{m.group(1)}]:")
    term.line("")
    term.wait_text(f"Port [{m.group(2)}]:")
    term.line("")
    term.wait_text("Name [")
    term.line("alice")
    term.wait_text("alice is a new name; choose a password:")
    term.line("Alice-pw-1")
    term.wait_text("Repeat the password:")
    term.line("Alice-pw-1")
    term.wait_text("-- logged in as alice (registered)")
    term.line("hello from the defaults")
    assert bob.wait_for("MSG")[2:] == ["alice", "hello from the defaults"]
    term.line("/quit")
    assert term.wait_exit() == 0


def cmake_install(build, destdir, *args):
    return subprocess.run(["cmake", "--install", str(build), *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, DESTDIR=str(destdir)))


def test_readme_cmake_install_runs_what_it_installed(tmp_path):
    text = re.sub(r"\s+", " ", readme_section("Installing as a Debian package"))
    assert "cmake -S . -B build-usr -DCMAKE_INSTALL_PREFIX=/usr" in text, text
    assert "`cmake --install build-usr`" in text, text
    build = Path(CHATD_BIN).resolve().parent
    cache = (build / "CMakeCache.txt").read_text()
    prefix = re.search(r"^CMAKE_INSTALL_PREFIX:PATH=(.*)$", cache, re.M).group(1)
    # Another prefix at install time: refused, nothing installed.
    other = "/usr" if prefix != "/usr" else "/opt/chatd"
    r = cmake_install(build, tmp_path / "other", "--prefix", other)
    assert r.returncode != 0, r.stdout
    assert f"chatd is configured for the prefix {prefix}, not {other}" in r.stderr, r.stderr
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").rglob("*"))
    # The configured one: the unit's ExecStart= names files that were installed.
    root = tmp_path / "root"
    r = cmake_install(build, root)
    assert r.returncode == 0, r.stderr
    unit = next(root.rglob("chatd.service")).read_text()
    m = re.search(r"^ExecStart=(\S+) -c (\S+)$", unit, re.M)
    assert m, unit
    for path in m.groups():
        assert (root / path.lstrip("/")).is_file(), f"{path} of ExecStart= is not installed"
