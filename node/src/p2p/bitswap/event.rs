//! What the behaviour reports, and why a block cannot be wanted.

use libp2p::PeerId;
use stargate_protocol::{Block, Cid};

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
