"""
test_tls_systemd.py - TLS as systemd sees it: STATUS names the certificate,
a reload renews it, and socket activation (Debian's systemd-socket-activate)
hands chatd a TLS listener, told apart by its name ("tls") or by tls_port.
"""

import shutil
import signal
import subprocess
import time

import pytest

from chatproto import Client, deadline_in, scaled
from conftest import CHATD_BIN, config_text, free_port
from test_systemd import NotifySocket
from tlsfixtures import TestCA, TLSClient


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def notify():
    ns = NotifySocket()
    yield ns
    ns.close()


def test_status_names_the_certificate_and_follows_a_reload(chatd_factory, notify, ca,
                                                           tmp_path):
    cert, key = ca.server("first")
    live_cert, live_key = tmp_path / "c.pem", tmp_path / "k.pem"
    live_cert.write_bytes(cert.read_bytes())
    live_key.write_bytes(key.read_bytes())
    chatd = chatd_factory(start=False, tls_cert=str(live_cert), tls_key=str(live_key),
                          tls_port=free_port())
    chatd.env["NOTIFY_SOCKET"] = notify.path
    chatd.start()
    notify.wait_for("STATUS", lambda v: f"{chatd.tls_port} (TLS)" in v
                    and "TLS certificate CN=localhost, expires " in v)
    renewed, renewed_key = ca.server("second", cn="renewed.test")
    live_cert.write_bytes(renewed.read_bytes())
    live_key.write_bytes(renewed_key.read_bytes())
    chatd.send_signal(signal.SIGHUP)
    notify.wait_for("STATUS", lambda v: "TLS certificate CN=renewed.test" in v)


class Activated:
    """chatd started by systemd-socket-activate with a plain port, a TLS port
    and the admin socket."""

    def __init__(self, workdir, admin_socket, ca, names):
        self.port, self.tls_port = free_port(), free_port()
        cert, key = ca.server("activated")
        state = workdir / "state"
        state.mkdir(parents=True)
        self.log = state / "chatd.log"
        config = workdir / "chatd.conf"
        settings = {"state_dir": str(state), "admin_socket": admin_socket, "hash_cost": 1,
                    "tls_cert": str(cert), "tls_key": str(key)}
        if names == "listen:listen:admin":  # told apart by the port
            settings["tls_port"] = self.tls_port
        config.write_text(config_text(settings))
        self.stderr = open(workdir / "stderr", "w")
        self.proc = subprocess.Popen(
            ["systemd-socket-activate", "-l", f"127.0.0.1:{self.port}", "-l",
             f"127.0.0.1:{self.tls_port}", "-l", admin_socket, f"--fdname={names}",
             CHATD_BIN, "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
            cwd=workdir)

    def connect(self, client, **kwargs):
        deadline = deadline_in(10)
        while True:
            try:
                return client(**kwargs)
            except ConnectionRefusedError:      # systemd-socket-activate still binding
                assert time.monotonic() < deadline, "systemd-socket-activate never listened"
                time.sleep(0.02)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(scaled(10))
        finally:
            self.stderr.close()


@pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                    reason="systemd-socket-activate is not installed")
@pytest.mark.parametrize("names", ["listen:tls:admin", "listen:listen:admin"])
def test_socket_activation_with_a_tls_listener(chatd_factory, tmp_path, ca, names):
    helper = chatd_factory(start=False)      # only for its chatctl and admin socket path
    activated = Activated(tmp_path / "activated", str(helper.admin_socket), ca, names)
    try:
        alice = activated.connect(lambda: TLSClient("alice").connect_tls(
            activated.tls_port, ca.context()))
        alice.login("alice", "pw-alice")
        assert alice.sock.version() == "TLSv1.3"
        bob = activated.connect(lambda: Client("bob").connect(activated.port))
        bob.login("bob", "pw-bob")
        msg_id = alice.say("through systemd's TLS socket")
        assert bob.wait_for("MSG").id == msg_id
        status = helper.ctl_ok("status")
        assert (f"listening: 127.0.0.1:{activated.port}, 127.0.0.1:{activated.tls_port} (TLS)"
                in status)
        alice.close()
        bob.close()
    finally:
        rc = activated.stop()
    assert rc == 0
    assert "listening on 2 sockets from systemd" in activated.log.read_text()
