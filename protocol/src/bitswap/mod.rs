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

mod error;
mod message;
mod prefix;

pub use error::BitswapError;
pub use message::{
    BlockPresence, MAX_MESSAGE_SIZE, Message, Payload, PresenceType, ProtocolVersion, WantEntry,
    WantType,
};
pub use prefix::CidPrefix;
