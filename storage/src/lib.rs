//! The embedded block store of Stargate Node: one redb database file in the data directory
//! holding blocks, pins and (in later steps) the node's other state.
//!
//! - [`Store`] is a cheap-to-clone handle; all methods are blocking (use `spawn_blocking` from
//!   async code). A second open of the same data directory fails with [`StoreError::InUse`].
//! - Blocks are [`Block`](stargate_protocol::Block)s (verified by construction), keyed by
//!   multihash so CIDv0 and CIDv1 of the same bytes share one entry. Identity CIDs are answered
//!   without touching the database.
//! - Writes go through one writer thread that commits in groups; [`BlockWriter`] streams the
//!   blocks of an add and writes its pin in the last transaction, so a crash never leaves a pin
//!   of an incomplete DAG.
//! - Pins are recursive or direct ([`PinMode`]); indirect pins are computed on request.
//!   [`Store::gc`] removes unpinned blocks and never races an add; [`Store::verify`] re-hashes
//!   everything on all cores.
//! - Recently read blocks are kept in a bounded in-memory cache
//!   ([`StoreOptions::block_cache_bytes`]); `block rm` and GC take out what they remove.
//! - [`Store::metrics`] exposes counters for the node to export.
//! - Bitcoin anchoring state (queue, batches, per-CID state, wallet change sets) lives in the
//!   same database; see [`Store::anchor_enqueue`] and [`Store::anchor_create_batch`].
//! - Mirroring state (records per entry id, the download queue, manifests per publisher) too;
//!   see [`Store::mirror_record`] and [`Store::mirror_take_due`].
//! - Stego uploads, the ingestion records made from them and the callback signatures seen;
//!   see [`Store::stego_record`] and [`Store::ingest_page`].
//! - The last gossipsub sequence number the node published under: [`Store::gossip_last_seqno`].
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod anchors;
mod blocks;
mod cache;
mod dag;
mod error;
mod gc;
mod gossip;
mod metrics;
mod mirror;
mod pin_table;
mod pins;
mod source;
mod stego;
mod store;
mod tables;
mod verify;
mod writer;

#[cfg(test)]
mod testutil;

pub use crate::anchors::{
    AnchorCounts, AnchorState, BatchRecord, BatchState, BatchTx, Confirmation, Enqueued,
};
pub use crate::error::StoreError;
pub use crate::gc::GcSummary;
pub use crate::metrics::MetricsSnapshot;
pub use crate::mirror::{
    Admission, ManifestRecord, MirrorCounts, MirrorFilter, MirrorRecord, MirrorState, Outcome,
    Recorded,
};
pub use crate::pin_table::{PinMode, PinType};
pub use crate::pins::PinFilter;
pub use crate::stego::{
    Acked, AnnounceDue, IngestMade, IngestRecord, StegoAdmission, StegoCounts, StegoOutcome,
    StegoRecorded, StegoState, StegoUpload,
};
pub use crate::store::{BlockInfo, DATABASE_FILE, Store, StoreOptions, StoreStat, StoreUsage};
pub use crate::tables::SCHEMA_VERSION;
pub use crate::verify::{CorruptBlock, VerifyProgress, VerifyReport};
pub use crate::writer::{BlockWriter, WriteSummary};
