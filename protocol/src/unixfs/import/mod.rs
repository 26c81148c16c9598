//! UnixFS import: files, directory trees and symlinks into dag-pb/raw blocks whose CIDs are the
//! ones Kubo v0.22's `ipfs add` gives with the same options.
//!
//! - [`import_file`]: chunk a reader into fixed-size chunks, hash the leaves on all cores, build
//!   the balanced DAG; bounded memory whatever the size. [`import_file_at`]: the same over a file
//!   read by position, so that reads run on all cores too.
//! - [`import_symlink`]: one UnixFS Symlink node.
//! - [`DirectoryBuilder`]: the directory nodes over imported entries, HAMT-sharded like Kubo's.
//!
//! Blocks go to a [`BlockSink`]; [`DiscardBlocks`] is `--only-hash`. Nothing here does I/O beyond
//! reading the reader it is handed.
//!
//! Why not rust-unixfs's sequential `FileAdder`: it hashes every block on the calling thread,
//! which caps `add` at one core's hashing speed; ours hashes batches of leaves in parallel.

mod balanced;
mod directory;
mod error;
mod file;
mod hamt;
mod node;
mod options;
mod pool;
mod sink;

pub use directory::{DirectoryBuilder, ImportedDirectory, import_symlink};
pub use error::ImportError;
pub use file::{ImportedFile, ReadAt, import_file, import_file_at};
pub use options::{DEFAULT_SHARD_THRESHOLD, ImportOptions, OptionsError};
pub use sink::{BlockSink, DiscardBlocks};
