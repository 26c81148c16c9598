//! The one error type of the store, and the mapping from redb's errors into it.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in the store. Each message says what to do next.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (or another handle in this process) has the database open.
    #[error("data dir {} is in use by another stargate process (daemon running?)", path.display())]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory or database file could not be created or opened.
    #[error("cannot open the store in {}: {reason}", path.display())]
    Open {
        /// The data directory.
        path: PathBuf,
        /// What the operating system or database said.
        reason: String,
    },
    /// The file exists but is not a Stargate store.
    #[error(
        "{} is not a stargate database ({reason}); move it away or choose another data dir",
        path.display()
    )]
    NotAStore {
        /// The database file.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
    /// The database was written by a newer Stargate whose format this build cannot read.
    #[error(
        "the store in {} has schema version {found}, newer than the {supported} this stargate understands: upgrade stargate",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The database was written by an older Stargate and no migration exists for it.
    #[error(
        "the store in {} has schema version {found}, older than the {supported} this stargate needs, and cannot be migrated: export your pins with the old version and re-add them",
        path.display()
    )]
    SchemaTooOld {
        /// The database file.
        path: PathBuf,
        /// The version recorded in the file.
        found: u64,
        /// The version this build reads and writes.
        supported: u64,
    },
    /// The database file itself is damaged.
    #[error(
        "the database is damaged ({reason}); restore it from a backup, or move it away and add the content again"
    )]
    Corrupt {
        /// What redb reported.
        reason: String,
    },
    /// An I/O or database error while doing something.
    #[error("storage error while {context}: {reason}")]
    Database {
        /// What the store was doing.
        context: &'static str,
        /// What redb or the operating system said.
        reason: String,
    },
    /// A stored block no longer hashes to its multihash (found by `hash_on_read`).
    #[error(
        "block {cid} in the store is corrupt: its bytes do not hash to its CID; run `stargate repo verify` and add the content again"
    )]
    CorruptBlock {
        /// The CID it was requested as.
        cid: String,
    },
    /// A block needed to pin a DAG is not in the store.
    #[error(
        "cannot pin {root}: block {missing} of its DAG is not in the store; add or fetch the whole DAG first"
    )]
    MissingBlock {
        /// The CID being pinned.
        root: String,
        /// The first block found missing.
        missing: String,
    },
    /// A direct pin was asked for a CID that is already pinned recursively.
    #[error("{cid} is already pinned recursively")]
    AlreadyPinnedRecursively {
        /// The CID.
        cid: String,
    },
    /// `unpin` of a CID that has no pin of its own.
    #[error(
        "{cid} is not pinned (or is only pinned indirectly, through a recursive pin of a parent)"
    )]
    NotPinned {
        /// The CID.
        cid: String,
    },
    /// `delete` of a block that a pin protects.
    #[error("cannot remove block {cid}: it is pinned ({how}); unpin it first")]
    Pinned {
        /// The block.
        cid: String,
        /// `recursively`, `directly`, or `indirectly through <root>`.
        how: String,
    },
    /// The store's writer thread has stopped, so nothing more can be written.
    #[error(
        "the store's writer has stopped (the process is shutting down or it crashed); reopen the store"
    )]
    WriterStopped,
}

/// Wraps any redb error with what the store was doing when it happened.
pub(crate) fn db_err<E: Into<redb::Error>>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| from_redb(context, e.into())
}

pub(crate) fn from_redb(context: &'static str, e: redb::Error) -> StoreError {
    match e {
        redb::Error::Corrupted(reason) => StoreError::Corrupt { reason },
        other => StoreError::Database {
            context,
            reason: other.to_string(),
        },
    }
}
