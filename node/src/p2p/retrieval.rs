//! Retrieval: the [`BlockSource`] the daemon's gateway and API read through.
//!
//! A block is read from the store; one the store lacks is fetched from peers:
//! - the connected peers are asked first over Bitswap (one for the block, the others whether
//!   they have it);
//! - once they have all said they lack it, or after [`PROVIDER_SEARCH_DELAY`], providers are
//!   looked up in the DHT, dialled as they are found and added as Bitswap candidates, and the
//!   search is repeated every [`SEARCH_AGAIN`] while the block has not arrived. Bitswap asks
//!   several providers at once and spreads the wants of a DAG over them; a provider that
//!   disappears is replaced by the next candidate;
//! - the first block that arrives, verified against its CID, wins; it is cached in the store
//!   unpinned (a GC may remove it) and, under the `all` provide strategy, announced.
//!
//! Stargate nodes are asked differently ([`sessions`]): a block that is no part of a DAG
//! already being fetched is the root of a DAG, which is streamed whole over the CAR transfer from
//! a connected Stargate peer that has it, or from a Stargate provider found in the DHT (those
//! are not asked over Bitswap while a transfer may serve them). The blocks of that DAG are then
//! waited for from the transfer, in the order it brings them, and asked over Bitswap only when
//! it fails or stalls. Kubo peers are asked over Bitswap only.
//!
//! Concurrent requests for one CID share one fetch; fetches run `fetch_concurrency` at a time;
//! each request gives up after `fetch_timeout_sec` with [`SourceError::TimedOut`] (the gateway
//! answers 504). Exports ask for many blocks at once (their prefetch window), so bytes reach
//! the client in order as the blocks arrive.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared, WeakShared};
use stargate_http_gateway::NetworkError;
use stargate_protocol::unixfs::export::{BlockSource, SourceError};
use stargate_protocol::{Block, Cid};
use stargate_storage::Store;
use tokio::sync::{Semaphore, mpsc};

use self::sessions::Sessions;
use super::command::FoundProvider;
use super::metrics::RetrievalPath;
use super::network::Network;
use super::records::dht_key;
use super::settings::Fetching;

mod sessions;

/// How long the connected peers have to answer before the DHT is asked too (Kubo waits 1 s).
const PROVIDER_SEARCH_DELAY: Duration = Duration::from_secs(1);
/// A search that ended without the block is started again after this long.
const SEARCH_AGAIN: Duration = Duration::from_secs(10);
/// Providers taken from one DHT search.
const PROVIDERS_PER_SEARCH: usize = 10;
/// DHT provider searches running at once, for all fetches together.
const MAX_SEARCHES: usize = 32;
/// Fetched blocks waiting to be written to the store; a fetch waits when the writer lags.
const CACHE_QUEUE: usize = 64;
/// Blocks written per store transaction.
const CACHE_BATCH: usize = 64;
/// How long a provider found in the DHT may take to identify itself (is it a Stargate node?).
const IDENTIFY_WAIT: Duration = Duration::from_secs(3);
/// How long peers connected a moment ago may take to identify themselves before a fetch begins.
const IDENTIFY_WAIT_CONNECTED: Duration = Duration::from_secs(1);
/// How often a provider being dialled is asked whether it identified itself.
const IDENTIFY_POLL: Duration = Duration::from_millis(50);

type Fetch = BoxFuture<'static, Result<Block, SourceError>>;

/// The store, then the network. Cheap to clone.
#[derive(Clone)]
pub(crate) struct NetworkBlockSource {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    network: Network,
    settings: Fetching,
    fetches: Semaphore,
    searches: Semaphore,
    /// Fetches under way, by CID; weak, so that a fetch nobody waits for any more is dropped
    /// (which withdraws its want).
    running: Mutex<HashMap<Cid, WeakShared<Fetch>>>,
    cache: mpsc::Sender<Block>,
    sessions: Arc<Sessions>,
}

impl std::fmt::Debug for NetworkBlockSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkBlockSource")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl NetworkBlockSource {
    /// A source over `store` that fetches what it lacks through `network`. Starts the task
    /// that caches fetched blocks (it ends when the last clone is dropped).
    pub(crate) fn new(store: Store, network: Network, settings: Fetching) -> Self {
        let (cache, queue) = mpsc::channel(CACHE_QUEUE);
        tokio::spawn(write_cache(store.clone(), queue));
        Self {
            inner: Arc::new(Inner {
                store,
                settings,
                fetches: Semaphore::new(settings.concurrency),
                searches: Semaphore::new(MAX_SEARCHES),
                running: Mutex::new(HashMap::new()),
                cache,
                sessions: Sessions::new(network.clone()),
                network,
            }),
        }
    }

    /// The fetch of `cid` under way, or a new one.
    fn shared_fetch(&self, cid: Cid) -> Shared<Fetch> {
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(fetch) = running.get(&cid).and_then(WeakShared::upgrade) {
            return fetch;
        }
        // Entries of fetches that everyone abandoned are not removed by anyone.
        if running.len() >= 2 * self.inner.settings.concurrency {
            running.retain(|_, f| f.upgrade().is_some());
        }
        let fetch = self.clone().fetch(cid).boxed().shared();
        if let Some(weak) = fetch.downgrade() {
            running.insert(cid, weak);
        }
        fetch
    }

    /// Forgets the finished fetch of `cid` (unless a newer one took its place).
    fn finished(&self, cid: Cid) {
        let mut running = self
            .inner
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if running
            .get(&cid)
            .is_some_and(|f| f.upgrade().is_none_or(|f| f.peek().is_some()))
        {
            running.remove(&cid);
        }
    }

    async fn fetch(self, cid: Cid) -> Result<Block, SourceError> {
        let after = self.inner.settings.timeout;
        let (block, path) = tokio::time::timeout(after, self.fetch_from_peers(cid))
            .await
            .map_err(|_| SourceError::TimedOut {
                cid: cid.to_string(),
                after,
            })??;
        // A transfer stores (and counts, and announces) what it brings itself.
        if path == RetrievalPath::Bitswap {
            self.inner.sessions.fetched(&block);
            self.inner
                .network
                .retrieved(RetrievalPath::Bitswap, block.data().len());
            // Cached past the deadline: a lagging disk slows fetches down rather than piling
            // blocks up in memory.
            if self.inner.cache.send(block.clone()).await.is_err() {
                tracing::debug!(%cid, "the block cache has stopped; not caching");
            }
            self.inner.network.block_fetched(cid);
        }
        Ok(block)
    }

    async fn fetch_from_peers(&self, cid: Cid) -> Result<(Block, RetrievalPath), SourceError> {
        let _turn = self
            .inner
            .fetches
            .acquire()
            .await
            .map_err(|_| unavailable(cid, "retrieval has stopped"))?;
        let sessions = &self.inner.sessions;
        if !sessions.in_a_dag(&cid) {
            // The root of a DAG: streamed whole from a connected Stargate node that has it.
            match self
                .inner
                .network
                .stargate_peers(IDENTIFY_WAIT_CONNECTED)
                .await
            {
                Ok(peers) if !peers.is_empty() => {
                    sessions.offer(cid, &peers);
                }
                Ok(_) => {}
                Err(e) => return Err(network_error(cid, e)),
            }
        }
        if let Some(block) = sessions.wait_covered(cid).await {
            return Ok((block, RetrievalPath::Transfer));
        }
        let mut want = self
            .inner
            .network
            .want(cid)
            .await
            .map_err(|e| network_error(cid, e))?;
        let exhausted = std::mem::replace(&mut want.exhausted, tokio::sync::oneshot::channel().1);
        let search = std::pin::pin!(self.search_providers(cid, exhausted));
        tokio::select! {
            biased;
            block = sessions.arrival(cid) => Ok((block, RetrievalPath::Transfer)),
            arrived = &mut want.block => match arrived {
                Ok(result) => result
                    .map(|b| (b, RetrievalPath::Bitswap))
                    .map_err(|e| network_error(cid, e)),
                Err(_) => Err(unavailable(cid, "the network has stopped")),
            },
            never = search => match never {},
        }
    }

    /// Looks for providers of `cid` in the DHT, for as long as the fetch lasts (it is dropped
    /// when the block arrives or the fetch gives up).
    async fn search_providers(
        &self,
        cid: Cid,
        exhausted: tokio::sync::oneshot::Receiver<()>,
    ) -> Infallible {
        // Connected peers first; the DHT once they all lack the block, or after a moment.
        let _ = tokio::time::timeout(PROVIDER_SEARCH_DELAY, exhausted).await;
        loop {
            // Never closed; `None` would only mean searching without a turn.
            let turn = self.inner.searches.acquire().await.ok();
            match self
                .inner
                .network
                .providers(dht_key(&cid), PROVIDERS_PER_SEARCH, true)
                .await
            {
                Ok(mut found) => {
                    // Side by side: a provider may take a while to identify itself (or never
                    // answer the dial), which must not hold up the next ones.
                    let mut using = futures::stream::FuturesUnordered::new();
                    loop {
                        tokio::select! {
                            provider = found.recv() => match provider {
                                Some(p) => using.push(self.use_provider(cid, p)),
                                None => break,
                            },
                            Some(()) = futures::StreamExt::next(&mut using) => {}
                        }
                    }
                    while futures::StreamExt::next(&mut using).await.is_some() {}
                }
                Err(e) => tracing::debug!(%cid, error = %e, "cannot look for providers"),
            }
            drop(turn);
            tokio::time::sleep(SEARCH_AGAIN).await;
        }
    }

    /// Puts a provider to work on `cid`: a Stargate node streams the DAG of `cid` over the CAR
    /// transfer (and becomes a Bitswap candidate only if that fails); any other provider is a
    /// Bitswap candidate.
    async fn use_provider(&self, cid: Cid, provider: FoundProvider) {
        tracing::debug!(%cid, peer = %provider.peer, "found a provider");
        if !self.inner.sessions.in_a_dag(&cid)
            && self.is_stargate(provider.peer).await
            && self.inner.sessions.offer(cid, &[provider.peer])
        {
            return;
        }
        if let Err(e) = self.inner.network.add_peers(cid, vec![provider.peer]).await {
            tracing::debug!(%cid, error = %e, "cannot add a provider");
        }
    }
}

impl NetworkBlockSource {
    /// Whether `peer` (just found, perhaps still being dialled) identifies as a Stargate node.
    async fn is_stargate(&self, peer: libp2p::PeerId) -> bool {
        let answer = tokio::time::timeout(IDENTIFY_WAIT, async {
            loop {
                match self.inner.network.is_stargate(peer).await {
                    Ok(Some(stargate)) => return stargate,
                    Ok(None) => tokio::time::sleep(IDENTIFY_POLL).await,
                    Err(_) => return false,
                }
            }
        })
        .await;
        answer.unwrap_or(false)
    }
}

impl BlockSource for NetworkBlockSource {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(async move {
            match BlockSource::get(&self.inner.store, cid).await {
                Err(SourceError::NotFound { .. }) => {}
                stored => {
                    self.inner.sessions.read(&cid);
                    return stored;
                }
            }
            let fetch = self.shared_fetch(cid);
            let result = fetch.await;
            self.finished(cid);
            result
        })
    }
}

/// Writes fetched blocks to the store, unpinned, in batches.
async fn write_cache(store: Store, mut queue: mpsc::Receiver<Block>) {
    let mut batch = Vec::with_capacity(CACHE_BATCH);
    while queue.recv_many(&mut batch, CACHE_BATCH).await > 0 {
        let blocks = std::mem::replace(&mut batch, Vec::with_capacity(CACHE_BATCH));
        let count = blocks.len();
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.put_many(blocks)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, count, "cannot cache fetched blocks"),
            Err(e) => tracing::warn!(error = %e, count, "the block cache task failed"),
        }
    }
}

fn unavailable(cid: Cid, reason: &str) -> SourceError {
    SourceError::Unavailable {
        cid: cid.to_string(),
        reason: reason.to_owned(),
    }
}

fn network_error(cid: Cid, e: NetworkError) -> SourceError {
    match e {
        NetworkError::Invalid { reason, .. } => SourceError::Invalid {
            cid: cid.to_string(),
            reason,
        },
        other => SourceError::Unavailable {
            cid: cid.to_string(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    //! Real networks (TCP on 127.0.0.1, nothing else) in one process: fetching a DAG from a
    //! connected peer, sharing one fetch between requests, the timeout, and a peer that sends
    //! a corrupt block.

    use std::time::Instant;

    use futures::{AsyncWriteExt, StreamExt, TryStreamExt};
    use libp2p::identity::Keypair;
    use libp2p::{Multiaddr, StreamProtocol, SwarmBuilder, noise, tcp, yamux};
    use prometheus_client::registry::Registry;
    use stargate_http_gateway::Network as _;
    use stargate_protocol::bitswap::{CidPrefix, Message, Payload, ProtocolVersion};
    use stargate_protocol::unixfs::export::{DEFAULT_WINDOW, read_file};
    use stargate_protocol::unixfs::{ImportOptions, import_file};
    use stargate_protocol::{Bytes, Codec, HashCode, Version};
    use stargate_storage::StoreOptions;
    use tempfile::TempDir;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::config::{Config, KadMode};
    use crate::p2p::{Metrics, Settings, spawn};

    const DEADLINE: Duration = Duration::from_secs(60);

    struct Node {
        network: Network,
        source: NetworkBlockSource,
        store: Store,
        shutdown: CancellationToken,
        registry: Registry,
        _dir: TempDir,
    }

    impl Node {
        async fn start(fetch_timeout_sec: u64) -> Self {
            Self::start_with(fetch_timeout_sec, |_| {}).await
        }

        async fn start_with(fetch_timeout_sec: u64, adjust: impl FnOnce(&mut Config)) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
            let mut config = Config::default();
            config.swarm.listen = vec!["/ip4/127.0.0.1/tcp/0".into()];
            config.swarm.bootstrap = Vec::new();
            config.swarm.mdns = false;
            config.swarm.upnp = false;
            config.swarm.autonat = false;
            config.swarm.relay_client = false;
            config.swarm.hole_punching = false;
            config.swarm.kad_mode = KadMode::Server;
            config.routing.fetch_timeout_sec = fetch_timeout_sec;
            adjust(&mut config);
            let settings = Settings::new(&config.swarm, &config.routing, &config.transfer).unwrap();
            let mut registry = Registry::default();
            let metrics = Metrics::register(&mut registry);
            let shutdown = CancellationToken::new();
            let (network, _task) = spawn(
                Keypair::generate_ed25519(),
                settings.clone(),
                store.clone(),
                metrics,
                shutdown.clone(),
            )
            .unwrap();
            let source = NetworkBlockSource::new(store.clone(), network.clone(), settings.fetching);
            Self {
                network,
                source,
                store,
                shutdown,
                registry,
                _dir: dir,
            }
        }

        /// Blocks fetched over `path` ("transfer", "bitswap"), from the metrics.
        fn retrieved(&self, path: &str) -> u64 {
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
            let series = format!("stargate_retrieval_blocks_total{{path=\"{path}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&series))
                .map_or(0, |n| n.trim().parse().unwrap())
        }

        /// Connects to `other` and waits for its identify message: the retrieval waits only a
        /// second for a peer's before it takes it for one that speaks Bitswap only.
        async fn connect(&self, other: &Node) {
            self.network.connect(other.addr().await).await.unwrap();
            let peer = other.network.local_peer_id();
            let stargate = tokio::time::timeout(DEADLINE, self.network.is_stargate(peer))
                .await
                .expect("identified within the deadline");
            assert_eq!(stargate.unwrap(), Some(true));
        }

        /// Its TCP address with `/p2p/`, once it listens.
        async fn addr(&self) -> String {
            crate::p2p::testutil::tcp_address(&self.network, DEADLINE).await
        }

        async fn peers(&self) -> Vec<String> {
            let peers = self.network.peers().await.unwrap();
            peers.into_iter().map(|p| p.peer).collect()
        }

        async fn eventually_cached(&self, cids: &[Cid]) {
            tokio::time::timeout(DEADLINE, async {
                for cid in cids {
                    while !self.store.has(cid).unwrap() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
            .await
            .expect("the fetched blocks are cached");
        }
    }

    impl Drop for Node {
        fn drop(&mut self) {
            self.shutdown.cancel();
        }
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let file = tempfile::NamedTempFile::new().unwrap();
        stargate_tests::write_pseudo_random_file(file.path(), len as u64, seed).unwrap();
        std::fs::read(file.path()).unwrap()
    }

    /// Imports `len` pseudo-random bytes in 16 KiB chunks into `store`; returns the root, the
    /// bytes and the CIDs of every block.
    fn add_file(store: &Store, len: usize, seed: u64) -> (Cid, Vec<u8>, Vec<Cid>) {
        let data = pseudo_random(len, seed);
        let opts = ImportOptions::default().with_chunker("size-16384").unwrap();
        let mut blocks: Vec<Block> = Vec::new();
        let file = import_file(&data[..], &opts, &mut blocks, |_| {}).unwrap();
        let cids = blocks.iter().map(|b| *b.cid()).collect();
        store.put_many(blocks).unwrap();
        (file.cid, data, cids)
    }

    async fn read_all(source: &NetworkBlockSource, root: Cid) -> Vec<u8> {
        let source: Arc<dyn BlockSource> = Arc::new(source.clone());
        let file = source.get(root).await.unwrap();
        let size = stargate_protocol::unixfs::export::file_len(&file).unwrap();
        let chunks: Vec<Bytes> = read_file(source, file, 0..size, DEFAULT_WINDOW)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        chunks.concat()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn fetches_a_dag_from_a_connected_peer_and_caches_it_unpinned() {
        let holder = Node::start(30).await;
        let fetcher = Node::start(30).await;
        let (root, data, cids) = add_file(&holder.store, 3 << 20, 1);
        fetcher.connect(&holder).await;

        let got = tokio::time::timeout(DEADLINE, read_all(&fetcher.source, root))
            .await
            .expect("the file within the deadline");
        assert!(got == data, "the fetched bytes differ");
        fetcher.eventually_cached(&cids).await;
        assert_eq!(fetcher.store.pin_type(&root).unwrap(), None);
        // A Stargate peer: the CAR transfer brought the whole DAG, Bitswap nothing.
        assert_eq!(fetcher.retrieved("transfer"), cids.len() as u64);
        assert_eq!(fetcher.retrieved("bitswap"), 0);
        // Now from the store, with the peer gone.
        holder.shutdown.cancel();
        assert!(read_all(&fetcher.source, root).await == data);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_dag_nobody_reads_any_more_is_not_transferred_to_its_end() {
        // 2 MiB/s from the holder: the 16 MiB DAG would take 8 s.
        let holder = Node::start_with(30, |c| c.transfer.serve_bytes_per_sec = 2 << 20).await;
        let fetcher = Node::start_with(30, |c| c.transfer.stall_timeout_sec = 1).await;
        let (root, _, cids) = add_file(&holder.store, 16 << 20, 5);
        fetcher.connect(&holder).await;

        // Only the root is read.
        fetcher.source.get(root).await.unwrap();
        let stored = || {
            cids.iter()
                .filter(|c| fetcher.store.has(c).unwrap())
                .count()
        };
        // The session gives up a second or two after the last read (later on a busy machine),
        // and what it brought reaches the store.
        let after_stop = tokio::time::timeout(DEADLINE, async {
            while fetcher.source.inner.sessions.running() > 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut last = stored();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let now = stored();
                if now == last {
                    return now;
                }
                last = now;
            }
        })
        .await
        .expect("the session ends");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(stored(), after_stop, "the transfer went on");
        assert!(
            after_stop > 1 && after_stop < cids.len() / 2,
            "{after_stop} of {} blocks were transferred (it started, then stopped for nobody)",
            cids.len()
        );
        assert_eq!(fetcher.source.inner.sessions.running(), 0);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn requests_for_one_block_share_a_fetch_and_its_deadline() {
        let fetcher = Node::start(3).await;
        let missing =
            Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![7u8; 99]).unwrap();
        let cid = *missing.cid();
        let get = |source: NetworkBlockSource| {
            tokio::spawn(async move {
                let started = Instant::now();
                (source.get(cid).await, started.elapsed())
            })
        };
        let first = get(fetcher.source.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let second = get(fetcher.source.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            fetcher.source.inner.running.lock().unwrap().len(),
            1,
            "one fetch for both"
        );
        let (first, _) = first.await.unwrap();
        let (second, waited) = second.await.unwrap();
        for result in [first, second] {
            match result {
                Err(SourceError::TimedOut { after, .. }) => {
                    assert_eq!(after, Duration::from_secs(3));
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
        // A deadline of its own would have kept the second request at least 3 s.
        assert!(
            waited < Duration::from_secs(3),
            "the second request did not share the first one's fetch: {waited:?}"
        );
        assert!(fetcher.source.inner.running.lock().unwrap().is_empty());
        assert!(!fetcher.store.has(&cid).unwrap());
    }

    /// A peer that answers any Bitswap message with `block`'s CID and other bytes.
    async fn corrupt_peer(block: Block) -> (libp2p::PeerId, Multiaddr) {
        const V120: StreamProtocol = StreamProtocol::new("/ipfs/bitswap/1.2.0");
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .unwrap()
            .with_behaviour(|_| libp2p_stream::Behaviour::new())
            .unwrap()
            .build();
        let addr = crate::p2p::testutil::listen_on_loopback(&mut swarm).await;
        let peer = *swarm.local_peer_id();
        let mut control = swarm.behaviour().new_control();
        let mut incoming = control.accept(V120).unwrap();
        tokio::spawn(async move {
            loop {
                swarm.select_next_some().await;
            }
        });
        tokio::spawn(async move {
            let mut data = block.data().to_vec();
            data[0] ^= 1;
            let message = Message {
                payload: vec![Payload {
                    prefix: CidPrefix::of(block.cid()),
                    data: Bytes::from(data),
                }],
                ..Message::default()
            }
            .encode_framed(ProtocolVersion::V120);
            // Its wantlist stream stays open; the lie goes on a stream of its own.
            let mut streams = Vec::new();
            while let Some((from, stream)) = incoming.next().await {
                streams.push(stream);
                if let Ok(mut out) = control.open_stream(from, V120).await {
                    let _ = out.write_all(&message).await;
                    let _ = out.close().await;
                }
            }
        });
        (peer, addr.with(libp2p::multiaddr::Protocol::P2p(peer)))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_peer_sending_a_corrupt_block_is_disconnected_and_nothing_is_stored() {
        let fetcher = Node::start(5).await;
        let wanted = Block::encode(
            Version::V1,
            Codec::Raw,
            HashCode::Sha2_256,
            pseudo_random(5000, 3),
        )
        .unwrap();
        let cid = *wanted.cid();
        let (liar, addr) = corrupt_peer(wanted).await;
        fetcher.network.connect(addr.to_string()).await.unwrap();
        assert_eq!(fetcher.peers().await, vec![liar.to_string()]);

        match fetcher.source.get(cid).await {
            Err(SourceError::TimedOut { .. }) => {}
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(
            !fetcher.peers().await.contains(&liar.to_string()),
            "the liar is still connected"
        );
        assert!(!fetcher.store.has(&cid).unwrap());
    }
}
