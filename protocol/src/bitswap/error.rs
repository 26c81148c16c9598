//! What can be wrong with a Bitswap message.

use thiserror::Error;

use crate::BlockError;

/// A Bitswap message or part of one that cannot be decoded, encoded or verified.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BitswapError {
    /// The message is longer than the limit.
    #[error("Bitswap message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a Bitswap protobuf (truncated, wrong wire types, ...).
    #[error("malformed Bitswap message: {0}")]
    Malformed(String),
    /// A wantlist entry or block presence carries bytes that are not exactly one CID.
    #[error("malformed CID in a Bitswap {field}: {reason}")]
    BadCid {
        /// Which field (`wantlist entry`, `block presence`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A block's CID prefix is malformed or names something that cannot be a CID.
    #[error("bad CID prefix {hex}: {reason}")]
    BadPrefix {
        /// The prefix bytes in hex.
        hex: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A want type other than block (0) or have (1).
    #[error("unknown Bitswap want type {0}")]
    UnknownWantType(i32),
    /// A block presence type other than have (0) or dont-have (1).
    #[error("unknown Bitswap block presence type {0}")]
    UnknownPresenceType(i32),
    /// The block cannot be hashed under its prefix (unsupported codec or hash, too large).
    #[error("unusable block in a Bitswap message: {0}")]
    Block(#[from] BlockError),
    /// One entry, presence or block alone does not fit in a message of the size limit.
    #[error("a Bitswap message item of {len} bytes cannot fit in a {max}-byte message")]
    ItemTooLarge {
        /// Encoded size of the item with its message overhead.
        len: usize,
        /// The limit.
        max: usize,
    },
}
