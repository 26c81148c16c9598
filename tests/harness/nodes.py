"""The nodes the benchmark drivers run: `stargate daemon`s and Kubo peers, on loopback only.

A Daemon is configured as tests/src/daemon.rs's LOOPBACK_SWARM (no bootstrap, mDNS, UPnP,
AutoNAT or relays, DHT server mode, listening on 127.0.0.1 only), a Kubo peer as
kubo_peer.py's loopback_only. Run the drivers inside the loopback-only namespace.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# tests/src/daemon.rs LOOPBACK_SWARM: keeps a daemon off every network but loopback.
LOOPBACK_SWARM = """bootstrap = []
mdns = false
upnp = false
autonat = false
relay_client = false
hole_punching = false
kad_mode = "server"
"""


class Failed(Exception):
    """A node did not start or a command failed; the message says which and why."""


def log(msg):
    print(f"{os.path.basename(sys.argv[0])}: {msg}", file=sys.stderr, flush=True)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU of process `pid` so far, all its threads (/proc/PID/stat fields 14
    and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _stop_process(proc, terminate=True):
    if terminate and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Daemon:
    """A `stargate daemon` in its own data dir, API and gateway on free ports.

    `extra` is appended to its config.toml (more sections). The daemon's environment has no
    STARGATE_* variable of the caller's, so only that file configures it. With `quic`, the
    swarm listens on QUIC (UDP) as well as TCP, and `swarm_addr` names the QUIC address.
    """

    def __init__(self, binary, root, name, extra="", quic=False):
        self.binary = binary
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.transport = "udp" if quic else "tcp"
        listen = '"/ip4/127.0.0.1/tcp/0"' + (', "/ip4/127.0.0.1/udp/0/quic-v1"' if quic else "")
        with open(os.path.join(self.dir, "config.toml"), "w", encoding="utf-8") as f:
            f.write(
                '[api]\naddr = "127.0.0.1:0"\n\n[gateway]\naddr = "127.0.0.1:0"\n\n'
                f'[swarm]\nlisten = [{listen}]\n{LOOPBACK_SWARM}\n{extra}\n'
            )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("STARGATE_")}
        self.proc = None
        self.api_addr = None
        self.log_path = os.path.join(self.dir, "daemon.log")

    def cli(self, *args, timeout=900, stdout=None):
        """Runs `stargate --data-dir DIR ARGS...`; its stdout as text (none when `stdout` is
        given); Failed with its stderr when it exits non-zero."""
        res = subprocess.run([self.binary, "--data-dir", self.dir, *args],
                             stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=timeout, check=False, env=self.env)
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace")[-500:]
            raise Failed(f"{self.name}: stargate {' '.join(args)}: {err}")
        return res.stdout.decode() if stdout is None else ""

    def start(self):
        with open(self.log_path, "w", encoding="utf-8") as log_file:
            self.proc = subprocess.Popen(
                [self.binary, "--data-dir", self.dir, "daemon"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=self.env,
            )
        return self

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        api_file = os.path.join(self.dir, "api")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Failed(f"{self.name} exited; see {self.log_path}")
            if os.path.exists(api_file):
                with open(api_file, encoding="ascii") as f:
                    self.api_addr = f.read().strip()
                try:
                    self.api("id")
                    return self
                except OSError:
                    pass
            time.sleep(0.1)
        raise Failed(f"{self.name} not ready after {timeout} s; see {self.log_path}")

    def api(self, cmd, timeout=30, **args):
        query = "&".join(f"{k}={v}" for k, v in args.items())
        url = f"http://{self.api_addr}/api/v0/{cmd}" + (f"?{query}" if query else "")
        req = urllib.request.Request(url, method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=timeout) as res:
            return json.loads(res.read() or b"null")

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.api_addr}/metrics", timeout=30) as res:
            text = res.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def swarm_addr(self):
        ident = self.api("id")
        prefix = f"/ip4/127.0.0.1/{self.transport}/"
        addr = next(a for a in ident["Addresses"] if a.startswith(prefix))
        return addr if "/p2p/" in addr else f"{addr}/p2p/{ident['ID']}"

    def connect(self, addr):
        self.cli("swarm", "connect", addr)

    def peer_count(self):
        return len(self.api("swarm/peers").get("Peers") or [])

    def stop(self):
        if self.proc:
            _stop_process(self.proc)


class Kubo:
    """A Kubo v0.22 peer: kubo_peer.py (Kubo's shared library through cffi) in a process of
    its own, driven by one JSON request per line."""

    def __init__(self, root, name, key_type="ed25519"):
        self.name = name
        self.dir = os.path.join(root, name)
        self.log_path = os.path.join(root, f"{name}.log")
        with open(self.log_path, "w", encoding="utf-8") as log_file:
            self.proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "kubo_peer.py"), "--repo", self.dir,
                 "--key-type", key_type],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True,
                bufsize=1,
            )
        ready = json.loads(self.proc.stdout.readline() or '{"error": "no answer"}')
        if not ready.get("ready"):
            raise Failed(f"{name}: Kubo did not start: {ready}; see {self.log_path}")
        self.peer_id = ready["peer_id"]
        self.addr = next(a for a in ready["addrs"] if "/tcp/" in a) + "/p2p/" + self.peer_id

    def call(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline() or '{"error": "Kubo exited"}')
        if "error" in answer:
            raise Failed(f"{self.name}: kubo {req.get('cmd')}: {answer['error']}")
        return answer

    def stop(self):
        asked = False
        if self.proc.poll() is None:
            try:
                self.call(cmd="shutdown")
                asked = True
            except (Failed, OSError, ValueError):
                pass
        _stop_process(self.proc, terminate=not asked)


def stop_all(nodes):
    for n in nodes:
        try:
            n.stop()
        except Exception as e:  # noqa: BLE001
            log(f"stopping {getattr(n, 'name', n)}: {e}")


def start_daemons(binary, root, prefix, count):
    daemons = [Daemon(binary, root, f"{prefix}{i}").start() for i in range(count)]
    for d in daemons:
        d.wait_ready()
    return daemons
