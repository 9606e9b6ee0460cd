"""
test_settings_docs.py - the settings table (daemon/config.c, printed by
"chatd -T") against docs/chatd.conf.5 and etc/chatd.conf: every setting
documented once, in the section of its kind (SIGHUP or fixed), nothing
documented that chatd does not know, and the defaults the documents show
are chatd's.
"""

import re

from conftest import DOCS, ETC, SRC, roff_text

# Defaults a document can state: numbers, booleans, strings that are no path.
PLAIN_DEFAULT = re.compile(r'-?\d+L?|true|false|"[^/"]*"')


def man_entries():
    """{setting: (section title, entry text)}: the ".TP" / ".B name" entries of SETTINGS."""
    lines = (DOCS / "chatd.conf.5").read_text().split("\n")
    entries, section, in_settings, name = {}, None, False, None
    for i, line in enumerate(lines):
        if line.startswith(".SH"):
            in_settings = line.strip() == ".SH SETTINGS"
            name = None
        elif not in_settings:
            continue
        elif line.startswith(".SS"):
            section, name = line[4:], None
        elif line == ".TP" and i + 1 < len(lines) and lines[i + 1].startswith(".B "):
            name = lines[i + 1][3:].strip()
            assert name not in entries, f"chatd.conf(5) documents {name} twice"
            entries[name] = [section, ""]
        elif name is not None and lines[i - 1] != ".TP":
            entries[name][1] += roff_text(line) + "\n"
    return {k: tuple(v) for k, v in entries.items()}


def conf_entries():
    """{setting: (section heading, value shown, commented out, the comment above)}
    from etc/chatd.conf."""
    entries, section, comment = {}, None, ""
    for line in (ETC / "chatd.conf").read_text().split("\n"):
        m = re.match(r"# --- (.*?) -*$", line)
        if m:
            section, comment = m.group(1), ""
            continue
        m = re.fullmatch(r"(# )?(\w+) = (.*);", line)
        if m:
            name = m.group(2)
            assert name not in entries, f"etc/chatd.conf shows {name} twice"
            entries[name] = (section, m.group(3), m.group(1) is not None, " ".join(comment.split()))
            comment = ""
        elif line.startswith("#"):
            comment += line[1:] + "\n"
        else:
            comment = ""
    return entries


def kind(reloadable):
    return "(SIGHUP" if reloadable else "(fixed until restart)"


def test_man_page_documents_every_setting_once_and_nothing_else(settings):
    documented = set(man_entries())
    assert sorted(documented - set(settings)) == [], "in chatd.conf(5) but not in chatd -T"
    assert sorted(set(settings) - documented) == [], "missing from docs/chatd.conf.5"


def test_man_page_puts_each_setting_under_its_kind(settings):
    for name, (section, _text) in man_entries().items():
        if name not in settings:
            continue  # test_man_page_documents_every_setting_once_and_nothing_else says so
        want = kind(settings[name][0])
        assert want in section, f"chatd.conf(5): {name} is under {section!r}, not {want}"


def test_man_page_defaults_are_chatds(settings):
    checked = 0
    for name, (_section, text) in man_entries().items():
        if name not in settings:
            continue
        value = settings[name][1]
        if not PLAIN_DEFAULT.fullmatch(value):
            continue  # paths and address lists depend on where chatd runs
        want = "Default: " + value.rstrip("L")
        assert want in text, f"chatd.conf(5): {name} does not say {want!r}"
        checked += 1
    assert checked >= 20


def test_shipped_config_shows_every_setting_once_and_nothing_else(settings):
    shown = set(conf_entries())
    assert sorted(shown - set(settings)) == [], "in etc/chatd.conf but not in chatd -T"
    assert sorted(set(settings) - shown) == [], "missing from etc/chatd.conf"


def test_shipped_config_puts_each_setting_under_its_kind(settings):
    for name, (section, _value, _commented, _comment) in conf_entries().items():
        if name not in settings:
            continue  # test_shipped_config_shows_every_setting_once_and_nothing_else says so
        want = kind(settings[name][0])
        assert section and want in section, (
            f"etc/chatd.conf: {name} is under {section!r}, not {want}")


def test_shipped_config_comments_out_the_defaults(settings):
    """A line commented out shows the default (set it and nothing changes), or
    an example when the comment above says "Default: " what the default is."""
    checked = 0
    for name, (_section, value, commented, comment) in conf_entries().items():
        if name not in settings:
            continue
        default = settings[name][1]
        if not commented or not PLAIN_DEFAULT.fullmatch(default):
            continue
        said = "Default: " + default.rstrip("L")
        assert value.rstrip("L") == default.rstrip("L") or said in comment, (
            f"etc/chatd.conf: '# {name} = {value};' but the default is {default}, "
            f"and the comment does not say {said!r}")
        checked += 1
    assert checked >= 20


def test_packaged_config_names_every_setting(settings):
    """packaging/chatd.conf, the package's /etc/chatd/chatd.conf, shows every setting too."""
    text = (SRC / "packaging" / "chatd.conf").read_text()
    missing = [n for n in settings if not re.search(rf"^(# )?{n} = ", text, re.M)]
    assert missing == [], "not in packaging/chatd.conf"
