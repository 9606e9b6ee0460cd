"""
test_version.py - one version everywhere: the project version in
CMakeLists.txt is the one "chatd -V" prints, the one in the .TH line of
every manual page in docs/, and the upstream version of the top entry of
packaging/debian/changelog (packaging/build-deb refuses to build otherwise).
"""

import re
import shlex
import subprocess

import pytest

from conftest import CHATD_BIN, DOCS, SRC


def project_version():
    text = (SRC / "CMakeLists.txt").read_text()
    m = re.search(r"^project\(chatd VERSION (\d+(?:\.\d+)*)\b", text, re.M)
    assert m, "no project(chatd VERSION ...) in CMakeLists.txt"
    return m.group(1)


MAN_PAGES = sorted(p.name for p in DOCS.iterdir() if re.fullmatch(r".+\.[1-8]", p.name))


def test_docs_has_the_manual_pages():
    assert {"chatd.8", "chatd.conf.5", "chatctl.8", "chat.1"} <= set(MAN_PAGES), MAN_PAGES


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_page_th_names_the_project_version(page):
    th = [line for line in (DOCS / page).read_text().split("\n") if line.startswith(".TH ")]
    assert len(th) == 1, f"{page}: {len(th)} .TH lines"
    # .TH title section date source manual: the source is "chatd VERSION".
    fields = shlex.split(th[0])
    assert len(fields) >= 5, f"{page}: {th[0]}"
    assert fields[4] == f"chatd {project_version()}", (
        f"docs/{page} says {fields[4]!r}, CMakeLists.txt {project_version()}")


def test_debian_changelog_top_entry_is_the_project_version():
    top = (SRC / "packaging" / "debian" / "changelog").read_text().split("\n", 1)[0]
    m = re.match(r"chatd \(([^)\s]+)\) ", top)
    assert m, f"packaging/debian/changelog: first line {top!r}"
    upstream = re.sub(r"-[^-]*$", "", re.sub(r"^\d+:", "", m.group(1)))
    assert upstream == project_version(), (
        f"packaging/debian/changelog says {m.group(1)}, CMakeLists.txt {project_version()}")


def test_chatd_prints_the_project_version():
    r = subprocess.run([CHATD_BIN, "-V"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == project_version(), r.stdout
