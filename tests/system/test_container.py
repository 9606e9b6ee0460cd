"""
test_container.py - chatd installed from its .deb in a booted Debian 12
container, checked as an administrator would: systemctl, journalctl,
chatctl, logrotate, the watchdog and socket activation, the commands
README.md and docs/ADMIN.md show for certificates, TLS off and the
sandbox's score, as typed, then "apt remove chatd" and "apt purge chatd".

The tests share one container and run in file order; each leaves chatd.service
running with the packaged configuration, but for the last two, which
uninstall the package.  Clients connect from the host
into the container's network namespace (nspawn.Container.in_netns).
"""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from chatproto import Client
from conftest import FAULT_ENV, FAULT_LISTENER_HANG, SRC

PORT = 7777
TLS_PORT = 7778
# ssl-cert's pair, made when that package was installed; the packaged
# chatd.conf names it.
SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
# A documentation address (RFC 5737) put on the container's own loopback
# device: a peer that is not loopback, without leaving the container.
REMOTE_ADDR = "192.0.2.7"
DROPIN_DIR = "/run/systemd/system/chatd.service.d"


def doc_text(name):
    """README.md or docs/NAME, its white space folded: commands split over lines join."""
    path = os.path.join(SRC, name) if name == "README.md" else os.path.join(SRC, "docs", name)
    return re.sub(r"\s+", " ", open(path, encoding="utf-8").read())


def doc_command(name, pattern):
    """The command a document shows where pattern (its first group) finds it."""
    m = re.search(pattern, doc_text(name))
    assert m, f"{name} no longer says {pattern!r}"
    return m.group(1)


def wait_until(what, predicate, timeout=15.0, interval=0.05):
    """Polls predicate() until it returns something true; fails naming what."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(interval)


def client(box, label):
    return box.in_netns(lambda: Client(label).connect(PORT))


def logged_in(box, name, password="correct horse"):
    c = client(box, name)
    c.login(name, password)
    return c


def port_refuses(box):
    try:
        box.connect(PORT, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def journal_cursor(box):
    out = box.run("journalctl", "--no-pager", "-n", "0", "--show-cursor").stdout
    return re.search(r"^-- cursor: (\S+)", out, re.M).group(1)


def journal_after(box, cursor):
    return box.run("journalctl", "--no-pager", "-u", "chatd.service",
                   f"--after-cursor={cursor}").stdout


def dropin(box, name, text):
    box.sh(f"mkdir -p {DROPIN_DIR} && cat > {DROPIN_DIR}/{name}.conf && "
           "systemctl daemon-reload", input=text)


def remove_dropin(box, name):
    box.sh(f"rm -f {DROPIN_DIR}/{name}.conf && systemctl daemon-reload")


def ensure_running(box):
    box.run("systemctl", "reset-failed", "chatd.service", check=False)
    box.run("systemctl", "start", "chatd.service")
    wait_until("chatd to serve", lambda: box.unit("ActiveState") == "active"
               and not port_refuses(box))


# --- installation ----------------------------------------------------------

def test_package_installs_a_running_enabled_service(box):
    assert box.run("systemctl", "is-enabled", "chatd.service").stdout.strip() == "enabled"
    # The alternative start stays off: both would want the same port.
    r = box.run("systemctl", "is-enabled", "chatd.socket", check=False)
    assert r.stdout.strip() == "disabled", r.stdout
    wait_until("chatd.service active", lambda: box.unit("ActiveState") == "active")
    c = client(box, "probe")
    c.expect_hello()
    c.close()


def test_service_runs_as_chatd_with_the_admin_group(box):
    pid = box.unit("MainPID")
    status = box.run("cat", f"/proc/{pid}/status").stdout
    uid = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    assert box.run("id", "-u", "chatd").stdout.strip() == uid
    admin_gid = box.run("getent", "group", "chatd-admin").stdout.split(":")[2]
    assert admin_gid in groups
    caps = re.search(r"^CapEff:\s+(\w+)", status, re.M).group(1)
    assert int(caps, 16) == 0


def test_packaged_config_keeps_state_in_the_service_directories(box):
    shown = box.run("chatd", "-T", "-c", "/etc/chatd/chatd.conf").stdout
    assert re.search(r'^state_dir = "/var/lib/chatd";', shown, re.M)
    assert re.search(r'^log_file = "/var/log/chatd/chatd.log";', shown, re.M)
    assert re.search(r'^port_tries = 0;', shown, re.M)
    stat = box.run("stat", "-c", "%U:%G %a", "/var/lib/chatd", "/var/log/chatd").stdout.split("\n")
    assert stat[0] == "chatd:chatd 750" and stat[1] == "chatd:chatd 750", stat


# --- TLS as installed: ssl-cert's snakeoil pair --------------------------------

def served_certificate(port):
    """The DER certificate chatd presents on port (nothing verified: the
    test compares it with the file)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def snakeoil_fingerprint(box):
    """As docs/ADMIN.md tells the administrator to print it: "AB:CD:..."."""
    out = box.run("openssl", "x509", "-noout", "-fingerprint", "-sha256",
                  "-in", SNAKEOIL_CERT).stdout
    return re.fullmatch(r"(?i)sha256 Fingerprint=([0-9A-F:]{95})\n", out).group(1)


def test_package_puts_chatd_in_the_group_ssl_cert(box):
    ssl_cert_gid = box.run("getent", "group", "ssl-cert").stdout.split(":")[2]
    assert "ssl-cert" in box.run("id", "-nG", "chatd").stdout.split()
    # The service gets it from the group database: the unit does not name it.
    pid = box.unit("MainPID")
    status = box.run("cat", f"/proc/{pid}/status").stdout
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    assert ssl_cert_gid in groups, (ssl_cert_gid, groups)
    assert "ssl-cert" not in box.unit("SupplementaryGroups").split()
    # The key as Debian ships it, which chatd loaded.
    key = box.run("stat", "-c", "%U:%G %a", SNAKEOIL_KEY).stdout.strip()
    assert key == "root:ssl-cert 640"


def test_installed_chatd_serves_tls_with_the_snakeoil_certificate(box):
    wait_until("chatd.service active", lambda: box.unit("ActiveState") == "active")
    served = box.in_netns(served_certificate, TLS_PORT)
    pem = box.run("cat", SNAKEOIL_CERT).stdout
    assert served == ssl.PEM_cert_to_DER_cert(pem)
    # The fingerprint docs/ADMIN.md has the administrator print is the served one's.
    assert hashlib.sha256(served).hexdigest().upper() == snakeoil_fingerprint(box).replace(":", "")
    assert "TLS certificate loaded" in box.journal()


def test_packaged_chat_logs_in_over_tls_pinning_the_fingerprint(box):
    pin = "SHA256:" + snakeoil_fingerprint(box)
    said = box.sh(f"CHAT_PASSWORD='correct horse' chat --tls --fingerprint {pin} "
                  "-n tlsalice 127.0.0.1", input="hello over tls\n", check=False)
    assert said.returncode == 0, said.stdout + said.stderr
    assert re.search(r"^WELCOME tlsalice ", said.stdout, re.M), said.stdout
    assert re.search(r"^OK \d+ sent$", said.stdout, re.M), said.stdout
    assert "hello over tls" in box.run("cat", "/var/lib/chatd/history").stdout
    # Another certificate than the pinned one: refused before anything is sent.
    wrong = box.sh(f"CHAT_PASSWORD='correct horse' chat --tls --fingerprint SHA256:{'00' * 32} "
                   "-n tlsalice 127.0.0.1", input="not sent\n", check=False)
    assert wrong.returncode == 8, wrong.stdout + wrong.stderr


def rfc3339_not_after(box, path):
    """A certificate's notAfter as chatd writes times (RFC 3339, UTC, ms)."""
    out = box.run("openssl", "x509", "-noout", "-enddate", "-in", path).stdout
    seconds = ssl.cert_time_to_seconds(out.strip().split("=", 1)[1])
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def test_new_snakeoil_pair_is_loaded_by_reload_as_admin_md_shows(box):
    """docs/ADMIN.md: `make-ssl-cert generate-default-snakeoil --force-overwrite`
    makes a new pair and `systemctl reload chatd` loads it, as typed: new
    handshakes get it, a client online stays, and `chatctl status` and
    `systemctl status chatd` name the new one's expiry."""
    make = doc_command("ADMIN.md", r"`(make-ssl-cert generate-default-snakeoil "
                       r"--force-overwrite)` makes a new pair")
    reload = doc_command("ADMIN.md", r"a new fingerprint to hand out\); `(systemctl reload "
                         r"chatd)` loads it")
    wait_until("chatd.service active", lambda: box.unit("ActiveState") == "active")
    before = box.in_netns(served_certificate, TLS_PORT)
    alice = logged_in(box, "renewalice")
    try:
        box.sh(make, timeout=120)
        new = ssl.PEM_cert_to_DER_cert(box.run("cat", SNAKEOIL_CERT).stdout)
        assert new != before
        box.sh(reload)
        wait_until("the new certificate served",
                   lambda: box.in_netns(served_certificate, TLS_PORT) == new)
        alice.say("still online after the reload")
    finally:
        alice.close()
    expires = f", expires {rfc3339_not_after(box, SNAKEOIL_CERT)}"
    if box.features["ctl"]:
        status = box.run("chatctl", "status").stdout
        tls = re.search(r"^tls: subject: \S.*$", status, re.M)
        assert tls and tls.group(0).endswith(expires), status
    if box.features["notify"]:
        wait_until("systemctl status chatd to name the new certificate",
                   lambda: expires in box.sh("systemctl status chatd", check=False).stdout)


def test_installed_chatd_takes_no_password_in_clear_from_other_hosts(box):
    netns = ["nsenter", f"--net=/proc/{box.leader}/ns/net", "--", "ip", "addr"]
    subprocess.run(netns + ["add", f"{REMOTE_ADDR}/32", "dev", "lo"], check=True)
    try:
        remote = box.in_netns(lambda: Client("remote").connect(
            PORT, source_addr=REMOTE_ADDR, host=REMOTE_ADDR))
        try:
            remote.expect_hello()
            remote.send_line("remotebob")
            err = remote.expect("ERR")
            assert err[0] == "426" and err.raw.endswith(f"port {TLS_PORT}"), err.raw
        finally:
            remote.close()
    finally:
        subprocess.run(netns + ["del", f"{REMOTE_ADDR}/32", "dev", "lo"], check=False)
    # From this host, as every other test here logs in.
    logged_in(box, "localcarl").close()


def test_certbot_deploy_hook_as_admin_md_shows(box):
    """docs/ADMIN.md's certbot deploy hook, word for word, at the path and mode
    it names, run as certbot runs it (RENEWED_LINEAGE: a pair made here, the key
    root's alone as certbot keeps it), with tls_cert and tls_key set as it says:
    chatd serves the new pair, its files root:chatd 0640."""
    admin = open(os.path.join(SRC, "docs", "ADMIN.md"), encoding="utf-8").read()
    block = re.search(r"^  ```sh\n(.*?)^  ```", admin, re.M | re.S).group(1)
    hook = "".join(line[2:] + "\n" for line in block.splitlines())
    path = doc_command("ADMIN.md", r"for example `(/etc/letsencrypt/renewal-hooks/deploy/\S+)` "
                       r"\(mode 0755\)")
    settings = re.findall(r'`(tls_(?:cert|key) = "[^"]+";)`', doc_text("ADMIN.md"))
    assert [x.split()[0] for x in settings] == ["tls_cert", "tls_key"], settings
    lineage = "/etc/letsencrypt/live/chat.example"
    box.sh(f"mkdir -p {lineage} && umask 077 && openssl req -x509 -newkey rsa:2048 -nodes "
           f"-days 30 -subj /CN=chat.example -keyout {lineage}/privkey.pem "
           f"-out {lineage}/fullchain.pem", timeout=120)
    box.sh(f"mkdir -p {os.path.dirname(path)} && cat > {path} && chmod 0755 {path}", input=hook)
    conf_path = "/etc/chatd/chatd.conf"
    conf = box.run("cat", conf_path).stdout
    assert conf.count(f'tls_cert = "{SNAKEOIL_CERT}";\n') == 1, conf
    assert conf.count(f'tls_key = "{SNAKEOIL_KEY}";\n') == 1, conf
    certbot = conf.replace(f'tls_cert = "{SNAKEOIL_CERT}";\n', settings[0] + "\n")
    certbot = certbot.replace(f'tls_key = "{SNAKEOIL_KEY}";\n', settings[1] + "\n")
    try:
        box.run("tee", conf_path, input=certbot)
        box.run("env", f"RENEWED_LINEAGE={lineage}", path)
        new = ssl.PEM_cert_to_DER_cert(box.run("cat", f"{lineage}/fullchain.pem").stdout)
        wait_until("the certbot pair served",
                   lambda: box.in_netns(served_certificate, TLS_PORT) == new)
        for name in re.findall(r'"(/etc/chatd/[^"]+)"', " ".join(settings)):
            assert box.run("stat", "-c", "%U:%G %a", name).stdout.strip() == "root:chatd 640"
    finally:
        box.run("tee", conf_path, input=conf)
        box.run("systemctl", "reload", "chatd.service", check=False)
        box.sh("rm -rf /etc/letsencrypt /etc/chatd/tls-cert.pem /etc/chatd/tls-key.pem")
    snakeoil = ssl.PEM_cert_to_DER_cert(box.run("cat", SNAKEOIL_CERT).stdout)
    wait_until("the snakeoil pair served again",
               lambda: box.in_netns(served_certificate, TLS_PORT) == snakeoil)


def test_tls_off_as_admin_md_shows(box):
    """docs/ADMIN.md, "TLS off": comment out tls_cert and tls_key and
    `systemctl restart chatd`, as typed: no TLS port, and a login in clear
    from another host is taken."""
    restart = doc_command("ADMIN.md", r"\*\*TLS off:\*\* comment out `tls_cert` and "
                          r"`tls_key` and `(systemctl restart chatd)`")
    conf_path = "/etc/chatd/chatd.conf"
    conf = box.run("cat", conf_path).stdout
    off, n = re.subn(r"^(tls_(?:cert|key) = )", r"# \1", conf, flags=re.M)
    assert n == 2, conf
    netns = ["nsenter", f"--net=/proc/{box.leader}/ns/net", "--", "ip", "addr"]
    try:
        box.run("tee", conf_path, input=off)
        box.sh(restart)
        wait_until("chatd to serve again", lambda: box.unit("ActiveState") == "active"
                   and not port_refuses(box))
        with pytest.raises(ConnectionRefusedError):
            box.connect(TLS_PORT, timeout=2).close()
        subprocess.run(netns + ["add", f"{REMOTE_ADDR}/32", "dev", "lo"], check=True)
        remote = box.in_netns(lambda: Client("remote").connect(
            PORT, source_addr=REMOTE_ADDR, host=REMOTE_ADDR))
        try:
            remote.login("remotedan", "correct horse")
        finally:
            remote.close()
    finally:
        subprocess.run(netns + ["del", f"{REMOTE_ADDR}/32", "dev", "lo"], check=False)
        box.run("tee", conf_path, input=conf)
        box.sh(restart, check=False)
        ensure_running(box)
    wait_until("TLS served again", lambda: box.in_netns(served_certificate, TLS_PORT))


# --- start, status, chat ---------------------------------------------------

def test_start_returns_only_once_chatd_serves(box):
    box.require("notify")
    box.run("systemctl", "stop", "chatd.service")
    assert port_refuses(box)
    box.run("systemctl", "start", "chatd.service")
    # No retry: when "systemctl start" returns, the port must answer.
    c = client(box, "first")
    c.expect_hello()
    c.close()


def test_status_shows_the_port(box):
    box.require("notify")
    text = wait_until("a STATUS= text", lambda: box.unit("StatusText"))
    assert f":{PORT}" in text, text
    status = box.run("systemctl", "status", "--no-pager", "chatd.service", check=False).stdout
    assert f'Status: "{text}"' in status, status


def test_status_counts_clients_online(box):
    box.require("notify")
    before = wait_until("a STATUS= text", lambda: box.unit("StatusText"))
    alice = logged_in(box, "statusalice")
    try:
        wait_until("STATUS to count the client", lambda: box.unit("StatusText") != before,
                   timeout=5)
    finally:
        alice.close()
    wait_until("STATUS to count the departure", lambda: box.unit("StatusText") == before,
               timeout=5)


def test_clients_chat_and_state_is_kept(box):
    alice = logged_in(box, "alice")
    bob = logged_in(box, "bob")
    msg_id = alice.say("hello from the container")
    line = bob.wait_for("MSG", lambda m: m[-1] == "hello from the container")
    assert line.id == msg_id and line[2] == "alice"
    alice.close()
    bob.close()
    ident = box.run("stat", "-c", "%U %a", "/var/lib/chatd/ident").stdout.split()
    assert ident == ["chatd", "600"]
    assert "hello from the container" in box.run("cat", "/var/lib/chatd/history").stdout


def test_busy_port_fails_the_start_loudly(box):
    box.run("systemctl", "stop", "chatd.service")
    squatter = box.in_netns(socket.create_server, ("0.0.0.0", PORT))
    try:
        started = box.run("systemctl", "start", "chatd.service", check=False)
        if box.features["notify"]:
            assert started.returncode != 0
        wait_until("the busy port in the journal",
                   lambda: f"port {PORT} is busy" in box.journal("-n", "50"))
        # port_tries = 0: chatd did not move to the next port.
        with pytest.raises(ConnectionRefusedError):
            box.connect(PORT + 1, timeout=2).close()
    finally:
        box.run("systemctl", "stop", "chatd.service", check=False)
        squatter.close()
    ensure_running(box)


# --- logging -----------------------------------------------------------------

def test_journal_priorities_filter_warnings(box):
    # A fixed setting changed and reloaded is a warning, never an error.
    box.sh("sed -i 's/^# max_line = 4096;/max_line = 8192;/' /etc/chatd/chatd.conf")
    try:
        box.run("systemctl", "reload", "chatd.service")
        wait_until("the reload warning", lambda: "max_line changed" in
                   box.journal("-p", "warning"))
    finally:
        box.sh("sed -i 's/^max_line = 8192;/# max_line = 4096;/' /etc/chatd/chatd.conf")
    warnings = box.journal("-p", "warning")
    everything = box.journal()
    assert "listening on" in everything
    assert "listening on" not in warnings
    entries = [json.loads(line) for line in box.run(
        "journalctl", "--no-pager", "-o", "json", "-u", "chatd.service",
        "-p", "warning").stdout.splitlines()]
    assert entries and all(int(e["PRIORITY"]) <= 4 for e in entries)


def test_logrotate_rotates_and_chatd_reopens(box):
    box.run("logrotate", "--force", "/etc/logrotate.d/chatd")
    listing = box.run("ls", "/var/log/chatd").stdout.split()
    assert "chatd.log.1" in listing, listing
    # chatd reopened on SIGHUP: a new chatd.log, written by chatd.
    wait_until("a new chatd.log", lambda: box.run(
        "test", "-s", "/var/log/chatd/chatd.log", check=False).returncode == 0)
    owner = box.run("stat", "-c", "%U", "/var/log/chatd/chatd.log").stdout.strip()
    assert owner == "chatd"
    c = logged_in(box, "afterrotate")
    c.close()


# --- chatctl -------------------------------------------------------------------

def test_chatctl_works_for_root_and_admins_only(box):
    box.require("ctl")
    box.run("useradd", "--create-home", "carol")
    box.run("useradd", "--create-home", "--groups", "chatd-admin", "dave")
    assert box.run("chatctl", "status").returncode == 0
    refused = box.run("chatctl", "status", user="carol", check=False)
    assert refused.returncode != 0
    assert "permission denied" in (refused.stdout + refused.stderr).lower()
    assert box.run("chatctl", "status", user="dave").returncode == 0
    sock = box.run("stat", "-c", "%U:%G %a", "/run/chatd/admin.sock").stdout.strip()
    assert sock == "chatd:chatd-admin 660"


def test_chatctl_pause_resume_log_and_stop(box):
    box.require("ctl")
    box.run("chatctl", "pause")
    wait_until("the port to close", lambda: port_refuses(box))
    if box.features["notify"]:
        assert "paused" in box.unit("StatusText")
    box.run("chatctl", "resume")
    c = client(box, "resumed")
    c.expect_hello()
    c.close()
    assert "listening" in box.run("chatctl", "log", "show").stdout
    box.run("chatctl", "stop")
    wait_until("chatd to stop", lambda: box.unit("ActiveState") == "inactive")
    # A stop asked for is no failure: no restart.
    assert box.unit("Result") == "success"
    ensure_running(box)


# --- watchdog, stop, socket activation -------------------------------------------

def trigger_listener_hang(box):
    box.connect(PORT).close()          # the listener stops after this accept


def trigger_room_hang(box):
    c = client(box, "trigger")         # the first room event keeps the room lock
    c.send_raw(b"roomhang\ncorrect horse\nanyone here?\n")
    return c


@pytest.mark.parametrize("fault, trigger", [
    (FAULT_LISTENER_HANG, trigger_listener_hang),
    ("room-hang", trigger_room_hang),
])
def test_watchdog_restarts_a_hung_chatd(box, fault, trigger):
    box.require("notify", "fault")
    cursor = journal_cursor(box)
    dropin(box, "fault", f"[Service]\nEnvironment={FAULT_ENV}={fault}\nWatchdogSec=2s\n")
    box.run("systemctl", "restart", "chatd.service")
    # The chatd the watchdog starts next runs without the fault.
    remove_dropin(box, "fault")
    hung_pid = box.unit("MainPID")
    restarts = int(box.unit("NRestarts"))
    held = trigger(box)
    try:
        wait_until("a restart by the watchdog",
                   lambda: int(box.unit("NRestarts")) > restarts, timeout=20)
    finally:
        if held is not None:
            held.close()
    journal = journal_after(box, cursor)
    assert "Watchdog timeout" in journal
    # The watchdog's SIGABRT ends chatd at once; no SIGKILL after a timeout.
    assert "State 'stop-watchdog' timed out" not in journal
    wait_until("the new chatd", lambda: box.unit("ActiveState") == "active"
               and box.unit("MainPID") not in ("0", hung_pid))
    for name in ("afterhang1", "afterhang2"):
        logged_in(box, name).close()


def test_stop_says_bye_to_clients(box):
    c = logged_in(box, "leaver")
    box.run("systemctl", "stop", "chatd.service")
    lines = c.read_until_closed(timeout=10)
    assert any(line.tag == "BYE" and line[0] == "shutdown" for line in lines), lines
    assert box.unit("Result") == "success"
    ensure_running(box)


def test_socket_unit_starts_chatd_on_first_connection(box):
    box.require("activation")
    box.run("systemctl", "stop", "chatd.service")
    box.run("systemctl", "reset-failed", "chatd.service", "chatd.socket", check=False)
    box.run("systemctl", "start", "chatd.socket")
    try:
        assert box.unit("ActiveState") == "inactive"
        c = client(box, "activator")
        # The HELLO itself shows that the first connection started chatd.
        c.login("activated", "correct horse", hello_timeout=10)
        assert box.unit("ActiveState") == "active"
        c.close()
        # The socket's second port is chatd's TLS listener, with the snakeoil pair.
        served = box.in_netns(served_certificate, TLS_PORT)
        pem = box.run("cat", SNAKEOIL_CERT).stdout
        assert served == ssl.PEM_cert_to_DER_cert(pem)
        if box.features["ctl"]:
            # Pause never gives the passed socket up: it turns clients away.
            box.run("chatctl", "pause")
            c = client(box, "while-paused")
            c.expect("ERR", "503")
            c.close()
            box.run("chatctl", "resume")
            c = client(box, "after-pause")
            c.expect_hello()
            c.close()
    finally:
        box.run("systemctl", "stop", "chatd.socket", "chatd.service", check=False)
    ensure_running(box)


def test_classic_daemon_as_root_outside_systemd(box):
    box.require("daemon")
    box.run("systemctl", "stop", "chatd.service")
    pid = ""
    try:
        # Returns only once the daemon serves, no retry needed.
        box.run("chatd", "--daemon", "-c", "/etc/chatd/chatd.conf")
        c = client(box, "classic")
        c.expect_hello()
        c.close()
        pid = box.run("cat", "/run/chatd/chatd.pid").stdout.strip()
        status = box.run("cat", f"/proc/{pid}/status").stdout
        uid = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", status, re.M).groups()
        assert set(uid) == {box.run("id", "-u", "chatd").stdout.strip()}
        second = box.run("chatd", "--daemon", "-c", "/etc/chatd/chatd.conf", check=False)
        assert second.returncode != 0 and second.stderr.strip()
    finally:
        box.sh("test -s /run/chatd/chatd.pid && kill $(cat /run/chatd/chatd.pid)", check=False)
    wait_until("the classic daemon to stop", lambda: not pid or box.run(
        "test", "-e", f"/proc/{pid}", check=False).returncode != 0)
    # Everything it made belongs to chatd: the service starts on the same files.
    ensure_running(box)


# --- lock-down --------------------------------------------------------------------

def test_security_score_inside_matches_the_offline_one(box, offline_exposure):
    # As docs/ADMIN.md has it typed.
    out = box.sh(doc_command("ADMIN.md", r"`(systemd-analyze security chatd)`")).stdout
    inside = float(re.search(r"Overall exposure level for chatd\.service: (\d+\.\d)", out).group(1))
    assert inside == offline_exposure
    assert inside <= 1.5


# --- removal and purge (last: they uninstall the package) -------------------------

def test_remove_stops_the_socket_too(box):
    """An administrator who chose socket activation removes the package: the
    socket must not keep the port, nor start a chatd that is gone."""
    box.require("activation")
    box.run("systemctl", "disable", "--now", "chatd.service")
    box.run("systemctl", "enable", "--now", "chatd.socket")
    c = client(box, "before-remove")
    c.login("remover", "correct horse", hello_timeout=10)
    c.close()
    assert box.unit("ActiveState") == "active"
    # As README.md has it typed; "Y" answers apt if it asks.
    box.sh(doc_command("README.md", r"`(apt remove chatd)` stops"), input="Y\n", timeout=120)
    for unit in ("chatd.socket", "chatd.service"):
        state = box.run("systemctl", "is-active", unit, check=False).stdout.strip()
        assert state == "inactive", f"{unit} is {state} after apt remove"
    assert port_refuses(box)
    # Removal keeps what chatd made, and the configuration.
    for path in ("/var/lib/chatd/history", "/var/lib/chatd/ident", "/var/log/chatd",
                 "/etc/chatd/chatd.conf"):
        assert box.run("test", "-e", path, check=False).returncode == 0, f"{path} is gone"


def test_purge_removes_logs_state_and_configuration(box):
    # Removed by the test above, or still installed if it was skipped; as
    # README.md has it typed ("Y" answers apt if it asks).
    box.sh(doc_command("README.md", r"`(apt purge chatd)` \(`dpkg --purge`\)"), input="Y\n",
           timeout=120)
    for path in ("/var/lib/chatd", "/var/log/chatd", "/etc/chatd",
                 "/etc/systemd/system/sockets.target.wants/chatd.socket"):
        assert box.run("test", "-e", path, check=False).returncode != 0, f"{path} is left"
    # The system user and the admin group stay (docs: README.md, packaging).
    assert box.run("id", "-u", "chatd", check=False).returncode == 0
    assert box.run("getent", "group", "chatd-admin", check=False).returncode == 0
