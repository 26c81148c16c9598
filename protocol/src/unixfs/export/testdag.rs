//! DAGs built by hand for tests, laid out as Kubo lays them out.

use bytes::Bytes;

use super::MemoryBlocks;
use super::hamt::{MURMUR3_X64_64, hash_name};
use crate::unixfs::{DataType, UnixFsData};
use crate::{Block, Cid, Codec, HashCode, PbLink, PbNode, Version};

pub(crate) fn raw(dag: &MemoryBlocks, data: &[u8]) -> Block {
    let b = Block::encode(
        Version::V1,
        Codec::Raw,
        HashCode::Sha2_256,
        Bytes::copy_from_slice(data),
    )
    .unwrap();
    dag.insert(b.clone());
    b
}

pub(crate) fn pb(dag: &MemoryBlocks, links: Vec<PbLink>, fs: &UnixFsData) -> Block {
    let node = PbNode {
        links,
        data: Some(Bytes::from(fs.encode())),
    };
    let b = Block::encode(Version::V0, Codec::DagPb, HashCode::Sha2_256, node.encode()).unwrap();
    dag.insert(b.clone());
    b
}

pub(crate) fn link(name: Option<&str>, block: &Block) -> PbLink {
    PbLink {
        cid: *block.cid(),
        name: name.map(str::to_owned),
        tsize: Some(block.data().len() as u64),
    }
}

/// A balanced file DAG: `chunk`-byte leaves, at most `width` links per node.
pub(crate) fn file(
    dag: &MemoryBlocks,
    data: &[u8],
    chunk: usize,
    width: usize,
    raw_leaves: bool,
) -> Block {
    let leaf = |c: &[u8]| {
        if raw_leaves {
            raw(dag, c)
        } else {
            let mut fs = UnixFsData::new(DataType::File);
            fs.data = (!c.is_empty()).then(|| Bytes::copy_from_slice(c));
            fs.filesize = Some(c.len() as u64);
            pb(dag, vec![], &fs)
        }
    };
    if data.is_empty() {
        return leaf(&[]);
    }
    let mut level: Vec<(Block, u64)> = data
        .chunks(chunk)
        .map(|c| (leaf(c), c.len() as u64))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(width)
            .map(|group| {
                let mut fs = UnixFsData::new(DataType::File);
                fs.blocksizes = group.iter().map(|(_, s)| *s).collect();
                let total = fs.blocksizes.iter().sum();
                fs.filesize = Some(total);
                let links = group.iter().map(|(b, _)| link(None, b)).collect();
                (pb(dag, links, &fs), total)
            })
            .collect();
    }
    level.remove(0).0
}

pub(crate) fn dir(dag: &MemoryBlocks, entries: &[(&str, &Block)]) -> Block {
    let mut links: Vec<PbLink> = entries.iter().map(|(n, b)| link(Some(n), b)).collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    pb(dag, links, &UnixFsData::new(DataType::Directory))
}

pub(crate) fn symlink(dag: &MemoryBlocks, target: &str) -> Block {
    let mut fs = UnixFsData::new(DataType::Symlink);
    fs.data = Some(Bytes::copy_from_slice(target.as_bytes()));
    pb(dag, vec![], &fs)
}

/// A HAMT-sharded directory with the given fanout, built as boxo builds it.
pub(crate) fn hamt(dag: &MemoryBlocks, entries: &[(String, Cid)], fanout: u64) -> Block {
    let hashed: Vec<(u64, &str, Cid)> = entries
        .iter()
        .map(|(n, c)| (hash_name(n.as_bytes()), n.as_str(), *c))
        .collect();
    shard_node(dag, &hashed, fanout, 0)
}

fn shard_node(dag: &MemoryBlocks, entries: &[(u64, &str, Cid)], fanout: u64, depth: u32) -> Block {
    let bits = fanout.trailing_zeros();
    let width = format!("{:X}", fanout - 1).len();
    let mut buckets: std::collections::BTreeMap<u64, Vec<(u64, &str, Cid)>> = Default::default();
    for &(h, n, c) in entries {
        let index = (h << (depth * bits)) >> (64 - bits);
        buckets.entry(index).or_default().push((h, n, c));
    }
    let mut bitfield = vec![0u8; (fanout as usize).div_ceil(8)];
    let mut links = Vec::new();
    for (index, group) in &buckets {
        let byte = bitfield.len() - 1 - (*index as usize / 8);
        bitfield[byte] |= 1 << (index % 8);
        let prefix = format!("{index:0width$X}");
        if let [(_, name, cid)] = group.as_slice() {
            links.push(PbLink {
                cid: *cid,
                name: Some(format!("{prefix}{name}")),
                tsize: Some(1),
            });
        } else {
            let sub = shard_node(dag, group, fanout, depth + 1);
            links.push(link(Some(&prefix), &sub));
        }
    }
    let mut fs = UnixFsData::new(DataType::HamtShard);
    fs.data = Some(Bytes::from(bitfield));
    fs.hash_type = Some(MURMUR3_X64_64);
    fs.fanout = Some(fanout);
    pb(dag, links, &fs)
}

/// Deterministic pseudo-random bytes.
pub(crate) fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Wraps a source, recording what is fetched and how many fetches overlap, each taking `delay`.
#[derive(Debug)]
pub(crate) struct Probe {
    pub(crate) inner: MemoryBlocks,
    pub(crate) delay: std::time::Duration,
    pub(crate) fetched: std::sync::Mutex<Vec<Cid>>,
    in_flight: std::sync::atomic::AtomicUsize,
    pub(crate) max_in_flight: std::sync::atomic::AtomicUsize,
}

impl Probe {
    pub(crate) fn new(inner: MemoryBlocks, delay: std::time::Duration) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            inner,
            delay,
            fetched: Default::default(),
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        })
    }

    pub(crate) fn fetched(&self) -> Vec<Cid> {
        self.fetched.lock().unwrap().clone()
    }
}

impl super::BlockSource for Probe {
    fn get(&self, cid: Cid) -> futures::future::BoxFuture<'_, Result<Block, super::SourceError>> {
        use std::sync::atomic::Ordering::SeqCst;
        /// Counts a fetch as over when it completes or is dropped (a walk cancels prefetches).
        struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, SeqCst);
            }
        }
        Box::pin(async move {
            self.fetched.lock().unwrap().push(cid);
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.max_in_flight.fetch_max(now, SeqCst);
            let _guard = InFlight(&self.in_flight);
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            self.inner.get(cid).await
        })
    }
}
