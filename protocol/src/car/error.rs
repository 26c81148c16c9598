//! Why a CAR could not be read or stored.

use thiserror::Error;

use crate::Cid;

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
