//! The messages between the [`Network`](super::network::Network) handle and the event loop that
//! owns the swarm. Each part of the loop has its own kind of command; replies travel on the
//! oneshot channels the commands carry.

use bytes::Bytes;
use libp2p::gossipsub::MessageId;
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
    Gossip(GossipCommand),
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
    WatchStargate { events: mpsc::Sender<StargatePeer> },
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

/// One gossipsub message as the node's parts see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GossipMessage {
    /// Publisher's peer id bytes followed by the sequence number (go-libp2p-pubsub's id).
    pub(crate) id: MessageId,
    /// The peer that forwarded it; `None` for this node's own publishes.
    pub(crate) source: Option<PeerId>,
    /// The publisher, who signed it.
    pub(crate) from: PeerId,
    pub(crate) seqno: u64,
    pub(crate) topic: String,
    pub(crate) data: Bytes,
}

/// What a validator decides about a message before gossipsub forwards it.
#[allow(dead_code, reason = "the mirror (node/src/mirror/) gives verdicts")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Deliver and forward it.
    Accept,
    /// Drop it and penalise the peer that forwarded it (peer scoring).
    Reject,
    /// Drop it without a penalty.
    Ignore,
}

/// Gossipsub, Kubo's pubsub (`event_loop/gossip.rs`).
#[allow(dead_code, reason = "the mirror (node/src/mirror/) validates")]
#[derive(Debug)]
pub(super) enum GossipCommand {
    /// Every message on `topic` goes to `messages` first; subscribes to the topic.
    Validate {
        topic: String,
        messages: mpsc::Sender<GossipMessage>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    Report {
        message: GossipMessage,
        verdict: Verdict,
    },
    /// Accepted messages on `topic` go to `messages`; subscribes to the topic.
    Subscribe {
        topic: String,
        messages: mpsc::Sender<GossipMessage>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    /// A receiver of `topic` went away: drop it, and the subscription if no one else listens.
    Closed { topic: String },
    Publish {
        topic: String,
        data: Bytes,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    /// The topics this node is subscribed to.
    Topics {
        reply: oneshot::Sender<Result<Vec<String>, NetworkError>>,
    },
    /// Peers speaking gossipsub (with `topic`: those subscribed to it).
    Peers {
        topic: Option<String>,
        reply: oneshot::Sender<Result<Vec<PeerId>, NetworkError>>,
    },
}

/// A Stargate peer (identify agent `stargate/...`) came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StargatePeer {
    Connected(PeerId),
    Disconnected(PeerId),
}
