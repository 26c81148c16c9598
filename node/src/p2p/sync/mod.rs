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

mod context;
mod engine;
mod metrics;
mod peers;
mod session;
mod set;
#[cfg(test)]
mod tests;
mod wire;

use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use context::{Config, Learned, SyncEntries};
pub(crate) use metrics::SyncMetrics;
pub(crate) use peers::SyncPeers;
pub(crate) use set::SyncSet;

use context::Context;

use super::network::Network;

/// Starts the sync protocol on `network`'s swarm: answers peers' digests and sessions and
/// starts its own, until `shutdown`. Returns the task and the peers it reconciles with.
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
) -> anyhow::Result<(JoinHandle<()>, SyncPeers)> {
    let events = network.stargate_peer_events().await?;
    let reconciling = SyncPeers::new();
    let context = Context {
        local: network.local_peer_id(),
        set,
        entries,
        learned,
        config: config.checked(),
        metrics,
        penalise: network.penaliser(),
        reconciling: reconciling.clone(),
    };
    let task = engine::spawn(network.stream_control(), events, context, shutdown)?;
    Ok((task, reconciling))
}
