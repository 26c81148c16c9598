//! How a block lies in the tables, for readers and writers alike.
//!
//! A block is keyed by its multihash, so the CIDv0 and CIDv1 of the same bytes share one entry,
//! as in Kubo. Its bytes are split into chunks of [`CHUNK_LEN`]: redb gives every value larger
//! than a page a page of its own rounded up to a power of two, so a 256 KiB block stored whole
//! would occupy 512 KiB; chunks sized to just fit 64 KiB pages waste about 1.5% instead.
//! The index entry (length and codec) lets `has`/`size`/GC run without touching block bytes, and
//! the links table lets DAG walks run without reading leaves.

use bytes::Bytes;
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use stargate_protocol::limits::MAX_BLOCK_SIZE;
use stargate_protocol::{Block, Cid, HashCode, Multihash, digest};

use crate::StoreError;
use crate::dag;
use crate::error::db_err;
use crate::tables::{BLOCK_INDEX, BLOCK_TOTALS, TOTALS_KEY, Tables, WriteTables, open_write};

/// Bytes per chunk: a 64 KiB page minus room for redb's leaf header and the longest key
/// (a 66-byte sha2-512 multihash and the chunk number).
pub(crate) const CHUNK_LEN: usize = 65_536 - 128;

const _: () = assert!(
    MAX_BLOCK_SIZE.div_ceil(CHUNK_LEN) <= 256,
    "chunk number is one byte"
);
const _: () = assert!(
    MAX_BLOCK_SIZE <= u32::MAX as usize,
    "length is stored as u32"
);

/// What the index says about a stored block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Length of the block in bytes.
    pub(crate) len: u32,
    /// The codec it was first stored under; its links in the links table are decoded with it.
    pub(crate) codec: u64,
}

fn chunk_key(mh: &[u8], chunk: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(mh.len() + 1);
    key.extend_from_slice(mh);
    // Cannot truncate: blocks are at most MAX_BLOCK_SIZE (asserted above).
    key.push(chunk as u8);
    key
}

impl<I, D, L, T> Tables<I, D, L, T>
where
    I: ReadableTable<&'static [u8], (u32, u64)>,
    D: ReadableTable<&'static [u8], &'static [u8]>,
    L: ReadableTable<&'static [u8], &'static [u8]>,
{
    /// The index entry of a multihash, if the block is stored.
    pub(crate) fn entry(&self, mh: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        Ok(self
            .index
            .get(mh)
            .map_err(db_err("looking up a block"))?
            .map(|v| {
                let (len, codec) = v.value();
                IndexEntry { len, codec }
            }))
    }

    /// The bytes of a stored block. Missing chunks or a length that disagrees with the index
    /// mean the file is damaged.
    pub(crate) fn data(&self, mh: &[u8], entry: IndexEntry) -> Result<Bytes, StoreError> {
        let len = entry.len as usize;
        let mut out = Vec::with_capacity(len);
        for chunk in 0..len.div_ceil(CHUNK_LEN) {
            let value = self
                .data
                .get(chunk_key(mh, chunk).as_slice())
                .map_err(db_err("reading a block"))?
                .ok_or_else(|| damaged(mh, "a chunk of its bytes is missing"))?;
            out.extend_from_slice(value.value());
        }
        if out.len() != len {
            return Err(damaged(mh, "its bytes have the wrong length"));
        }
        Ok(Bytes::from(out))
    }

    /// The links recorded for a block when it was stored (empty for blocks without links).
    pub(crate) fn stored_links(&self, mh: &[u8]) -> Result<Vec<Cid>, StoreError> {
        match self.links.get(mh).map_err(db_err("reading block links"))? {
            None => Ok(Vec::new()),
            Some(v) => {
                dag::decode_links(v.value()).ok_or_else(|| damaged(mh, "its link list is garbled"))
            }
        }
    }

    /// Every index entry, in multihash order, starting after `after` (from the start if `None`).
    pub(crate) fn index_from(
        &self,
        after: Option<&[u8]>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, IndexEntry), StoreError>>, StoreError> {
        use std::ops::Bound;
        let range = match after {
            Some(key) => self
                .index
                .range::<&[u8]>((Bound::Excluded(key), Bound::Unbounded)),
            None => self.index.range::<&[u8]>(..),
        }
        .map_err(db_err("listing blocks"))?;
        Ok(range.map(|item| {
            let (k, v) = item.map_err(db_err("listing blocks"))?;
            let (len, codec) = v.value();
            Ok((k.value().to_vec(), IndexEntry { len, codec }))
        }))
    }
}

impl WriteTables<'_> {
    /// Stores a block unless its multihash is already present. Returns whether it was new.
    pub(crate) fn insert(&mut self, block: &Block) -> Result<bool, StoreError> {
        let ctx = "writing a block";
        let mh = block.cid().hash().to_bytes();
        if self
            .index
            .get(mh.as_slice())
            .map_err(db_err(ctx))?
            .is_some()
        {
            return Ok(false);
        }
        let data = block.data();
        for (i, chunk) in data.chunks(CHUNK_LEN).enumerate() {
            self.data
                .insert(chunk_key(&mh, i).as_slice(), chunk)
                .map_err(db_err(ctx))?;
        }
        let codec = block.cid().codec();
        // Cannot truncate: a Block is at most MAX_BLOCK_SIZE (asserted above).
        let len = data.len() as u32;
        self.index
            .insert(mh.as_slice(), (len, codec))
            .map_err(db_err(ctx))?;
        let links = dag::links_of(codec, data);
        if !links.is_empty() {
            self.links
                .insert(mh.as_slice(), dag::encode_links(&links).as_slice())
                .map_err(db_err(ctx))?;
        }
        let (blocks, bytes) = totals(&self.totals)?;
        self.set_totals(blocks + 1, bytes + u64::from(len))?;
        Ok(true)
    }

    fn set_totals(&mut self, blocks: u64, bytes: u64) -> Result<(), StoreError> {
        self.totals
            .insert(TOTALS_KEY, (blocks, bytes))
            .map_err(db_err("counting blocks"))?;
        Ok(())
    }

    /// Removes a block. Returns its index entry if it was stored.
    pub(crate) fn remove(&mut self, mh: &[u8]) -> Result<Option<IndexEntry>, StoreError> {
        let ctx = "removing a block";
        let Some(entry) = self.index.remove(mh).map_err(db_err(ctx))?.map(|v| {
            let (len, codec) = v.value();
            IndexEntry { len, codec }
        }) else {
            return Ok(None);
        };
        for chunk in 0..(entry.len as usize).div_ceil(CHUNK_LEN) {
            self.data
                .remove(chunk_key(mh, chunk).as_slice())
                .map_err(db_err(ctx))?;
        }
        self.links.remove(mh).map_err(db_err(ctx))?;
        let (blocks, bytes) = totals(&self.totals)?;
        self.set_totals(
            blocks.saturating_sub(1),
            bytes.saturating_sub(u64::from(entry.len)),
        )?;
        Ok(Some(entry))
    }
}

/// The blocks stored and their bytes, as the totals table holds them.
pub(crate) fn totals(
    table: &impl ReadableTable<&'static str, (u64, u64)>,
) -> Result<(u64, u64), StoreError> {
    Ok(table
        .get(TOTALS_KEY)
        .map_err(db_err("reading the block totals"))?
        .map_or((0, 0), |v| v.value()))
}

/// Sums the block index into the totals table when the totals do not match it: a file from
/// before the table existed, or one an older build wrote blocks to. A scan of the index, once.
pub(crate) fn reconcile_totals(txn: &WriteTransaction) -> Result<(), StoreError> {
    let ctx = "summing the block index";
    let index = open_write(txn, BLOCK_INDEX)?;
    let mut table = open_write(txn, BLOCK_TOTALS)?;
    let blocks = index.len().map_err(db_err(ctx))?;
    if totals(&table)?.0 == blocks && table.len().map_err(db_err(ctx))? == 1 {
        return Ok(());
    }
    let mut bytes = 0u64;
    for item in index.range::<&[u8]>(..).map_err(db_err(ctx))? {
        let (_, v) = item.map_err(db_err(ctx))?;
        bytes += u64::from(v.value().0);
    }
    if blocks > 0 {
        tracing::info!(blocks, bytes, "block totals recomputed from the index");
    }
    table
        .insert(TOTALS_KEY, (blocks, bytes))
        .map_err(db_err(ctx))?;
    Ok(())
}

fn damaged(mh: &[u8], what: &str) -> StoreError {
    StoreError::Corrupt {
        reason: format!("block {} is incomplete: {what}", display_mh(mh)),
    }
}

/// A multihash as Kubo shows a bare multihash key: the CIDv1 `raw` of it (hex if the key is
/// not even a multihash).
pub(crate) fn display_mh(mh: &[u8]) -> String {
    Multihash::from_bytes(mh).map_or_else(
        |_| hex::encode(mh),
        |mh| Cid::new_v1(stargate_protocol::Codec::Raw.code(), mh).to_string(),
    )
}

/// Whether `data` hashes to `mh`. A hash function we cannot compute counts as a mismatch: no
/// such block can have been stored through [`Block`].
pub(crate) fn hash_matches(mh: &Multihash, data: &[u8]) -> bool {
    HashCode::from_code(mh.code()).is_some_and(|code| digest(code, data) == *mh)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Store;
    use crate::tables::{BLOCK_DATA, open_write, write_tables};

    /// Damages the first chunk of a stored block behind the store's back.
    pub(crate) fn flip_a_byte(store: &Store, cid: &Cid) {
        let mh = cid.hash().to_bytes();
        store
            .write(|txn| {
                let mut data = open_write(txn, BLOCK_DATA)?;
                let key = chunk_key(&mh, 0);
                let mut bytes = data.get(key.as_slice()).unwrap().unwrap().value().to_vec();
                bytes[0] ^= 0xff;
                data.insert(key.as_slice(), bytes.as_slice()).unwrap();
                Ok(())
            })
            .unwrap();
    }

    /// Removes the last chunk of a stored block behind the store's back.
    pub(crate) fn drop_last_chunk(store: &Store, cid: &Cid) {
        let mh = cid.hash().to_bytes();
        store
            .write(|txn| {
                let tables = write_tables(txn)?;
                let entry = tables.entry(&mh)?.unwrap();
                drop(tables);
                let mut data = open_write(txn, BLOCK_DATA)?;
                let last = (entry.len as usize).div_ceil(CHUNK_LEN) - 1;
                data.remove(chunk_key(&mh, last).as_slice()).unwrap();
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn large_blocks_waste_little_space() {
        // 64 blocks of 256 KiB: without chunking each would take a 512 KiB page (32 MiB).
        let (_dir, store) = crate::testutil::open();
        let blocks: Vec<Block> = (0..64u8)
            .map(|i| crate::testutil::raw(vec![i; 256 * 1024]))
            .collect();
        store.put_many(blocks).unwrap();
        let stat = store.stat().unwrap();
        assert_eq!(stat.block_bytes, 16 << 20);
        assert!(
            stat.file_bytes < 24 << 20,
            "file is {} bytes for 16 MiB of blocks",
            stat.file_bytes
        );
    }
}
