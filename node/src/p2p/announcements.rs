//! The queue of what the node now has and should announce in the DHT: added and pinned DAGs,
//! blocks fetched from peers, and, in a lane of their own, DAGs the mirror stored. Pushing
//! never waits; what does not fit is left to the next reprovide (`providing.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use prometheus_client::metrics::gauge::Gauge;
use stargate_protocol::Cid;
use tokio::sync::mpsc;

use super::metrics::Metrics;
use crate::config::ProvideStrategy;

/// Something the node now has.
#[derive(Debug, Clone, Copy)]
pub(super) enum Announcement {
    /// A DAG was added or pinned.
    Dag { root: Cid, pinned: bool },
    /// A block was fetched from peers (and cached).
    Fetched { cid: Cid },
}

/// The receiving side of the announcement queue: what the providing tasks read.
#[derive(Debug)]
pub(super) struct Announced {
    pub(super) queue: Lane<Announcement>,
    /// Roots of DAGs the mirror stored, with when.
    pub(super) mirrored: Lane<(Instant, Cid)>,
    /// When the mirror last stored a DAG.
    pub(super) mirrored_last: LastStored,
    /// Set when something could not be queued or announced: the reprovider runs early.
    pub(super) missed: Arc<AtomicBool>,
}

/// The sending side of the announcement queue. Cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct Announcements {
    queue: mpsc::Sender<Announcement>,
    mirrored: mpsc::Sender<(Instant, Cid)>,
    /// What waits in each lane (`stargate_dht_provides_pending`).
    queue_pending: Gauge,
    mirrored_pending: Gauge,
    mirrored_last: LastStored,
    /// Set when something could not be queued or announced: the reprovider runs early.
    missed: Arc<AtomicBool>,
    /// Whether fetched blocks are announced (the `all` strategy); under the others they are
    /// not even queued.
    fetched: bool,
}

impl Announcements {
    pub(super) fn new(
        capacity: usize,
        strategy: ProvideStrategy,
        metrics: &Metrics,
    ) -> (Self, Announced) {
        let (queue, receiver) = mpsc::channel(capacity);
        let (mirrored, mirrored_receiver) = mpsc::channel(capacity);
        let (queue_pending, mirrored_pending) = (
            metrics.provides_pending("added"),
            metrics.provides_pending("mirrored"),
        );
        let missed = Arc::new(AtomicBool::new(false));
        let mirrored_last = LastStored::default();
        (
            Self {
                queue,
                mirrored,
                queue_pending: queue_pending.clone(),
                mirrored_pending: mirrored_pending.clone(),
                mirrored_last: mirrored_last.clone(),
                missed: Arc::clone(&missed),
                fetched: strategy == ProvideStrategy::All,
            },
            Announced {
                queue: Lane {
                    receiver,
                    pending: queue_pending,
                },
                mirrored: Lane {
                    receiver: mirrored_receiver,
                    pending: mirrored_pending,
                },
                mirrored_last,
                missed,
            },
        )
    }

    /// Queues a DAG that was added (`pinned` when it was pinned too). Never waits.
    pub(super) fn push(&self, root: Cid, pinned: bool) {
        self.try_push(Announcement::Dag { root, pinned });
    }

    /// Queues a block fetched from peers. Never waits.
    pub(super) fn push_fetched(&self, cid: Cid) {
        if self.fetched {
            self.try_push(Announcement::Fetched { cid });
        }
    }

    /// Queues the root of a DAG the mirror stored (pinned). Never waits.
    pub(super) fn push_mirrored(&self, root: Cid) {
        let now = Instant::now();
        self.mirrored_last.set(now);
        self.send(&self.mirrored, &self.mirrored_pending, (now, root));
    }

    fn try_push(&self, a: Announcement) {
        self.send(&self.queue, &self.queue_pending, a);
    }

    fn send<T>(&self, lane: &mpsc::Sender<T>, pending: &Gauge, item: T) {
        // Counted before it is sent, so that the receiver never takes the gauge below zero.
        pending.inc();
        let Err(e) = lane.try_send(item) else {
            return;
        };
        pending.dec();
        if let mpsc::error::TrySendError::Full(_) = e
            && !self.missed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("the provide queue is full; the next reprovide announces the rest");
        }
    }
}

/// One lane of the queue, receiving side: what it hands out leaves the pending gauge.
#[derive(Debug)]
pub(super) struct Lane<T> {
    receiver: mpsc::Receiver<T>,
    pending: Gauge,
}

impl<T> Lane<T> {
    pub(super) async fn recv(&mut self) -> Option<T> {
        let item = self.receiver.recv().await;
        if item.is_some() {
            self.pending.dec();
        }
        item
    }
}

/// When the mirror last stored a DAG: its DHT announcements wait for a quiet moment.
#[derive(Debug, Clone)]
pub(super) struct LastStored(Arc<Mutex<Instant>>);

impl Default for LastStored {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }
}

impl LastStored {
    fn set(&self, at: Instant) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = at;
    }

    pub(super) fn get(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
