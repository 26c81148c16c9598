//! Reconciliation between Stargate nodes: `/stargate/sync/1.0.0` (messages and the Negentropy
//! sides in `stargate_protocol::reconcile`) on libp2p streams, so a node that missed
//! announcements catches up at a cost that grows with what differs, not with what is there.
//!
//! # Interface
//!
//! ```text
//! let set = SyncSet::new();                        // the mirror inserts every entry id it records
//! start(&network, set, entries, learned, config, metrics, shutdown)
//!                                                  // entries: Arc<dyn SyncEntries> (the mirror's store)
//!                                                  // learned: mpsc::Sender<Learned> (the mirror's intake)
//! ```
//!
//! - [`engine`] decides when: when a Stargate peer connects (identify's agent) the lower peer id
//!   of the pair starts a session, so a pair runs one; when the set changes its digest goes to
//!   every connected Stargate peer (debounced), and every `digest_interval` otherwise; a digest
//!   that differs from ours starts a session (or, on the higher side, sends ours back, so the
//!   lower side starts it). Sessions are bounded in number (one per peer), time and bytes.
//! - [`session`] runs one: Negentropy rounds over a snapshot of the set; then the initiator asks
//!   for the entries it lacks, checks that each answer holds only ids it asked for, pushes the
//!   entries the peer lacks, and both sides hand what they learned to the mirror's intake
//!   ([`Learned`]). The sync part never inserts into the set itself: the mirror does once it has
//!   accepted an entry, so a refused entry is asked again at the next differing digest.
//! - A peer that breaks the protocol (garbage, rounds or bytes over the limits, entries not
//!   asked for, too many pushed) is cut off, counted and disconnected.

mod engine;
mod metrics;
mod session;
mod set;
#[cfg(test)]
mod tests;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use stargate_protocol::mirror::{Entry, EntryId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use metrics::SyncMetrics;
pub(crate) use set::SyncSet;

use super::network::Network;
use super::transfer::Penalise;

/// Where the sync protocol reads the entries a peer lacks (the mirror implements it over its
/// store). Called off the runtime; answers the entries it holds among `ids`, in any order.
pub(crate) trait SyncEntries: Send + Sync + 'static {
    fn entries(&self, ids: &[EntryId]) -> Vec<Entry>;
}

/// What a reconciliation learned: entries this node lacked, from `peer`. The mirror's intake
/// checks and records them (and inserts their ids into the [`SyncSet`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Learned {
    pub(crate) peer: PeerId,
    pub(crate) entries: Vec<Entry>,
}

/// A Stargate peer (identify agent `stargate/...`) came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StargatePeer {
    Connected(PeerId),
    Disconnected(PeerId),
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
    fn checked(mut self) -> Self {
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
struct Context {
    local: PeerId,
    set: SyncSet,
    entries: Arc<dyn SyncEntries>,
    learned: mpsc::Sender<Learned>,
    config: Config,
    metrics: SyncMetrics,
    penalise: Penalise,
}

/// Starts the sync protocol on `network`'s swarm: answers peers' digests and sessions and
/// starts its own, until `shutdown`.
///
/// # Errors
/// When the network has stopped, or something else already accepts the protocol.
pub(crate) async fn start(
    network: &Network,
    set: SyncSet,
    entries: Arc<dyn SyncEntries>,
    learned: mpsc::Sender<Learned>,
    config: Config,
    metrics: SyncMetrics,
    shutdown: CancellationToken,
) -> anyhow::Result<JoinHandle<()>> {
    let events = network.stargate_peer_events().await?;
    let context = Context {
        local: network.local_peer_id(),
        set,
        entries,
        learned,
        config: config.checked(),
        metrics,
        penalise: network.penaliser(),
    };
    engine::spawn(network.stream_control(), events, context, shutdown)
}
