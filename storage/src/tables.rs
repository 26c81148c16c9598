//! Every table of the database, and the one place that creates them and checks the schema.
//!
//! Table names carry a version suffix (`blocks-…-1`): a change to a table's key or value layout
//! gets a new name (and a migration), so an old file never gets misread. [`SCHEMA_VERSION`] in the
//! `meta` table names the layout of the whole file and is checked at every open.
//!
//! Adding a table (e.g. anchors, wallet state) is additive: define it here with a versioned
//! name, list it in `create_all`, and use it inside `Store::read` / `Store::write` closures
//! (crate-private: a read snapshot, or a write transaction committed durably when the closure
//! returns `Ok`) through `open_read` / `open_write`:
//!
//! ```text
//! pub(crate) const ANCHORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("anchors-1");
//!
//! impl Store {
//!     pub fn queue_anchor(&self, cid: &Cid) -> Result<(), StoreError> {
//!         self.write(|txn| {
//!             let mut anchors = open_write(txn, ANCHORS)?;
//!             anchors.insert(cid.to_bytes().as_slice(), &[][..]).map_err(db_err("queueing an anchor"))?;
//!             Ok(())
//!         })
//!     }
//! }
//! ```
//!
//! A database from before the table existed gets it created at its next open; that needs no
//! schema bump.

use std::path::Path;

use redb::{
    ReadOnlyTable, ReadTransaction, ReadableTable, Table, TableDefinition, TableHandle,
    WriteTransaction,
};

use crate::StoreError;
use crate::error::db_err;

/// The layout version of the whole database. Bump it (and write a migration) whenever an
/// existing table changes meaning; adding tables needs no bump.
pub const SCHEMA_VERSION: u64 = 1;

/// Key `schema_version`: [`SCHEMA_VERSION`] of the code that created the file.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_KEY: &str = "schema_version";

/// Multihash bytes -> (block length, codec it was first stored under).
pub(crate) const BLOCK_INDEX: TableDefinition<&[u8], (u32, u64)> =
    TableDefinition::new("block-index-1");

/// Key [`TOTALS_KEY`] -> (blocks, their bytes): the sums of the block index, kept in every
/// transaction that changes it, so that sizes are read without a scan.
pub(crate) const BLOCK_TOTALS: TableDefinition<&str, (u64, u64)> =
    TableDefinition::new("block-totals-1");
pub(crate) const TOTALS_KEY: &str = "blocks";

/// Multihash bytes followed by a one-byte chunk number -> up to `CHUNK_LEN` bytes of the block.
pub(crate) const BLOCK_DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("block-data-1");

/// Multihash bytes -> the concatenated binary CIDs the block links to, decoded under the codec
/// in its index entry. Only blocks with at least one link have an entry.
pub(crate) const BLOCK_LINKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("block-links-1");

/// Binary CID -> pin mode (see `pin_table::PinMode` encoding).
pub(crate) const PINS: TableDefinition<&[u8], u8> = TableDefinition::new("pins-1");

/// Queue position -> binary CID (as given, v0 or v1) waiting to be anchored.
pub(crate) const ANCHOR_QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("anchor-queue-1");

/// CIDv1 bytes (anchor form) -> JSON `anchors::AnchorState`.
pub(crate) const ANCHOR_CIDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("anchor-cids-1");

/// Batch id -> JSON `anchors::BatchRecord`.
pub(crate) const ANCHOR_BATCHES: TableDefinition<u64, &[u8]> =
    TableDefinition::new("anchor-batches-1");

/// (batch id, index) -> CIDv1 bytes of that member of the batch's Merkle tree.
pub(crate) const ANCHOR_BATCH_MEMBERS: TableDefinition<(u64, u32), &[u8]> =
    TableDefinition::new("anchor-batch-members-1");

/// Counters of the anchor tables (next queue position, batch id, changeset number).
pub(crate) const ANCHOR_META: TableDefinition<&str, u64> = TableDefinition::new("anchor-meta-1");

/// Sequence number -> one JSON BDK wallet change set; merged in order they rebuild the wallet.
pub(crate) const WALLET_CHANGESETS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("wallet-changesets-1");

/// Entry id (32 bytes) -> JSON `mirror::StoredRecord` (entry, state, attempts, next attempt).
pub(crate) const MIRROR_RECORDS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("mirror-records-1");

/// (next attempt in Unix ms, entry id) -> (): the download queue, earliest first.
pub(crate) const MIRROR_QUEUE: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("mirror-queue-1");

/// (first heard of in Unix s, entry id) -> (): every record, for newest-first listings.
pub(crate) const MIRROR_ORDER: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("mirror-order-1");

/// State name (`queued`, `failed:<reason>`, ...) -> how many records are in it, and
/// `changes` -> a counter bumped when the stored set changes.
pub(crate) const MIRROR_COUNTS: TableDefinition<&str, u64> =
    TableDefinition::new("mirror-counts-1");

/// Publisher peer id bytes -> JSON `mirror::StoredManifest` (latest heard of, last read).
pub(crate) const MIRROR_MANIFESTS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("mirror-manifests-1");
/// Key `last_seqno`: the highest gossipsub sequence number this node has published under its
/// peer id (see `gossip.rs`).
pub(crate) const GOSSIP_META: TableDefinition<&str, u64> = TableDefinition::new("gossip-meta-1");

/// Stego id (32 bytes, see `stego::stego_id`) -> JSON `stego::StoredUpload`: every stego
/// upload heard of or decided here, and where it stands.
pub(crate) const STEGO_UPLOADS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("stego-uploads-1");

/// (next attempt in Unix ms, stego id) -> (): uploads waiting for their content, earliest first.
pub(crate) const STEGO_QUEUE: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("stego-queue-1");

/// Stego id -> (): stored uploads that have no ingestion record yet.
pub(crate) const STEGO_UNRECORDED: TableDefinition<&[u8], ()> =
    TableDefinition::new("stego-unrecorded-1");

/// State name (`waiting`, `stored`, ...), `failed:<reason>`, and the ingestion counters
/// (`ingest_next_id`, `ingest_records`, `ingest_pending`) -> count.
pub(crate) const STEGO_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("stego-counts-1");

/// Stego id -> (next attempt in Unix ms, failed attempts): this node's approvals whose
/// announcement could not be published yet (no peer on the topic), to publish again.
pub(crate) const STEGO_ANNOUNCE: TableDefinition<&[u8], (u64, u32)> =
    TableDefinition::new("stego-announce-1");

/// Ingestion record id (monotonic from 1) -> JSON `stego::StoredIngest`.
pub(crate) const INGEST_RECORDS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("ingest-records-1");

/// Stego id (one per image and payload) -> ingestion record id: makes records idempotent.
pub(crate) const INGEST_INDEX: TableDefinition<&[u8], u64> = TableDefinition::new("ingest-index-1");

/// Ingestion record id -> (): the records not consumed yet, for `--pending` pages.
pub(crate) const INGEST_PENDING: TableDefinition<u64, ()> =
    TableDefinition::new("ingest-pending-1");

/// (callback timestamp in Unix s, HMAC) -> (): callback signatures accepted within the replay
/// window, pruned as they fall out of it.
pub(crate) const STEGO_SEEN: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("stego-seen-1");

/// Creates every table that does not exist yet.
fn create_all(txn: &WriteTransaction) -> Result<(), StoreError> {
    let ctx = "creating the database tables";
    txn.open_table(META).map_err(db_err(ctx))?;
    txn.open_table(BLOCK_INDEX).map_err(db_err(ctx))?;
    txn.open_table(BLOCK_DATA).map_err(db_err(ctx))?;
    txn.open_table(BLOCK_TOTALS).map_err(db_err(ctx))?;
    txn.open_table(BLOCK_LINKS).map_err(db_err(ctx))?;
    txn.open_table(PINS).map_err(db_err(ctx))?;
    txn.open_table(ANCHOR_QUEUE).map_err(db_err(ctx))?;
    txn.open_table(ANCHOR_CIDS).map_err(db_err(ctx))?;
    txn.open_table(ANCHOR_BATCHES).map_err(db_err(ctx))?;
    txn.open_table(ANCHOR_BATCH_MEMBERS).map_err(db_err(ctx))?;
    txn.open_table(ANCHOR_META).map_err(db_err(ctx))?;
    txn.open_table(WALLET_CHANGESETS).map_err(db_err(ctx))?;
    txn.open_table(MIRROR_RECORDS).map_err(db_err(ctx))?;
    txn.open_table(MIRROR_QUEUE).map_err(db_err(ctx))?;
    txn.open_table(MIRROR_ORDER).map_err(db_err(ctx))?;
    txn.open_table(MIRROR_COUNTS).map_err(db_err(ctx))?;
    txn.open_table(MIRROR_MANIFESTS).map_err(db_err(ctx))?;
    txn.open_table(GOSSIP_META).map_err(db_err(ctx))?;
    txn.open_table(STEGO_UPLOADS).map_err(db_err(ctx))?;
    txn.open_table(STEGO_QUEUE).map_err(db_err(ctx))?;
    txn.open_table(STEGO_UNRECORDED).map_err(db_err(ctx))?;
    txn.open_table(STEGO_COUNTS).map_err(db_err(ctx))?;
    txn.open_table(STEGO_ANNOUNCE).map_err(db_err(ctx))?;
    txn.open_table(INGEST_RECORDS).map_err(db_err(ctx))?;
    txn.open_table(INGEST_INDEX).map_err(db_err(ctx))?;
    txn.open_table(INGEST_PENDING).map_err(db_err(ctx))?;
    txn.open_table(STEGO_SEEN).map_err(db_err(ctx))?;
    Ok(())
}

/// Checks the schema of a freshly opened database, stamping a new one, and creates missing
/// tables. Runs in one write transaction, so a failed check changes nothing.
pub(crate) fn prepare(txn: &WriteTransaction, file: &Path) -> Result<(), StoreError> {
    let ctx = "checking the database schema";
    let found = {
        let meta = txn.open_table(META).map_err(db_err(ctx))?;
        meta.get(SCHEMA_KEY)
            .map_err(db_err(ctx))?
            .map(|v| v.value())
    };
    match found {
        Some(SCHEMA_VERSION) => {}
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::SchemaTooNew {
                path: file.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(found) => {
            return Err(StoreError::SchemaTooOld {
                path: file.to_owned(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        None => {
            let others: Vec<String> = txn
                .list_tables()
                .map_err(db_err(ctx))?
                .map(|t| t.name().to_owned())
                .filter(|name| name != META.name())
                .collect();
            if !others.is_empty() {
                return Err(StoreError::NotAStore {
                    path: file.to_owned(),
                    reason: format!(
                        "a redb database without a schema version, holding tables {}",
                        others.join(", ")
                    ),
                });
            }
            let mut meta = txn.open_table(META).map_err(db_err(ctx))?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION)
                .map_err(db_err(ctx))?;
        }
    }
    create_all(txn)
}

/// Opens a table for reading. Every table exists once the store is open.
pub(crate) fn open_read<K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<K, V>,
) -> Result<ReadOnlyTable<K, V>, StoreError> {
    txn.open_table(table)
        .map_err(db_err("opening a table to read"))
}

/// Opens a table for writing in a transaction.
pub(crate) fn open_write<'txn, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'txn WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<Table<'txn, K, V>, StoreError> {
    txn.open_table(table)
        .map_err(db_err("opening a table to write"))
}

/// The three block tables, opened in one transaction.
///
/// What a block is made of in them (chunks, index entry, links) is `blocks.rs`'s business; DAG
/// walks over them are `dag.rs`'s.
pub(crate) struct Tables<I, D, L, T = ()> {
    pub(crate) index: I,
    pub(crate) data: D,
    pub(crate) links: L,
    /// The block totals (writers keep them; readers have no use for them).
    pub(crate) totals: T,
}

pub(crate) type ReadTables = Tables<
    ReadOnlyTable<&'static [u8], (u32, u64)>,
    ReadOnlyTable<&'static [u8], &'static [u8]>,
    ReadOnlyTable<&'static [u8], &'static [u8]>,
>;

pub(crate) type WriteTables<'txn> = Tables<
    Table<'txn, &'static [u8], (u32, u64)>,
    Table<'txn, &'static [u8], &'static [u8]>,
    Table<'txn, &'static [u8], &'static [u8]>,
    Table<'txn, &'static str, (u64, u64)>,
>;

pub(crate) fn read_tables(txn: &ReadTransaction) -> Result<ReadTables, StoreError> {
    Ok(Tables {
        index: open_read(txn, BLOCK_INDEX)?,
        data: open_read(txn, BLOCK_DATA)?,
        links: open_read(txn, BLOCK_LINKS)?,
        totals: (),
    })
}

pub(crate) fn write_tables(txn: &WriteTransaction) -> Result<WriteTables<'_>, StoreError> {
    Ok(Tables {
        index: open_write(txn, BLOCK_INDEX)?,
        data: open_write(txn, BLOCK_DATA)?,
        links: open_write(txn, BLOCK_LINKS)?,
        totals: open_write(txn, BLOCK_TOTALS)?,
    })
}
