//! In-process swarms (memory transport) reconciling sets of entries, and hand-driven peers
//! (libp2p-stream) that break the protocol.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use libp2p::{PeerId, Swarm};
use libp2p_swarm_test::SwarmExt;
use stargate_protocol::mirror::{Announcement, Entry, EntryId};
use stargate_protocol::reconcile::{Initiator, Responder, Snapshot, Step, SyncMessage};
use stargate_protocol::{Block, Codec, HashCode, Version};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::context::Context;
use super::wire::{PROTOCOL, Wire};
use super::{Config, Learned, SyncEntries, SyncMetrics, SyncPeers, SyncSet, engine};
use crate::p2p::command::StargatePeer;

const DEADLINE: Duration = Duration::from_secs(20);

/// The mirror's part, in memory: entries by id.
#[derive(Default)]
struct MemEntries(Mutex<HashMap<EntryId, Entry>>);

impl SyncEntries for MemEntries {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry> {
        let map = self.0.lock().unwrap();
        ids.iter().filter_map(|id| map.get(id).cloned()).collect()
    }
}

type Penalised = Arc<Mutex<Vec<(PeerId, String)>>>;

/// One node: its set, its entries, the engine's peer events, metrics, who it cut off, and a
/// watch that moves on every entry its intake records.
struct Node {
    id: PeerId,
    set: SyncSet,
    entries: Arc<MemEntries>,
    events: mpsc::Sender<StargatePeer>,
    metrics: SyncMetrics,
    penalised: Penalised,
    recorded: watch::Receiver<usize>,
    _stop: tokio_util::sync::DropGuard,
}

impl Node {
    fn add(&self, entry: Entry) {
        self.set.insert(entry.id());
        self.entries.0.lock().unwrap().insert(entry.id(), entry);
    }

    /// Waits until the set holds `n` ids.
    async fn wait_len(&mut self, n: usize) {
        let set = self.set.clone();
        tokio::time::timeout(DEADLINE, self.recorded.wait_for(|_| set.len() >= n))
            .await
            .unwrap_or_else(|_| panic!("{} of {n} entries within {DEADLINE:?}", self.set.len()))
            .unwrap();
    }
}

fn test_config() -> Config {
    Config {
        digest_debounce: Duration::from_millis(50),
        min_session_gap: Duration::from_millis(100),
        ..Config::default()
    }
}

/// The mirror's part, in memory: a set, its entries, and an intake that records what the sync
/// learned (moving the watch on each batch).
fn mirror() -> (
    SyncSet,
    Arc<MemEntries>,
    mpsc::Sender<Learned>,
    watch::Receiver<usize>,
) {
    let set = SyncSet::new();
    let entries = Arc::new(MemEntries::default());
    let (learned, mut intake) = mpsc::channel::<Learned>(16);
    let (recorded_tx, recorded) = watch::channel(0);
    {
        let (set, entries) = (set.clone(), Arc::clone(&entries));
        tokio::spawn(async move {
            while let Some(Learned { entries: got, .. }) = intake.recv().await {
                for entry in got {
                    set.insert(entry.id());
                    entries.0.lock().unwrap().insert(entry.id(), entry);
                }
                recorded_tx.send_modify(|n| *n += 1);
            }
        });
    }
    (set, entries, learned, recorded)
}

/// Starts the engine on `swarm`'s stream control with the mirror's part played in memory.
fn node(swarm: &Swarm<libp2p_stream::Behaviour>, config: Config) -> Node {
    let (set, entries, learned, recorded) = mirror();
    let penalised: Penalised = Arc::default();
    let record = Arc::clone(&penalised);
    let metrics = SyncMetrics::default();
    let (events, events_in) = mpsc::channel(16);
    let stop = CancellationToken::new();
    let context = Context {
        local: *swarm.local_peer_id(),
        set: set.clone(),
        entries: Arc::clone(&entries) as Arc<dyn SyncEntries>,
        learned,
        config: config.checked(),
        metrics: metrics.clone(),
        penalise: Arc::new(move |peer, reason: &str| {
            record.lock().unwrap().push((peer, reason.to_owned()));
        }),
        reconciling: SyncPeers::new(),
    };
    engine::spawn(
        swarm.behaviour().new_control(),
        events_in,
        context,
        stop.clone(),
    )
    .unwrap();
    Node {
        id: *swarm.local_peer_id(),
        set,
        entries,
        events,
        metrics,
        penalised,
        recorded,
        _stop: stop.drop_guard(),
    }
}

async fn connected_swarms() -> (
    Swarm<libp2p_stream::Behaviour>,
    Swarm<libp2p_stream::Behaviour>,
) {
    let mut a = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    let mut b = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    b.listen().with_memory_addr_external().await;
    a.connect(&mut b).await;
    (a, b)
}

/// Two nodes whose swarms run in the background, each told the other connected.
async fn pair(config: Config) -> (Node, Node) {
    let (a, b) = connected_swarms().await;
    let (na, nb) = (node(&a, config.clone()), node(&b, config));
    tokio::spawn(a.loop_on_next());
    tokio::spawn(b.loop_on_next());
    (na, nb)
}

async fn introduce(a: &Node, b: &Node) {
    a.events.send(StargatePeer::Connected(b.id)).await.unwrap();
    b.events.send(StargatePeer::Connected(a.id)).await.unwrap();
}

fn entry(n: u32) -> Entry {
    let block = Block::encode(
        Version::V1,
        Codec::Raw,
        HashCode::Sha2_256,
        n.to_be_bytes().to_vec(),
    )
    .unwrap();
    let json = format!(
        r#"{{"cid":"{}","type":"contract","metadata":{{"contract_id":"c-{n}"}}}}"#,
        block.cid()
    );
    let publisher = libp2p::identity::Keypair::ed25519_from_bytes([1; 32])
        .unwrap()
        .public()
        .to_peer_id();
    Entry::new(
        &Announcement::decode(json.as_bytes()).unwrap(),
        publisher,
        1_700_000_000,
    )
    .unwrap()
}

/// Waits until a session between `a` and `b` has ended well on both sides.
async fn wait_session(a: &Node, b: &Node) {
    tokio::time::timeout(DEADLINE, async {
        while a.metrics.sessions("ok") + b.metrics.sessions("ok") < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the session ends");
}

fn total_bytes(a: &Node, b: &Node) -> u64 {
    let ((sa, _), (sb, _)) = (a.metrics.bytes(), b.metrics.bytes());
    sa + sb
}

/// Two nodes with `common` entries, `only_a` more on the first and `only_b` on the second:
/// both end with all of them. Returns the bytes both sent, all told.
async fn converge(common: u32, only_a: u32, only_b: u32) -> u64 {
    let (mut a, mut b) = pair(test_config()).await;
    for n in 0..common {
        a.add(entry(n));
        b.add(entry(n));
    }
    (common..common + only_a).for_each(|n| a.add(entry(n)));
    (common + only_a..common + only_a + only_b).for_each(|n| b.add(entry(n)));
    introduce(&a, &b).await;
    let all = (common + only_a + only_b) as usize;
    a.wait_len(all).await;
    b.wait_len(all).await;
    assert_eq!(a.set.digest(), b.set.digest());
    // The session that did it is over once both hold everything and its end is counted.
    wait_session(&a, &b).await;
    assert!(a.penalised.lock().unwrap().is_empty());
    assert!(b.penalised.lock().unwrap().is_empty());
    total_bytes(&a, &b)
}

#[tokio::test]
async fn two_nodes_with_2000_common_entries_converge_at_a_cost_of_what_differs() {
    let mut figures = Vec::new();
    for (only_a, only_b) in [(0, 0), (1, 0), (0, 20), (100, 100), (2000, 0)] {
        let bytes = converge(2000, only_a, only_b).await;
        println!(
            "2,000 common, {} differing ({only_a} only on one node, {only_b} only on the other): \
             {bytes} bytes sent, both nodes together",
            only_a + only_b
        );
        figures.push(bytes);
    }
    // In sync: one round, a few hundred bytes; then each difference costs about an entry.
    assert!(figures[0] < 600, "{figures:?}");
    assert!(figures[1] < 2_000, "{figures:?}");
    assert!(figures[2] < 20_000, "{figures:?}");
    assert!(figures.windows(2).all(|w| w[0] < w[1]), "{figures:?}");
}

#[tokio::test]
async fn a_node_back_after_missing_2000_entries_is_whole_well_under_5_s() {
    let (a, b) = connected_swarms().await;
    let (na, mut nb) = (node(&a, test_config()), node(&b, test_config()));
    for n in 0..2500 {
        na.add(entry(n));
        if n < 500 {
            nb.add(entry(n));
        }
    }
    tokio::spawn(a.loop_on_next());
    tokio::spawn(b.loop_on_next());
    let started = std::time::Instant::now();
    introduce(&na, &nb).await;
    nb.wait_len(2500).await;
    let took = started.elapsed();
    println!(
        "2,000 missing entries learned in {took:?}, {} bytes",
        total_bytes(&na, &nb)
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(na.set.digest(), nb.set.digest());
}

#[tokio::test]
async fn a_change_on_one_side_reaches_the_other_through_the_digest() {
    let (a, mut b) = pair(test_config()).await;
    for n in 0..100 {
        a.add(entry(n));
        b.add(entry(n));
    }
    introduce(&a, &b).await;
    // The session at connection finds nothing to do.
    wait_session(&a, &b).await;
    // An entry only the first node heard of (as if gossip missed the second).
    a.add(entry(100));
    b.wait_len(101).await;
    let mut a = a;
    a.wait_len(101).await;
    assert_eq!(a.set.digest(), b.set.digest());
    assert!(a.metrics.rounds() + b.metrics.rounds() >= 2);
}

/// A swarm on TCP (127.0.0.1) whose stream bytes (multistream-select included; yamux and
/// noise framing not) are counted in `registry`.
fn tcp_swarm(
    registry: &mut prometheus_client::registry::Registry,
) -> Swarm<libp2p_stream::Behaviour> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_bandwidth_metrics(registry)
        .with_behaviour(|_| libp2p_stream::Behaviour::new())
        .unwrap()
        .build()
}

/// Bytes sent on the connections of the swarm whose metrics `registry` holds.
fn wire_bytes_sent(registry: &prometheus_client::registry::Registry) -> u64 {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("libp2p_bandwidth_bytes_total{") && l.contains("direction=\"Outbound\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn in_sync_a_pair_exchanges_only_digests_well_under_2_kb_a_minute() {
    let config = Config {
        digest_interval: Duration::from_secs(1),
        ..test_config()
    };
    let (mut ra, mut rb) = Default::default();
    let (mut sa, mut sb) = (tcp_swarm(&mut ra), tcp_swarm(&mut rb));
    let addr = crate::p2p::testutil::listen_on_loopback(&mut sb).await;
    sb.add_external_address(addr);
    sa.connect(&mut sb).await;
    let (a, b) = (node(&sa, config.clone()), node(&sb, config));
    tokio::spawn(sa.loop_on_next());
    tokio::spawn(sb.loop_on_next());
    for n in 0..2000 {
        a.add(entry(n));
        b.add(entry(n));
    }
    introduce(&a, &b).await;
    wait_session(&a, &b).await;
    let before = total_bytes(&a, &b);
    let wire_before = wire_bytes_sent(&ra) + wire_bytes_sent(&rb);
    let sessions = a.metrics.sessions("ok");
    let digests = |n: &Node| n.metrics.digests_sent();
    let (da, db) = (digests(&a), digests(&b));
    // Three periodic digests each way.
    tokio::time::timeout(DEADLINE, async {
        while digests(&a) < da + 3 || digests(&b) < db + 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    let sent = (digests(&a) - da) + (digests(&b) - db);
    let per_digest = (total_bytes(&a, &b) - before) / sent;
    let per_stream = (wire_bytes_sent(&ra) + wire_bytes_sent(&rb) - wire_before) / sent;
    // At the default interval a peer sends one digest a minute: that is the quiet cost.
    println!(
        "in sync: {per_digest} bytes per digest message, {per_stream} bytes per digest stream \
         with its protocol negotiation (yamux and noise framing not counted)"
    );
    assert!(per_digest < 40, "{per_digest}");
    assert!(per_stream < 200, "{per_stream}");
    assert_eq!(
        a.metrics.sessions("ok"),
        sessions,
        "no session while in sync"
    );
}

/// A swarm run by hand beside a node: the test opens and answers its streams itself.
async fn node_and_hand(config: Config) -> (Node, libp2p_stream::Control, PeerId) {
    let (mut a, mut b) = connected_swarms().await;
    // The node must be the pair's initiator (the lower peer id).
    if a.local_peer_id().to_bytes() > b.local_peer_id().to_bytes() {
        std::mem::swap(&mut a, &mut b);
    }
    let n = node(&a, config);
    let hand = b.behaviour().new_control();
    let hand_id = *b.local_peer_id();
    tokio::spawn(a.loop_on_next());
    tokio::spawn(b.loop_on_next());
    (n, hand, hand_id)
}

async fn wait_penalised(node: &Node) -> Vec<(PeerId, String)> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let p = node.penalised.lock().unwrap().clone();
            if !p.is_empty() {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the peer is cut off")
}

#[tokio::test]
async fn a_peer_sending_garbage_is_cut_off_and_counted() {
    let (n, mut hand, hand_id) = node_and_hand(test_config()).await;
    let mut stream = hand.open_stream(n.id, PROTOCOL).await.unwrap();
    futures::AsyncWriteExt::write_all(&mut stream, &[3, 0xee, 1, 2])
        .await
        .unwrap();
    let penalised = wait_penalised(&n).await;
    assert_eq!(penalised, vec![(hand_id, "malformed".to_owned())]);
    assert_eq!(n.metrics.sessions("misbehaving"), 1);
    assert_eq!(n.set.len(), 0);
}

#[tokio::test]
async fn a_peer_answering_with_entries_not_asked_for_is_cut_off_and_nothing_is_learned() {
    let (n, mut hand, hand_id) = node_and_hand(test_config()).await;
    let mut incoming = hand.accept(PROTOCOL).unwrap();
    n.events
        .send(StargatePeer::Connected(hand_id))
        .await
        .unwrap();
    let (_, stream) = tokio::time::timeout(DEADLINE, incoming.next())
        .await
        .unwrap()
        .unwrap();
    let mut wire = Wire::new(stream, SyncMetrics::default(), DEADLINE, u64::MAX);
    // The hand holds one entry the node lacks; asked for it, it sends another one.
    let mut responder = Responder::new(Snapshot::new(vec![entry(1).id()])).unwrap();
    loop {
        match wire.recv().await.unwrap() {
            SyncMessage::Reconcile(q) => wire
                .send(&SyncMessage::Reconcile(responder.answer(&q).unwrap()))
                .await
                .unwrap(),
            SyncMessage::Want(ids) => {
                assert_eq!(ids, vec![entry(1).id()]);
                wire.send(&SyncMessage::Entries(vec![entry(2)]))
                    .await
                    .unwrap();
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let penalised = wait_penalised(&n).await;
    assert_eq!(penalised, vec![(hand_id, "unasked_entry".to_owned())]);
    assert_eq!(n.set.len(), 0, "nothing learned from a misbehaving peer");
    assert_eq!(n.metrics.sessions("misbehaving"), 1);
}

/// A whole network (TCP on 127.0.0.1, identify, the event loop) with the sync protocol started
/// as the daemon starts it.
async fn full_node() -> FullNode {
    use crate::config::Config as NodeConfig;
    use crate::p2p::{Metrics, Settings, spawn};

    let dir = tempfile::tempdir().unwrap();
    let store =
        stargate_storage::Store::open(dir.path(), stargate_storage::StoreOptions::default())
            .unwrap();
    let mut config = NodeConfig::default();
    config.swarm.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
    config.swarm.bootstrap = Vec::new();
    config.swarm.mdns = false;
    config.swarm.upnp = false;
    config.swarm.autonat = false;
    config.swarm.relay_client = false;
    config.swarm.hole_punching = false;
    let settings = Settings::new(&config.swarm, &config.routing, &config.transfer).unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let shutdown = CancellationToken::new();
    let (network, _) = spawn(
        libp2p::identity::Keypair::generate_ed25519(),
        settings,
        store,
        Metrics::register(&mut registry),
        shutdown.clone(),
    )
    .unwrap();
    let (set, entries, learned, recorded) = mirror();
    let metrics = SyncMetrics::register(&mut registry);
    super::start(
        &network,
        set.clone(),
        Arc::clone(&entries) as Arc<dyn SyncEntries>,
        learned,
        test_config(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    FullNode {
        mirror: Node {
            id: network.local_peer_id(),
            set,
            entries,
            events: mpsc::channel(1).0,
            metrics,
            penalised: Arc::default(),
            recorded,
            _stop: shutdown.drop_guard(),
        },
        network,
        _dir: dir,
    }
}

struct FullNode {
    network: crate::p2p::Network,
    mirror: Node,
    _dir: tempfile::TempDir,
}

#[tokio::test]
async fn a_node_that_missed_2000_entries_is_whole_soon_after_it_connects_over_tcp() {
    use stargate_http_gateway::Network as _;

    let (a, mut b) = (full_node().await, full_node().await);
    // The second node missed 2,000 uploads; each holds 100 the other lacks.
    for n in 0..2100 {
        a.mirror.add(entry(n));
    }
    (2100..2200).for_each(|n| b.mirror.add(entry(n)));
    let addr = crate::p2p::testutil::tcp_address(&a.network, DEADLINE).await;
    let started = std::time::Instant::now();
    b.network.connect(addr).await.unwrap();
    b.mirror.wait_len(2200).await;
    let took = started.elapsed();
    let mut a = a;
    a.mirror.wait_len(2200).await;
    assert_eq!(a.mirror.set.digest(), b.mirror.set.digest());
    println!("over TCP: 2,000 missed entries learned {took:?} after the connect");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_peer_pushing_more_entries_than_a_session_allows_is_cut_off() {
    let config = Config {
        max_entries_per_session: 5,
        ..test_config()
    };
    let (n, mut hand, hand_id) = node_and_hand(config).await;
    let stream = hand.open_stream(n.id, PROTOCOL).await.unwrap();
    let mut wire = Wire::new(stream, SyncMetrics::default(), DEADLINE, u64::MAX);
    let (mut initiator, first) = Initiator::start(Snapshot::default()).unwrap();
    wire.send(&SyncMessage::Reconcile(first)).await.unwrap();
    let SyncMessage::Reconcile(answer) = wire.recv().await.unwrap() else {
        panic!("a round answered");
    };
    assert!(matches!(initiator.step(&answer), Ok(Step::Done(_))));
    wire.send(&SyncMessage::Entries((0..6).map(entry).collect()))
        .await
        .unwrap();
    let penalised = wait_penalised(&n).await;
    assert_eq!(penalised, vec![(hand_id, "too_many_entries".to_owned())]);
    assert_eq!(n.set.len(), 0, "nothing of the batch is learned");
}
