//! The behaviour's counters and, for tests, its per-peer ledgers.

#[cfg(test)]
use libp2p::PeerId;

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
