//! A real Kubo v0.22 peer on loopback: `tests/harness/kubo_peer.py` run
//! with the test venv's Python, driven by JSON lines.
//!
//! The peer's config is rewritten before it starts so that it only listens
//! on 127.0.0.1 and dials nothing by itself (no bootstrap peers, no mDNS, no
//! NAT port mapping, relays or hole punching, DHT routing only). Every call
//! has a deadline; the process is killed when the `KuboPeer` is dropped.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::paths::{harness_script, venv_python};

/// Starting includes generating an RSA-2048 key for a new repo.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Deadline of quick calls (id, connect, pubsub, ...).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of add/download/pin unless the caller gives one.
const LONG_TIMEOUT: Duration = Duration::from_secs(900);
/// How long past the harness's own deadline the Rust side waits for its reply.
const REPLY_MARGIN: Duration = Duration::from_secs(15);
/// Lines buffered between the reader thread and the caller.
const LINE_QUEUE: usize = 64;

/// Identity key type of a new Kubo repo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyType {
    /// The library's own RSA-2048 key.
    #[default]
    Rsa,
    /// An ed25519 key written into the config before the node starts.
    Ed25519,
}

/// How to start a [`KuboPeer`].
#[derive(Debug, Clone, Default)]
pub struct KuboOptions {
    pub key_type: KeyType,
    /// TCP port on 127.0.0.1; 0 lets the OS choose.
    pub swarm_port: u16,
    /// UDP port for QUIC-v1 on 127.0.0.1; 0 lets the OS choose.
    pub quic_port: u16,
    /// An existing repo directory to reuse (e.g. to restart a peer with the
    /// same identity); `None` creates a temporary one, removed on drop.
    pub repo: Option<PathBuf>,
}

/// `add`'s answer.
#[derive(Debug, Clone, Deserialize)]
pub struct KuboAdd {
    pub cid: String,
    /// Wall time of Kubo's AddFile call alone.
    pub seconds: f64,
}

/// A pubsub message as Kubo received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubsubMessage {
    /// Peer ID of the publisher.
    pub from: String,
    pub data: Vec<u8>,
    pub seqno_hex: Option<String>,
    pub topic: String,
}

/// A pubsub subscription of a [`KuboPeer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId(i64);

/// A running Kubo v0.22 node (in-process in a Python child) on loopback.
#[derive(Debug)]
pub struct KuboPeer {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    peer_id: String,
    addrs: Vec<String>,
    repo: PathBuf,
    // Declared last: removed after the child is gone (see Drop).
    _temp: Option<TempDir>,
}

impl KuboPeer {
    /// Starts a peer with an RSA identity in a fresh temporary repo.
    pub fn start() -> Result<Self> {
        Self::start_with(KuboOptions::default())
    }

    /// Starts a peer as `opts` say and waits until it is listening.
    pub fn start_with(opts: KuboOptions) -> Result<Self> {
        let python = venv_python()?;
        let script = harness_script("kubo_peer.py")?;
        let (repo, temp) = match opts.repo {
            Some(repo) => (repo, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("kubo-peer-")
                    .tempdir()
                    .context("creating a temporary Kubo repo")?;
                (temp.path().join("repo"), Some(temp))
            }
        };
        let key_type = match opts.key_type {
            KeyType::Rsa => "rsa",
            KeyType::Ed25519 => "ed25519",
        };
        let mut child = Command::new(python)
            .arg(script)
            .arg("--repo")
            .arg(&repo)
            .arg("--swarm-port")
            .arg(opts.swarm_port.to_string())
            .arg("--quic-port")
            .arg(opts.quic_port.to_string())
            .arg("--key-type")
            .arg(key_type)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Kubo's and the harness's logs go to the test's stderr.
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start tests/harness/kubo_peer.py")?;
        let stdin = child.stdin.take().context("kubo_peer.py has no stdin")?;
        let stdout = child.stdout.take().context("kubo_peer.py has no stdout")?;
        let (tx, lines) = sync_channel(LINE_QUEUE);
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut peer = KuboPeer {
            child,
            stdin,
            lines,
            peer_id: String::new(),
            addrs: Vec::new(),
            repo,
            _temp: temp,
        };
        let ready = peer
            .read_reply(START_TIMEOUT)
            .context("Kubo peer did not start")?;
        let ident: Identity = serde_json::from_value(ready).context("Kubo's ready line")?;
        peer.peer_id = ident.peer_id;
        peer.addrs = ident.addrs;
        Ok(peer)
    }

    /// Peer ID (base58: `Qm...` for RSA, `12D3KooW...` for ed25519).
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// Listen addresses reported at start (TCP and QUIC-v1 on 127.0.0.1).
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The repo directory (kept while the peer lives; reuse it through
    /// [`KuboOptions::repo`] to restart with the same identity).
    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// `/ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID`, for dialing this peer.
    pub fn tcp_multiaddr(&self) -> Result<String> {
        self.multiaddr_with("/tcp/")
    }

    /// `/ip4/127.0.0.1/udp/PORT/quic-v1/p2p/PEER_ID`.
    pub fn quic_multiaddr(&self) -> Result<String> {
        self.multiaddr_with("/quic-v1")
    }

    fn multiaddr_with(&self, part: &str) -> Result<String> {
        let addr = self
            .addrs
            .iter()
            .find(|a| a.contains(part))
            .with_context(|| format!("Kubo listens on no {part} address: {:?}", self.addrs))?;
        Ok(format!("{addr}/p2p/{}", self.peer_id))
    }

    /// Asks the node for its peer ID and current listen addresses.
    pub fn id(&mut self) -> Result<(String, Vec<String>)> {
        let ident: Identity = self.call(json!({"cmd": "id"}), CALL_TIMEOUT)?;
        Ok((ident.peer_id, ident.addrs))
    }

    /// Kubo's AddFile: a file or a directory (recursively, dot-files
    /// included), with Kubo's default add options; `only_hash` stores
    /// nothing. Stored content is pinned.
    pub fn add(&mut self, path: &Path, only_hash: bool) -> Result<KuboAdd> {
        let path = std::path::absolute(path)?;
        self.call(
            json!({"cmd": "add", "path": path, "only_hash": only_hash}),
            LONG_TIMEOUT,
        )
    }

    /// Kubo's Download: fetches `cid` (from its store or its peers) into
    /// `dest` (a file, or a directory for a directory CID). Returns Kubo's
    /// own timing of the call.
    pub fn download(&mut self, cid: &str, dest: &Path, timeout: Duration) -> Result<Duration> {
        let dest = std::path::absolute(dest)?;
        let r: Timed = self.call(
            json!({"cmd": "download", "cid": cid, "dest": dest}),
            timeout,
        )?;
        Ok(Duration::from_secs_f64(r.seconds))
    }

    /// Connects to a peer by multiaddr (with its `/p2p/` part).
    pub fn connect(&mut self, addr: &str) -> Result<()> {
        let _: Value = self.call(json!({"cmd": "connect", "addr": addr}), CALL_TIMEOUT)?;
        Ok(())
    }

    /// Connected peers as `MULTIADDR/PEER_ID` strings.
    pub fn peers(&mut self) -> Result<Vec<String>> {
        let r: Peers = self.call(json!({"cmd": "peers"}), CALL_TIMEOUT)?;
        Ok(r.peers)
    }

    /// Pins `cid` recursively (fetching it if needed).
    pub fn pin(&mut self, cid: &str) -> Result<()> {
        let _: Value = self.call(json!({"cmd": "pin", "cid": cid}), LONG_TIMEOUT)?;
        Ok(())
    }

    /// Removes the pin of `cid`.
    pub fn unpin(&mut self, cid: &str) -> Result<()> {
        let _: Value = self.call(json!({"cmd": "unpin", "cid": cid}), CALL_TIMEOUT)?;
        Ok(())
    }

    /// Subscribes to a gossipsub topic; read with [`Self::pubsub_next`].
    pub fn pubsub_subscribe(&mut self, topic: &str) -> Result<SubscriptionId> {
        #[derive(Deserialize)]
        struct Sub {
            sub_id: i64,
        }
        let r: Sub = self.call(
            json!({"cmd": "pubsub_subscribe", "topic": topic}),
            CALL_TIMEOUT,
        )?;
        Ok(SubscriptionId(r.sub_id))
    }

    /// Publishes `data` on `topic`.
    pub fn pubsub_publish(&mut self, topic: &str, data: &[u8]) -> Result<()> {
        let _: Value = self.call(
            json!({"cmd": "pubsub_publish", "topic": topic, "data_b64": BASE64.encode(data)}),
            CALL_TIMEOUT,
        )?;
        Ok(())
    }

    /// The next message of a subscription, or `None` if none came within `wait`.
    pub fn pubsub_next(
        &mut self,
        sub: SubscriptionId,
        wait: Duration,
    ) -> Result<Option<PubsubMessage>> {
        #[derive(Deserialize)]
        struct Next {
            message: Option<RawMessage>,
        }
        #[derive(Deserialize)]
        struct RawMessage {
            from: String,
            data_b64: String,
            seqno_hex: Option<String>,
            topic: String,
        }
        let r: Next = self.call(
            json!({"cmd": "pubsub_next", "sub_id": sub.0, "timeout": wait.as_secs_f64()}),
            wait,
        )?;
        r.message
            .map(|m| {
                Ok(PubsubMessage {
                    data: BASE64
                        .decode(&m.data_b64)
                        .context("pubsub message data is not base64")?,
                    from: m.from,
                    seqno_hex: m.seqno_hex,
                    topic: m.topic,
                })
            })
            .transpose()
    }

    /// Peers Kubo's gossipsub knows on `topic`.
    pub fn pubsub_peers(&mut self, topic: &str) -> Result<Vec<String>> {
        let r: Peers = self.call(json!({"cmd": "pubsub_peers", "topic": topic}), CALL_TIMEOUT)?;
        Ok(r.peers)
    }

    /// Closes the node cleanly and waits for the process to exit.
    pub fn shutdown(mut self) -> Result<()> {
        let _: Value = self.call(json!({"cmd": "shutdown"}), CALL_TIMEOUT)?;
        let status = crate::process::wait_or_kill(&mut self.child, CALL_TIMEOUT)
            .context("Kubo peer did not exit after shutdown")?;
        if !status.success() {
            bail!("Kubo peer exited with {status} after shutdown");
        }
        Ok(())
    }

    /// Sends one request and decodes its reply. `timeout` is the harness's
    /// deadline for the Kubo call; the reply is awaited a little longer.
    fn call<T: for<'de> Deserialize<'de>>(
        &mut self,
        mut req: Value,
        timeout: Duration,
    ) -> Result<T> {
        let cmd = req["cmd"].as_str().unwrap_or_default().to_owned();
        if req.get("timeout").is_none() {
            req["timeout"] = json!(timeout.as_secs_f64());
        }
        writeln!(self.stdin, "{req}")
            .and_then(|()| self.stdin.flush())
            .with_context(|| format!("Kubo peer is gone (sending {cmd})"))?;
        let reply = self
            .read_reply(timeout + REPLY_MARGIN)
            .with_context(|| format!("Kubo {cmd}"))?;
        serde_json::from_value(reply.clone())
            .with_context(|| format!("unexpected reply to Kubo {cmd}: {reply}"))
    }

    fn read_reply(&mut self, timeout: Duration) -> Result<Value> {
        let line = match self.lines.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                // The harness missed its own deadline: it is stuck.
                let _ = self.child.kill();
                bail!("no reply within {timeout:?}; Kubo peer killed");
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                bail!("Kubo peer exited ({status:?}); its log is on stderr");
            }
        };
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("Kubo peer printed {line:?}"))?;
        if let Some(err) = value.get("error") {
            return Err(anyhow!("{}", err.as_str().unwrap_or(&err.to_string())));
        }
        Ok(value)
    }
}

impl Drop for KuboPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Deserialize)]
struct Identity {
    peer_id: String,
    addrs: Vec<String>,
}

#[derive(Deserialize)]
struct Timed {
    seconds: f64,
}

#[derive(Deserialize)]
struct Peers {
    peers: Vec<String>,
}
