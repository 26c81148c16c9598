//! The server side: every connected peer's wantlist (its ledger) and the answers from the store.
//!
//! Store reads run on tokio's blocking pool (redb blocks), a bounded number at a time. Peers take
//! turns (round robin): a peer with wants gets one read job at a time of at most
//! [`MAX_JOB_WANTS`] wants and about [`JOB_BYTES`] of blocks, its answers go out in messages
//! within the size limit, and it gets another turn once those are written down to the unsent
//! limit and, if configured, its block rate allows. Wants are answered by priority, oldest first
//! among equals; a cancel (or a full wantlist that leaves a want out) that arrives while a read is
//! under way still stops its answer.
//!
//! Answers: want-have → HAVE, or DONT_HAVE if asked for; want-block → the block, or DONT_HAVE if
//! asked for. Answered wants are forgotten (also unanswered ones: we do not tell peers about
//! blocks that arrive later; they ask again).

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::PeerId;
use stargate_protocol::bitswap::{
    BlockPresence, Message, Payload, PresenceType, ProtocolVersion, WantEntry, WantType,
};
use stargate_protocol::{Block, Cid};
use stargate_storage::Store;
use tokio::time::{Instant, Sleep};

/// Most wants one read job answers.
const MAX_JOB_WANTS: usize = 256;
/// A read job stops reading blocks once it holds this many bytes.
const JOB_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub(super) struct ServerLimits {
    pub(super) max_wants_per_peer: usize,
    pub(super) max_concurrent_reads: usize,
    pub(super) blocks_per_second: Option<u32>,
    pub(super) max_message_bytes: usize,
    pub(super) max_unsent_bytes_per_peer: usize,
    pub(super) max_unsent_bytes: usize,
}

/// A message for a peer, within the size limit.
#[derive(Debug)]
pub(super) struct Response {
    pub(super) peer: PeerId,
    pub(super) message: Message,
    pub(super) blocks: usize,
    pub(super) bytes: usize,
}

type Key = (Reverse<i32>, u64);

#[derive(Debug)]
struct Entry {
    want_type: WantType,
    send_dont_have: bool,
    key: Key,
    in_job: bool,
}

#[derive(Debug)]
struct Ledger {
    wants: HashMap<Cid, Entry>,
    queue: BTreeMap<Key, Cid>,
    busy: bool,
    scheduled: bool,
    unsent: usize,
    tokens: f64,
    refilled: Instant,
    supports_have: bool,
}

impl Ledger {
    fn new(rate: Option<u32>) -> Self {
        Self {
            wants: HashMap::new(),
            queue: BTreeMap::new(),
            busy: false,
            scheduled: false,
            unsent: 0,
            tokens: rate.map_or(0.0, f64::from),
            refilled: Instant::now(),
            supports_have: true,
        }
    }

    fn refill(&mut self, rate: u32) {
        let now = Instant::now();
        let rate = f64::from(rate);
        let elapsed = now.duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
    }
}

#[derive(Debug)]
enum Answer {
    Block(Block),
    Have,
    DontHave,
}

#[derive(Debug)]
struct JobOutput {
    answers: Vec<(Cid, Answer)>,
    leftover: Vec<Cid>,
    errors: u64,
}

type Job = BoxFuture<'static, (PeerId, Result<JobOutput, tokio::task::JoinError>)>;

pub(super) struct Server {
    store: Store,
    limits: ServerLimits,
    ledgers: HashMap<PeerId, Ledger>,
    ready: VecDeque<PeerId>,
    jobs: FuturesUnordered<Job>,
    throttled: Vec<PeerId>,
    timer: Option<Pin<Box<Sleep>>>,
    /// Peers waiting for the total of unsent bytes to go down.
    starved: VecDeque<PeerId>,
    unsent: usize,
    responses: VecDeque<Response>,
    seq: u64,
    dropped_wants: u64,
    read_errors: u64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("peers", &self.ledgers.len())
            .field("jobs", &self.jobs.len())
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(super) fn new(store: Store, limits: ServerLimits) -> Self {
        Self {
            store,
            limits,
            ledgers: HashMap::new(),
            ready: VecDeque::new(),
            jobs: FuturesUnordered::new(),
            throttled: Vec::new(),
            timer: None,
            starved: VecDeque::new(),
            unsent: 0,
            responses: VecDeque::new(),
            seq: 0,
            dropped_wants: 0,
            read_errors: 0,
        }
    }

    pub(super) fn connected(&mut self, peer: PeerId) {
        let rate = self.limits.blocks_per_second;
        self.ledgers
            .entry(peer)
            .or_insert_with(|| Ledger::new(rate));
    }

    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        if let Some(l) = self.ledgers.remove(peer) {
            self.unsent = self.unsent.saturating_sub(l.unsent);
        }
        self.ready.retain(|p| p != peer);
        self.throttled.retain(|p| p != peer);
        self.starved.retain(|p| p != peer);
        self.responses.retain(|r| r.peer != *peer);
        self.feed_starved();
    }

    pub(super) fn set_version(&mut self, peer: &PeerId, version: ProtocolVersion) {
        if let Some(l) = self.ledgers.get_mut(peer) {
            l.supports_have = version.supports_have();
        }
    }

    /// Applies a peer's wantlist entries (a `full` list replaces what it wanted before).
    pub(super) fn wantlist(&mut self, peer: PeerId, entries: Vec<WantEntry>, full: bool) {
        let Some(l) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if full {
            l.wants.clear();
            l.queue.clear();
        }
        for e in entries {
            if e.cancel {
                if let Some(old) = l.wants.remove(&e.cid) {
                    l.queue.remove(&old.key);
                }
                continue;
            }
            if let Some(old) = l.wants.get_mut(&e.cid) {
                if e.want_type == WantType::Block {
                    old.want_type = WantType::Block;
                }
                old.send_dont_have |= e.send_dont_have;
                continue;
            }
            if l.wants.len() >= self.limits.max_wants_per_peer {
                self.dropped_wants += 1;
                continue;
            }
            self.seq += 1;
            let key = (Reverse(e.priority), self.seq);
            l.queue.insert(key, e.cid);
            l.wants.insert(
                e.cid,
                Entry {
                    want_type: e.want_type,
                    send_dont_have: e.send_dont_have,
                    key,
                    in_job: false,
                },
            );
        }
        self.schedule(peer);
    }

    /// `bytes` of an earlier response to `peer` were written or dropped.
    pub(super) fn written(&mut self, peer: PeerId, bytes: usize) {
        if let Some(l) = self.ledgers.get_mut(&peer) {
            let freed = bytes.min(l.unsent);
            l.unsent -= freed;
            self.unsent = self.unsent.saturating_sub(freed);
        }
        self.schedule(peer);
        self.feed_starved();
    }

    /// Schedules the peers that waited for the total of unsent bytes, while it allows.
    fn feed_starved(&mut self) {
        while self.unsent < self.limits.max_unsent_bytes {
            let Some(peer) = self.starved.pop_front() else {
                return;
            };
            self.schedule(peer);
        }
    }

    fn schedule(&mut self, peer: PeerId) {
        let Some(l) = self.ledgers.get_mut(&peer) else {
            return;
        };
        if l.busy
            || l.scheduled
            || l.queue.is_empty()
            || l.unsent >= self.limits.max_unsent_bytes_per_peer
        {
            return;
        }
        if self.unsent >= self.limits.max_unsent_bytes {
            if !self.starved.contains(&peer) {
                self.starved.push_back(peer);
            }
            return;
        }
        if let Some(rate) = self.limits.blocks_per_second {
            l.refill(rate);
            if l.tokens < 1.0 {
                let wait = Duration::from_secs_f64((1.0 - l.tokens) / f64::from(rate.max(1)));
                let at = Instant::now() + wait;
                if !self.throttled.contains(&peer) {
                    self.throttled.push(peer);
                }
                if self.timer.as_ref().is_none_or(|t| t.deadline() > at) {
                    self.timer = Some(Box::pin(tokio::time::sleep_until(at)));
                }
                return;
            }
        }
        l.scheduled = true;
        self.ready.push_back(peer);
    }

    fn start_jobs(&mut self) {
        // Peers scheduled before the total reached the cap wait too, so that the cap is
        // overshot by at most the reads already running.
        while self.jobs.len() < self.limits.max_concurrent_reads
            && self.unsent < self.limits.max_unsent_bytes
        {
            let Some(peer) = self.ready.pop_front() else {
                return;
            };
            let Some(l) = self.ledgers.get_mut(&peer) else {
                continue;
            };
            l.scheduled = false;
            let mut items = Vec::new();
            while items.len() < MAX_JOB_WANTS {
                let Some((key, cid)) = l.queue.pop_first() else {
                    break;
                };
                if let Some(e) = l.wants.get_mut(&cid)
                    && e.key == key
                    && !e.in_job
                {
                    e.in_job = true;
                    items.push((cid, e.want_type));
                }
            }
            if items.is_empty() {
                continue;
            }
            l.busy = true;
            // The rate limit holds within a read too.
            let max_blocks = match self.limits.blocks_per_second {
                Some(_) => l.tokens.floor().max(1.0) as usize,
                None => usize::MAX,
            };
            let store = self.store.clone();
            let job = tokio::task::spawn_blocking(move || read(&store, items, max_blocks))
                .map(move |r| (peer, r))
                .boxed();
            self.jobs.push(job);
        }
    }

    fn finish(&mut self, peer: PeerId, out: JobOutput) {
        self.read_errors += out.errors;
        let Some(l) = self.ledgers.get_mut(&peer) else {
            return;
        };
        l.busy = false;
        for cid in out.leftover {
            if let Some(e) = l.wants.get_mut(&cid)
                && e.in_job
            {
                e.in_job = false;
                l.queue.insert(e.key, cid);
            }
        }
        let mut message = Message::default();
        for (cid, answer) in out.answers {
            // Cancelled meanwhile, or replaced by a full wantlist (then queued anew).
            let Some(e) = l.wants.get_mut(&cid) else {
                continue;
            };
            if !e.in_job {
                continue;
            }
            e.in_job = false;
            let (key, want_type, send_dont_have) = (e.key, e.want_type, e.send_dont_have);
            match answer {
                Answer::Block(block) => message.payload.push(Payload::from_block(&block)),
                Answer::Have => {
                    if l.supports_have {
                        message.presences.push(BlockPresence {
                            cid,
                            kind: PresenceType::Have,
                        });
                    }
                    if want_type == WantType::Block {
                        // Upgraded to want-block while we looked.
                        l.queue.insert(key, cid);
                        continue;
                    }
                }
                Answer::DontHave => {
                    if send_dont_have && l.supports_have {
                        message.presences.push(BlockPresence {
                            cid,
                            kind: PresenceType::DontHave,
                        });
                    }
                }
            }
            l.wants.remove(&cid);
        }
        l.tokens -= message.payload.len() as f64;
        match message.split(ProtocolVersion::V120, self.limits.max_message_bytes) {
            Ok(pieces) => {
                for piece in pieces {
                    let bytes = piece.encoded_len(ProtocolVersion::V120);
                    l.unsent += bytes;
                    self.unsent += bytes;
                    self.responses.push_back(Response {
                        peer,
                        blocks: piece.payload.len(),
                        message: piece,
                        bytes,
                    });
                }
            }
            // Config keeps the message limit above the largest block; this cannot happen.
            Err(e) => tracing::error!(error = %e, "cannot fit a Bitswap answer in a message"),
        }
        self.schedule(peer);
    }

    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Response> {
        loop {
            if let Some(r) = self.responses.pop_front() {
                return Poll::Ready(r);
            }
            if let Some(timer) = self.timer.as_mut()
                && timer.as_mut().poll(cx).is_ready()
            {
                self.timer = None;
                for peer in std::mem::take(&mut self.throttled) {
                    self.schedule(peer);
                }
            }
            self.start_jobs();
            match self.jobs.poll_next_unpin(cx) {
                Poll::Ready(Some((peer, Ok(out)))) => self.finish(peer, out),
                Poll::Ready(Some((peer, Err(e)))) => {
                    tracing::error!(%peer, error = %e, "a Bitswap store read failed");
                    if let Some(l) = self.ledgers.get_mut(&peer) {
                        l.busy = false;
                        l.wants.retain(|_, e| !e.in_job);
                    }
                    self.schedule(peer);
                }
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// Whether answers for `peer` are pending (wants, a read, unwritten bytes).
    pub(super) fn has_work(&self, peer: &PeerId) -> bool {
        self.ledgers
            .get(peer)
            .is_some_and(|l| !l.wants.is_empty() || l.busy || l.unsent > 0)
    }

    /// Wants of `peer` not yet answered.
    #[cfg(test)]
    pub(super) fn wants_of(&self, peer: &PeerId) -> usize {
        self.ledgers.get(peer).map_or(0, |l| l.wants.len())
    }

    pub(super) fn dropped_wants(&self) -> u64 {
        self.dropped_wants
    }

    pub(super) fn read_errors(&self) -> u64 {
        self.read_errors
    }
}

/// Answers wants from the store (blocking), up to [`JOB_BYTES`] and `max_blocks` blocks; the
/// wants after that are left over.
fn read(store: &Store, items: Vec<(Cid, WantType)>, max_blocks: usize) -> JobOutput {
    let mut out = JobOutput {
        answers: Vec::with_capacity(items.len()),
        leftover: Vec::new(),
        errors: 0,
    };
    let (mut bytes, mut blocks) = (0, 0);
    let mut items = items.into_iter().peekable();
    while let Some(&(cid, want_type)) = items.peek() {
        if want_type == WantType::Block && (bytes >= JOB_BYTES || blocks >= max_blocks) {
            break;
        }
        items.next();
        let answer = match want_type {
            WantType::Have => match store.has(&cid) {
                Ok(true) => Answer::Have,
                Ok(false) => Answer::DontHave,
                Err(e) => {
                    tracing::warn!(%cid, error = %e, "cannot look up a block for a peer");
                    out.errors += 1;
                    Answer::DontHave
                }
            },
            WantType::Block => match store.get(&cid) {
                Ok(Some(block)) => {
                    bytes += block.data().len();
                    blocks += 1;
                    Answer::Block(block)
                }
                Ok(None) => Answer::DontHave,
                Err(e) => {
                    tracing::warn!(%cid, error = %e, "cannot read a block for a peer");
                    out.errors += 1;
                    Answer::DontHave
                }
            },
        };
        out.answers.push((cid, answer));
    }
    out.leftover.extend(items.map(|(cid, _)| cid));
    out
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use stargate_protocol::{Codec, HashCode, Version};
    use stargate_storage::StoreOptions;
    use tempfile::TempDir;

    use super::*;

    const BLOCK: usize = 256 * 1024;

    fn limits(max_unsent_bytes: usize) -> ServerLimits {
        ServerLimits {
            max_wants_per_peer: 1024,
            max_concurrent_reads: 1,
            blocks_per_second: None,
            max_message_bytes: 4 << 20,
            max_unsent_bytes_per_peer: 8 << 20,
            max_unsent_bytes,
        }
    }

    /// Responses until the server has nothing more to say: no read under way, and none it may
    /// start before something is written.
    async fn drain(server: &mut Server) -> Vec<Response> {
        let mut out = Vec::new();
        let idle = poll_fn(|cx| {
            loop {
                match server.poll(cx) {
                    Poll::Ready(r) => out.push(r),
                    Poll::Pending if server.jobs.is_empty() => return Poll::Ready(()),
                    Poll::Pending => return Poll::Pending,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(30), idle)
            .await
            .expect("reads end");
        out
    }

    /// A server with 32 blocks of [`BLOCK`] bytes in its store, and two peers that want 16 each.
    fn two_peers_wanting_half_each(limits: ServerLimits) -> (Server, TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let blocks: Vec<Block> = (0..32u8)
            .map(|i| {
                Block::encode(Version::V1, Codec::Raw, HashCode::Sha2_256, vec![i; BLOCK]).unwrap()
            })
            .collect();
        store.put_many(blocks.clone()).unwrap();
        let mut server = Server::new(store, limits);
        for half in blocks.chunks(16) {
            let peer = PeerId::random();
            server.connected(peer);
            let wants = half
                .iter()
                .map(|blk| WantEntry::want(*blk.cid(), WantType::Block, 1, false))
                .collect();
            server.wantlist(peer, wants, false);
        }
        (server, dir)
    }

    #[tokio::test]
    async fn peers_take_turns() {
        // One read at a time: two peers that want at the same moment are answered a read's worth
        // each in turn, not one after the other.
        let (mut server, _dir) = two_peers_wanting_half_each(limits(usize::MAX));
        let sent = drain(&mut server).await;
        assert_eq!(sent.iter().map(|r| r.blocks).sum::<usize>(), 32);
        let order: Vec<PeerId> = sent.iter().map(|r| r.peer).collect();
        assert!(order.len() >= 4, "{} answers", order.len());
        assert!(
            order.windows(2).all(|w| w[0] != w[1]),
            "not in turns: {order:?}"
        );
    }

    #[tokio::test]
    async fn unsent_bytes_of_all_peers_are_capped() {
        // Room for 2 MiB unsent, for every peer together; each peer alone may have 8 MiB.
        let cap = 2 << 20;
        let (mut server, _dir) = two_peers_wanting_half_each(limits(cap));

        let sent = drain(&mut server).await;
        let bytes: usize = sent.iter().map(|r| r.bytes).sum();
        // Reads stop once the cap is reached; the one read under way may overshoot it by a
        // read's worth (JOB_BYTES plus a block).
        assert!(bytes >= cap, "stopped early: {bytes}");
        assert!(
            bytes <= cap + JOB_BYTES + BLOCK + 4096,
            "{bytes} bytes unsent"
        );
        assert!(sent.len() < 32);

        // Once written, the rest follows.
        let mut total = sent.iter().map(|r| r.blocks).sum::<usize>();
        let mut pending = sent;
        while total < 32 {
            for r in pending.drain(..) {
                server.written(r.peer, r.bytes);
            }
            pending = drain(&mut server).await;
            assert!(!pending.is_empty(), "stuck at {total} blocks");
            total += pending.iter().map(|r| r.blocks).sum::<usize>();
        }
        assert_eq!(total, 32);
    }
}
