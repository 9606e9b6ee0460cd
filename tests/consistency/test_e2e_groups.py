"""
test_e2e_groups.py - the end-to-end suite is split into ctest items
(E2E_GROUPS in tests/CMakeLists.txt); every tests/e2e/test_*.py, and every
test in it, must run in exactly one of them: none skipped, none run twice.

E2E_GROUPS (ctest sets it) gives each item's pytest arguments as
"name=arg,arg|name=arg,...".  Each item's arguments are collected as ctest
would run them and compared with the whole directory.  No daemon runs.
"""

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from conftest import SRC

E2E = SRC / "tests" / "e2e"


def groups():
    """{item name: [pytest arguments]} from E2E_GROUPS."""
    spec = os.environ.get("E2E_GROUPS")
    if not spec:
        pytest.skip("E2E_GROUPS is unset: run this through ctest")
    found = {}
    for item in spec.split("|"):
        name, _, args = item.partition("=")
        found[name] = args.split(",")
    return found


def collected(args):
    """The node ids pytest collects from args (relative to the source tree)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", f"--rootdir={SRC}", *args],
                       capture_output=True, text=True, cwd=SRC, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return [line for line in r.stdout.splitlines() if "::" in line]


def test_every_e2e_file_is_in_exactly_one_item():
    files = Counter()
    for name, args in groups().items():
        paths = [Path(a) for a in args if not a.startswith("-")]
        ignored = {Path(a.split("=", 1)[1]) for a in args if a.startswith("--ignore=")}
        for path in paths:
            if path.is_dir():
                files.update(f.name for f in path.glob("test_*.py") if f not in ignored)
            else:
                files[path.name] += 1
    everything = {f.name for f in E2E.glob("test_*.py")}
    assert not everything - set(files), f"in no ctest item: {sorted(everything - set(files))}"
    twice = sorted(f for f, n in files.items() if n > 1)
    assert not twice, f"in two ctest items: {twice}"
    assert set(files) <= everything, f"not in tests/e2e: {sorted(set(files) - everything)}"


def test_every_e2e_test_is_collected_by_exactly_one_item():
    ids = Counter()
    for args in groups().values():
        ids.update(collected(args))
    whole = collected([str(E2E)])
    assert len(whole) > 100, whole
    missing, extra = sorted(set(whole) - set(ids)), sorted(set(ids) - set(whole))
    assert not missing and not extra, f"in no ctest item: {missing[:10]}, unknown: {extra[:10]}"
    twice = sorted(i for i, n in ids.items() if n > 1)
    assert not twice, f"collected by two ctest items: {twice[:10]}"
