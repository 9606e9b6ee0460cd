"""
test_text.py - what chatd does with hostile bytes: over-long lines, invalid
UTF-8, control characters, bidi controls, line separators, invisible format
and tag characters, and random junk; and the joiners it lets through.
"""

import random

import pytest

# Each must be refused with ERR 422, whatever surrounds it.
BAD_TEXT = {
    "overlong C0 AF": b"\xc0\xaf",
    "overlong E0 80 AF": b"\xe0\x80\xaf",
    "surrogate ED A0 80": b"\xed\xa0\x80",
    "above U+10FFFF F4 90 80 80": b"\xf4\x90\x80\x80",
    "truncated E2 82": b"\xe2\x82",
    "truncated at the end E2 82": b"\xe2\x82",
    "stray continuation 80": b"\x80",
    "byte FF": b"\xff",
    "byte F5": b"\xf5\x80\x80\x80",
    "C1 control C2 85": b"\xc2\x85",
    "C0 control TAB": b"\t",
    "C0 control NUL": b"\x00",
    "C0 control BEL": b"\x07",
    "lone CR": b"\r",
    "DEL": b"\x7f",
    "ESC sequence": b"\x1b[31m",
    "bidi override E2 80 AE": b"\xe2\x80\xae",
    "bidi isolate E2 81 A6": b"\xe2\x81\xa6",
    "LRM U+200E": "\u200e".encode(),
    "RLM U+200F": "\u200f".encode(),
    "ALM U+061C": "\u061c".encode(),
    "line separator U+2028": "\u2028".encode(),
    "paragraph separator U+2029": "\u2029".encode(),
    "zero width space U+200B": "\u200b".encode(),
    "word joiner U+2060": "\u2060".encode(),
    "zero width no-break space U+FEFF": "\ufeff".encode(),
    "soft hyphen U+00AD": "\u00ad".encode(),
    "interlinear annotation U+FFF9": "\ufff9".encode(),
    "language tag U+E0001": "\U000e0001".encode(),
    "tag characters U+E0020-E007F": "".join(chr(0xe0000 + ord(c)) for c in "hidden").encode(),
    "cancel tag U+E007F": "\U000e007f".encode(),
}


def test_bad_text_is_refused_and_never_forwarded(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    refused = []
    for n, (what, bad) in enumerate(BAD_TEXT.items()):
        tail = b"" if what.startswith("truncated at the end") else b" tail"
        sender.send_line(f"evil{n:02d} ".encode() + bad + tail)
        data, final = sender.collect_reply()
        if data or final.tag != "ERR" or final[0] != "422":
            refused.append(f"{what}: got {data!r} {final.raw!r}")
        # The connection still works and the next message is the next one seen.
        marker = sender.say(f"marker {n}")
        got = reader.wait_for("MSG")
        if got.id != marker or got[3] != f"marker {n}":
            refused.append(f"{what}: reader got {got.raw!r} before marker {n}")
    assert not refused, "\n".join(refused)
    assert b"evil" not in chatd.history_path.read_bytes()
    assert b"evil" not in chatd.log_path.read_bytes()


# Allowed on purpose (docs/PROTOCOL.md): delivered exactly as sent.
JOINERS = {
    "emoji ZWJ sequence": "family \U0001f468\u200d\U0001f469\u200d\U0001f467",
    "Persian ZWNJ": "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
    "variation selector": "\u2764\ufe0f",
}


def test_joiners_pass_unchanged(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    for what, text in JOINERS.items():
        msg_id = sender.say(text)
        got = reader.wait_for("MSG")
        assert (got.id, got[3]) == (msg_id, text), what


@pytest.mark.parametrize("what", ["line separator U+2028", "zero width space U+200B",
                                  "RLM U+200F", "language tag U+E0001"])
def test_invisible_characters_refused_in_names_and_passwords(chatd, what):
    bad = BAD_TEXT[what]
    c = chatd.connect("name")
    c.expect_hello()
    c.send_line(b"al" + bad + b"ice")
    assert c.expect("ERR")[0] == "422"
    c.send_line(b"alice")
    c.expect("PASS", "new")
    c.send_line(b"pass" + bad + b"word")
    assert c.expect("ERR")[0] == "422"


def test_bad_text_in_private_message(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    data, final = sender.request(b"/msg reader bad \x1b[2J bytes")
    assert final.tag == "ERR" and final[0] == "422", final
    marker = sender.say("marker")
    assert reader.wait_for("MSG").id == marker
    reader.sync()
    assert reader.live_of("PRIV") == []


def test_line_of_max_line_bytes_is_accepted(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    text = "x" * 4096
    msg_id = sender.say(text)
    got = reader.wait_for("MSG")
    assert (got.id, got[3]) == (msg_id, text)


def test_over_long_line_gets_413_and_connection_survives(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    data, final = sender.request("y" * 4097)
    assert data == [] and final.tag == "ERR" and final[0] == "413", final
    msg_id = sender.say("short one")
    got = reader.wait_for("MSG")
    assert (got.id, got[3]) == (msg_id, "short one")


def test_one_megabyte_line_in_pieces(chatd):
    sender = chatd.login("sender")
    reader = chatd.login("reader")
    piece = b"z" * 65536
    for _ in range(16):
        sender.send_raw(piece)
    sender.send_raw(b"\n")
    data, final = sender.collect_reply(timeout=10)
    assert data == [] and final.tag == "ERR" and final[0] == "413", final
    # Exactly one ERR for the whole line: the next reply is the ping's.
    data, final = sender.request("/ping after")
    assert [d.raw for d in data] == ["PONG after"] and final.tag == "OK", (data, final)
    msg_id = sender.say("after the big one")
    got = reader.wait_for("MSG")
    assert (got.id, got[3]) == (msg_id, "after the big one")


def test_over_long_line_with_custom_max_line(chatd_factory):
    d = chatd_factory(max_line=100)
    sender = d.login("sender")
    assert sender.say("q" * 100)
    data, final = sender.request("q" * 101)
    assert final.tag == "ERR" and final[0] == "413", final
    sender.sync()


def test_over_long_name_line_before_login(chatd):
    c = chatd.connect("longname")
    c.expect_hello()
    c.send_line("n" * 5000)
    err = c.expect("ERR")
    assert err[0] in ("413", "423"), err
    c.send_line("fine")
    c.expect("PASS", "new")


@pytest.mark.parametrize("logged_in", [True, False])
def test_binary_junk_never_crashes(chatd, logged_in):
    rng = random.Random(20261121)
    a = chatd.login("steady1")
    b = chatd.login("steady2")
    junk = chatd.connect("junk")
    if logged_in:
        junk.login("junk", "pw")
    for _ in range(64):
        chunk = bytearray(rng.randbytes(2048))
        for _ in range(8):
            chunk[rng.randrange(len(chunk))] = 0x0A
        try:
            junk.send_raw(bytes(chunk))
        except (BrokenPipeError, ConnectionResetError):
            break   # chatd may hang up on a junk sender; it must not crash
    junk.close()

    msg_id = a.say("are we fine?")
    got = b.wait_for("MSG", lambda l: l[2] == "steady1")
    assert (got.id, got[3]) == (msg_id, "are we fine?")
    reply = b.say("we are")
    assert a.wait_for("MSG", lambda l: l[2] == "steady2").id == reply
    assert chatd.alive()
    chatd.connect("after").login("after", "pw")


def test_chat_shows_invisible_characters_from_a_server_as_replacement():
    """A server that did send them (an older chatd, its history): chat shows
    each refused character as U+FFFD and leaves the joiners alone."""
    from chatclient import EXIT_OK, FakeServer, run_plain
    refused = ["\u2028", "\u2029", "\u200e", "\u200f", "\u061c", "\u200b", "\ufeff",
               "\u00ad", "\U000e0001", "\U000e0068"]
    text = "a" + "b".join(refused) + "c " + JOINERS["emoji ZWJ sequence"]
    server = FakeServer(b"MSG 1 2026-11-21T09:30:00.000Z eve " + text.encode() + b"\n")
    res = run_plain(["--name", "lee", "127.0.0.1", str(server.port)], "", password="pw")
    server.join()
    assert server.error is None
    assert res.rc == EXIT_OK, res
    msg = res.tagged("MSG")[0]
    assert msg.endswith("a" + "b".join(["\ufffd"] * len(refused)) + "c " +
                        JOINERS["emoji ZWJ sequence"]), ascii(msg)
    assert not any(ch in res.out for ch in refused)
