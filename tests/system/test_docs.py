"""
test_docs.py - chatd.conf(5) and the packaged configuration cannot drift
from the settings table: "chatd -T" prints every setting with its kind
(SIGHUP or fixed) and default, and each must be documented to match.
"""

import os
import re
import subprocess

import pytest

from conftest import SRC

DOCS = os.path.join(SRC, "docs")
PACKAGED_CONF = os.path.join(SRC, "packaging", "chatd.conf")
SETTING_RE = re.compile(r"^# (.*) \((SIGHUP changes it|fixed until restart)\)\n"
                        r"(?:# )?(\w+) = (.*);$", re.M)


def show_config(build_dir, path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("STATE_DIRECTORY", "LOGS_DIRECTORY", "RUNTIME_DIRECTORY")}
    r = subprocess.run([os.path.join(build_dir, "chatd"), "-T", "-c", path],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def settings(build_dir, tmp_path_factory):
    """{name: (reloadable, default as chatd -T writes it)} from an empty file."""
    empty = tmp_path_factory.mktemp("conf") / "empty.conf"
    empty.write_text("")
    found = {m.group(3): (m.group(2) == "SIGHUP changes it", m.group(4))
             for m in SETTING_RE.finditer(show_config(build_dir, str(empty)))}
    assert len(found) >= 20, found
    return found


def roff_text(text):
    text = re.sub(r"\\f[BIRP]", "", text)
    return text.replace("\\-", "-").replace("\\(dq", '"').replace("\\(em", "-")


def man_entries():
    """{setting: (section title, entry text)} from the .TP/.B entries of SETTINGS."""
    lines = open(os.path.join(DOCS, "chatd.conf.5")).read().split("\n")
    entries, section, in_settings = {}, None, False
    name = None
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            in_settings = line.strip() == ".SH SETTINGS"
            name = None
        elif not in_settings:
            continue
        elif line.startswith(".SS"):
            section, name = line[4:], None
        elif line == ".TP" and lines[i + 1].startswith(".B "):
            name = lines[i + 1][3:].strip()
            assert name not in entries, f"{name} documented twice"
            entries[name] = [section, ""]
        elif name is not None and not lines[i - 1] == ".TP":
            entries[name][1] += roff_text(line) + "\n"
    return {k: tuple(v) for k, v in entries.items()}


def test_every_setting_documented_once_and_nothing_else(settings):
    documented = set(man_entries())
    assert documented - set(settings) == set(), "documented but not in chatd -T"
    assert set(settings) - documented == set(), "missing from docs/chatd.conf.5"


def test_documented_in_the_section_of_its_kind(settings):
    for name, (section, _text) in man_entries().items():
        reloadable = settings[name][0]
        kind = "(SIGHUP)" if reloadable else "(fixed until restart)"
        assert section.endswith(kind), f"{name} is under {section!r}, should say {kind}"


def test_documented_defaults_match(settings):
    checked = 0
    for name, (_section, text) in man_entries().items():
        value = settings[name][1]
        if re.fullmatch(r"-?\d+L?|true|false", value):
            want = "Default: " + value.rstrip("L")
        elif re.fullmatch(r'"[^/"]*"', value):
            want = "Default: " + value
        else:
            continue        # paths and address lists depend on the environment
        assert want in text, f"{name}: the page does not say {want!r}"
        checked += 1
    assert checked >= 20


def test_packaged_config_names_every_setting(settings):
    text = open(PACKAGED_CONF).read()
    for name in settings:
        assert re.search(rf"^(# )?{name} = ", text, re.M), f"{name} not in packaging/chatd.conf"


def test_packaged_config_fails_on_a_busy_port_and_uses_the_unit_dirs(build_dir):
    shown = show_config(build_dir, PACKAGED_CONF)
    assert re.search(r"^port_tries = 0;$", shown, re.M)
    assert re.search(r'^admin_group = "chatd-admin";$', shown, re.M)
    assert re.search(r'^user = "chatd";$', shown, re.M)
    for name, path in (("state_dir", "/var/lib/chatd"), ("log_file", "/var/log/chatd/chatd.log"),
                       ("runtime_dir", "/run/chatd"), ("admin_socket", "/run/chatd/admin.sock")):
        assert re.search(rf'^{name} = "{path}";$', shown, re.M), name


def test_source_tree_config_keeps_the_port_fallback(build_dir):
    shown = show_config(build_dir, os.path.join(SRC, "etc", "chatd.conf"))
    tries = int(re.search(r"^port_tries = (\d+);$", shown, re.M).group(1))
    assert tries > 0


@pytest.mark.parametrize("page", ["chatd.8", "chatd.conf.5"])
def test_man_page_renders_without_warnings(page):
    r = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(DOCS, page)],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    assert r.returncode == 0 and r.stderr == "", r.stderr


@pytest.mark.parametrize("page", ["chatd.8", "chatd.conf.5"])
def test_man_page_version_is_chatds(build_dir, page):
    version = subprocess.run([os.path.join(build_dir, "chatd"), "-V"], capture_output=True,
                             text=True, check=True).stdout.split()[-1]
    th = next(line for line in open(os.path.join(DOCS, page)) if line.startswith(".TH"))
    assert f'"chatd {version}"' in th
