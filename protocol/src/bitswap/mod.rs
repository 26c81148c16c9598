//! The Bitswap wire format (versions 1.0.0, 1.1.0 and 1.2.0), as Kubo (boxo) speaks it.
//!
//! One [`Message`] carries any mix of
//! - wantlist entries ([`WantEntry`]): want-block or want-have (1.2.0), cancels, a priority and
//!   whether the sender wants to hear DONT_HAVE; `full` says the list replaces the previous one;
//! - blocks ([`Payload`]): the bytes with the prefix of the CID they were asked under (1.1.0+),
//!   or bare bytes that name CIDv0 dag-pb blocks (1.0.0);
//! - block presences ([`BlockPresence`], 1.2.0): HAVE / DONT_HAVE answers to want-haves;
//! - `pendingBytes`: how much more the sender has queued for the receiver.
//!
//! On a stream every message is a protobuf preceded by its length as an unsigned varint
//! ([`Message::encode_framed`]); readers refuse lengths over [`MAX_MESSAGE_SIZE`] before reading
//! the body and [`Message::decode`] refuses bodies over it, so one peer can make us hold at most
//! one such message per stream. Decoding is strict where Kubo is (every CID well-formed and
//! canonically encoded, known enum values) and skips unknown fields as protobuf readers do.
//! Blocks come out of decoding unverified; [`Payload::into_block`] hashes the bytes and gives the
//! [`Block`] whose CID the prefix and the digest make, which the caller then matches against
//! what it asked for.
//!
//! [`Message::split`] cuts a message into pieces that each fit a size limit, for senders.
//!
//! [`Block`]: crate::Block

mod message;
mod prefix;

use thiserror::Error;

use crate::BlockError;
pub use message::{
    BlockPresence, Message, Payload, PresenceType, ProtocolVersion, WantEntry, WantType,
};
pub use prefix::CidPrefix;

/// Kubo's largest Bitswap message (libp2p's `network.MessageSizeMax`, 4 MiB): the body after
/// the length prefix.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

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
