"""
test_config.py - configuration checking: chatd -t, and the FILE:LINE errors
that stop a broken config from starting anything.
"""

import pytest

from conftest import config_text

# Each is inserted as line 3 of an otherwise good config.
BROKEN = {
    "syntax error": ("max_line = = 4096;", None),
    "unknown setting": ("no_such_setting = 1;", "no_such_setting"),
    "wrong type": ('max_line = "big";', "max_line"),
    "below minimum": ("send_queue_limit = 100;", "send_queue_limit"),
    "bad log level": ('log_level = "chatty";', "log_level"),
}


def broken_config(d, bad_line):
    lines = config_text(d.settings).splitlines()
    assert len(lines) >= 3
    lines.insert(2, bad_line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mode", ["check", "start"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_config_names_file_and_line(chatd_factory, case, mode):
    bad_line, setting = BROKEN[case]
    d = chatd_factory(start=False)
    text = broken_config(d, bad_line)
    d.write_config(text)
    rc, out, err = d.run_expecting_exit(*(["-t"] if mode == "check" else []),
                                        write_config=False)
    assert rc == 1, (rc, out, err)
    assert "listening" not in out
    assert f"chatd: {d.config_path}:3: " in err, err
    if setting:
        assert setting in err, err


def test_check_good_config(chatd_factory):
    d = chatd_factory(start=False)
    rc, out, err = d.run_expecting_exit("-t")
    assert rc == 0, (rc, out, err)
    assert "listening" not in out


def test_missing_config_file(chatd_factory, tmp_path):
    d = chatd_factory(start=False)
    d.config_path = tmp_path / "does-not-exist.conf"
    rc, out, err = d.run_expecting_exit(write_config=False)
    assert rc == 1, (rc, out, err)
    assert "does-not-exist.conf" in err, err
