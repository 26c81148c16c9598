//! The messages between the [`Network`](super::network::Network) handle and the event loop that
//! owns the swarm. Each part of the loop has its own kind of command; replies travel on the
//! oneshot channels the commands carry.

use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId};
use stargate_http_gateway::{ConnectedPeer, NetworkError, PeerIdentity};
use stargate_protocol::{Block, Cid};
use tokio::sync::{mpsc, oneshot};

/// A provider found in the DHT.
#[derive(Debug, Clone)]
pub(crate) struct FoundProvider {
    pub(crate) peer: PeerId,
    pub(crate) addrs: Vec<Multiaddr>,
}

/// What the event loop is asked to do, by the part of it that does it.
#[derive(Debug)]
pub(super) enum Command {
    Peers(PeerCommand),
    Identify(IdentifyCommand),
    Dht(DhtCommand),
    Want(WantCommand),
}

/// Connections (`event_loop/peers.rs`).
#[derive(Debug)]
pub(super) enum PeerCommand {
    Connect {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetworkError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    List {
        reply: oneshot::Sender<Vec<ConnectedPeer>>,
    },
}

/// Identities, ours and the peers' (`event_loop/identify.rs`).
#[derive(Debug)]
pub(super) enum IdentifyCommand {
    Identity {
        peer: Option<PeerId>,
        reply: oneshot::Sender<Result<PeerIdentity, NetworkError>>,
    },
    /// Connected peers that identified themselves as Stargate nodes, and those that have not
    /// identified themselves yet.
    StargatePeers {
        reply: oneshot::Sender<(Vec<PeerId>, Vec<PeerId>)>,
    },
    /// Whether `peer` is a Stargate node, answered once it has identified itself (`None` if
    /// it is not connected, or goes away first).
    IsStargate {
        peer: PeerId,
        reply: oneshot::Sender<Option<bool>>,
    },
    /// Tell `events` of every Stargate peer connected now, and of each that comes or goes.
    WatchStargate {
        events: mpsc::Sender<super::sync::StargatePeer>,
    },
}

/// DHT queries (`event_loop/dht.rs`).
#[derive(Debug)]
pub(super) enum DhtCommand {
    FindProviders {
        key: RecordKey,
        limit: usize,
        /// Dial providers as they are found, while the query still knows their addresses.
        dial: bool,
        found: mpsc::Sender<FoundProvider>,
    },
    Provide {
        key: RecordKey,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    RoutingTableSize {
        reply: oneshot::Sender<usize>,
    },
}

/// Blocks wanted over Bitswap (`event_loop/wants.rs`).
#[derive(Debug)]
pub(super) enum WantCommand {
    /// Want a block from the connected peers (and candidates added later).
    Want {
        cid: Cid,
        block: oneshot::Sender<Result<Block, NetworkError>>,
        /// Fired once every peer asked at first has said it does not have the block.
        exhausted: oneshot::Sender<()>,
    },
    /// More candidates for a want (providers found in the DHT).
    AddPeers { cid: Cid, peers: Vec<PeerId> },
    /// A waiter of `cid` went away: drop the want if no one else waits.
    Abandoned { cid: Cid },
}
