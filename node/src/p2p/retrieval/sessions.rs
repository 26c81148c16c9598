//! DAG transfers for retrieval: a DAG that a Stargate node has is streamed whole from it over the
//! CAR transfer (`p2p/transfer/`) instead of block by block over Bitswap.
//!
//! A *session* fetches one DAG, named by its root: it asks the Stargate peers offered to it in
//! turn (the connected ones, then providers found in the DHT) until one streams the whole DAG.
//! The transfer yields blocks in walk order, which is the order in which `cat`, `get` and the
//! gateway read them; each block is handed at once to the fetches waiting for it and kept in
//! `ready` for those that ask a little later (the transfer's store writer commits in batches).
//!
//! The links of every block fetched from the network are remembered (`lineage`) with the root of
//! their DAG, so that a fetch knows a block belongs to a DAG already being fetched: while the
//! DAG's session streams, the fetch waits for it; otherwise (no session, or it failed or stalled)
//! it goes to Bitswap. One transfer covers a DAG; a child block never starts one of its own.
//! A session that fails with one peer goes on with the next one offered, skipping the blocks it
//! already brought.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use libp2p::PeerId;
use stargate_protocol::transfer::TransferRequest;
use stargate_protocol::{Block, Cid, Codec, PbNode};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::p2p::metrics::RetrievalPath;
use crate::p2p::network::Network;

/// Bytes of blocks that sessions brought and that no fetch took yet.
const READY_BYTES: usize = 64 << 20;
/// Links remembered with the root of their DAG.
const MAX_LINEAGE: usize = 1 << 16;
/// Peers offered to one session and not yet asked.
const OFFERS: usize = 16;
/// A session with no peer left to ask ends after this long without a new offer.
const IDLE: Duration = Duration::from_secs(10);
/// How often a streaming session checks that someone still reads the DAG.
const ABANDON_CHECK: Duration = Duration::from_secs(1);

/// The transfer was stopped because nobody waited for the DAG any more.
struct Abandoned;

/// See the module documentation. Shared by the fetches of one block source.
pub(super) struct Sessions {
    network: Network,
    state: Mutex<State>,
    /// Woken when a block is brought and when a session's state changes.
    changed: Notify,
    /// Sessions at once (the transfer's `max_fetches`).
    max: usize,
    /// A fetch waits this long without any progress of the session before it turns to Bitswap.
    stall: Duration,
}

struct State {
    sessions: HashMap<Cid, Session>,
    /// Block -> the root of the DAG it was linked from; at most [`MAX_LINEAGE`] links.
    lineage: Fifo<Cid>,
    /// Blocks brought and not yet taken; at most [`READY_BYTES`] of them.
    ready: Fifo<Block>,
}

struct Session {
    offers: mpsc::Sender<PeerId>,
    /// Peers offered so far; each is asked once.
    offered: HashSet<PeerId>,
    /// A transfer streams now, or a peer is lined up for one.
    streaming: bool,
    /// When the session last brought a block or started streaming.
    progress: Instant,
    /// When a fetch last waited for a block of the DAG: a DAG nobody reads any more (a range
    /// request, a reader that went away) is not transferred to its end.
    wanted: Instant,
}

impl Sessions {
    pub(super) fn new(network: Network) -> Arc<Self> {
        let limits = network.transfer_limits();
        let (max, stall) = (limits.max_fetches, limits.stall_timeout);
        Arc::new(Self {
            network,
            state: Mutex::new(State {
                sessions: HashMap::new(),
                lineage: Fifo::new(MAX_LINEAGE, |_| 1),
                ready: Fifo::new(READY_BYTES, |block| block.data().len()),
            }),
            changed: Notify::new(),
            max,
            stall,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sessions under way.
    #[cfg(test)]
    pub(super) fn running(&self) -> usize {
        self.lock().sessions.len()
    }

    /// A block a session brought, if it is still kept.
    pub(super) fn ready(&self, cid: &Cid) -> Option<Block> {
        self.lock().ready.get(cid).cloned()
    }

    /// A reader got `cid` from the store: if it is a block of a DAG being transferred, someone
    /// still reads that DAG (the transfer runs ahead of its readers).
    pub(super) fn read(&self, cid: &Cid) {
        let mut state = self.lock();
        if state.sessions.is_empty() {
            return;
        }
        if let Some(root) = state.lineage.get(cid).copied()
            && let Some(s) = state.sessions.get_mut(&root)
        {
            s.wanted = Instant::now();
        }
    }

    /// Whether `cid` is linked from a DAG fetched from the network (so it is no root of its own).
    pub(super) fn in_a_dag(&self, cid: &Cid) -> bool {
        self.lock().lineage.contains_key(cid)
    }

    /// Offers `peers` (Stargate nodes) to the session of `root`, starting one if there is none
    /// and `root` is not a block of a DAG being fetched. Returns whether a session took them.
    pub(super) fn offer(self: &Arc<Self>, root: Cid, peers: &[PeerId]) -> bool {
        let mut state = self.lock();
        if !state.sessions.contains_key(&root) {
            if state.lineage.contains_key(&root) || state.sessions.len() >= self.max {
                return false;
            }
            let (offers, queue) = mpsc::channel(OFFERS);
            state.sessions.insert(
                root,
                Session {
                    offers,
                    offered: HashSet::new(),
                    // Set before the task starts, so that the fetch of the root waits for it.
                    streaming: !peers.is_empty(),
                    progress: Instant::now(),
                    wanted: Instant::now(),
                },
            );
            tokio::spawn(Arc::clone(self).run(root, queue));
        }
        let Some(session) = state.sessions.get_mut(&root) else {
            return false;
        };
        for peer in peers {
            if session.offered.insert(*peer) && session.offers.try_send(*peer).is_err() {
                session.offered.remove(peer);
            }
        }
        true
    }

    /// Waits for a session to bring `cid`, for as long as the session of its DAG streams and
    /// makes progress. `None`: no session will bring it now (ask Bitswap).
    pub(super) async fn wait_covered(&self, cid: Cid) -> Option<Block> {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let deadline = {
                let mut state = self.lock();
                let root = state.lineage.get(&cid).copied().unwrap_or(cid);
                if let Some(s) = state.sessions.get_mut(&root) {
                    s.wanted = Instant::now();
                }
                if let Some(block) = state.ready.get(&cid) {
                    return Some(block.clone());
                }
                match state.sessions.get(&root) {
                    Some(s) if s.streaming && s.progress.elapsed() < self.stall => {
                        s.progress + self.stall
                    }
                    _ => return None,
                }
            };
            let _ = tokio::time::timeout_at(deadline, changed).await;
        }
    }

    /// Resolves when a session brings `cid` (a session started after the call included).
    pub(super) async fn arrival(&self, cid: Cid) -> Block {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            if let Some(block) = self.ready(&cid) {
                return block;
            }
            changed.await;
        }
    }

    /// Remembers the links of `block`, fetched from the network, as part of its DAG.
    pub(super) fn fetched(&self, block: &Block) {
        let mut state = self.lock();
        let root = state
            .lineage
            .get(block.cid())
            .copied()
            .unwrap_or(*block.cid());
        remember_links(&mut state, root, block);
    }

    /// The session of `root`: asks the offered peers in turn until one streams the whole DAG.
    async fn run(self: Arc<Self>, root: Cid, mut offers: mpsc::Receiver<PeerId>) {
        // Blocks of the walk brought so far: a transfer from the next peer walks the same
        // DAG in the same order, so its first `brought` blocks are not new.
        let mut brought = 0u64;
        let mut next = None;
        loop {
            let peer = match next.take() {
                Some(peer) => peer,
                None => match tokio::time::timeout(IDLE, offers.recv()).await {
                    Ok(Some(peer)) => peer,
                    Ok(None) | Err(_) => break,
                },
            };
            self.set_streaming(root, true);
            let mut blocks = self
                .network
                .fetch_dag(peer, TransferRequest::dag(root), false);
            let mut walked = 0u64;
            let mut check = tokio::time::interval(ABANDON_CHECK);
            let outcome = loop {
                let next = tokio::select! {
                    next = blocks.next() => next,
                    _ = check.tick() => {
                        if self.abandoned(root) {
                            break Err(Abandoned);
                        }
                        continue;
                    }
                };
                match next {
                    Some(Ok(block)) => {
                        walked += 1;
                        if walked > brought {
                            brought = walked;
                            self.brought(root, block);
                        } else {
                            // Sent again by the next peer: progress all the same.
                            self.set_streaming(root, true);
                        }
                    }
                    Some(Err(e)) => break Ok(Err(e)),
                    None => break Ok(Ok(())),
                }
            };
            match outcome {
                Err(Abandoned) => {
                    // Dropping the stream cancels the transfer; what arrived stays stored.
                    tracing::debug!(%root, %peer, blocks = brought, "nobody reads the DAG any more; transfer stopped");
                    break;
                }
                Ok(Ok(())) => {
                    tracing::debug!(%root, %peer, blocks = brought, "DAG transferred");
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%root, %peer, error = %e, "transfer failed; trying the next peer");
                    // Whatever the fetch of the root still wants may come from it over Bitswap.
                    let _ = self.network.add_peers(root, vec![peer]).await;
                }
            }
            // Fetches waiting for the DAG go on waiting only if another peer is lined up.
            next = offers.try_recv().ok();
            if next.is_none() {
                self.set_streaming(root, false);
            }
        }
        self.lock().sessions.remove(&root);
        self.changed.notify_waiters();
    }

    /// Whether no fetch has waited for a block of the DAG of `root` for the stall timeout.
    fn abandoned(&self, root: Cid) -> bool {
        self.lock()
            .sessions
            .get(&root)
            .is_none_or(|s| s.wanted.elapsed() > self.stall)
    }

    fn set_streaming(&self, root: Cid, streaming: bool) {
        if let Some(s) = self.lock().sessions.get_mut(&root) {
            s.streaming = streaming;
            s.progress = Instant::now();
        }
        self.changed.notify_waiters();
    }

    /// A session brought `block` of the DAG of `root`.
    fn brought(&self, root: Cid, block: Block) {
        self.network
            .retrieved(RetrievalPath::Transfer, block.data().len());
        self.network.block_fetched(*block.cid());
        {
            let mut state = self.lock();
            if let Some(s) = state.sessions.get_mut(&root) {
                s.progress = Instant::now();
            }
            remember_links(&mut state, root, &block);
            state.ready.insert(*block.cid(), block);
        }
        self.changed.notify_waiters();
    }
}

/// Records the links of `block` (dag-pb; other codecs link nothing we walk) as blocks of the
/// DAG of `root`; the oldest are forgotten past [`MAX_LINEAGE`].
fn remember_links(state: &mut State, root: Cid, block: &Block) {
    if block.cid().codec() != Codec::DagPb.code() {
        return;
    }
    let Ok(node) = PbNode::decode(block.data()) else {
        return;
    };
    for link in node.links {
        state.lineage.insert(link.cid, root);
    }
}

/// A map by CID that forgets its oldest entries once their total weight passes a limit.
struct Fifo<V> {
    map: HashMap<Cid, V>,
    order: VecDeque<Cid>,
    weight: usize,
    limit: usize,
    weigh: fn(&V) -> usize,
}

impl<V> Fifo<V> {
    fn new(limit: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            weight: 0,
            limit,
            weigh,
        }
    }

    fn get(&self, cid: &Cid) -> Option<&V> {
        self.map.get(cid)
    }

    fn contains_key(&self, cid: &Cid) -> bool {
        self.map.contains_key(cid)
    }

    /// Inserts or replaces `cid`'s value (a replaced entry keeps its place in the order).
    fn insert(&mut self, cid: Cid, value: V) {
        self.weight += (self.weigh)(&value);
        match self.map.insert(cid, value) {
            Some(old) => self.weight -= (self.weigh)(&old),
            None => self.order.push_back(cid),
        }
        while self.weight > self.limit {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.map.remove(&oldest) {
                self.weight -= (self.weigh)(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use stargate_protocol::{HashCode, Version};

    use super::*;

    fn block(i: u8, len: usize) -> Block {
        Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; len]).unwrap()
    }

    #[test]
    fn fifo_forgets_the_oldest_past_its_weight() {
        let mut ready = Fifo::new(10, |b: &Block| b.data().len());
        let (a, b, c) = (block(1, 4), block(2, 4), block(3, 4));
        ready.insert(*a.cid(), a.clone());
        ready.insert(*b.cid(), b.clone());
        // Replacing keeps one entry and its weight once.
        ready.insert(*a.cid(), a.clone());
        assert!(ready.contains_key(a.cid()) && ready.contains_key(b.cid()));
        ready.insert(*c.cid(), c.clone());
        assert!(!ready.contains_key(a.cid()), "the oldest goes first");
        assert_eq!(ready.get(b.cid()), Some(&b));
        assert_eq!(ready.get(c.cid()), Some(&c));
        assert_eq!(ready.weight, 8);
    }
}
