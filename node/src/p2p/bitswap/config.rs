//! The Bitswap behaviour's limits.

use stargate_protocol::bitswap::MAX_MESSAGE_SIZE;
use stargate_protocol::limits::MAX_BLOCK_SIZE;

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
    pub(super) fn checked(mut self) -> Self {
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
