//! UnixFS: files, directories and symlinks as dag-pb DAGs, laid out as Kubo lays them out.

mod data;

pub use data::{DataType, UnixFsData, UnixFsError, UnixTime};
