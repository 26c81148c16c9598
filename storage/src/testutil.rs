//! Helpers shared by the unit tests.

use stargate_protocol::{Block, Cid};

use crate::{Store, StoreOptions};

#[path = "../tests/common/mod.rs"]
mod common;
pub(crate) use common::{node, raw};

pub(crate) fn open() -> (tempfile::TempDir, Store) {
    open_with(StoreOptions::default())
}

pub(crate) fn open_with(options: StoreOptions) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    (dir, store)
}

pub(crate) fn cids(blocks: &[&Block]) -> Vec<Cid> {
    blocks.iter().map(|b| *b.cid()).collect()
}
