//! Why an import failed.

use thiserror::Error;

use super::sink::BlockSink;
use crate::{Block, BlockError};

/// An import that could not complete. Blocks already handed to the sink stay there; the caller
/// decides whether to keep them (they are valid blocks) or roll back its batch.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The input could not be read.
    #[error("reading the input failed after {offset} bytes: {source}")]
    Read {
        /// Bytes read successfully before the failure.
        offset: u64,
        /// What the reader said.
        source: std::io::Error,
    },
    /// The sink refused a block.
    #[error("storing block {cid} failed: {source}")]
    Sink {
        /// The block that was refused.
        cid: String,
        /// What the sink said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A node would exceed the block size limit (a symlink target or directory far too large).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// A directory entry path that cannot be placed in a UnixFS tree.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same path was added twice.
    #[error("{path:?} was added twice")]
    DuplicatePath {
        /// The path.
        path: String,
    },
    /// A path goes through something that is not a directory.
    #[error("{parent:?} is not a directory, so it cannot contain {path:?}")]
    NotADirectory {
        /// The entry that was being added.
        path: String,
        /// The non-directory on its way.
        parent: String,
    },
    /// Two names in one directory have the same 64-bit HAMT hash, which Kubo cannot shard either.
    #[error("directory {path:?} cannot be sharded: two of its names have the same HAMT hash")]
    ShardTooDeep {
        /// The directory.
        path: String,
    },
}

/// Hands `block` to `sink`, naming the block in the error.
pub(super) fn put<S: BlockSink + ?Sized>(sink: &mut S, block: Block) -> Result<(), ImportError> {
    let cid = *block.cid();
    sink.put(block).map_err(|e| ImportError::Sink {
        cid: cid.to_string(),
        source: Box::new(e),
    })
}
