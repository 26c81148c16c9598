//! The sync protocol's limits: message sizes, entries per message, rounds per session.

use crate::limits::{MAX_ANNOUNCEMENT_METADATA_SIZE, MAX_ANNOUNCEMENT_TYPE_LEN, MAX_CID_BYTES};

/// Most entries in one [`super::SyncMessage::Entries`], and so most ids in one [`super::SyncMessage::Want`]
/// (each is answered by one message).
pub const MAX_ENTRIES_PER_MESSAGE: usize = 128;

/// Largest encoded entry: a CID (two for a stego upload's image and payload), a type,
/// metadata, a publisher and a time, each at its limit, with room for their dag-cbor framing.
pub const MAX_ENTRY_SIZE: usize =
    MAX_ANNOUNCEMENT_METADATA_SIZE + MAX_ANNOUNCEMENT_TYPE_LEN + 2 * MAX_CID_BYTES + 256;

/// Largest Negentropy round message. The Negentropy frame limit ([`NEGENTROPY_FRAME_LIMIT`])
/// leaves room below it, as the crate may overshoot its limit by a range's worth of ids.
pub const MAX_RECONCILE_SIZE: usize = 64 * 1024;

/// The frame limit handed to Negentropy: a round lists at most about this many bytes of
/// fingerprints and ids, so a large difference takes several rounds instead of one huge one.
pub const NEGENTROPY_FRAME_LIMIT: u64 = 56 * 1024;

/// Largest message body: a full [`super::SyncMessage::Entries`] of maximal entries.
pub const MAX_MESSAGE_SIZE: usize = MAX_ENTRIES_PER_MESSAGE * (MAX_ENTRY_SIZE + 4) + 16;

/// Most Negentropy rounds in one session. A round splits each differing range sixteen ways and
/// lists ranges under 32 ids, so sets of 10^5 ids converge in 5 rounds when few differ; the
/// rest is for differences too large for one frame ([`NEGENTROPY_FRAME_LIMIT`]), which move
/// about 1,700 ids a round.
pub const MAX_ROUNDS: usize = 64;
