"""
test_docs.py - the packaged configuration as installed, the manual pages as
man renders them, and the README's commands on a fresh system.  That the
documents list every setting, command and default, and that the manual pages
and packaging/debian/changelog carry the project version, is checked in plain
ctest (tests/consistency), which needs no root.
"""

import os
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import SRC
from tlsfixtures import TestCA

DOCS = os.path.join(SRC, "docs")
PACKAGED_CONF = os.path.join(SRC, "packaging", "chatd.conf")


def show_config(build_dir, path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("STATE_DIRECTORY", "LOGS_DIRECTORY", "RUNTIME_DIRECTORY")}
    r = subprocess.run([os.path.join(build_dir, "chatd"), "-T", "-c", path],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


# The TLS pair the packaged configuration names: ssl-cert's, made when that
# package is installed (the .deb depends on it; this machine may lack it).
SNAKEOIL = ('tls_cert = "/etc/ssl/certs/ssl-cert-snakeoil.pem";\n'
            'tls_key = "/etc/ssl/private/ssl-cert-snakeoil.key";\n')


# The packaged configuration's user: the .deb makes it (sysusers.d), and run
# as root "chatd -T" looks it up as the daemon would (an unknown user is an
# error).  On a machine without it the check here names one it has.
PACKAGED_USER = 'user = "chatd";\n'
HOST_USER = "chatd"


def host_user():
    try:
        pwd.getpwnam(HOST_USER)
        return HOST_USER
    except KeyError:
        return "nobody"


@pytest.fixture(scope="module")
def packaged_conf_here(tmp_path_factory):
    """packaging/chatd.conf with its snakeoil pair swapped for a test pair
    made here and, where this machine has no user chatd, its user for one it
    has, nothing else changed: "chatd -T" loads the pair it names."""
    text = open(PACKAGED_CONF, encoding="utf-8").read()
    assert text.count(SNAKEOIL) == 1, "packaging/chatd.conf: TLS on with the snakeoil pair"
    assert text.count(PACKAGED_USER) == 1, "packaging/chatd.conf: user chatd"
    d = tmp_path_factory.mktemp("packaged")
    cert, key = TestCA(d / "ca").server("server")
    path = d / "chatd.conf"
    text = text.replace(SNAKEOIL, f'tls_cert = "{cert}";\ntls_key = "{key}";\n')
    path.write_text(text.replace(PACKAGED_USER, f'user = "{host_user()}";\n'))
    return str(path)


def test_packaged_config_fails_on_a_busy_port_and_uses_the_unit_dirs(build_dir,
                                                                     packaged_conf_here):
    shown = show_config(build_dir, packaged_conf_here)
    assert re.search(r"^port_tries = 0;$", shown, re.M)
    assert re.search(r'^admin_group = "chatd-admin";$', shown, re.M)
    assert re.search(rf'^user = "{host_user()}";$', shown, re.M)
    for name, path in (("state_dir", "/var/lib/chatd"), ("log_file", "/var/log/chatd/chatd.log"),
                       ("runtime_dir", "/run/chatd"), ("admin_socket", "/run/chatd/admin.sock")):
        assert re.search(rf'^{name} = "{path}";$', shown, re.M), name


def test_packaged_config_serves_tls_and_keeps_passwords_off_the_network(build_dir,
                                                                        packaged_conf_here):
    shown = show_config(build_dir, packaged_conf_here)
    assert re.search(r"^tls_port = 7778;$", shown, re.M)
    assert re.search(r'^plain_login = "loopback";$', shown, re.M)
    assert re.search(r'^tls_cert = "/\S+/server\.pem";$', shown, re.M)


def test_source_tree_config_keeps_the_port_fallback(build_dir):
    shown = show_config(build_dir, os.path.join(SRC, "etc", "chatd.conf"))
    tries = int(re.search(r"^port_tries = (\d+);$", shown, re.M).group(1))
    assert tries > 0


@pytest.mark.parametrize("page", ["chatd.8", "chatd.conf.5"])
def test_man_page_renders_without_warnings(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(DOCS, page)],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


# --- README.md's commands exist on a machine scripts/deps prepared --------------

README = os.path.join(SRC, "README.md")
# chatd's own programs: built from the tree, installed by the package.
OWN_PROGRAMS = {"chatd": "chatd", "chatctl": "ctl/chatctl", "chat": "client/chat"}
# What a fresh Debian 12 (priority required or important) has without asking.
BASE_PRIORITIES = {"required", "important"}


def readme_commands():
    """The program of every command README.md's code blocks show: in a
    transcript each command of the shell lines after "$ ", else the first word
    of every line (a script or a usage block, where "a | b" is a choice)."""
    text = open(README, encoding="utf-8").read()
    programs = set()
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        lines = block.rstrip("\n").split("\n")
        prompted = [line[2:] for line in lines if line.startswith("$ ")]
        commands = [c for line in prompted for c in re.split(r"\||&&|;", line)]
        for command in commands if prompted else lines:
            words = [w for w in command.split() if not re.fullmatch(r"\w+=\S*", w)]
            if words and not words[0].startswith("#"):
                programs.add(words[0])
    return programs


def deps_packages():
    text = open(os.path.join(SRC, "scripts", "deps")).read()
    listed = re.search(r"^packages=\((.*?)^\)", text, re.M | re.S).group(1)
    return set(re.sub(r"#.*", "", listed).split())


def owning_package(path):
    """The Debian package that ships path (through alternatives and /usr merge)."""
    real = os.path.realpath(path)
    for candidate in (real, re.sub(r"^/usr/", "/", real), path):
        r = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0].split(",")[0].strip()
    return None


def test_readme_shows_the_commands_it_should():
    programs = readme_commands()
    assert {"scripts/run", "scripts/check", "nc", "chat", "chatd", "chatctl",
            "packaging/build-deb", "apt"} <= programs, programs


@pytest.mark.parametrize("program", sorted(readme_commands()))
def test_readme_command_exists_after_scripts_deps(program, build_dir):
    if "/" in program:
        path = os.path.join(SRC, program)
        assert os.path.isfile(path) and os.access(path, os.X_OK), f"{program} is missing"
    elif program in OWN_PROGRAMS:
        assert os.access(os.path.join(build_dir, OWN_PROGRAMS[program]), os.X_OK), program
    else:
        path = shutil.which(program)
        assert path, f"{program} is not on PATH: scripts/deps should install it"
        package = owning_package(path)
        assert package, f"no Debian package ships {path}"
        priority = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", package],
                                  capture_output=True, text=True).stdout.strip()
        assert package in deps_packages() or priority in BASE_PRIORITIES, (
            f"{program} comes from {package} (priority {priority}), which neither a fresh "
            "Debian 12 has nor scripts/deps installs")
