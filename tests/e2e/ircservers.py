"""
ircservers.py - the IRC servers tests/e2e/test_irc_clients.py drives real
clients against, behind one shape (IrcServer):

    server.host, server.port    where the clients connect (loopback)
    server.name                 "chatd" or "ngircd"
    server.login(nick, sasl)    -> Login(nick, password, sasl): what a client
                                gives to be let in as nick (an account made
                                for it where the server has accounts)
    server.restart()            stop and start again on the same port
    server.stop()

ChatdIrc is chatd's IRC port (conftest.py's chatd_factory with irc on;
accounts registered with chatctl).
Ngircd is ngIRCd (Debian's ngircd) as a stand-in while chatd has no IRC
port: no accounts, so login() gives the server password (PASS) that every
client needs, and SASL is not there.  Only the test's own thread uses them.
SaslRecorder is no server to chat on: a scripted peer that offers SASL
PLAIN, records the credentials a client sends and lets it join, so that the
drivers' SASL settings are checked with the real clients; its connections
are served by threads of its own, stopped by close().
"""

import base64
import select
import socket
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from chatproto import scaled
from ircclients import ClientError, free_port, wait_port

NGIRCD = "/usr/sbin/ngircd"


@dataclass
class Login:
    nick: str
    password: str | None
    sasl: bool


class NoSasl(Exception):
    """The server cannot log a client in with SASL."""


class Ngircd:
    name = "ngircd"
    host = "127.0.0.1"

    def __init__(self, workdir, password="AUTO"):
        """password: the server password (PASS) every client must give;
        "AUTO" makes one up, None has none."""
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = uuid.uuid4().hex[:12] if password == "AUTO" else password
        self.proc = None
        self.config_path = self.workdir / "ngircd.conf"
        self.out_path = self.workdir / "ngircd.out"

    def config_text(self):
        password = f"\tPassword = {self.password}\n" if self.password else ""
        return (
            "[Global]\n"
            "\tName = irc.chatd.test\n"
            "\tInfo = stand-in for chatd's IRC port in tests/e2e\n"
            # Loopback only, on a port chosen for this test.
            f"\tListen = {self.host}\n"
            f"\tPorts = {self.port}\n"
            "\tMotdPhrase = ngircd for the IRC client tests\n"
            f"{password}"
            "[Limits]\n"
            # All clients come from 127.0.0.1 (default: 5 per address).
            "\tMaxConnectionsIP = 0\n"
            "\tMaxJoins = 0\n"
            # No command penalties: irssi's burst after login (MODE, WHO)
            # would otherwise delay its autojoin by seconds.
            "\tMaxPenaltyTime = 0\n"
            "[Options]\n"
            "\tDNS = no\n"
            "\tIdent = no\n"
            "\tPAM = no\n")

    def start(self, timeout=10.0):
        if not Path(NGIRCD).exists():
            raise ClientError(f"{NGIRCD} missing: run scripts/deps")
        self.config_path.write_text(self.config_text())
        with open(self.out_path, "ab") as out:
            # -n: in the foreground, so the pid is ours; as root it runs as
            # nobody once it has read its configuration.
            self.proc = subprocess.Popen([NGIRCD, "-n", "-f", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_port(self.host, self.port, timeout, alive=lambda: self.proc.poll() is None,
                  what="ngircd")
        return self

    def stop(self, timeout=5.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=scaled(timeout))

    def restart(self):
        self.stop()
        # The clients see the connection drop; the port is free again once
        # the process is gone.
        return self.start()

    def login(self, nick, sasl=False):
        if sasl:
            raise NoSasl("ngIRCd has no SASL")
        return Login(nick, self.password, False)

    def cleanup(self):
        self.stop()
        return []


class ChatdIrc:
    """chatd with its IRC port on (settings irc, irc_listen, irc_port):
    accounts are registered with chatctl, then IRC clients log in to them by
    SASL PLAIN or by PASS."""

    name = "chatd"
    host = "127.0.0.1"

    def __init__(self, chatd_factory, **settings):
        self.daemon = chatd_factory(start=False, irc=True, irc_listen=[self.host],
                                    irc_port=free_port(), irc_tls_port=-1, **settings)
        self.accounts = set()

    @property
    def port(self):
        # conftest.py's Chatd reads the IRC port off the listening line when
        # it knows "(IRC)"; else it is the one chosen here.
        return getattr(self.daemon, "irc_port", None) or self.daemon.settings["irc_port"]

    def start(self, timeout=10.0):
        self.daemon.start()
        wait_port(self.host, self.port, timeout, alive=self.daemon.alive,
                  what="chatd's IRC port")
        return self

    def stop(self):
        self.daemon.stop()

    def restart(self, timeout=10.0):
        self.daemon.restart()
        wait_port(self.host, self.port, timeout, alive=self.daemon.alive,
                  what="chatd's IRC port")
        return self

    @staticmethod
    def password_of(nick):
        return f"pw-{nick.lower()}"

    def login(self, nick, sasl=True):
        """The account nick (registered at first use by chatctl user add, so
        that nobody is seen joining) and its password."""
        if nick not in self.accounts:
            self.daemon.ctl_ok("user", "add", nick, input=self.password_of(nick) + "\n")
            self.accounts.add(nick)
        return Login(nick, self.password_of(nick), sasl)


def chatd_has_irc(chatd_bin, workdir):
    """Whether this chatd knows the setting irc_port (chatd -T lists every setting)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "state").mkdir(exist_ok=True)
    conf = workdir / "probe.conf"
    conf.write_text(f'state_dir = "{workdir / "state"}";\n')
    try:
        out = subprocess.run([chatd_bin, "-T", "-c", str(conf)], capture_output=True,
                             text=True, timeout=30)
    except OSError as err:
        return False, f"cannot run {chatd_bin}: {err}"
    for line in out.stdout.splitlines():
        if line.lstrip("# ").startswith("irc_port ="):
            return True, ""
    return False, f"{chatd_bin} -T lists no irc_port setting"



class SaslRecorder:
    """A scripted IRC peer on loopback: CAP LS offers sasl, AUTHENTICATE PLAIN
    is answered (900/903 when the password is the expected one, else 904),
    NICK/USER get a welcome (001-005, 422) once CAP negotiation ends, JOIN is
    echoed with NAMES, PING answered.  credentials: (authzid, authcid,
    password) per AUTHENTICATE; received: every line, in order."""

    name = "sasl-recorder"
    host = "127.0.0.1"
    SERVER = "sasl.test"

    def __init__(self, password):
        self.password = password
        self.credentials = []
        self.received = []
        self.lock = threading.Lock()
        self.listener = socket.create_server((self.host, 0))
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.threads = []
        self.conns = []

    def start(self):
        thread = threading.Thread(target=self._accept, name="sasl-recorder", daemon=True)
        thread.start()
        self.threads.append(thread)
        return self

    def _accept(self):
        while not self.stopping.is_set():
            ready, _, _ = select.select([self.listener], [], [], 0.1)
            if not ready:
                continue
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn):
        try:
            self._dialogue(conn)
        finally:
            conn.close()

    def _dialogue(self, conn):
        state = {"nick": None, "user": False, "cap": False, "welcomed": False}

        def send(line):
            try:
                conn.sendall(line.encode() + b"\r\n")
            except OSError:
                pass

        def welcome():
            nick = state["nick"]
            s = f":{self.SERVER}"
            for line in (f"001 {nick} :Welcome to the SASL recorder {nick}",
                         f"002 {nick} :Your host is {self.SERVER}",
                         f"003 {nick} :This server was created today",
                         f"004 {nick} {self.SERVER} recorder i nt",
                         f"005 {nick} CHANTYPES=# PREFIX=(ov)@+ NETWORK=recorder "
                         "CASEMAPPING=ascii :are supported by this server",
                         f"422 {nick} :MOTD File is missing"):
                send(f"{s} {line}")
            state["welcomed"] = True

        buf = b""
        while not self.stopping.is_set():
            ready, _, _ = select.select([conn], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.rstrip(b"\r").decode("utf-8", "replace")
                with self.lock:
                    self.received.append(line)
                words = line.split(" ")
                cmd = words[0].upper()
                args = words[1:]
                if cmd == "CAP" and args and args[0].upper() == "LS":
                    state["cap"] = True
                    send(f":{self.SERVER} CAP * LS :sasl")
                elif cmd == "CAP" and args and args[0].upper() == "REQ":
                    send(f":{self.SERVER} CAP * ACK {' '.join(args[1:])}")
                elif cmd == "CAP" and args and args[0].upper() == "END":
                    state["cap"] = False
                elif cmd == "AUTHENTICATE" and args == ["PLAIN"]:
                    send("AUTHENTICATE +")
                elif cmd == "AUTHENTICATE" and args and args[0] != "*":
                    nick = state["nick"] or "*"
                    try:
                        authzid, authcid, password = base64.b64decode(args[0]).decode().split("\0")
                    except ValueError:
                        send(f":{self.SERVER} 904 {nick} :SASL authentication failed")
                        continue
                    with self.lock:
                        self.credentials.append((authzid, authcid, password))
                    if password == self.password:
                        send(f":{self.SERVER} 900 {nick} {nick}!{nick}@{self.SERVER} {authcid} "
                             f":You are now logged in as {authcid}")
                        send(f":{self.SERVER} 903 {nick} :SASL authentication successful")
                    else:
                        send(f":{self.SERVER} 904 {nick} :SASL authentication failed")
                elif cmd == "NICK" and args:
                    state["nick"] = args[0].lstrip(":")
                elif cmd == "USER":
                    state["user"] = True
                elif cmd == "PING":
                    send(f":{self.SERVER} PONG {self.SERVER} {' '.join(args)}")
                elif cmd == "JOIN" and args and state["welcomed"]:
                    nick = state["nick"]
                    for channel in args[0].lstrip(":").split(","):
                        send(f":{nick}!{nick}@{self.SERVER} JOIN {channel}")
                        send(f":{self.SERVER} 353 {nick} = {channel} :@{nick}")
                        send(f":{self.SERVER} 366 {nick} {channel} :End of /NAMES list.")
                elif cmd == "QUIT":
                    send("ERROR :Closing link")
                    return
                if (not state["welcomed"] and state["nick"] and state["user"]
                        and not state["cap"]):
                    welcome()

    def login(self, nick, sasl=True):
        return Login(nick, self.password, sasl)

    def close(self):
        self.stopping.set()
        self.listener.close()
        with self.lock:
            conns = list(self.conns)
        for conn in conns:
            try:
                conn.close()
            except OSError:
                pass
        for thread in self.threads:
            thread.join(timeout=5)
