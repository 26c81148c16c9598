//! Why a fetch failed.

use libp2p::PeerId;
use stargate_protocol::transfer::TransferStatus;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum TransferError {
    /// The request cannot be served as asked.
    #[error("invalid transfer request for {root}: {reason}")]
    BadRequest { root: String, reason: String },
    /// No stream could be opened to the peer (not reachable, or not a Stargate node).
    #[error("cannot open a transfer stream to {peer}: {reason}")]
    Open { peer: PeerId, reason: String },
    /// The provider answered with something else than a CAR.
    #[error("{peer} refused the transfer ({status:?}): {message}")]
    Refused {
        peer: PeerId,
        status: TransferStatus,
        message: String,
    },
    /// The provider broke the protocol (a wrong block, a block out of order, garbage); it has
    /// been disconnected and nothing of what it sent wrong was stored.
    #[error("{peer} misbehaved during a transfer and was disconnected: {reason}")]
    Misbehaved { peer: PeerId, reason: String },
    /// The provider's streams kept ending before the DAG was complete.
    #[error("transfer from {peer} incomplete after {resumes} resumes: {reason}")]
    Incomplete {
        peer: PeerId,
        resumes: u32,
        reason: String,
    },
    /// The received blocks could not be stored.
    #[error("storing a transferred block failed: {reason}")]
    Store { reason: String },
    /// The node is shutting down.
    #[error("the transfer was stopped")]
    Stopped,
}
