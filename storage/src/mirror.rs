//! Mirroring state: one record per mirrored upload (keyed by its [`EntryId`], so the sync
//! protocol looks entries up directly), the download queue ordered by next attempt, counts per
//! state kept beside the records, and the latest manifest heard of per publisher.
//!
//! A record and its queue slot and counts change in one transaction, so a crash never leaves a
//! queued record outside the queue or counts that disagree with the records. A download taken
//! off the queue is `fetching` until it ends; [`Store::mirror_resume`] puts those back after a
//! restart. What the mirror fetched it pins recursively through the pin table, so `repo gc`
//! keeps it like any other pin.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};
use stargate_protocol::Cid;
use stargate_protocol::mirror::{Entry, EntryId, PeerId};

use crate::error::db_err;
use crate::tables::{
    MIRROR_COUNTS, MIRROR_MANIFESTS, MIRROR_ORDER, MIRROR_QUEUE, MIRROR_RECORDS, open_read,
    open_write,
};
use crate::{Store, StoreError};

/// Counter bumped whenever the set of stored entries changes (a manifest is due then).
const CHANGES: &str = "changes";

/// Where one mirrored upload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MirrorState {
    /// Waiting in the download queue until its next attempt.
    Queued,
    /// A worker is fetching it.
    Fetching,
    /// Fetched (or uploaded here), verified and pinned.
    Stored,
    /// Given up after its attempts; announcing it again queues it again.
    Failed {
        /// The last failure's metric label.
        reason: String,
    },
}

impl MirrorState {
    /// The state's name, as counted and shown.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Fetching => "fetching",
            Self::Stored => "stored",
            Self::Failed { .. } => "failed",
        }
    }
}

/// One mirrored upload and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorRecord {
    /// What was announced, by whom, first heard of when.
    pub entry: Entry,
    /// Where it stands.
    pub state: MirrorState,
    /// Failed download attempts so far.
    pub attempts: u32,
    /// When the next download attempt is due (Unix milliseconds), while queued.
    pub next_attempt: u64,
    /// When the record last changed (Unix milliseconds): for a stored one, when it was stored.
    pub changed: u64,
}

/// How [`Store::mirror_record`] takes a new entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Queue it for download at `at` (Unix ms), unless the queue already holds `bound` records.
    Queue {
        /// When the first attempt is due.
        at: u64,
        /// The most records the queue may hold.
        bound: u64,
    },
    /// The node holds and pinned it already (its own upload).
    Stored,
}

/// What [`Store::mirror_record`] did with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// Newly recorded (or a failed one queued again, or an own upload now stored).
    New,
    /// Already recorded; nothing changed.
    Known(MirrorState),
    /// The queue is full: not recorded.
    QueueFull,
}

/// How a download ended, for [`Store::mirror_finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Fetched, verified and pinned.
    Stored,
    /// Failed; try again at `at` (Unix ms).
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

/// Records counted by state, kept up to date with every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MirrorCounts {
    /// Waiting in the queue.
    pub queued: u64,
    /// Being fetched.
    pub fetching: u64,
    /// Held and pinned.
    pub stored: u64,
    /// Given up.
    pub failed: u64,
    /// Given up, by the last failure's reason.
    pub failed_by_reason: BTreeMap<String, u64>,
    /// Bumped whenever the stored set changes.
    pub changes: u64,
}

/// Which records [`Store::mirror_list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MirrorFilter {
    /// Only this type.
    pub kind: Option<String>,
    /// Only from this original publisher.
    pub publisher: Option<PeerId>,
    /// Only in this state (by [`MirrorState::name`]).
    pub state: Option<&'static str>,
    /// At most this many.
    pub limit: usize,
}

/// The latest manifest heard of from one publisher, and the last one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestRecord {
    /// Whose manifest.
    pub publisher: PeerId,
    /// The latest manifest announced.
    pub latest: Cid,
    /// When it was heard of (Unix seconds).
    pub heard_at: u64,
    /// The last manifest read and queued from, if any.
    pub processed: Option<Cid>,
    /// Its sequence number (0 before any).
    pub seq: u64,
    /// Its own time (Unix seconds).
    pub time: u64,
}

impl ManifestRecord {
    /// Whether the latest manifest heard of is still to be read.
    pub fn pending(&self) -> bool {
        self.processed != Some(self.latest)
    }
}

/// The stored layout of a record: plain fields, this module's to keep stable.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    cid: String,
    kind: String,
    metadata: String,
    publisher: String,
    time: u64,
    #[serde(flatten)]
    state: MirrorState,
    attempts: u32,
    next_attempt: u64,
    changed: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredManifest {
    latest: String,
    heard_at: u64,
    processed: Option<String>,
    seq: u64,
    time: u64,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        reason: format!("undecodable {what} in the mirror tables: {e}"),
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain structs of strings and integers: serialising them cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn parse_cid(s: &str) -> Result<Cid, StoreError> {
    Cid::try_from(s).map_err(|e| corrupt("CID", e))
}

fn parse_peer(s: &str) -> Result<PeerId, StoreError> {
    s.parse::<PeerId>().map_err(|e| corrupt("peer id", e))
}

/// Writes `record` under `id`, stamped with the time of this change.
fn put_record(
    records: &mut redb::Table<&'static [u8], &'static [u8]>,
    id: &[u8],
    record: &mut MirrorRecord,
    ctx: &'static str,
) -> Result<(), StoreError> {
    record.changed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    records
        .insert(id, record.to_bytes().as_slice())
        .map_err(db_err(ctx))?;
    Ok(())
}

impl MirrorRecord {
    fn to_bytes(&self) -> Vec<u8> {
        encode(&StoredRecord {
            cid: self.entry.cid.to_string(),
            kind: self.entry.kind.clone(),
            metadata: self.entry.metadata.clone(),
            publisher: self.entry.publisher.to_base58(),
            time: self.entry.time,
            state: self.state.clone(),
            attempts: self.attempts,
            next_attempt: self.next_attempt,
            changed: self.changed,
        })
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let s: StoredRecord =
            serde_json::from_slice(bytes).map_err(|e| corrupt("mirror record", e))?;
        Ok(Self {
            entry: Entry {
                cid: parse_cid(&s.cid)?,
                // Stego uploads are the stego tables' (`stego.rs`).
                payload: None,
                kind: s.kind,
                metadata: s.metadata,
                publisher: parse_peer(&s.publisher)?,
                time: s.time,
            },
            state: s.state,
            attempts: s.attempts,
            next_attempt: s.next_attempt,
            changed: s.changed,
        })
    }
}

impl ManifestRecord {
    fn to_bytes(&self) -> Vec<u8> {
        encode(&StoredManifest {
            latest: self.latest.to_string(),
            heard_at: self.heard_at,
            processed: self.processed.map(|c| c.to_string()),
            seq: self.seq,
            time: self.time,
        })
    }

    fn from_bytes(publisher: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        let s: StoredManifest =
            serde_json::from_slice(bytes).map_err(|e| corrupt("manifest record", e))?;
        Ok(Self {
            publisher: PeerId::from_bytes(publisher).map_err(|e| corrupt("peer id", e))?,
            latest: parse_cid(&s.latest)?,
            heard_at: s.heard_at,
            processed: s.processed.as_deref().map(parse_cid).transpose()?,
            seq: s.seq,
            time: s.time,
        })
    }
}

type Counts<'txn> = redb::Table<'txn, &'static str, u64>;

fn bump(counts: &mut Counts<'_>, key: &str, delta: i64) -> Result<(), StoreError> {
    let ctx = "counting mirror records";
    let now = counts
        .get(key)
        .map_err(db_err(ctx))?
        .map_or(0, |v| v.value());
    let next = now.saturating_add_signed(delta);
    if next == 0 {
        counts.remove(key).map_err(db_err(ctx))?;
    } else {
        counts.insert(key, next).map_err(db_err(ctx))?;
    }
    Ok(())
}

/// Moves the counts from one state to another (either may be absent).
fn recount(
    counts: &mut Counts<'_>,
    from: Option<&MirrorState>,
    to: Option<&MirrorState>,
) -> Result<(), StoreError> {
    for (state, delta) in [(from, -1), (to, 1)] {
        let Some(state) = state else { continue };
        bump(counts, state.name(), delta)?;
        if let MirrorState::Failed { reason } = state {
            bump(counts, &format!("failed:{reason}"), delta)?;
        }
    }
    if to == Some(&MirrorState::Stored) && from != Some(&MirrorState::Stored) {
        bump(counts, CHANGES, 1)?;
    }
    Ok(())
}

impl Store {
    /// Records entries as `how` says, in one transaction. An entry already recorded keeps its
    /// state, except that a failed one is queued again and an own upload becomes stored.
    ///
    /// # Errors
    /// A database error; then nothing was recorded.
    pub fn mirror_record(
        &self,
        entries: &[Entry],
        how: Admission,
    ) -> Result<Vec<Recorded>, StoreError> {
        let ctx = "recording mirrored entries";
        self.write(|txn| {
            let mut records = open_write(txn, MIRROR_RECORDS)?;
            let mut queue = open_write(txn, MIRROR_QUEUE)?;
            let mut order = open_write(txn, MIRROR_ORDER)?;
            let mut counts = open_write(txn, MIRROR_COUNTS)?;
            let mut out = Vec::with_capacity(entries.len());
            for entry in entries {
                let id = entry.id();
                let old = records
                    .get(id.as_slice())
                    .map_err(db_err(ctx))?
                    .map(|v| MirrorRecord::from_bytes(v.value()))
                    .transpose()?;
                let mut record = match (&old, how) {
                    (None, _) => MirrorRecord {
                        entry: entry.clone(),
                        state: MirrorState::Queued,
                        attempts: 0,
                        next_attempt: 0,
                        changed: 0,
                    },
                    (Some(r), Admission::Queue { .. })
                        if matches!(r.state, MirrorState::Failed { .. }) =>
                    {
                        r.clone()
                    }
                    (Some(r), Admission::Stored) if r.state != MirrorState::Stored => r.clone(),
                    (Some(r), _) => {
                        out.push(Recorded::Known(r.state.clone()));
                        continue;
                    }
                };
                match how {
                    Admission::Queue { at, bound } => {
                        if queue.len().map_err(db_err(ctx))? >= bound {
                            out.push(Recorded::QueueFull);
                            continue;
                        }
                        record.state = MirrorState::Queued;
                        record.attempts = 0;
                        record.next_attempt = at;
                        queue.insert((at, id.as_slice()), ()).map_err(db_err(ctx))?;
                    }
                    Admission::Stored => {
                        if let Some(r) = &old
                            && r.state == MirrorState::Queued
                        {
                            queue
                                .remove((r.next_attempt, id.as_slice()))
                                .map_err(db_err(ctx))?;
                        }
                        record.state = MirrorState::Stored;
                    }
                }
                if old.is_none() {
                    order
                        .insert((entry.time, id.as_slice()), ())
                        .map_err(db_err(ctx))?;
                }
                recount(
                    &mut counts,
                    old.as_ref().map(|r| &r.state),
                    Some(&record.state),
                )?;
                put_record(&mut records, &id, &mut record, ctx)?;
                out.push(Recorded::New);
            }
            Ok(out)
        })
    }

    /// Takes up to `limit` queued records due at or before `now` (Unix ms) off the queue,
    /// earliest first, and marks them fetching. Not made durable by itself (one fsync less per
    /// download): a crash before the next durable commit leaves them queued, which resumes the
    /// same way.
    ///
    /// # Errors
    /// A database error; then nothing was taken.
    pub fn mirror_take_due(&self, now: u64, limit: usize) -> Result<Vec<MirrorRecord>, StoreError> {
        let ctx = "taking mirror downloads off the queue";
        self.write_volatile(|txn| {
            let mut records = open_write(txn, MIRROR_RECORDS)?;
            let mut queue = open_write(txn, MIRROR_QUEUE)?;
            let mut counts = open_write(txn, MIRROR_COUNTS)?;
            let mut due = Vec::new();
            for slot in queue.iter().map_err(db_err(ctx))?.take(limit) {
                let (key, _) = slot.map_err(db_err(ctx))?;
                let (at, id) = key.value();
                if at > now {
                    break;
                }
                due.push((at, id.to_vec()));
            }
            let mut out = Vec::with_capacity(due.len());
            for (at, id) in due {
                queue.remove((at, id.as_slice())).map_err(db_err(ctx))?;
                let Some(mut record) = records
                    .get(id.as_slice())
                    .map_err(db_err(ctx))?
                    .map(|v| MirrorRecord::from_bytes(v.value()))
                    .transpose()?
                else {
                    continue;
                };
                recount(
                    &mut counts,
                    Some(&record.state),
                    Some(&MirrorState::Fetching),
                )?;
                record.state = MirrorState::Fetching;
                put_record(&mut records, &id, &mut record, ctx)?;
                out.push(record);
            }
            Ok(out)
        })
    }

    /// When the earliest queued download is due (Unix ms), if any is queued.
    ///
    /// # Errors
    /// A database error.
    pub fn mirror_next_due(&self) -> Result<Option<u64>, StoreError> {
        let ctx = "reading the mirror queue";
        self.read(|txn| {
            let queue = open_read(txn, MIRROR_QUEUE)?;
            Ok(queue
                .first()
                .map_err(db_err(ctx))?
                .map(|(k, _)| k.value().0))
        })
    }

    /// Records how the download of entry `id` ended. Returns false when no such download was
    /// in flight (nothing changes then).
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn mirror_finish(&self, id: &EntryId, outcome: Outcome) -> Result<bool, StoreError> {
        let ctx = "recording a mirror download";
        self.write(|txn| {
            let mut records = open_write(txn, MIRROR_RECORDS)?;
            let mut counts = open_write(txn, MIRROR_COUNTS)?;
            let Some(mut record) = records
                .get(id.as_slice())
                .map_err(db_err(ctx))?
                .map(|v| MirrorRecord::from_bytes(v.value()))
                .transpose()?
            else {
                return Ok(false);
            };
            if record.state != MirrorState::Fetching {
                return Ok(false);
            }
            let state = match outcome {
                Outcome::Stored => MirrorState::Stored,
                Outcome::Retry { at } => {
                    record.attempts = record.attempts.saturating_add(1);
                    record.next_attempt = at;
                    let mut queue = open_write(txn, MIRROR_QUEUE)?;
                    queue.insert((at, id.as_slice()), ()).map_err(db_err(ctx))?;
                    MirrorState::Queued
                }
                Outcome::Failed { reason } => {
                    record.attempts = record.attempts.saturating_add(1);
                    MirrorState::Failed { reason }
                }
            };
            recount(&mut counts, Some(&record.state), Some(&state))?;
            record.state = state;
            put_record(&mut records, id.as_slice(), &mut record, ctx)?;
            Ok(true)
        })
    }

    /// Puts every download that was in flight when the node stopped back in the queue, due at
    /// once. Returns how many. Call it at start-up, before any worker runs.
    ///
    /// # Errors
    /// A database error; then nothing changed.
    pub fn mirror_resume(&self) -> Result<u64, StoreError> {
        let ctx = "resuming mirror downloads";
        self.write(|txn| {
            let mut records = open_write(txn, MIRROR_RECORDS)?;
            let mut queue = open_write(txn, MIRROR_QUEUE)?;
            let mut counts = open_write(txn, MIRROR_COUNTS)?;
            let fetching = counts
                .get(MirrorState::Fetching.name())
                .map_err(db_err(ctx))?
                .map_or(0, |v| v.value());
            if fetching == 0 {
                return Ok(0);
            }
            let mut resumed = Vec::new();
            for item in records.iter().map_err(db_err(ctx))? {
                let (id, v) = item.map_err(db_err(ctx))?;
                let record = MirrorRecord::from_bytes(v.value())?;
                if record.state == MirrorState::Fetching {
                    resumed.push((id.value().to_vec(), record));
                }
            }
            for (id, mut record) in resumed.iter().cloned() {
                recount(&mut counts, Some(&record.state), Some(&MirrorState::Queued))?;
                record.state = MirrorState::Queued;
                record.next_attempt = 0;
                queue.insert((0, id.as_slice()), ()).map_err(db_err(ctx))?;
                put_record(&mut records, &id, &mut record, ctx)?;
            }
            Ok(resumed.len() as u64)
        })
    }

    /// The record of entry `id`.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn mirror_get(&self, id: &EntryId) -> Result<Option<MirrorRecord>, StoreError> {
        let ctx = "reading a mirror record";
        self.read(|txn| {
            open_read(txn, MIRROR_RECORDS)?
                .get(id.as_slice())
                .map_err(db_err(ctx))?
                .map(|v| MirrorRecord::from_bytes(v.value()))
                .transpose()
        })
    }

    /// The entries recorded under `ids` (unknown ids are left out), for the sync protocol.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn mirror_entries(&self, ids: &[EntryId]) -> Result<Vec<Entry>, StoreError> {
        let ctx = "reading mirror entries";
        self.read(|txn| {
            let records = open_read(txn, MIRROR_RECORDS)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = records.get(id.as_slice()).map_err(db_err(ctx))? {
                    out.push(MirrorRecord::from_bytes(v.value())?.entry);
                }
            }
            Ok(out)
        })
    }

    /// The ids of every recorded entry, whatever its state: the node's reconciled set.
    ///
    /// # Errors
    /// A database error.
    pub fn mirror_ids(&self) -> Result<Vec<EntryId>, StoreError> {
        let ctx = "listing mirror entry ids";
        self.read(|txn| {
            let records = open_read(txn, MIRROR_RECORDS)?;
            let mut out = Vec::new();
            for item in records.iter().map_err(db_err(ctx))? {
                let (id, _) = item.map_err(db_err(ctx))?;
                if let Ok(id) = EntryId::try_from(id.value()) {
                    out.push(id);
                }
            }
            Ok(out)
        })
    }

    /// Records matching `filter`, newest first (by first-heard time).
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn mirror_list(&self, filter: &MirrorFilter) -> Result<Vec<MirrorRecord>, StoreError> {
        let ctx = "listing mirror records";
        self.read(|txn| {
            let order = open_read(txn, MIRROR_ORDER)?;
            let records = open_read(txn, MIRROR_RECORDS)?;
            let mut out = Vec::new();
            for item in order.iter().map_err(db_err(ctx))?.rev() {
                if out.len() >= filter.limit {
                    break;
                }
                let (key, _) = item.map_err(db_err(ctx))?;
                let (_, id) = key.value();
                let Some(v) = records.get(id).map_err(db_err(ctx))? else {
                    continue;
                };
                let record = MirrorRecord::from_bytes(v.value())?;
                let keep = filter.kind.as_ref().is_none_or(|k| *k == record.entry.kind)
                    && filter.publisher.is_none_or(|p| p == record.entry.publisher)
                    && filter.state.is_none_or(|s| s == record.state.name());
                if keep {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }

    /// Records counted by state.
    ///
    /// # Errors
    /// A database error.
    pub fn mirror_counts(&self) -> Result<MirrorCounts, StoreError> {
        let ctx = "counting mirror records";
        self.read(|txn| {
            let table = open_read(txn, MIRROR_COUNTS)?;
            let mut counts = MirrorCounts::default();
            for item in table.iter().map_err(db_err(ctx))? {
                let (key, value) = item.map_err(db_err(ctx))?;
                let value = value.value();
                match key.value() {
                    "queued" => counts.queued = value,
                    "fetching" => counts.fetching = value,
                    "stored" => counts.stored = value,
                    "failed" => counts.failed = value,
                    CHANGES => counts.changes = value,
                    other => {
                        if let Some(reason) = other.strip_prefix("failed:") {
                            counts.failed_by_reason.insert(reason.to_owned(), value);
                        }
                    }
                }
            }
            Ok(counts)
        })
    }

    /// Notes that `publisher` announced manifest `cid` at `now` (Unix s). Returns whether it is
    /// new (not the latest already heard of).
    ///
    /// # Errors
    /// A database error.
    pub fn mirror_manifest_heard(
        &self,
        publisher: &PeerId,
        cid: &Cid,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.update_manifest(
            publisher,
            "recording a manifest heard of",
            |old| match old {
                Some(r) if r.latest == *cid => None,
                Some(r) => Some(ManifestRecord {
                    latest: *cid,
                    heard_at: now,
                    ..r
                }),
                None => Some(ManifestRecord {
                    publisher: *publisher,
                    latest: *cid,
                    heard_at: now,
                    processed: None,
                    seq: 0,
                    time: 0,
                }),
            },
        )
    }

    /// Notes that manifest `cid` of `publisher` (sequence `seq`, time `time`) was read. Returns
    /// false, changing nothing, when it is not newer than the last one read (a replay).
    ///
    /// # Errors
    /// A database error.
    pub fn mirror_manifest_processed(
        &self,
        publisher: &PeerId,
        cid: &Cid,
        seq: u64,
        time: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        self.update_manifest(publisher, "recording a manifest read", |old| match old {
            Some(r) if r.processed.is_some() && seq <= r.seq => None,
            Some(r) => Some(ManifestRecord {
                processed: Some(*cid),
                seq,
                time,
                ..r
            }),
            None => Some(ManifestRecord {
                publisher: *publisher,
                latest: *cid,
                heard_at: now,
                processed: Some(*cid),
                seq,
                time,
            }),
        })
    }

    /// Replaces the manifest record of `publisher` with what `change` makes of it; `None`
    /// leaves it as it is. Returns whether it changed.
    fn update_manifest(
        &self,
        publisher: &PeerId,
        ctx: &'static str,
        change: impl FnOnce(Option<ManifestRecord>) -> Option<ManifestRecord>,
    ) -> Result<bool, StoreError> {
        self.write(|txn| {
            let mut table = open_write(txn, MIRROR_MANIFESTS)?;
            let key = publisher.to_bytes();
            let old = table
                .get(key.as_slice())
                .map_err(db_err(ctx))?
                .map(|v| ManifestRecord::from_bytes(&key, v.value()))
                .transpose()?;
            let Some(record) = change(old) else {
                return Ok(false);
            };
            table
                .insert(key.as_slice(), record.to_bytes().as_slice())
                .map_err(db_err(ctx))?;
            Ok(true)
        })
    }

    /// The manifest record of every publisher heard of.
    ///
    /// # Errors
    /// A database error, or a damaged record.
    pub fn mirror_manifests(&self) -> Result<Vec<ManifestRecord>, StoreError> {
        let ctx = "listing manifests";
        self.read(|txn| {
            let table = open_read(txn, MIRROR_MANIFESTS)?;
            let mut out = Vec::new();
            for item in table.iter().map_err(db_err(ctx))? {
                let (k, v) = item.map_err(db_err(ctx))?;
                out.push(ManifestRecord::from_bytes(k.value(), v.value())?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use stargate_protocol::mirror::{Announcement, Keypair};

    use super::*;
    use crate::PinMode;
    use crate::testutil::{node, open, raw};

    fn entry(n: u8, publisher: PeerId, time: u64) -> Entry {
        let announcement = Announcement {
            cid: *raw(vec![n]).cid(),
            kind: if n.is_multiple_of(2) {
                "contract"
            } else {
                "proposal"
            }
            .to_owned(),
            metadata: json!({"n": n}).as_object().cloned().unwrap_or_default(),
        };
        Entry::new(&announcement, publisher, time).unwrap()
    }

    fn peer(seed: u8) -> PeerId {
        Keypair::ed25519_from_bytes([seed; 32])
            .unwrap()
            .public()
            .to_peer_id()
    }

    fn queue(at: u64) -> Admission {
        Admission::Queue { at, bound: 100 }
    }

    #[test]
    fn queue_fetch_retry_fail_and_count() {
        let (_dir, store) = open();
        let me = peer(1);
        let (a, b, c) = (entry(1, me, 10), entry(2, me, 11), entry(3, me, 12));
        let done = store
            .mirror_record(&[a.clone(), b.clone(), c.clone()], queue(5))
            .unwrap();
        assert_eq!(done, vec![Recorded::New; 3]);
        assert_eq!(
            store
                .mirror_record(std::slice::from_ref(&a), queue(6))
                .unwrap(),
            vec![Recorded::Known(MirrorState::Queued)]
        );
        assert_eq!(store.mirror_next_due().unwrap(), Some(5));
        assert!(store.mirror_take_due(4, 10).unwrap().is_empty());

        let taken = store.mirror_take_due(5, 2).unwrap();
        assert_eq!(taken.len(), 2);
        assert!(taken.iter().all(|r| r.state == MirrorState::Fetching));
        let counts = store.mirror_counts().unwrap();
        assert_eq!((counts.queued, counts.fetching), (1, 2));

        let (first, second) = (taken[0].entry.id(), taken[1].entry.id());
        assert!(store.mirror_finish(&first, Outcome::Stored).unwrap());
        // A download that is not in flight cannot end twice.
        assert!(!store.mirror_finish(&first, Outcome::Stored).unwrap());
        assert!(
            store
                .mirror_finish(&second, Outcome::Retry { at: 50 })
                .unwrap()
        );
        let again = store.mirror_get(&second).unwrap().unwrap();
        assert_eq!((again.state, again.attempts), (MirrorState::Queued, 1));
        assert_eq!(store.mirror_take_due(49, 10).unwrap().len(), 1);
        let retried = store.mirror_take_due(50, 10).unwrap();
        assert_eq!(retried[0].entry.id(), second);
        store
            .mirror_finish(
                &second,
                Outcome::Failed {
                    reason: "timeout".to_owned(),
                },
            )
            .unwrap();

        let counts = store.mirror_counts().unwrap();
        assert_eq!(
            (counts.queued, counts.fetching, counts.stored, counts.failed),
            (0, 1, 1, 1)
        );
        assert_eq!(counts.failed_by_reason.get("timeout"), Some(&1));
        assert_eq!(counts.changes, 1);

        // A failed entry announced again is queued again.
        let failed = store.mirror_get(&second).unwrap().unwrap().entry;
        assert_eq!(
            store.mirror_record(&[failed], queue(60)).unwrap(),
            vec![Recorded::New]
        );
        let counts = store.mirror_counts().unwrap();
        assert_eq!((counts.queued, counts.failed), (1, 0));
        assert!(counts.failed_by_reason.is_empty());
    }

    #[test]
    fn queue_is_bounded_and_own_uploads_are_stored() {
        let (_dir, store) = open();
        let me = peer(1);
        let bound = Admission::Queue { at: 1, bound: 2 };
        let all: Vec<Entry> = (0..3).map(|n| entry(n, me, 1)).collect();
        assert_eq!(
            store.mirror_record(&all, bound).unwrap(),
            vec![Recorded::New, Recorded::New, Recorded::QueueFull]
        );
        assert!(store.mirror_get(&all[2].id()).unwrap().is_none());
        // An own upload of something queued leaves the queue and is stored.
        assert_eq!(
            store.mirror_record(&all[..1], Admission::Stored).unwrap(),
            vec![Recorded::New]
        );
        assert_eq!(
            store.mirror_record(&all[2..], Admission::Stored).unwrap(),
            vec![Recorded::New]
        );
        let counts = store.mirror_counts().unwrap();
        assert_eq!((counts.queued, counts.stored), (1, 2));
        assert_eq!(store.mirror_take_due(10, 10).unwrap().len(), 1);
    }

    #[test]
    fn list_filters_newest_first_and_entries_by_id() {
        let (_dir, store) = open();
        let me = peer(1);
        let other = peer(2);
        let all = vec![entry(1, me, 1), entry(2, other, 2), entry(4, me, 3)];
        store.mirror_record(&all, Admission::Stored).unwrap();
        let everything = MirrorFilter {
            limit: 10,
            ..MirrorFilter::default()
        };
        let listed: Vec<u64> = store
            .mirror_list(&everything)
            .unwrap()
            .iter()
            .map(|r| r.entry.time)
            .collect();
        assert_eq!(listed, vec![3, 2, 1]);
        let contracts_from_me = MirrorFilter {
            kind: Some("contract".to_owned()),
            publisher: Some(me),
            limit: 10,
            ..MirrorFilter::default()
        };
        let listed = store.mirror_list(&contracts_from_me).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].entry, all[2]);
        let ids: Vec<EntryId> = vec![all[0].id(), [7; 32]];
        assert_eq!(store.mirror_entries(&ids).unwrap(), vec![all[0].clone()]);
        let mut known = store.mirror_ids().unwrap();
        known.sort_unstable();
        let mut expected: Vec<EntryId> = all.iter().map(Entry::id).collect();
        expected.sort_unstable();
        assert_eq!(known, expected);
    }

    #[test]
    fn downloads_in_flight_resume_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let me = peer(1);
        let a = entry(1, me, 1);
        {
            let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
            store
                .mirror_record(std::slice::from_ref(&a), queue(5))
                .unwrap();
            assert_eq!(store.mirror_take_due(5, 10).unwrap().len(), 1);
        }
        let store = Store::open(dir.path(), crate::StoreOptions::default()).unwrap();
        assert_eq!(store.mirror_resume().unwrap(), 1);
        assert_eq!(store.mirror_resume().unwrap(), 0);
        let record = store.mirror_get(&a.id()).unwrap().unwrap();
        assert_eq!(record.state, MirrorState::Queued);
        assert_eq!(store.mirror_take_due(0, 10).unwrap().len(), 1);
    }

    #[test]
    fn manifests_per_publisher_refuse_replays() {
        let (_dir, store) = open();
        let them = peer(3);
        let (m1, m2) = (*raw(&b"m1"[..]).cid(), *raw(&b"m2"[..]).cid());
        assert!(store.mirror_manifest_heard(&them, &m1, 10).unwrap());
        assert!(!store.mirror_manifest_heard(&them, &m1, 11).unwrap());
        assert!(store.mirror_manifests().unwrap()[0].pending());
        assert!(
            store
                .mirror_manifest_processed(&them, &m1, 3, 9, 12)
                .unwrap()
        );
        assert!(!store.mirror_manifests().unwrap()[0].pending());
        assert!(store.mirror_manifest_heard(&them, &m2, 20).unwrap());
        // An older sequence number under a new CID is a replay.
        assert!(
            !store
                .mirror_manifest_processed(&them, &m2, 3, 19, 21)
                .unwrap()
        );
        assert!(
            store
                .mirror_manifest_processed(&them, &m2, 4, 19, 21)
                .unwrap()
        );
        let record = &store.mirror_manifests().unwrap()[0];
        assert_eq!((record.seq, record.processed), (4, Some(m2)));
    }

    #[test]
    fn gc_keeps_what_the_mirror_pinned() {
        let (_dir, store) = open();
        let leaf = raw(&b"mirrored leaf"[..]);
        let root = node(&[&leaf], b"root");
        let stray = raw(&b"unpinned"[..]);
        store
            .put_many(vec![leaf.clone(), root.clone(), stray.clone()])
            .unwrap();
        // What a download worker does once the DAG is verified.
        store.pin(root.cid(), PinMode::Recursive).unwrap();
        let me = peer(1);
        let announcement = Announcement {
            cid: *root.cid(),
            kind: "contract".to_owned(),
            metadata: serde_json::Map::new(),
        };
        let record = Entry::new(&announcement, me, 1).unwrap();
        store.mirror_record(&[record], Admission::Stored).unwrap();
        store.gc().unwrap();
        assert!(store.has(root.cid()).unwrap());
        assert!(store.has(leaf.cid()).unwrap());
        assert!(!store.has(stray.cid()).unwrap());
    }
}
