//! What the sync protocol is given and what every session reads: the mirror's entries, where
//! learned entries go, limits and intervals.

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use stargate_protocol::mirror::{Entry, EntryId};
use tokio::sync::mpsc;

use super::metrics::SyncMetrics;
use super::peers::SyncPeers;
use super::set::SyncSet;
use crate::p2p::transfer::Penalise;

/// Where the sync protocol reads the entries a peer lacks (the mirror implements it over its
/// store). Called off the runtime; answers the entries it holds among `ids`, in any order.
pub(crate) trait SyncEntries: Send + Sync + 'static {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry>;
}

/// What a reconciliation learned: entries this node lacked, from `peer`. The mirror's intake
/// checks and records them (and inserts their ids into the [`super::SyncSet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Learned {
    pub(crate) peer: PeerId,
    pub(crate) entries: Vec<Entry>,
}

/// Limits and intervals. Start from [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Sessions at once, both roles (one per peer at most).
    pub(crate) max_sessions: usize,
    /// A session that runs longer is cut.
    pub(crate) session_timeout: Duration,
    /// A peer that sends nothing (or reads nothing) for this long is cut.
    pub(crate) message_timeout: Duration,
    /// Bytes one session may receive.
    pub(crate) max_session_bytes: u64,
    /// Entries one session asks for, and pushes; a larger difference takes several sessions.
    pub(crate) max_entries_per_session: usize,
    /// How long after a change the digest goes out (changes meanwhile go with it).
    pub(crate) digest_debounce: Duration,
    /// How often the digest goes out when nothing changed.
    pub(crate) digest_interval: Duration,
    /// Least time between two sessions with one peer.
    pub(crate) min_session_gap: Duration,
    /// Inbound streams read at once (digests and sessions); more are dropped.
    pub(crate) max_inbound_streams: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_sessions: 8,
            session_timeout: Duration::from_secs(60),
            message_timeout: Duration::from_secs(10),
            max_session_bytes: 64 << 20,
            max_entries_per_session: 20_000,
            digest_debounce: Duration::from_millis(500),
            digest_interval: Duration::from_secs(60),
            min_session_gap: Duration::from_secs(1),
            max_inbound_streams: 64,
        }
    }
}

impl Config {
    /// The configuration with every limit in its valid range.
    pub(super) fn checked(mut self) -> Self {
        self.max_sessions = self.max_sessions.max(1);
        self.max_inbound_streams = self.max_inbound_streams.max(1);
        self.max_entries_per_session = self.max_entries_per_session.max(1);
        self.max_session_bytes = self.max_session_bytes.max(1 << 20);
        self.message_timeout = self.message_timeout.max(Duration::from_millis(100));
        self.session_timeout = self.session_timeout.max(self.message_timeout);
        self.digest_interval = self.digest_interval.max(Duration::from_secs(1));
        self
    }
}

/// What every session reads.
pub(super) struct Context {
    pub(super) local: PeerId,
    pub(super) set: SyncSet,
    pub(super) entries: Arc<dyn SyncEntries>,
    pub(super) learned: mpsc::Sender<Learned>,
    pub(super) config: Config,
    pub(super) metrics: SyncMetrics,
    pub(super) penalise: Penalise,
    pub(super) reconciling: SyncPeers,
}
