//! What a fetch received, as the [`BlockSource`] the receiver's own walk reads from.
//!
//! Frames are recorded in the order they arrive and hashed in parallel; verified blocks wait
//! here until the walk takes them. The walk yields blocks in the order the provider must send
//! them, so each yielded block must be the oldest arrival not yet used ([`Arrivals::walked`]).
//! A block the walk needs again (the same CID twice in a DAG, which a CAR carries once) comes
//! from the last blocks walked, or from the store they were handed to.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::future::BoxFuture;
use stargate_protocol::unixfs::export::{BlockSource, SourceError};
use stargate_protocol::{Block, BlockError, Cid};
use stargate_storage::Store;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use super::writer::ToWriter;

/// Bytes of walked blocks kept for a second visit before falling back to the store.
pub(super) const RECENT_BYTES: usize = 8 << 20;

#[derive(Default)]
struct State {
    /// Verified blocks not yet walked, holding their share of the in-flight bytes.
    blocks: HashMap<Cid, (Block, OwnedSemaphorePermit)>,
    /// Every frame received and not yet walked, in the order received.
    order: VecDeque<Cid>,
    /// Frames being hashed.
    verifying: usize,
    /// Frames received over all streams: what a resumed request skips.
    received: u64,
    /// A stream is feeding this.
    receiving: bool,
    /// Why the provider is not to be trusted any more; every later `get` fails.
    failure: Option<String>,
    recent: HashMap<Cid, Block>,
    recent_order: VecDeque<Cid>,
    recent_bytes: usize,
    walked: HashSet<Cid>,
}

/// See the module documentation.
pub(super) struct Arrivals {
    state: Mutex<State>,
    /// Woken on every arrival and state change; `get`s wait on it.
    changed: Notify,
    /// Woken when a `get` finds nothing while no stream feeds: the walk needs a resume.
    starving: Notify,
    in_flight: Arc<Semaphore>,
    store: Store,
    flush: mpsc::Sender<ToWriter>,
}

impl Arrivals {
    pub(super) fn new(
        store: Store,
        max_in_flight_bytes: usize,
        flush: mpsc::Sender<ToWriter>,
    ) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            starving: Notify::new(),
            in_flight: Arc::new(Semaphore::new(max_in_flight_bytes)),
            store,
            flush,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A share of the in-flight bytes for a frame of `len` bytes; waits while the walk is behind.
    pub(super) async fn reserve(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        // Frames are at most MAX_BLOCK_SIZE + MAX_CID_BYTES, and the semaphore holds more.
        let n = u32::try_from(len).ok()?;
        Arc::clone(&self.in_flight).acquire_many_owned(n).await.ok()
    }

    /// A frame claiming `cid` was read; it is being hashed.
    pub(super) fn arrived(&self, cid: Cid) {
        let mut s = self.lock();
        s.order.push_back(cid);
        s.verifying += 1;
        s.received += 1;
    }

    /// The hash of a frame is known.
    pub(super) fn verified(
        &self,
        cid: Cid,
        block: Result<Block, BlockError>,
        permit: OwnedSemaphorePermit,
    ) {
        let mut s = self.lock();
        s.verifying -= 1;
        match block {
            Ok(block) if s.blocks.contains_key(&cid) || s.walked.contains(&cid) => {
                drop(block);
                s.failure
                    .get_or_insert_with(|| format!("block {cid} was sent twice"));
            }
            Ok(block) => {
                s.blocks.insert(cid, (block, permit));
            }
            Err(e) => {
                s.failure
                    .get_or_insert_with(|| format!("block {cid} does not match its CID: {e}"));
            }
        }
        drop(s);
        self.changed.notify_waiters();
    }

    /// The provider broke the protocol some other way.
    pub(super) fn fail(&self, reason: String) {
        self.lock().failure.get_or_insert(reason);
        self.changed.notify_waiters();
    }

    /// Why the provider is not trusted, if it is not.
    pub(super) fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Whether a stream feeds this.
    pub(super) fn set_receiving(&self, receiving: bool) {
        self.lock().receiving = receiving;
        self.changed.notify_waiters();
    }

    /// Frames received so far.
    pub(super) fn received(&self) -> u64 {
        self.lock().received
    }

    /// Resolves when the walk waits for a block that no stream will bring.
    pub(super) async fn starving(&self) {
        self.starving.notified().await;
    }

    /// The walk yielded `block`: it must be the oldest arrival not yet walked.
    ///
    /// # Errors
    /// Why the provider broke the protocol (also recorded, so every later `get` fails).
    pub(super) fn walked(&self, block: &Block) -> Result<(), String> {
        let cid = *block.cid();
        let mut s = self.lock();
        let next = s.order.pop_front();
        if next != Some(cid) {
            let reason = match next {
                Some(sent) => format!("sent block {sent} where the walk needs {cid}"),
                None => format!("the walk yielded {cid}, which was never received"),
            };
            s.failure.get_or_insert(reason.clone());
            return Err(reason);
        }
        s.blocks.remove(&cid);
        s.walked.insert(cid);
        s.recent_bytes += block.data().len();
        s.recent.insert(cid, block.clone());
        s.recent_order.push_back(cid);
        while s.recent_bytes > RECENT_BYTES {
            let Some(old) = s.recent_order.pop_front() else {
                break;
            };
            if let Some(b) = s.recent.remove(&old) {
                s.recent_bytes -= b.data().len();
            }
        }
        Ok(())
    }

    /// No stream feeds this and every block received has been walked: a walk that still wants
    /// a block waits for a resume.
    pub(super) fn drained(&self) -> bool {
        let s = self.lock();
        !s.receiving && s.verifying == 0 && s.blocks.is_empty()
    }

    /// Nothing was received beyond what the walk used.
    pub(super) fn all_used(&self) -> bool {
        let s = self.lock();
        s.order.is_empty() && s.verifying == 0
    }

    /// A block walked before and no longer in `recent`: it was handed to the writer.
    async fn stored_again(&self, cid: Cid) -> Result<Block, SourceError> {
        let lookup = || {
            let store = self.store.clone();
            async move {
                tokio::task::spawn_blocking(move || store.get(&cid))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
            }
        };
        let unavailable = |reason: String| SourceError::Unavailable {
            cid: cid.to_string(),
            reason,
        };
        if let Some(block) = lookup().await.map_err(unavailable)? {
            return Ok(block);
        }
        // Still with the writer: have it commit, then look again.
        let (done, committed) = oneshot::channel();
        if self.flush.send(ToWriter::Flush(done)).await.is_ok() {
            let _ = committed.await;
        }
        lookup()
            .await
            .map_err(unavailable)?
            .ok_or_else(|| SourceError::NotFound {
                cid: cid.to_string(),
            })
    }
}

impl BlockSource for Arrivals {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(async move {
            loop {
                let changed = self.changed.notified();
                let mut changed = std::pin::pin!(changed);
                changed.as_mut().enable();
                let walked_before = {
                    let s = self.lock();
                    if let Some(reason) = &s.failure {
                        return Err(SourceError::Invalid {
                            cid: cid.to_string(),
                            reason: reason.clone(),
                        });
                    }
                    if let Some((block, _)) = s.blocks.get(&cid) {
                        return Ok(block.clone());
                    }
                    if let Some(block) = s.recent.get(&cid) {
                        return Ok(block.clone());
                    }
                    let walked = s.walked.contains(&cid);
                    if !walked && !s.receiving && s.verifying == 0 {
                        self.starving.notify_one();
                    }
                    walked
                };
                if !walked_before {
                    changed.await;
                    continue;
                }
                return self.stored_again(cid).await;
            }
        })
    }
}
