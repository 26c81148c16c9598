//! Bitswap 1.2.0 (also serving 1.1.0 and 1.0.0 peers) as a libp2p `NetworkBehaviour`, backed by
//! the store. The wire format is `stargate_protocol::bitswap`.
//!
//! # Interface
//!
//! ```text
//! Behaviour::new(store, config)
//! behaviour.want(cid, &peers) -> Result<(), WantError>  // keep asking until satisfied or cancelled
//! behaviour.add_peers(&cid, &peers)                     // more candidates (providers found later)
//! behaviour.cancel(&cid)
//! behaviour.stats() -> Stats                            // ledgers and counters
//! Event::Block { block, from }    // verified against its CID, NOT stored: the caller decides
//! Event::Have { cid, peer } / Event::DontHave { cid, peer }
//! Event::Misbehaved { peer, reason }  // already disconnected; nothing it sent was reported
//! ```
//!
//! - Client ([`client`]): for each want one candidate is asked for the block (want-block) and the
//!   others whether they have it (want-have), always with send-dont-have; want-blocks in flight
//!   per peer are bounded so that many wants pipeline across peers. Nothing times out here (the
//!   retrieval layer owns timeouts and cancels); what a peer was asked is forgotten when it
//!   disconnects and asked again when it reconnects. Candidates that are not connected are
//!   dialled by peer ID (addresses come from the other behaviours, e.g. Kademlia).
//! - Server ([`server`]): answers every connected peer's wantlist from the store, reading on the
//!   blocking pool, fair between peers, within the message size limit, a bounded number of unsent
//!   bytes and (optionally) blocks per second per peer; cancels are honoured.
//! - Connections ([`handler`]): inbound streams are read until EOF (Kubo opens one per message,
//!   or keeps one for its wantlist); every message is decoded and every block hashed under its
//!   CID prefix on the rayon pool, never on the swarm task. Our wantlist changes go in order on one
//!   long-lived stream per connection; each answer goes on a stream of its own (up to 8 at once),
//!   as boxo does, because boxo reads and hashes one stream's messages in turn.
//! - A message over 4 MiB, one that does not decode, or a block nobody asked for (which is what a
//!   block whose bytes do not match the CID it was sent under looks like) makes the peer
//!   misbehaving: it is disconnected, dropped from every want and nothing of that message is
//!   reported.

mod behaviour;
mod client;
mod handler;
#[cfg(test)]
mod kubo_tests;
mod server;
mod stream;
#[cfg(test)]
mod tests;

use libp2p::PeerId;
use stargate_protocol::bitswap::MAX_MESSAGE_SIZE;
use stargate_protocol::limits::MAX_BLOCK_SIZE;
use stargate_protocol::{Block, Cid};

pub(crate) use behaviour::Behaviour;

/// Limits of the Bitswap behaviour. Start from [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Largest message we send. Kubo's limit (4 MiB) is the most, and every message received is
    /// held to it; at least the largest block plus room.
    pub(crate) max_message_bytes: usize,
    /// Blocks wanted at once (by all callers together).
    pub(crate) max_wants: usize,
    /// Wants we keep of one peer's wantlist, and the most we ask of one peer (Kubo keeps 1024).
    pub(crate) max_wants_per_peer: usize,
    /// Want-blocks in flight to one peer.
    pub(crate) max_block_wants_per_peer: usize,
    /// Blocks served to one peer per second (`None`: no limit).
    pub(crate) blocks_per_second_per_peer: Option<u32>,
    /// Answer bytes queued for one peer but not yet written before its next read waits.
    pub(crate) max_unsent_bytes_per_peer: usize,
    /// The same for all peers together.
    pub(crate) max_unsent_bytes: usize,
    /// Bytes of received messages held at once (read, not yet verified and handled), for all
    /// connections together; a message waits for room before its body is read. At least one
    /// largest message (4 MiB).
    pub(crate) max_inbound_bytes: usize,
    /// Store reads (each answering up to 256 wants) running at once, for all peers.
    pub(crate) max_concurrent_reads: usize,
    /// Inbound streams read at once per connection; more are refused.
    pub(crate) max_inbound_streams: usize,
    /// Messages being decoded and verified at once per connection.
    pub(crate) max_verifying: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_bytes: MAX_MESSAGE_SIZE,
            max_wants: 8192,
            max_wants_per_peer: 1024,
            max_block_wants_per_peer: 128,
            blocks_per_second_per_peer: None,
            max_unsent_bytes_per_peer: 8 * 1024 * 1024,
            max_unsent_bytes: 64 * 1024 * 1024,
            max_inbound_bytes: 64 * 1024 * 1024,
            max_concurrent_reads: 4,
            max_inbound_streams: 32,
            max_verifying: 8,
        }
    }
}

impl Config {
    /// The configuration with every limit in its valid range.
    fn checked(mut self) -> Self {
        self.max_message_bytes = self
            .max_message_bytes
            .clamp(MAX_BLOCK_SIZE + 64 * 1024, MAX_MESSAGE_SIZE);
        self.max_wants = self.max_wants.max(1);
        self.max_wants_per_peer = self.max_wants_per_peer.max(1);
        self.max_block_wants_per_peer = self.max_block_wants_per_peer.max(1);
        self.blocks_per_second_per_peer = self.blocks_per_second_per_peer.map(|r| r.max(1));
        self.max_unsent_bytes_per_peer = self.max_unsent_bytes_per_peer.max(1);
        self.max_unsent_bytes = self.max_unsent_bytes.max(self.max_unsent_bytes_per_peer);
        self.max_concurrent_reads = self.max_concurrent_reads.max(1);
        self.max_inbound_streams = self.max_inbound_streams.max(1);
        self.max_verifying = self.max_verifying.max(1);
        self
    }
}

/// What the behaviour reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A wanted block arrived and was verified against its CID; it is NOT yet stored (the caller
    /// decides, e.g. caches it unpinned). The want is over.
    Block { block: Block, from: PeerId },
    /// `peer` has the wanted block `cid` (it will be asked for it if no one else is).
    Have { cid: Cid, peer: PeerId },
    /// `peer` does not have the wanted block `cid`.
    DontHave { cid: Cid, peer: PeerId },
    /// The peer sent a block nobody asked for (a block that does not match its CID), or an
    /// oversized or garbled message; its connections are being closed and nothing of the message
    /// was reported.
    Misbehaved { peer: PeerId, reason: String },
}

/// Why a block cannot be wanted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum WantError {
    /// The CID names something we cannot verify, or nothing to fetch.
    #[error("cannot fetch {cid} over Bitswap: {reason}")]
    Unsupported { cid: Cid, reason: String },
    /// The wantlist is full.
    #[error(
        "{max} blocks are wanted already, the most Bitswap keeps; cancel some or raise max_wants"
    )]
    TooMany { max: usize },
}

/// Counters since start (the node's metrics), and, for tests, the ledger of each connected peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    /// Blocks wanted now.
    pub(crate) wants: usize,
    /// Wanted blocks received (verified).
    pub(crate) blocks_received: u64,
    /// Their bytes.
    pub(crate) block_bytes_received: u64,
    /// Blocks received after their want had ended.
    pub(crate) duplicate_blocks: u64,
    /// Blocks sent.
    pub(crate) blocks_sent: u64,
    /// Message bytes written and read.
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    /// Peers disconnected for a wrong block or a malformed message.
    pub(crate) misbehaving_peers: u64,
    /// Peers' wants ignored for being over the per-peer limit.
    pub(crate) dropped_wants: u64,
    /// Store reads that failed while answering peers.
    pub(crate) store_errors: u64,
    #[cfg(test)]
    pub(crate) peers: Vec<PeerStats>,
}

/// The ledger of one connected peer.
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerStats {
    pub(crate) peer: PeerId,
    pub(crate) bytes_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) blocks_sent: u64,
    pub(crate) blocks_received: u64,
    /// Our wants it holds.
    pub(crate) wants_sent: usize,
    /// Its wants not yet answered.
    pub(crate) wants_received: usize,
}
