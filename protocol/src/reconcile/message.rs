//! The sync messages and their binary codec: a tag byte, then the payload.

use std::collections::HashSet;

use thiserror::Error;

use super::digest::{Digest, FINGERPRINT_SIZE};
use super::limits::{
    MAX_ENTRIES_PER_MESSAGE, MAX_ENTRY_SIZE, MAX_MESSAGE_SIZE, MAX_RECONCILE_SIZE,
};
use crate::mirror::{Entry, EntryId};

const TAG_DIGEST: u8 = 0;
const TAG_RECONCILE: u8 = 1;
const TAG_WANT: u8 = 2;
const TAG_ENTRIES: u8 = 3;
const TAG_DONE: u8 = 4;
const TAG_BUSY: u8 = 5;

/// One message of the sync protocol (see the module documentation for the exchanges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncMessage {
    /// The sender's set digest, sent unasked on a stream of its own.
    Digest(Digest),
    /// A Negentropy round message (1 to [`MAX_RECONCILE_SIZE`] bytes).
    Reconcile(Vec<u8>),
    /// Ids the initiator lacks (1 to [`MAX_ENTRIES_PER_MESSAGE`], distinct).
    Want(Vec<EntryId>),
    /// Entries: the answer to a `Want` (only ids it asked for), or pushed by the initiator.
    Entries(Vec<Entry>),
    /// The initiator ends the session.
    Done,
    /// The responder serves as many sessions as it allows; try later.
    Busy,
}

/// Why a message could not be encoded or decoded. [`SyncWireError::reason`] is its metric
/// label.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncWireError {
    /// The body, a round message or an entry is larger than its limit.
    #[error("sync {what} of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More ids or entries than one message may hold, or none where one is needed.
    #[error("sync message holds {count} {what}; 1 to {max} allowed")]
    Count {
        /// Ids or entries.
        what: &'static str,
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The body is cut short, has bytes left over, an unknown tag or a repeated id.
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// An entry does not decode or breaks the announcement limits.
    #[error("bad entry in a sync message: {0}")]
    BadEntry(String),
}

impl SyncWireError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Count { .. } => "bad_count",
            Self::Malformed(_) => "malformed",
            Self::BadEntry(_) => "bad_entry",
        }
    }
}

fn malformed(reason: impl std::fmt::Display) -> SyncWireError {
    SyncWireError::Malformed(reason.to_string())
}

fn check_count(what: &'static str, count: usize, min: usize) -> Result<(), SyncWireError> {
    if count < min || count > MAX_ENTRIES_PER_MESSAGE {
        return Err(SyncWireError::Count {
            what,
            count,
            max: MAX_ENTRIES_PER_MESSAGE,
        });
    }
    Ok(())
}

fn check_size(what: &'static str, len: usize, max: usize) -> Result<(), SyncWireError> {
    if len > max {
        return Err(SyncWireError::TooLarge { what, len, max });
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(unsigned_varint::encode::u64(
        n,
        &mut unsigned_varint::encode::u64_buffer(),
    ));
}

fn take_varint(input: &mut &[u8]) -> Result<u64, SyncWireError> {
    let (n, rest) = unsigned_varint::decode::u64(input).map_err(malformed)?;
    *input = rest;
    Ok(n)
}

fn take_usize(input: &mut &[u8]) -> Result<usize, SyncWireError> {
    usize::try_from(take_varint(input)?).map_err(malformed)
}

fn take<'a>(input: &mut &'a [u8], len: usize) -> Result<&'a [u8], SyncWireError> {
    if input.len() < len {
        return Err(malformed("cut short"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

impl SyncMessage {
    /// The message's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Digest(_) => "digest",
            Self::Reconcile(_) => "reconcile",
            Self::Want(_) => "want",
            Self::Entries(_) => "entries",
            Self::Done => "done",
            Self::Busy => "busy",
        }
    }

    /// The body: the tag and the payload.
    ///
    /// # Errors
    /// When the message breaks a limit the receiver enforces (so it is never sent).
    pub fn encode(&self) -> Result<Vec<u8>, SyncWireError> {
        let mut out = Vec::new();
        match self {
            Self::Digest(d) => {
                out.push(TAG_DIGEST);
                put_varint(&mut out, d.count);
                out.extend_from_slice(&d.fingerprint);
            }
            Self::Reconcile(bytes) => {
                check_size("round message", bytes.len(), MAX_RECONCILE_SIZE)?;
                if bytes.is_empty() {
                    return Err(malformed("empty round message"));
                }
                out.push(TAG_RECONCILE);
                out.extend_from_slice(bytes);
            }
            Self::Want(ids) => {
                check_count("ids", ids.len(), 1)?;
                check_distinct(ids)?;
                out.push(TAG_WANT);
                ids.iter().for_each(|id| out.extend_from_slice(id));
            }
            Self::Entries(entries) => {
                check_count("entries", entries.len(), 0)?;
                out.push(TAG_ENTRIES);
                put_varint(&mut out, entries.len() as u64);
                for entry in entries {
                    let bytes = serde_ipld_dagcbor::to_vec(entry)
                        .map_err(|e| SyncWireError::BadEntry(e.to_string()))?;
                    check_size("entry", bytes.len(), MAX_ENTRY_SIZE)?;
                    put_varint(&mut out, bytes.len() as u64);
                    out.extend_from_slice(&bytes);
                }
            }
            Self::Done => out.push(TAG_DONE),
            Self::Busy => out.push(TAG_BUSY),
        }
        check_size("message", out.len(), MAX_MESSAGE_SIZE)?;
        Ok(out)
    }

    /// The frame: the body's length as a varint, then the body.
    ///
    /// # Errors
    /// As [`SyncMessage::encode`].
    pub fn to_frame(&self) -> Result<Vec<u8>, SyncWireError> {
        let body = self.encode()?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        put_varint(&mut frame, body.len() as u64);
        frame.extend_from_slice(&body);
        Ok(frame)
    }

    /// Decodes and checks a body.
    ///
    /// # Errors
    /// Anything but a message within every limit, with nothing left over.
    pub fn decode(body: &[u8]) -> Result<Self, SyncWireError> {
        check_size("message", body.len(), MAX_MESSAGE_SIZE)?;
        let (&tag, mut rest) = body
            .split_first()
            .ok_or_else(|| malformed("empty message"))?;
        let message = match tag {
            TAG_DIGEST => {
                let count = take_varint(&mut rest)?;
                let mut fingerprint = [0u8; FINGERPRINT_SIZE];
                fingerprint.copy_from_slice(take(&mut rest, FINGERPRINT_SIZE)?);
                Self::Digest(Digest { count, fingerprint })
            }
            TAG_RECONCILE => {
                check_size("round message", rest.len(), MAX_RECONCILE_SIZE)?;
                if rest.is_empty() {
                    return Err(malformed("empty round message"));
                }
                let bytes = rest.to_vec();
                rest = &[];
                Self::Reconcile(bytes)
            }
            TAG_WANT => {
                if rest.len() % 32 != 0 {
                    return Err(malformed("ids are not a whole number of 32 bytes"));
                }
                check_count("ids", rest.len() / 32, 1)?;
                let ids: Vec<EntryId> = rest
                    .chunks_exact(32)
                    .map(|c| {
                        let mut id = [0u8; 32];
                        id.copy_from_slice(c);
                        id
                    })
                    .collect();
                check_distinct(&ids)?;
                rest = &[];
                Self::Want(ids)
            }
            TAG_ENTRIES => {
                let count = take_usize(&mut rest)?;
                check_count("entries", count, 0)?;
                let mut entries = Vec::with_capacity(count);
                for _ in 0..count {
                    let len = take_usize(&mut rest)?;
                    check_size("entry", len, MAX_ENTRY_SIZE)?;
                    let entry = serde_ipld_dagcbor::from_slice::<Entry>(take(&mut rest, len)?)
                        .map_err(|e| SyncWireError::BadEntry(e.to_string()))?;
                    entries.push(entry);
                }
                Self::Entries(entries)
            }
            TAG_DONE => Self::Done,
            TAG_BUSY => Self::Busy,
            other => return Err(malformed(format!("unknown tag {other}"))),
        };
        if !rest.is_empty() {
            return Err(malformed(format!("{} bytes left over", rest.len())));
        }
        Ok(message)
    }
}

fn check_distinct(ids: &[EntryId]) -> Result<(), SyncWireError> {
    let mut seen = HashSet::with_capacity(ids.len());
    if ids.iter().all(|id| seen.insert(id)) {
        Ok(())
    } else {
        Err(malformed("an id is asked twice"))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::mirror::{Announcement, PeerId};
    use crate::{Block, Codec, HashCode, Version};

    fn publisher() -> PeerId {
        crate::mirror::Keypair::ed25519_from_bytes([7; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn entry(n: u32, metadata_len: usize) -> Entry {
        let block = Block::encode(
            Version::V1,
            Codec::Raw,
            HashCode::Sha2_256,
            n.to_be_bytes().to_vec(),
        )
        .unwrap();
        let json = format!(
            r#"{{"cid":"{}","type":"{}","metadata":{{"m":"{}"}}}}"#,
            block.cid(),
            "t".repeat(crate::limits::MAX_ANNOUNCEMENT_TYPE_LEN),
            "x".repeat(metadata_len),
        );
        Entry::new(
            &Announcement::decode(json.as_bytes()).unwrap(),
            publisher(),
            u64::MAX,
        )
        .unwrap()
    }

    #[test]
    fn a_full_message_of_the_largest_entries_fits() {
        let big = crate::limits::MAX_ANNOUNCEMENT_METADATA_SIZE - 10;
        let entries: Vec<Entry> = (0..MAX_ENTRIES_PER_MESSAGE as u32)
            .map(|n| entry(n, big))
            .collect();
        let message = SyncMessage::Entries(entries);
        let body = message.encode().unwrap();
        assert_eq!(SyncMessage::decode(&body).unwrap(), message);
    }

    #[test]
    fn a_digest_is_well_under_a_hundred_bytes() {
        let frame = SyncMessage::Digest(Digest {
            count: u64::MAX,
            fingerprint: [9; FINGERPRINT_SIZE],
        })
        .to_frame()
        .unwrap();
        assert!(frame.len() < 30, "{}", frame.len());
    }

    #[test]
    fn refuses_what_breaks_a_limit() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![9],
            vec![TAG_DONE, 0],
            vec![TAG_DIGEST, 1, 2],
            vec![TAG_RECONCILE],
            [vec![TAG_RECONCILE], vec![0x61; MAX_RECONCILE_SIZE + 1]].concat(),
            vec![TAG_WANT],
            vec![TAG_WANT, 1, 2, 3],
            [vec![TAG_WANT], vec![1; 64]].concat(),
            [vec![TAG_WANT], vec![0; 32 * (MAX_ENTRIES_PER_MESSAGE + 1)]].concat(),
            vec![TAG_ENTRIES, 200, 1],
            vec![TAG_ENTRIES, 1, 3, 1, 2, 3],
            vec![TAG_ENTRIES, 1, 0xff, 0xff, 0x03],
            vec![0; MAX_MESSAGE_SIZE + 1],
        ];
        for body in cases {
            assert!(
                SyncMessage::decode(&body).is_err(),
                "{:?}",
                &body[..body.len().min(8)]
            );
        }
        assert!(SyncMessage::Want(vec![]).encode().is_err());
        assert!(SyncMessage::Want(vec![[1; 32], [1; 32]]).encode().is_err());
        assert!(
            SyncMessage::Entries(vec![entry(1, 1); MAX_ENTRIES_PER_MESSAGE + 1])
                .encode()
                .is_err()
        );
    }

    fn message() -> impl Strategy<Value = SyncMessage> {
        prop_oneof![
            (any::<u64>(), any::<[u8; FINGERPRINT_SIZE]>()).prop_map(|(count, fingerprint)| {
                SyncMessage::Digest(Digest { count, fingerprint })
            }),
            prop::collection::vec(any::<u8>(), 1..4096).prop_map(SyncMessage::Reconcile),
            prop::collection::btree_set(any::<[u8; 32]>(), 1..=MAX_ENTRIES_PER_MESSAGE)
                .prop_map(|ids| SyncMessage::Want(ids.into_iter().collect())),
            prop::collection::vec((any::<u32>(), 0usize..300), 0..20).prop_map(|es| {
                SyncMessage::Entries(es.into_iter().map(|(n, len)| entry(n, len)).collect())
            }),
            Just(SyncMessage::Done),
            Just(SyncMessage::Busy),
        ]
    }

    proptest! {
        #[test]
        fn round_trips(m in message()) {
            let body = m.encode().unwrap();
            prop_assert_eq!(SyncMessage::decode(&body).unwrap(), m.clone());
            let frame = m.to_frame().unwrap();
            let (len, rest) = unsigned_varint::decode::usize(&frame).unwrap();
            prop_assert_eq!(len, rest.len());
            prop_assert_eq!(rest, &body[..]);
        }

        #[test]
        fn decoding_anything_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(m) = SyncMessage::decode(&body) {
                prop_assert_eq!(m.encode().unwrap(), body);
            }
        }
    }
}
