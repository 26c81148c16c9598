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
mod limits;
mod message;
mod reconciler;

pub use digest::{Digest, DigestAccumulator, FINGERPRINT_SIZE};
pub use limits::{
    MAX_ENTRIES_PER_MESSAGE, MAX_ENTRY_SIZE, MAX_MESSAGE_SIZE, MAX_RECONCILE_SIZE, MAX_ROUNDS,
    NEGENTROPY_FRAME_LIMIT,
};
pub use message::{SyncMessage, SyncWireError};
pub use reconciler::{Initiator, ReconcileError, Reconciled, Responder, Snapshot, Step};

/// The protocol name.
pub const PROTOCOL: &str = "/stargate/sync/1.0.0";
