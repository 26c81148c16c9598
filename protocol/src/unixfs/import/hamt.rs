//! HAMT-sharded directories as boxo's `hamt.Shard` writes them (fanout 256, murmur3-x64-64).
//!
//! boxo inserts entries one by one, and a slot holding one entry becomes a sub-shard as soon as a
//! second entry hashes to it; entries are never moved up again while adding. The result depends
//! only on the set of names, so it is built here in one pass: bucket the entries by the hash byte
//! of the current depth, recurse where a bucket holds more than one.

use bytes::Bytes;

use super::error::ImportError;
use super::node::write_node;
use super::sink::BlockSink;
use crate::unixfs::hamt::{MURMUR3_X64_64, hash_name};
use crate::unixfs::{DataType, UnixFsData};
use crate::{Cid, PbLink, Version};

/// Children per shard node (boxo's `DefaultShardWidth`).
const FANOUT: usize = 256;
/// Bytes of hash available, one consumed per level at fanout 256.
const HASH_BYTES: usize = 8;

/// A directory entry: its name and the subtree it links to.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) cid: Cid,
    pub(super) tsize: u64,
}

/// Writes the HAMT holding `entries` (all blocks to `sink`, children first) and returns its root
/// CID and cumulative size. `path` names the directory in errors.
pub(super) fn build<S: BlockSink + ?Sized>(
    entries: &[Entry],
    version: Version,
    path: &str,
    sink: &mut S,
) -> Result<(Cid, u64), ImportError> {
    let hashed: Vec<([u8; HASH_BYTES], &Entry)> =
        entries.iter().map(|e| (hamt_hash(&e.name), e)).collect();
    let refs: Vec<_> = hashed.iter().collect();
    shard(&refs, 0, version, path, sink)
}

/// The hash bytes a name's buckets are taken from, one byte per level.
fn hamt_hash(name: &str) -> [u8; HASH_BYTES] {
    hash_name(name.as_bytes()).to_be_bytes()
}

fn shard<S: BlockSink + ?Sized>(
    entries: &[&([u8; HASH_BYTES], &Entry)],
    depth: usize,
    version: Version,
    path: &str,
    sink: &mut S,
) -> Result<(Cid, u64), ImportError> {
    if depth == HASH_BYTES {
        return Err(ImportError::ShardTooDeep {
            path: path.to_owned(),
        });
    }
    let mut buckets: Vec<Vec<&([u8; HASH_BYTES], &Entry)>> = vec![Vec::new(); FANOUT];
    for &e in entries {
        buckets[usize::from(e.0[depth])].push(e);
    }

    // Bit i of the bitfield is bit i % 8 of byte i / 8 counted from the end (go-bitfield).
    let mut bitfield = [0u8; FANOUT / 8];
    let mut links = Vec::new();
    for (slot, bucket) in buckets.iter().enumerate() {
        let link = match bucket.as_slice() {
            [] => continue,
            [(_, entry)] => PbLink {
                cid: entry.cid,
                name: Some(format!("{slot:02X}{}", entry.name)),
                tsize: Some(entry.tsize),
            },
            more => {
                let (cid, tsize) = shard(more, depth + 1, version, path, sink)?;
                PbLink {
                    cid,
                    name: Some(format!("{slot:02X}")),
                    tsize: Some(tsize),
                }
            }
        };
        bitfield[FANOUT / 8 - 1 - slot / 8] |= 1 << (slot % 8);
        links.push(link);
    }

    let mut data = UnixFsData::new(DataType::HamtShard);
    // go-bitfield's Bytes() drops leading zero bytes.
    let first = bitfield
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bitfield.len());
    data.data = Some(Bytes::copy_from_slice(&bitfield[first..]));
    data.hash_type = Some(MURMUR3_X64_64);
    data.fanout = Some(FANOUT as u64);
    write_node(links, &data, version, sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Codec, HashCode, PbNode, digest};

    fn entry(name: &str) -> Entry {
        Entry {
            name: name.to_owned(),
            cid: Cid::new_v1(
                Codec::Raw.code(),
                digest(HashCode::Sha2_256, name.as_bytes()),
            ),
            tsize: 3,
        }
    }

    #[test]
    fn names_bitfield_and_sub_shards() {
        // Find two names that collide on the first hash byte, and one that does not.
        let names: Vec<String> = (0..1000).map(|i| format!("f{i}")).collect();
        let (a, b) = names
            .iter()
            .enumerate()
            .find_map(|(i, a)| {
                names[i + 1..]
                    .iter()
                    .find(|b| hamt_hash(a)[0] == hamt_hash(b)[0])
                    .map(|b| (a.clone(), b.clone()))
            })
            .unwrap();
        let c = names
            .iter()
            .find(|c| hamt_hash(c)[0] != hamt_hash(&a)[0])
            .unwrap()
            .clone();
        let mut blocks = Vec::new();
        let entries = [entry(&a), entry(&b), entry(&c)];
        let (root, tsize) = build(&entries, Version::V0, "d", &mut blocks).unwrap();
        assert_eq!(blocks.len(), 2, "one sub-shard, then the root");
        assert_eq!(*blocks[1].cid(), root);
        let all: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
        assert_eq!(tsize, all + 9);

        let node = PbNode::decode(blocks[1].data()).unwrap();
        let data = UnixFsData::from_node_data(node.data.as_ref()).unwrap();
        assert_eq!(data.kind, DataType::HamtShard);
        assert_eq!((data.fanout, data.hash_type), (Some(256), Some(0x22)));
        let mut names: Vec<String> = node.links.iter().filter_map(|l| l.name.clone()).collect();
        let mut expected = vec![
            format!("{:02X}", hamt_hash(&a)[0]),
            format!("{:02X}{c}", hamt_hash(&c)[0]),
        ];
        expected.sort();
        names.sort();
        assert_eq!(names, expected);
        let bits = data.data.unwrap();
        let highest = usize::from(hamt_hash(&a)[0].max(hamt_hash(&c)[0]));
        assert_eq!(bits.len(), highest / 8 + 1);
        assert_eq!(bits.iter().map(|b| b.count_ones()).sum::<u32>(), 2);
    }
}
