//! The node's peer-to-peer side: a libp2p swarm (TCP + QUIC, identify, ping, the Amino DHT,
//! AutoNAT, relay client + hole punching, UPnP, mDNS, connection limits, Bitswap), providing,
//! retrieval, and the [`Network`] handle the rest of the node and the RPC API use.
//!
//! One task (`event_loop/`) owns the swarm; everyone else talks to it through [`Network`]
//! (`network.rs`), whose requests (`command.rs`) travel on a bounded channel and are answered on
//! oneshot channels. Providing (`providing.rs`, fed by `announcements.rs`) runs beside it as its
//! own tasks; retrieval (`retrieval.rs`) is the block source the gateway and the API read
//! through; the sync protocol between Stargate nodes (`sync/`) is started by the mirror.

mod announcements;
mod bandwidth;
mod behaviour;
pub(crate) mod bitswap;
mod command;
mod event_loop;
mod gossip_behaviour;
mod identity;
mod metrics;
mod network;
mod providing;
mod records;
mod retrieval;
mod settings;
pub(crate) mod sync;
#[cfg(test)]
mod testutil;
mod transfer;

use anyhow::Result;
use libp2p::identity::Keypair;
use stargate_storage::Store;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use command::{GossipMessage, Verdict};
pub(crate) use identity::load_or_create as load_identity;
pub(crate) use metrics::Metrics;
pub(crate) use network::Network;
pub(crate) use retrieval::NetworkBlockSource;
pub(crate) use settings::Settings;

/// Requests waiting for the event loop.
const COMMAND_QUEUE: usize = 256;

/// Builds the swarm, starts listening, and spawns the event loop and the providing tasks. They
/// stop when `shutdown` is cancelled; the returned handle finishes when the swarm is gone.
pub(crate) fn spawn(
    keypair: Keypair,
    settings: Settings,
    store: Store,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(Network, JoinHandle<()>)> {
    let public_key = keypair.public();
    let local_peer_id = public_key.to_peer_id();
    // Gossipsub starts its sequence numbers at the clock when it is built: the check against
    // the last one used comes just before.
    let gossip =
        event_loop::gossip::Gossip::start(&store, settings.pubsub, metrics.clone(), local_peer_id)?;
    let swarm = behaviour::build_swarm(keypair, &settings, store.clone(), &metrics.bandwidth)?;
    metrics.bandwidth.spawn_sampler(shutdown.clone());
    let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
    let transfer = transfer::Transfer::new(
        swarm.behaviour().transfer.new_control(),
        store.clone(),
        settings.transfer.clone(),
        network::penalise(commands.downgrade()),
    );
    transfer.serve(shutdown.clone())?;
    let event_loop = event_loop::EventLoop::new(
        swarm,
        public_key,
        queue,
        &settings,
        gossip,
        metrics.clone(),
        shutdown.clone(),
    )?;
    let task = tokio::spawn(event_loop.run());
    let (announcements, announced) = announcements::Announcements::new(
        settings.providing.queue,
        settings.providing.strategy,
        &metrics,
    );
    let network = Network::new(commands, local_peer_id, announcements, metrics, transfer);
    providing::spawn(
        network.clone(),
        store,
        settings.providing,
        announced,
        shutdown,
    );
    tracing::info!(peer_id = %local_peer_id, "network started");
    Ok((network, task))
}
