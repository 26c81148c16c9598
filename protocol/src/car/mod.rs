//! CARv1: the streaming archive of blocks that trustless gateways serve, `dag export`/`dag import`
//! exchange, and Stargate instances send each other.
//!
//! Layout: `varint(len) header`, then per block `varint(len) cid-bytes block-bytes`, where the
//! header is the dag-cbor map `{roots: [CID...], version: 1}`.
//!
//! The header's dag-cbor is `iroh-car`'s ([`iroh_car::CarHeader`]); the framing is ours, because
//! iroh-car's reader and writer do not fit how this node streams:
//! - its writer copies every block into an `AsyncWrite`, while the gateway and the transfer
//!   protocol need `Bytes` chunks that share the store's buffers (two chunks per block, no copy);
//! - its reader caps every frame, header included, at a hard-wired 4 MiB, copies each block into a
//!   fresh `Vec`, reports all failures as strings, and does not verify blocks against their CIDs;
//!   ours enforces our limits ([`crate::limits`]), verifies each block as it arrives and says
//!   which block or byte offset was wrong.

mod read;
mod write;

use thiserror::Error;

use crate::Cid;

pub use read::{CarReader, CarSummary, import_car, read_car};
pub use write::{car_stream, encode_frame_prefix, encode_header};

/// Why a CAR could not be read (or, for [`CarError::Sink`], stored).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarError {
    /// Reading the underlying stream failed.
    #[error("reading the CAR failed at byte {offset}: {reason}")]
    Io {
        /// Bytes read before the failure.
        offset: u64,
        /// What the reader said.
        reason: String,
    },
    /// The stream ended in the middle of a header or block.
    #[error("the CAR ends in the middle of a frame at byte {offset}: it is truncated")]
    Truncated {
        /// Where the incomplete frame starts.
        offset: u64,
    },
    /// A length prefix is not a minimal unsigned varint.
    #[error("bad length prefix at byte {offset}: {reason}")]
    BadLength {
        /// Where the prefix starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The header is larger than we accept.
    #[error("CAR header of {len} bytes exceeds the {max}-byte limit")]
    HeaderTooLarge {
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The header is not a CARv1 header with at least one root.
    #[error("invalid CAR header: {reason}")]
    BadHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// A frame is larger than a CID plus the largest block we accept.
    #[error("CAR frame at byte {offset} of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge {
        /// Where the frame starts.
        offset: u64,
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A frame does not start with a CID we can read.
    #[error("invalid CID in CAR frame at byte {offset}: {reason}")]
    BadCid {
        /// Where the frame starts.
        offset: u64,
        /// What the decoder said.
        reason: String,
    },
    /// A block does not match its CID, is too large, or names a codec or hash we cannot verify.
    #[error("invalid block {cid} in CAR: {reason}")]
    BadBlock {
        /// The CID the frame claims.
        cid: Cid,
        /// What is wrong.
        reason: String,
    },
    /// The sink that was fed the blocks refused one.
    #[error("storing blocks from the CAR failed: {reason}")]
    Sink {
        /// What the sink said, and about which block.
        reason: String,
    },
}
