//! The limits of both sides of the transfer.

use std::time::Duration;

use stargate_protocol::limits::{MAX_BLOCK_SIZE, MAX_CID_BYTES};

/// Limits of both sides. Start from [`Config::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// Transfers served at once to one peer.
    pub(crate) max_served_per_peer: usize,
    /// Transfers served at once to all peers.
    pub(crate) max_served: usize,
    /// Transfers fetched at once.
    pub(crate) max_fetches: usize,
    /// Bytes of one fetch received but not yet walked (being hashed or waiting their turn).
    pub(crate) max_in_flight_bytes: usize,
    /// A transfer that moves no block for this long is cut (and, when fetching, resumed).
    pub(crate) stall_timeout: Duration,
    /// Resumes in a row that bring no new block before a fetch gives up.
    pub(crate) max_resumes: u32,
    /// Bytes per second one served transfer sends at most (`None`: no cap).
    pub(crate) serve_bytes_per_sec: Option<std::num::NonZeroU64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_served_per_peer: 4,
            max_served: 32,
            max_fetches: 8,
            max_in_flight_bytes: 32 << 20,
            stall_timeout: Duration::from_secs(30),
            max_resumes: 3,
            serve_bytes_per_sec: None,
        }
    }
}

impl Config {
    /// The configuration with every limit in its valid range.
    pub(super) fn checked(mut self) -> Self {
        self.max_served_per_peer = self.max_served_per_peer.max(1);
        self.max_served = self.max_served.max(1);
        self.max_fetches = self.max_fetches.max(1);
        // One frame at least must fit, and semaphore permits are counted in u32.
        self.max_in_flight_bytes = self
            .max_in_flight_bytes
            .clamp(MAX_BLOCK_SIZE + MAX_CID_BYTES, u32::MAX as usize >> 1);
        self.stall_timeout = self.stall_timeout.max(Duration::from_millis(100));
        self
    }
}
