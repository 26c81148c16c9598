//! What can go wrong while exporting a DAG.

use thiserror::Error;

use super::SourceError;
use crate::Cid;

/// Why resolving, reading, listing or walking a DAG failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExportError {
    /// A block could not be had (missing, timed out, invalid, source failure).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A directory has no entry of that name.
    #[error("no entry {name:?} in directory {dir}")]
    NoSuchEntry {
        /// The directory searched.
        dir: String,
        /// The name looked for.
        name: String,
    },
    /// A path continues below something that is not a directory.
    #[error("{cid} is a {kind}, not a directory: cannot resolve {name:?} inside it")]
    NotADirectory {
        /// What the path reached.
        cid: String,
        /// What it is.
        kind: &'static str,
        /// The segment that could not be resolved.
        name: String,
    },
    /// A file operation on something that is not a file.
    #[error("{cid} is a {kind}, not a file")]
    NotAFile {
        /// What was reached.
        cid: String,
        /// What it is.
        kind: &'static str,
    },
    /// A directory operation on something that is not a directory.
    #[error("{cid} is a {kind}, not a directory")]
    NotADirectoryNode {
        /// What was reached.
        cid: String,
        /// What it is.
        kind: &'static str,
    },
    /// A block decoded, but its structure breaks UnixFS rules (sizes that do not add up,
    /// a HAMT with an unknown hash, a DAG deeper than we follow, ...).
    #[error("malformed DAG at {cid}: {reason}")]
    Malformed {
        /// The offending block.
        cid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A directory entry name that would escape the directory when written to disk.
    #[error("unsafe entry name {name:?} in directory {dir}: {reason}")]
    UnsafeName {
        /// The directory holding the entry.
        dir: String,
        /// The name (truncated to a printable length).
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The requested byte range starts beyond the end of the file.
    #[error("range starting at byte {from} is outside the {size}-byte file {cid}")]
    RangeNotSatisfiable {
        /// The file.
        cid: String,
        /// First requested byte.
        from: u64,
        /// The file's size.
        size: u64,
    },
}

impl ExportError {
    pub(crate) fn malformed(cid: &Cid, reason: impl Into<String>) -> Self {
        Self::Malformed {
            cid: cid.to_string(),
            reason: reason.into(),
        }
    }
}
