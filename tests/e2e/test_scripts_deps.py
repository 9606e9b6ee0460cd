"""
test_scripts_deps.py - scripts/deps as README.md's scripts run it, on a copy
of the tree with stand-ins for dpkg-query (every package installed: no
apt-get) and npm (records each run, and fails when asked, as an npm ci cut
short by a lost network or a Ctrl-C does after filling node_modules in part).
"""

import os
import shutil
import subprocess

from readmetree import SRC

FAKE_DPKG_QUERY = "#!/bin/sh\nprintf 'install ok installed'\n"
# npm ci empties node_modules, then fills it; $NPM_FAIL: stops half way.
FAKE_NPM = """#!/bin/sh
echo "$*" >> "$NPM_LOG"
rm -rf node_modules
mkdir -p node_modules/first-package
[ -z "$NPM_FAIL" ] || exit 1
mkdir -p node_modules/last-package
"""


def deps_tree(tmp_path):
    top = tmp_path / "src"
    (top / "scripts").mkdir(parents=True)
    shutil.copy(SRC / "scripts" / "deps", top / "scripts" / "deps")
    (top / "tests" / "e2e" / "irc-web").mkdir(parents=True)
    shutil.copy(SRC / "tests" / "e2e" / "irc-web" / "package-lock.json",
                top / "tests" / "e2e" / "irc-web" / "package-lock.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("npm", FAKE_NPM), ("node", "")):
        (bin_dir / name).write_text(text or "#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return top, bin_dir


def run_deps(top, bin_dir, log, fail=False):
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", NPM_LOG=str(log))
    env.pop("NPM_FAIL", None)
    if fail:
        env["NPM_FAIL"] = "1"
    return subprocess.run([str(top / "scripts" / "deps")], env=env, capture_output=True,
                          text=True, timeout=60)


def npm_runs(log):
    return log.read_text().splitlines() if log.exists() else []


def test_npm_ci_cut_short_is_run_again(tmp_path):
    top, bin_dir = deps_tree(tmp_path)
    log = tmp_path / "npm.log"
    r = run_deps(top, bin_dir, log, fail=True)
    assert r.returncode != 0 and len(npm_runs(log)) == 1, r.stderr
    # node_modules is there, newer than the lock, but half filled: not installed.
    r = run_deps(top, bin_dir, log)
    assert r.returncode == 0, r.stderr
    assert len(npm_runs(log)) == 2, "scripts/deps took a half-installed node_modules"
    assert (top / "tests" / "e2e" / "irc-web" / "node_modules" / "last-package").is_dir()
    # Installed whole: not again, until the lock changes.
    r = run_deps(top, bin_dir, log)
    assert r.returncode == 0 and len(npm_runs(log)) == 2, r.stderr
    lock = top / "tests" / "e2e" / "irc-web" / "package-lock.json"
    future = lock.stat().st_mtime + 10
    os.utime(lock, (future, future))
    r = run_deps(top, bin_dir, log)
    assert r.returncode == 0 and len(npm_runs(log)) == 3, r.stderr
