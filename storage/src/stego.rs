//! Stego state: one upload per stego image and payload (keyed by their stego id, whoever
//! announced them and however often), the queue of those still waiting for their content, the
//! ingestion records made from the stored ones, and the callback signatures seen within the
//! replay window.
//!
//! Ingestion records have ids from 1 that only grow, so the platform pages through them with
//! a cursor; a page is one range read of the records table (or of the pending index, for
//! unconsumed ones), whatever the number of records before it. One record per stego id, made
//! in one transaction with its index entry, so making it again finds it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use stargate_protocol::Cid;
use stargate_protocol::mirror::{Entry, EntryId, PeerId};
use stargate_protocol::stego::signature::REPLAY_WINDOW_SECS;
use stargate_protocol::stego::{STEGO_TYPE, StegoAnnouncement, stego_id};

use crate::error::db_err;
use crate::tables::{
    INGEST_INDEX, INGEST_PENDING, INGEST_RECORDS, STEGO_ANNOUNCE, STEGO_COUNTS, STEGO_QUEUE,
    STEGO_SEEN, STEGO_UNRECORDED, STEGO_UPLOADS, open_read, open_write,
};
use crate::{Store, StoreError};

const NEXT_ID: &str = "ingest_next_id";
const RECORDS: &str = "ingest_records";
const PENDING: &str = "ingest_pending";
/// Bumped whenever the set of stored uploads changes (a manifest is due then).
const CHANGES: &str = "changes";

/// Where one stego upload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StegoState {
    /// Image or payload not stored yet; fetched again at its next attempt.
    Waiting,
    /// Both pinned here.
    Stored,
    /// The platform's callback rejected it: recorded, never fetched or announced.
    Rejected,
    /// Given up after its attempts; hearing of it again makes it wait again.
    Failed {
        /// The last failure's metric label.
        reason: String,
    },
}

impl StegoState {
    /// The state's name, as counted and shown.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Stored => "stored",
            Self::Rejected => "rejected",
            Self::Failed { .. } => "failed",
        }
    }
}

/// One stego image with its payload and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StegoUpload {
    /// The stego image.
    pub image: Cid,
    /// The payload hidden in it.
    pub payload: Cid,
    /// The instance that announced it first (this node for its own approvals).
    pub publisher: PeerId,
    /// The announced metadata, as compact JSON object text.
    pub metadata: String,
    /// When this node first heard of it (Unix ms).
    pub first_seen: u64,
    /// Where it stands.
    pub state: StegoState,
    /// Failed fetch attempts so far.
    pub attempts: u32,
    /// When the next fetch attempt is due (Unix ms), while waiting.
    pub next_attempt: u64,
}

impl StegoUpload {
    /// A new upload, not yet recorded.
    pub fn new(
        image: Cid,
        payload: Cid,
        publisher: PeerId,
        metadata: String,
        first_seen: u64,
    ) -> Self {
        Self {
            image,
            payload,
            publisher,
            metadata,
            first_seen,
            state: StegoState::Waiting,
            attempts: 0,
            next_attempt: 0,
        }
    }

    /// Its stego id.
    pub fn id(&self) -> EntryId {
        stego_id(&self.image, &self.payload)
    }

    /// Its announcement on the stego topic.
    pub fn announcement(&self) -> StegoAnnouncement {
        StegoAnnouncement {
            image: self.image,
            payload: self.payload,
            metadata: serde_json::from_str(&self.metadata).unwrap_or_default(),
        }
    }

    /// The entry that carries it in manifests and the reconciled set.
    pub fn entry(&self) -> Entry {
        Entry {
            cid: self.image,
            payload: Some(self.payload),
            kind: STEGO_TYPE.to_owned(),
            metadata: self.metadata.clone(),
            publisher: self.publisher,
            time: self.first_seen / 1000,
        }
    }
}

/// How [`Store::stego_record`] takes an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StegoAdmission {
    /// Fetch it, first at `at` (Unix ms).
    Wait {
        /// When the first attempt is due.
        at: u64,
    },
    /// Both CIDs are pinned here already.
    Stored,
    /// The platform rejected it.
    Rejected,
}

/// What [`Store::stego_record`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StegoRecorded {
    /// Newly recorded, or moved on (a failed or rejected one waits again, a waiting one is
    /// stored).
    New,
    /// Already recorded; nothing changed.
    Known(StegoState),
}

/// How a fetch attempt ended, for [`Store::stego_finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StegoOutcome {
    /// Both fetched and pinned.
    Stored,
    /// Try again at `at` (Unix ms).
    Retry {
        /// When.
        at: u64,
    },
    /// Failed for good.
    Failed {
        /// The metric label of the failure.
        reason: String,
    },
}

/// What [`Store::stego_announce_due`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnnounceDue {
    /// The uploads whose announcement is due, each with its failed attempts so far.
    pub due: Vec<(StegoUpload, u32)>,
    /// When the next of the others is due (Unix ms).
    pub next: Option<u64>,
}

/// One ingestion record, as the platform pulls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    /// Its id: from 1, only growing.
    pub id: u64,
    /// The stego image.
    pub image: Cid,
    /// The payload.
    pub payload: Cid,
    /// The instance that announced it first.
    pub publisher: PeerId,
    /// The announced metadata, as compact JSON object text.
    pub metadata: String,
    /// When it was made (Unix ms).
    pub created: u64,
    /// Whether the platform acknowledged it.
    pub consumed: bool,
}

/// What [`Store::ingest_make`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMade {
    /// Made the record with this id.
    New(u64),
    /// The upload had its record already.
    Existing(u64),
    /// The upload is unknown or not stored: no record.
    NotStored,
}

/// What [`Store::ingest_ack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acked {
    /// Marked consumed.
    Consumed,
    /// It was consumed already.
    AlreadyConsumed,
    /// No record has that id.
    Unknown,
}

/// Stego uploads by state and ingestion records, kept up to date with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StegoCounts {
    /// Waiting for their content.
    pub waiting: u64,
    /// Both CIDs stored.
    pub stored: u64,
    /// Rejected by the platform.
    pub rejected: u64,
    /// Given up.
    pub failed: u64,
    /// Given up, by the last failure's reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Ingestion records made.
    pub records: u64,
    /// Ingestion records not consumed yet.
    pub pending: u64,
    /// Bumped whenever the stored set changes.
    pub changes: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredUpload {
    image: String,
    payload: String,
    publisher: String,
    metadata: String,
    first_seen: u64,
    #[serde(flatten)]
    state: StegoState,
    attempts: u32,
    next_attempt: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredIngest {
    image: String,
    payload: String,
    publisher: String,
    metadata: String,
    created: u64,
    consumed: bool,
}

/// Reads a stored stego or ingestion value.
fn decode<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        reason: format!("undecodable {what} in the stego tables: {e}"),
    })
}

fn field<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|e: T::Err| StoreError::Corrupt {
        reason: format!("undecodable {what} in the stego tables: {e}"),
    })
}

impl StegoUpload {
    fn to_bytes(&self) -> Vec<u8> {
        // Strings and integers: serialising cannot fail.
        serde_json::to_vec(&StoredUpload {
            image: self.image.to_string(),
            payload: self.payload.to_string(),
            publisher: self.publisher.to_base58(),
            metadata: self.metadata.clone(),
            first_seen: self.first_seen,
            state: self.state.clone(),
            attempts: self.attempts,
            next_attempt: self.next_attempt,
        })
        .unwrap_or_default()
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let s: StoredUpload = decode("stego upload", bytes)?;
        Ok(Self {
            image: field("CID", &s.image)?,
            payload: field("CID", &s.payload)?,
            publisher: field("peer id", &s.publisher)?,
            metadata: s.metadata,
            first_seen: s.first_seen,
            state: s.state,
            attempts: s.attempts,
            next_attempt: s.next_attempt,
        })
    }
}

impl IngestRecord {
    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&StoredIngest {
            image: self.image.to_string(),
            payload: self.payload.to_string(),
            publisher: self.publisher.to_base58(),
            metadata: self.metadata.clone(),
            created: self.created,
            consumed: self.consumed,
        })
        .unwrap_or_default()
    }

    fn from_bytes(id: u64, bytes: &[u8]) -> Result<Self, StoreError> {
        let s: StoredIngest = decode("ingestion record", bytes)?;
        Ok(Self {
            id,
            image: field("CID", &s.image)?,
            payload: field("CID", &s.payload)?,
            publisher: field("peer id", &s.publisher)?,
            metadata: s.metadata,
            created: s.created,
            consumed: s.consumed,
        })
    }
}

type Counts<'txn> = Table<'txn, &'static str, u64>;
type Uploads<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

fn count(counts: &Counts<'_>, key: &str) -> Result<u64, StoreError> {
    Ok(counts
        .get(key)
        .map_err(db_err("reading the stego counts"))?
        .map_or(0, |v| v.value()))
}

fn add(counts: &mut Counts<'_>, key: &str, delta: i64) -> Result<(), StoreError> {
    let next = count(counts, key)?.saturating_add_signed(delta);
    counts
        .insert(key, next)
        .map_err(db_err("counting stego uploads"))?;
    Ok(())
}

/// Moves an upload's count from one state to another (`from` absent for a new one).
fn move_count(
    counts: &mut Counts<'_>,
    from: Option<&StegoState>,
    to: &StegoState,
) -> Result<(), StoreError> {
    for (state, delta) in [(from, -1), (Some(to), 1)] {
        let Some(state) = state else { continue };
        add(counts, state.name(), delta)?;
        if let StegoState::Failed { reason } = state {
            add(counts, &format!("failed:{reason}"), delta)?;
        }
    }
    Ok(())
}

fn get_upload(
    uploads: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &[u8],
) -> Result<Option<StegoUpload>, StoreError> {
    uploads
        .get(id)
        .map_err(db_err("reading a stego upload"))?
        .map(|v| StegoUpload::from_bytes(v.value()))
        .transpose()
}

/// Writes `upload` in its new state `to`, keeping the counts and the unrecorded index with it.
fn put_upload(
    txn: &WriteTransaction,
    uploads: &mut Uploads<'_>,
    mut upload: StegoUpload,
    from: Option<&StegoState>,
    to: StegoState,
) -> Result<(), StoreError> {
    let ctx = "recording a stego upload";
    let id = upload.id();
    let mut counts = open_write(txn, STEGO_COUNTS)?;
    move_count(&mut counts, from, &to)?;
    if to == StegoState::Stored && from != Some(&StegoState::Stored) {
        add(&mut counts, CHANGES, 1)?;
    }
    if to == StegoState::Stored {
        let index = open_write(txn, INGEST_INDEX)?;
        if index.get(id.as_slice()).map_err(db_err(ctx))?.is_none() {
            let mut unrecorded = open_write(txn, STEGO_UNRECORDED)?;
            unrecorded.insert(id.as_slice(), ()).map_err(db_err(ctx))?;
        }
    }
    upload.state = to;
    uploads
        .insert(id.as_slice(), upload.to_bytes().as_slice())
        .map_err(db_err(ctx))?;
    Ok(())
}

impl Store {
    /// Records `upload` (its state is ignored) as `how` says. An upload already recorded keeps
    /// its state, except that a failed or rejected one waits again when heard of again, and a
    /// not yet stored one becomes stored.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn stego_record(
        &self,
        upload: &StegoUpload,
        how: StegoAdmission,
    ) -> Result<StegoRecorded, StoreError> {
        self.write(|txn| record_in(txn, upload, how))
    }

    /// [`Store::stego_record`] for many uploads, in one transaction.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn stego_record_many(
        &self,
        uploads: &[StegoUpload],
        how: StegoAdmission,
    ) -> Result<Vec<StegoRecorded>, StoreError> {
        self.write(|txn| uploads.iter().map(|u| record_in(txn, u, how)).collect())
    }

    /// The upload with stego id `id`, if recorded.
    ///
    /// # Errors
    /// A database error.
    pub fn stego_get(&self, id: &EntryId) -> Result<Option<StegoUpload>, StoreError> {
        self.read(|txn| {
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            uploads
                .get(id.as_slice())
                .map_err(db_err("reading a stego upload"))?
                .map(|v| StegoUpload::from_bytes(v.value()))
                .transpose()
        })
    }

    /// The stego ids of every upload other instances may learn of here (all but the rejected
    /// ones): this node's part of the reconciled set.
    ///
    /// # Errors
    /// A database error, or a damaged upload.
    pub fn stego_ids(&self) -> Result<Vec<EntryId>, StoreError> {
        let ctx = "listing stego ids";
        self.read(|txn| {
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            let mut out = Vec::new();
            for slot in uploads.iter().map_err(db_err(ctx))? {
                let (id, v) = slot.map_err(db_err(ctx))?;
                if StegoUpload::from_bytes(v.value())?.state != StegoState::Rejected
                    && let Ok(id) = EntryId::try_from(id.value())
                {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// The entries of the uploads recorded under `ids` (unknown and rejected ones are left
    /// out), for the sync protocol.
    ///
    /// # Errors
    /// A database error, or a damaged upload.
    pub fn stego_entries(&self, ids: &[EntryId]) -> Result<Vec<Entry>, StoreError> {
        self.read(|txn| {
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(upload) = get_upload(&uploads, id)?
                    && upload.state != StegoState::Rejected
                {
                    out.push(upload.entry());
                }
            }
            Ok(out)
        })
    }

    /// The entries of up to `limit` stored uploads, newest first (by first heard of), for the
    /// manifest. One pass over the uploads, holding `limit` of them at most.
    ///
    /// # Errors
    /// A database error, or a damaged upload.
    pub fn stego_stored_entries(&self, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let ctx = "listing stored stego uploads";
        self.read(|txn| {
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            // The newest `limit`, oldest on top so that it goes first.
            let mut newest = BinaryHeap::with_capacity(limit.min(4096).saturating_add(1));
            for slot in uploads.iter().map_err(db_err(ctx))? {
                let (id, v) = slot.map_err(db_err(ctx))?;
                let upload = StegoUpload::from_bytes(v.value())?;
                if upload.state != StegoState::Stored {
                    continue;
                }
                newest.push(Reverse((upload.first_seen, id.value().to_vec())));
                if newest.len() > limit {
                    newest.pop();
                }
            }
            let mut out = Vec::with_capacity(newest.len());
            for Reverse((_, id)) in newest.into_sorted_vec() {
                if let Some(upload) = get_upload(&uploads, &id)? {
                    out.push(upload.entry());
                }
            }
            Ok(out)
        })
    }

    /// Up to `limit` waiting uploads whose next attempt is due at or before `now` (Unix ms),
    /// earliest first. They stay queued until [`Store::stego_finish`] says how the attempt
    /// ended, so a restart in between loses nothing.
    ///
    /// # Errors
    /// A database error.
    pub fn stego_due(&self, now: u64, limit: usize) -> Result<Vec<StegoUpload>, StoreError> {
        let ctx = "reading the stego queue";
        self.read(|txn| {
            let queue = open_read(txn, STEGO_QUEUE)?;
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            let mut out = Vec::new();
            for slot in queue.iter().map_err(db_err(ctx))?.take(limit) {
                let (key, _) = slot.map_err(db_err(ctx))?;
                let (at, id) = key.value();
                if at > now {
                    break;
                }
                if let Some(v) = uploads.get(id).map_err(db_err(ctx))? {
                    out.push(StegoUpload::from_bytes(v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// When the earliest waiting upload is due (Unix ms), if any waits.
    ///
    /// # Errors
    /// A database error.
    pub fn stego_next_due(&self) -> Result<Option<u64>, StoreError> {
        self.read(|txn| {
            let queue = open_read(txn, STEGO_QUEUE)?;
            Ok(queue
                .first()
                .map_err(db_err("reading the stego queue"))?
                .map(|(k, _)| k.value().0))
        })
    }

    /// Records how a fetch attempt of waiting upload `id` ended. Returns false when it was not
    /// waiting (nothing changes then).
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn stego_finish(&self, id: &EntryId, outcome: StegoOutcome) -> Result<bool, StoreError> {
        let ctx = "recording a stego fetch";
        self.write(|txn| {
            let mut uploads = open_write(txn, STEGO_UPLOADS)?;
            let Some(mut upload) = get_upload(&uploads, id)? else {
                return Ok(false);
            };
            if upload.state != StegoState::Waiting {
                return Ok(false);
            }
            let mut queue = open_write(txn, STEGO_QUEUE)?;
            queue
                .remove((upload.next_attempt, id.as_slice()))
                .map_err(db_err(ctx))?;
            let to = match outcome {
                StegoOutcome::Stored => StegoState::Stored,
                StegoOutcome::Retry { at } => {
                    upload.attempts = upload.attempts.saturating_add(1);
                    upload.next_attempt = at;
                    queue.insert((at, id.as_slice()), ()).map_err(db_err(ctx))?;
                    StegoState::Waiting
                }
                StegoOutcome::Failed { reason } => {
                    upload.attempts = upload.attempts.saturating_add(1);
                    StegoState::Failed { reason }
                }
            };
            put_upload(txn, &mut uploads, upload, Some(&StegoState::Waiting), to)?;
            Ok(true)
        })
    }

    /// Up to `limit` stego ids of stored uploads that have no ingestion record yet.
    ///
    /// # Errors
    /// A database error.
    pub fn stego_unrecorded(&self, limit: usize) -> Result<Vec<EntryId>, StoreError> {
        let ctx = "reading the stored stego uploads without a record";
        self.read(|txn| {
            let unrecorded = open_read(txn, STEGO_UNRECORDED)?;
            let mut out = Vec::new();
            for slot in unrecorded.iter().map_err(db_err(ctx))?.take(limit) {
                let (key, _) = slot.map_err(db_err(ctx))?;
                if let Ok(id) = EntryId::try_from(key.value()) {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// Makes the ingestion record of stored upload `id`, created at `now` (Unix ms), unless it
    /// has one: one record per image and payload, however often this is called.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn ingest_make(&self, id: &EntryId, now: u64) -> Result<IngestMade, StoreError> {
        self.write(|txn| make_in(txn, id, now))
    }

    /// [`Store::ingest_make`] for many uploads, in one transaction.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn ingest_make_many(
        &self,
        ids: &[EntryId],
        now: u64,
    ) -> Result<Vec<IngestMade>, StoreError> {
        self.write(|txn| ids.iter().map(|id| make_in(txn, id, now)).collect())
    }

    /// Up to `limit` ingestion records with ids above `after`, in id order; with
    /// `pending_only`, only those not consumed. One range read: the cost of a page does not
    /// grow with the records before it.
    ///
    /// # Errors
    /// A database error.
    pub fn ingest_page(
        &self,
        after: u64,
        limit: usize,
        pending_only: bool,
    ) -> Result<Vec<IngestRecord>, StoreError> {
        let ctx = "reading ingestion records";
        let Some(start) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        self.read(|txn| {
            let records = open_read(txn, INGEST_RECORDS)?;
            let mut out = Vec::with_capacity(limit.min(1024));
            if pending_only {
                let pending = open_read(txn, INGEST_PENDING)?;
                for slot in pending.range(start..).map_err(db_err(ctx))?.take(limit) {
                    let id = slot.map_err(db_err(ctx))?.0.value();
                    if let Some(v) = records.get(id).map_err(db_err(ctx))? {
                        out.push(IngestRecord::from_bytes(id, v.value())?);
                    }
                }
            } else {
                for slot in records.range(start..).map_err(db_err(ctx))?.take(limit) {
                    let (id, v) = slot.map_err(db_err(ctx))?;
                    out.push(IngestRecord::from_bytes(id.value(), v.value())?);
                }
            }
            Ok(out)
        })
    }

    /// Marks ingestion record `id` consumed.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn ingest_ack(&self, id: u64) -> Result<Acked, StoreError> {
        let ctx = "acknowledging an ingestion record";
        self.write(|txn| {
            let mut records = open_write(txn, INGEST_RECORDS)?;
            let Some(mut record) = records
                .get(id)
                .map_err(db_err(ctx))?
                .map(|v| IngestRecord::from_bytes(id, v.value()))
                .transpose()?
            else {
                return Ok(Acked::Unknown);
            };
            if record.consumed {
                return Ok(Acked::AlreadyConsumed);
            }
            record.consumed = true;
            records
                .insert(id, record.to_bytes().as_slice())
                .map_err(db_err(ctx))?;
            let mut pending = open_write(txn, INGEST_PENDING)?;
            pending.remove(id).map_err(db_err(ctx))?;
            let mut counts = open_write(txn, STEGO_COUNTS)?;
            add(&mut counts, PENDING, -1)?;
            Ok(Acked::Consumed)
        })
    }

    /// The stego and ingestion counts.
    ///
    /// # Errors
    /// A database error.
    pub fn stego_counts(&self) -> Result<StegoCounts, StoreError> {
        let ctx = "reading the stego counts";
        self.read(|txn| {
            let table = open_read(txn, STEGO_COUNTS)?;
            let mut counts = StegoCounts::default();
            for slot in table.iter().map_err(db_err(ctx))? {
                let (key, value) = slot.map_err(db_err(ctx))?;
                let (key, value) = (key.value(), value.value());
                match key {
                    "waiting" => counts.waiting = value,
                    "stored" => counts.stored = value,
                    "rejected" => counts.rejected = value,
                    "failed" => counts.failed = value,
                    RECORDS => counts.records = value,
                    PENDING => counts.pending = value,
                    CHANGES => counts.changes = value,
                    other => {
                        if let Some(reason) = other.strip_prefix("failed:")
                            && value > 0
                        {
                            counts.failed_by_reason.insert(reason.to_owned(), value);
                        }
                    }
                }
            }
            Ok(counts)
        })
    }

    /// Notes that the announcement of this node's upload `id` is to be published again at
    /// `at` (Unix ms), after `attempts` failed ones. Kept across restarts until
    /// [`Store::stego_announce_done`].
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn stego_announce_later(
        &self,
        id: &EntryId,
        at: u64,
        attempts: u32,
    ) -> Result<(), StoreError> {
        self.write(|txn| {
            open_write(txn, STEGO_ANNOUNCE)?
                .insert(id.as_slice(), (at, attempts))
                .map_err(db_err("recording an announcement to publish again"))?;
            Ok(())
        })
    }

    /// The announcement of `id` was published, or is given up: it is not tried again.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn stego_announce_done(&self, id: &EntryId) -> Result<(), StoreError> {
        self.write(|txn| {
            open_write(txn, STEGO_ANNOUNCE)?
                .remove(id.as_slice())
                .map_err(db_err("dropping an announcement to publish again"))?;
            Ok(())
        })
    }

    /// Up to `limit` uploads whose announcement is due again at or before `now` (Unix ms),
    /// with their failed attempts so far; and when the next of the others is due. The table
    /// holds only announcements that failed, so it is read whole.
    ///
    /// # Errors
    /// A database error, or a damaged upload.
    pub fn stego_announce_due(&self, now: u64, limit: usize) -> Result<AnnounceDue, StoreError> {
        let ctx = "reading the announcements to publish again";
        self.read(|txn| {
            let table = open_read(txn, STEGO_ANNOUNCE)?;
            let uploads = open_read(txn, STEGO_UPLOADS)?;
            let (mut due, mut next) = (Vec::new(), None::<u64>);
            for slot in table.iter().map_err(db_err(ctx))? {
                let (id, v) = slot.map_err(db_err(ctx))?;
                let (at, attempts) = v.value();
                if at > now || due.len() >= limit {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    continue;
                }
                if let Some(upload) = get_upload(&uploads, id.value())? {
                    due.push((upload, attempts));
                }
            }
            Ok(AnnounceDue { due, next })
        })
    }

    /// Remembers an accepted callback signature (its timestamp, Unix s, and HMAC) and says
    /// whether it is new: false means a replay. Signatures older than the replay window before
    /// `now` (Unix s) are dropped first; the caller has refused those as stale already.
    ///
    /// # Errors
    /// A database error; then nothing changed (and the caller refuses the callback).
    pub fn stego_signature_fresh(
        &self,
        timestamp: u64,
        tag: &[u8],
        now: u64,
    ) -> Result<bool, StoreError> {
        let ctx = "remembering a stego callback signature";
        self.write(|txn| {
            let mut seen = open_write(txn, STEGO_SEEN)?;
            let cutoff = now.saturating_sub(REPLAY_WINDOW_SECS);
            let empty: &[u8] = &[];
            seen.retain_in(..(cutoff, empty), |_, ()| false)
                .map_err(db_err(ctx))?;
            if seen.get((timestamp, tag)).map_err(db_err(ctx))?.is_some() {
                return Ok(false);
            }
            seen.insert((timestamp, tag), ()).map_err(db_err(ctx))?;
            Ok(true)
        })
    }
}

/// Records one upload as [`Store::stego_record`] says, within `txn`.
fn record_in(
    txn: &WriteTransaction,
    upload: &StegoUpload,
    how: StegoAdmission,
) -> Result<StegoRecorded, StoreError> {
    let ctx = "recording a stego upload";
    let mut uploads = open_write(txn, STEGO_UPLOADS)?;
    let id = upload.id();
    let old = get_upload(&uploads, &id)?;
    let old_state = old.as_ref().map(|u| u.state.clone());
    let moves = match (&old_state, how) {
        (None, _) => true,
        (Some(StegoState::Failed { .. } | StegoState::Rejected), StegoAdmission::Wait { .. }) => {
            true
        }
        (Some(s), StegoAdmission::Stored) => *s != StegoState::Stored,
        (Some(_), _) => false,
    };
    if !moves {
        return Ok(StegoRecorded::Known(
            old_state.unwrap_or(StegoState::Waiting),
        ));
    }
    let mut next = old.unwrap_or_else(|| upload.clone());
    let mut queue = open_write(txn, STEGO_QUEUE)?;
    if old_state == Some(StegoState::Waiting) {
        queue
            .remove((next.next_attempt, id.as_slice()))
            .map_err(db_err(ctx))?;
    }
    let to = match how {
        StegoAdmission::Wait { at } => {
            next.attempts = 0;
            next.next_attempt = at;
            queue.insert((at, id.as_slice()), ()).map_err(db_err(ctx))?;
            StegoState::Waiting
        }
        StegoAdmission::Stored => StegoState::Stored,
        StegoAdmission::Rejected => StegoState::Rejected,
    };
    put_upload(txn, &mut uploads, next, old_state.as_ref(), to)?;
    Ok(StegoRecorded::New)
}

/// Makes one ingestion record as [`Store::ingest_make`] says, within `txn`.
fn make_in(txn: &WriteTransaction, id: &EntryId, now: u64) -> Result<IngestMade, StoreError> {
    let ctx = "making an ingestion record";
    let mut index = open_write(txn, INGEST_INDEX)?;
    let mut unrecorded = open_write(txn, STEGO_UNRECORDED)?;
    unrecorded.remove(id.as_slice()).map_err(db_err(ctx))?;
    if let Some(existing) = index.get(id.as_slice()).map_err(db_err(ctx))? {
        return Ok(IngestMade::Existing(existing.value()));
    }
    let uploads = open_write(txn, STEGO_UPLOADS)?;
    let Some(upload) = get_upload(&uploads, id)? else {
        return Ok(IngestMade::NotStored);
    };
    if upload.state != StegoState::Stored {
        return Ok(IngestMade::NotStored);
    }
    let mut counts = open_write(txn, STEGO_COUNTS)?;
    let record_id = count(&counts, NEXT_ID)?.max(1);
    counts
        .insert(NEXT_ID, record_id.saturating_add(1))
        .map_err(db_err(ctx))?;
    add(&mut counts, RECORDS, 1)?;
    add(&mut counts, PENDING, 1)?;
    let record = IngestRecord {
        id: record_id,
        image: upload.image,
        payload: upload.payload,
        publisher: upload.publisher,
        metadata: upload.metadata,
        created: now,
        consumed: false,
    };
    let mut records = open_write(txn, INGEST_RECORDS)?;
    records
        .insert(record_id, record.to_bytes().as_slice())
        .map_err(db_err(ctx))?;
    index
        .insert(id.as_slice(), record_id)
        .map_err(db_err(ctx))?;
    let mut pending = open_write(txn, INGEST_PENDING)?;
    pending.insert(record_id, ()).map_err(db_err(ctx))?;
    Ok(IngestMade::New(record_id))
}

#[cfg(test)]
mod tests {
    use stargate_protocol::mirror::Keypair;

    use super::*;
    use crate::{Store, StoreOptions};

    fn cid(n: u8) -> Cid {
        *crate::testutil::raw(vec![n]).cid()
    }

    fn peer(n: u8) -> PeerId {
        Keypair::ed25519_from_bytes([n; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn upload(image: u8, payload: u8, publisher: u8) -> StegoUpload {
        StegoUpload::new(
            cid(image),
            cid(payload),
            peer(publisher),
            r#"{"wish":"w"}"#.to_owned(),
            1000,
        )
    }

    #[test]
    fn an_upload_waits_is_retried_and_becomes_one_record_whoever_announced_it() {
        let (_dir, store) = crate::testutil::open();
        let u = upload(1, 2, 7);
        let id = u.id();
        assert_eq!(
            store
                .stego_record(&u, StegoAdmission::Wait { at: 10 })
                .unwrap(),
            StegoRecorded::New
        );
        // Another publisher announcing the same image and payload changes nothing.
        assert_eq!(
            store
                .stego_record(&upload(1, 2, 8), StegoAdmission::Wait { at: 5 })
                .unwrap(),
            StegoRecorded::Known(StegoState::Waiting)
        );
        assert!(store.stego_due(9, 10).unwrap().is_empty());
        assert_eq!(store.stego_next_due().unwrap(), Some(10));
        assert_eq!(store.ingest_make(&id, 11).unwrap(), IngestMade::NotStored);
        assert!(
            store
                .stego_finish(&id, StegoOutcome::Retry { at: 20 })
                .unwrap()
        );
        let due = store.stego_due(20, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].attempts, due[0].publisher), (1, peer(7)));
        assert!(store.stego_finish(&id, StegoOutcome::Stored).unwrap());
        assert!(!store.stego_finish(&id, StegoOutcome::Stored).unwrap());
        assert!(store.stego_due(u64::MAX, 10).unwrap().is_empty());
        assert_eq!(store.stego_unrecorded(10).unwrap(), vec![id]);
        assert_eq!(store.ingest_make(&id, 30).unwrap(), IngestMade::New(1));
        assert_eq!(store.ingest_make(&id, 31).unwrap(), IngestMade::Existing(1));
        assert!(store.stego_unrecorded(10).unwrap().is_empty());
        // Stored again (announced again, or approved here): still one record.
        store.stego_record(&u, StegoAdmission::Stored).unwrap();
        assert!(store.stego_unrecorded(10).unwrap().is_empty());
        let page = store.ingest_page(0, 10, false).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].publisher, peer(7));
        assert_eq!(
            (page[0].id, page[0].created, page[0].consumed),
            (1, 30, false)
        );
        let counts = store.stego_counts().unwrap();
        assert_eq!((counts.stored, counts.records, counts.pending), (1, 1, 1));
        assert_eq!(counts.waiting, 0);
    }

    #[test]
    fn pages_follow_the_cursor_and_acks_leave_the_pending_ones() {
        let (dir, store) = crate::testutil::open();
        for n in 0..10u8 {
            let u = upload(n, n + 100, 1);
            store.stego_record(&u, StegoAdmission::Stored).unwrap();
            assert_eq!(
                store.ingest_make(&u.id(), 0).unwrap(),
                IngestMade::New(u64::from(n) + 1)
            );
        }
        let ids = |page: Vec<IngestRecord>| page.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(store.ingest_page(0, 4, false).unwrap()), [1, 2, 3, 4]);
        assert_eq!(ids(store.ingest_page(8, 4, false).unwrap()), [9, 10]);
        assert!(store.ingest_page(u64::MAX, 4, false).unwrap().is_empty());
        assert_eq!(store.ingest_ack(2).unwrap(), Acked::Consumed);
        assert_eq!(store.ingest_ack(2).unwrap(), Acked::AlreadyConsumed);
        assert_eq!(store.ingest_ack(99).unwrap(), Acked::Unknown);
        assert_eq!(ids(store.ingest_page(0, 3, true).unwrap()), [1, 3, 4]);
        assert!(store.ingest_page(0, 3, false).unwrap()[1].consumed);
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let counts = store.stego_counts().unwrap();
        assert_eq!((counts.records, counts.pending), (10, 9));
        let u = upload(50, 51, 1);
        store.stego_record(&u, StegoAdmission::Stored).unwrap();
        assert_eq!(store.ingest_make(&u.id(), 0).unwrap(), IngestMade::New(11));
    }

    #[test]
    fn many_at_once_is_the_same_as_one_by_one() {
        let (_dir, store) = crate::testutil::open();
        let uploads: Vec<StegoUpload> = (0..5u8).map(|n| upload(n, n + 50, 1)).collect();
        let recorded = store
            .stego_record_many(&uploads, StegoAdmission::Stored)
            .unwrap();
        assert!(recorded.iter().all(|r| *r == StegoRecorded::New));
        let ids = store.stego_unrecorded(10).unwrap();
        assert_eq!(ids.len(), 5);
        let mut twice = ids.clone();
        twice.push(ids[0]);
        let made = store.ingest_make_many(&twice, 7).unwrap();
        assert_eq!(made[4], IngestMade::New(5));
        let IngestMade::New(first) = made[0] else {
            panic!("{:?}", made[0])
        };
        assert_eq!(made[5], IngestMade::Existing(first));
        assert_eq!(store.stego_counts().unwrap().records, 5);
    }

    #[test]
    fn rejected_and_failed_uploads_make_no_record_until_heard_again() {
        let (_dir, store) = crate::testutil::open();
        let rejected = upload(1, 2, 1);
        store
            .stego_record(&rejected, StegoAdmission::Rejected)
            .unwrap();
        assert_eq!(
            store.ingest_make(&rejected.id(), 0).unwrap(),
            IngestMade::NotStored
        );
        let failed = upload(3, 4, 1);
        store
            .stego_record(&failed, StegoAdmission::Wait { at: 0 })
            .unwrap();
        store
            .stego_finish(
                &failed.id(),
                StegoOutcome::Failed {
                    reason: "timeout".to_owned(),
                },
            )
            .unwrap();
        let counts = store.stego_counts().unwrap();
        assert_eq!((counts.rejected, counts.failed, counts.waiting), (1, 1, 0));
        assert_eq!(counts.failed_by_reason["timeout"], 1);
        assert_eq!(
            store
                .stego_record(&failed, StegoAdmission::Wait { at: 5 })
                .unwrap(),
            StegoRecorded::New
        );
        let again = store.stego_get(&failed.id()).unwrap().unwrap();
        assert_eq!((again.state, again.attempts), (StegoState::Waiting, 0));
        let counts = store.stego_counts().unwrap();
        assert_eq!((counts.failed, counts.waiting), (0, 1));
        assert!(counts.failed_by_reason.is_empty());
    }

    #[test]
    fn the_reconciled_set_and_the_manifest_see_the_uploads_as_entries() {
        let (_dir, store) = crate::testutil::open();
        let mut waiting = upload(1, 2, 1);
        waiting.first_seen = 5_000;
        let mut older = upload(3, 4, 2);
        older.first_seen = 1_000;
        let mut newer = upload(5, 6, 3);
        newer.first_seen = 9_000;
        let rejected = upload(7, 8, 1);
        store
            .stego_record(&waiting, StegoAdmission::Wait { at: 0 })
            .unwrap();
        store
            .stego_record_many(&[older.clone(), newer.clone()], StegoAdmission::Stored)
            .unwrap();
        store
            .stego_record(&rejected, StegoAdmission::Rejected)
            .unwrap();
        let mut ids = store.stego_ids().unwrap();
        ids.sort_unstable();
        let mut want = vec![waiting.id(), older.id(), newer.id()];
        want.sort_unstable();
        assert_eq!(ids, want);
        let entries = store
            .stego_entries(&[rejected.id(), waiting.id(), [0; 32]])
            .unwrap();
        assert_eq!(entries, vec![waiting.entry()]);
        assert_eq!(entries[0].id(), waiting.id());
        assert_eq!(entries[0].time, 5);
        let stored = store.stego_stored_entries(10).unwrap();
        assert_eq!(stored, vec![newer.entry(), older.entry()]);
        assert_eq!(store.stego_stored_entries(1).unwrap(), vec![newer.entry()]);
        let changes = store.stego_counts().unwrap().changes;
        assert_eq!(changes, 2);
        store
            .stego_finish(&waiting.id(), StegoOutcome::Stored)
            .unwrap();
        store
            .stego_record(&waiting, StegoAdmission::Stored)
            .unwrap();
        assert_eq!(store.stego_counts().unwrap().changes, 3);
    }

    #[test]
    fn an_announcement_to_publish_again_is_kept_until_done() {
        let (dir, store) = crate::testutil::open();
        let (a, b) = (upload(1, 2, 1), upload(3, 4, 1));
        store.stego_record(&a, StegoAdmission::Stored).unwrap();
        store.stego_record(&b, StegoAdmission::Stored).unwrap();
        store.stego_announce_later(&a.id(), 100, 0).unwrap();
        store.stego_announce_later(&b.id(), 300, 2).unwrap();
        let AnnounceDue { due, next } = store.stego_announce_due(50, 10).unwrap();
        assert!(due.is_empty());
        assert_eq!(next, Some(100));
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let AnnounceDue { due, next } = store.stego_announce_due(100, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (due[0].0.id(), &due[0].0.state, due[0].1),
            (a.id(), &StegoState::Stored, 0)
        );
        assert_eq!(next, Some(300));
        store.stego_announce_later(&a.id(), 400, 1).unwrap();
        store.stego_announce_done(&b.id()).unwrap();
        let AnnounceDue { due, next } = store.stego_announce_due(1000, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].0.id(), due[0].1), (a.id(), 1));
        assert_eq!(next, None);
        store.stego_announce_done(&a.id()).unwrap();
        assert_eq!(
            store.stego_announce_due(u64::MAX, 10).unwrap(),
            AnnounceDue::default()
        );
    }

    #[test]
    fn a_signature_is_fresh_once_and_the_cache_survives_a_restart() {
        let (dir, store) = crate::testutil::open();
        let now = 1_000_000;
        assert!(store.stego_signature_fresh(now, &[1; 32], now).unwrap());
        assert!(!store.stego_signature_fresh(now, &[1; 32], now + 1).unwrap());
        assert!(store.stego_signature_fresh(now, &[2; 32], now).unwrap());
        drop(store);
        let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
        assert!(
            !store
                .stego_signature_fresh(now, &[1; 32], now + 299)
                .unwrap()
        );
        // Once out of the window it is pruned (and the callback refused as stale before this).
        assert!(
            store
                .stego_signature_fresh(now, &[1; 32], now + REPLAY_WINDOW_SECS + 1)
                .unwrap()
        );
    }
}
