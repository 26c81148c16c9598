//! The sync protocol between Stargate nodes (`/stargate/sync/1.0.0`): range-based set
//! reconciliation (the Negentropy method, crate `negentropy`) of the mirrored entry ids, then the
//! entries one side lacks.
//!
//! # On the wire
//!
//! Every message is a varint length, then a body of at most [`MAX_MESSAGE_SIZE`] bytes: a tag
//! byte and the payload ([`SyncMessage`]). A stream carries one of two exchanges:
//!
//! - a **digest**: the opener writes one [`SyncMessage::Digest`] (count and fingerprint of its
//!   set, under 30 bytes) and closes. A receiver whose own digest differs starts a session (or,
//!   when the pair's rule makes the other side the initiator, answers with its digest);
//! - a **session**: the initiator writes [`SyncMessage::Reconcile`] rounds (Negentropy
//!   messages, at most [`MAX_RECONCILE_SIZE`] bytes, at most [`MAX_ROUNDS`] of them) and the
//!   responder answers each; once the initiator knows the ids each side lacks, it asks for its
//!   own with [`SyncMessage::Want`] (each answered by one [`SyncMessage::Entries`] holding only
//!   ids asked for), pushes the peer's with unasked [`SyncMessage::Entries`], and ends with
//!   [`SyncMessage::Done`]. A responder that serves as many sessions as it allows answers the
//!   first message with [`SyncMessage::Busy`].
//!
//! Items are `(0, id)`: the timestamp Negentropy orders by is the same on every node for the
//! same entry (first-seen times differ between nodes, so they cannot be used), which leaves
//! Negentropy to split ranges by id prefixes. The [`Digest`] fingerprint is Negentropy's
//! fingerprint of the whole set, kept up to date in O(1) per insert by a
//! [`DigestAccumulator`].

mod digest;
mod message;
mod reconciler;

pub use digest::{Digest, DigestAccumulator, FINGERPRINT_SIZE};
pub use message::{SyncMessage, SyncWireError};
pub use reconciler::{Initiator, ReconcileError, Reconciled, Responder, Snapshot, Step};

use crate::limits::{MAX_ANNOUNCEMENT_METADATA_SIZE, MAX_ANNOUNCEMENT_TYPE_LEN, MAX_CID_BYTES};

/// The protocol name.
pub const PROTOCOL: &str = "/stargate/sync/1.0.0";

/// Most entries in one [`SyncMessage::Entries`], and so most ids in one [`SyncMessage::Want`]
/// (each is answered by one message).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 128;

/// Largest encoded entry: a CID, a type, metadata, a publisher and a time, each at its limit,
/// with room for their dag-cbor framing.
pub const MAX_ENTRY_SIZE: usize =
    MAX_ANNOUNCEMENT_METADATA_SIZE + MAX_ANNOUNCEMENT_TYPE_LEN + MAX_CID_BYTES + 256;

/// Largest Negentropy round message. The Negentropy frame limit ([`NEGENTROPY_FRAME_LIMIT`])
/// leaves room below it, as the crate may overshoot its limit by a range's worth of ids.
pub const MAX_RECONCILE_SIZE: usize = 64 * 1024;

/// The frame limit handed to Negentropy: a round lists at most about this many bytes of
/// fingerprints and ids, so a large difference takes several rounds instead of one huge one.
pub const NEGENTROPY_FRAME_LIMIT: u64 = 56 * 1024;

/// Largest message body: a full [`SyncMessage::Entries`] of maximal entries.
pub const MAX_MESSAGE_SIZE: usize = MAX_ENTRIES_PER_MESSAGE * (MAX_ENTRY_SIZE + 4) + 16;

/// Most Negentropy rounds in one session. A round splits each differing range sixteen ways and
/// lists ranges under 32 ids, so sets of 10^5 ids converge in 5 rounds when few differ; the
/// rest is for differences too large for one frame ([`NEGENTROPY_FRAME_LIMIT`]), which move
/// about 1,700 ids a round.
pub const MAX_ROUNDS: usize = 64;
