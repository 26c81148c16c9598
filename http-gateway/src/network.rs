//! The node's peer-to-peer side as the RPC API sees it: a narrow trait the node implements, so
//! that this crate never depends on libp2p or on the node. Peer IDs and multiaddrs cross it as
//! text, exactly as the API shows them.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use stargate_protocol::Cid;

/// What `id` tells about a peer (Kubo's `IdOutput`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerIdentity {
    /// The peer ID.
    pub id: String,
    /// Its public key, protobuf-encoded, base64 (as Kubo prints it).
    pub public_key: String,
    /// Listen and observed addresses, each ending in `/p2p/<id>`.
    pub addresses: Vec<String>,
    /// `stargate/<version>`, or what the peer announced.
    pub agent_version: String,
    /// The identify protocol version (`ipfs/0.1.0`).
    pub protocol_version: String,
    /// The protocols it speaks.
    pub protocols: Vec<String>,
}

impl PeerIdentity {
    /// An identity with these fields.
    pub fn new(
        id: String,
        public_key: String,
        addresses: Vec<String>,
        agent_version: String,
        protocol_version: String,
        protocols: Vec<String>,
    ) -> Self {
        Self {
            id,
            public_key,
            addresses,
            agent_version,
            protocol_version,
            protocols,
        }
    }
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The peer dialled us.
    Inbound,
    /// We dialled the peer.
    Outbound,
}

/// One connected peer as `swarm peers` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectedPeer {
    /// The peer ID.
    pub peer: String,
    /// The remote address of the connection (without `/p2p/`).
    pub addr: String,
    /// Who dialled.
    pub direction: Direction,
    /// Last measured round-trip time, if any.
    pub latency: Option<Duration>,
}

impl ConnectedPeer {
    /// A connected peer.
    pub fn new(
        peer: String,
        addr: String,
        direction: Direction,
        latency: Option<Duration>,
    ) -> Self {
        Self {
            peer,
            addr,
            direction,
            latency,
        }
    }
}

/// A provider found in the DHT.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Provider {
    /// Its peer ID.
    pub id: String,
    /// Addresses known for it (may be empty).
    pub addrs: Vec<String>,
}

impl Provider {
    /// A provider.
    pub fn new(id: String, addrs: Vec<String>) -> Self {
        Self { id, addrs }
    }
}

/// What a transfer of a whole DAG from a peer (`dag fetch`) stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DagFetched {
    /// Blocks of the DAG, every one verified and stored.
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl DagFetched {
    /// A summary.
    pub fn new(blocks: u64, bytes: u64) -> Self {
        Self { blocks, bytes }
    }
}

/// Bytes over all peer connections (`stats/bw`, Kubo's `metrics.Stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct Bandwidth {
    /// Bytes received since start.
    pub total_in: u64,
    /// Bytes sent since start.
    pub total_out: u64,
    /// Bytes per second received lately.
    pub rate_in: f64,
    /// Bytes per second sent lately.
    pub rate_out: f64,
}

impl Bandwidth {
    /// Totals and rates.
    pub fn new(total_in: u64, total_out: u64, rate_in: f64, rate_out: f64) -> Self {
        Self {
            total_in,
            total_out,
            rate_in,
            rate_out,
        }
    }
}

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetworkError {
    /// The argument is wrong (not a multiaddr, no peer ID, ...); nothing was done.
    #[error("invalid argument {input:?}: {reason}")]
    Invalid {
        /// The argument as given.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation was tried and failed (dial refused, no peers, timed out).
    #[error("{0}")]
    Failed(String),
    /// The node's network is not running (shutting down).
    #[error("the node's network has stopped")]
    Stopped,
}

/// The peer-to-peer operations behind `id`, `swarm ...` and `routing ...`.
pub trait Network: Send + Sync {
    /// This node's identity, or (given a peer ID) what identify told us about a connected peer.
    fn identity(&self, peer: Option<String>) -> BoxFuture<'_, Result<PeerIdentity, NetworkError>>;
    /// Dials `addr` (a multiaddr, usually ending in `/p2p/<id>`); answers the peer ID once
    /// connected.
    fn connect(&self, addr: String) -> BoxFuture<'_, Result<String, NetworkError>>;
    /// Closes every connection to the peer named by `addr` (a multiaddr ending in `/p2p/<id>`,
    /// or a bare peer ID); answers its peer ID.
    fn disconnect(&self, addr: String) -> BoxFuture<'_, Result<String, NetworkError>>;
    /// The connected peers, one entry per connection.
    fn peers(&self) -> BoxFuture<'_, Result<Vec<ConnectedPeer>, NetworkError>>;
    /// Providers of `cid` as the DHT query finds them, at most `limit`.
    fn find_providers(
        &self,
        cid: Cid,
        limit: usize,
    ) -> BoxStream<'static, Result<Provider, NetworkError>>;
    /// Announces this node as a provider of `cid` now, returning when the DHT took the record.
    fn provide(&self, cid: Cid) -> BoxFuture<'_, Result<(), NetworkError>>;
    /// Fetches the whole DAG under `cid` from `peer` (a Stargate node: a peer ID or a multiaddr
    /// ending in `/p2p/<id>`) over the fast CAR transfer protocol, verifying and storing every
    /// block, and pins it recursively if `pin`.
    fn fetch_dag(
        &self,
        peer: String,
        cid: Cid,
        pin: bool,
    ) -> BoxFuture<'_, Result<DagFetched, NetworkError>>;
    /// Tells the network that `cid` was added or pinned, so that it is announced in the
    /// background as the provide strategy says. Never blocks and never fails: what cannot be
    /// queued is announced by the next reprovide.
    fn content_added(&self, cid: Cid, pinned: bool);
    /// Bytes over all peer connections since start, and the recent rates.
    fn bandwidth(&self) -> Bandwidth;
}
