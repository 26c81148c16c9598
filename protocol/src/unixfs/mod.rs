//! UnixFS: files, directories and symlinks as dag-pb DAGs, laid out as Kubo lays them out.

mod data;
pub mod export;
mod hamt;
mod import;

pub use data::{DataType, UnixFsData, UnixFsError, UnixTime};
pub use import::{
    BlockSink, DEFAULT_SHARD_THRESHOLD, DirectoryBuilder, DiscardBlocks, ImportError,
    ImportOptions, ImportedDirectory, ImportedFile, OptionsError, ReadAt, import_file,
    import_file_at, import_symlink,
};
