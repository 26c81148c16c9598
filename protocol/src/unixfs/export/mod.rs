//! UnixFS export: resolving content paths, reading files, listing directories and walking DAGs,
//! from any [`BlockSource`].
//!
//! Everything here pulls blocks through a `BlockSource` (the store now, the network later), holds
//! a bounded number of them, and hands bytes on as soon as they are in order. Every walk goes
//! depth-first, pre-order, in link order, the order of Kubo's CAR export and the trustless
//! gateway's `order=dfs`.

mod dfs;
mod error;
mod file;
mod get;
mod hamt;
mod list;
mod node;
mod resolve;
mod source;
mod walk;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod testdag;

pub use error::ExportError;
pub use file::{DEFAULT_WINDOW, FileStream, SNIFF_LEN, file_len, read_file, read_head};
pub use get::{GetEvent, GetWalk, RelPath, check_entry_name, get};
pub use list::{DirEntry, DirListing, list_directory, stat};
pub use node::{EntryKind, kind_of};
pub use resolve::{Resolved, resolve, resolve_path};
pub use source::{BlockSource, MemoryBlocks, SourceError, fetch};
pub use walk::{
    BlockWalk, DagScope, EntityBytes, WalkOptions, WalkParamError, walk_blocks, walk_dag,
};
