//! HAMT-sharded directories as Kubo (boxo) and the JS importer build them.
//!
//! A shard node's links are named with the upper-case hex index of their bucket, zero-padded to
//! the width of `fanout - 1`: a name of exactly that width points to a sub-shard, a longer one is
//! the entry itself (`"1A" + "file.txt"`). The bucket of a name at depth `d` is the `d`-th group of
//! `log2(fanout)` bits, most significant first, of the murmur3-x64-64 hash of the name (the first
//! half of murmur3-x64-128, seed 0, taken big-endian).

use super::ExportError;
use crate::Cid;
use crate::unixfs::UnixFsData;
pub(crate) use crate::unixfs::hamt::{MURMUR3_X64_64, hash_name};

/// Largest fanout accepted (Kubo uses 256; the hex prefix would otherwise grow unbounded).
const MAX_FANOUT: u64 = 4096;

/// The shape of one shard node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// Bits of the hash consumed per level.
    bits: u32,
    /// Width of the hex bucket prefix of link names.
    pub(crate) prefix_len: usize,
}

impl Shard {
    /// Reads and checks the shard parameters of a `HamtShard` node.
    pub(crate) fn from_data(cid: &Cid, fs: &UnixFsData) -> Result<Self, ExportError> {
        match fs.hash_type {
            Some(MURMUR3_X64_64) => {}
            other => {
                return Err(ExportError::malformed(
                    cid,
                    format!("HAMT hash function {other:?} is not murmur3-x64-64 (0x22)"),
                ));
            }
        }
        let fanout = fs
            .fanout
            .ok_or_else(|| ExportError::malformed(cid, "HAMT shard without fanout"))?;
        if !fanout.is_power_of_two() || !(2..=MAX_FANOUT).contains(&fanout) {
            return Err(ExportError::malformed(
                cid,
                format!("HAMT fanout {fanout} is not a power of two between 2 and {MAX_FANOUT}"),
            ));
        }
        Ok(Self {
            bits: fanout.trailing_zeros(),
            prefix_len: format!("{:X}", fanout - 1).len(),
        })
    }

    /// The link-name prefix of the bucket holding a name with `hash` at `depth`, or `None` when
    /// the hash has no bits left for that depth.
    pub(crate) fn bucket_prefix(&self, hash: u64, depth: u32) -> Option<String> {
        let start = depth.checked_mul(self.bits)?;
        let end = start.checked_add(self.bits)?;
        if end > 64 {
            return None;
        }
        let index = (hash << start) >> (64 - self.bits);
        Some(format!("{index:0width$X}", width = self.prefix_len))
    }

    /// Splits a link name into what it points to.
    pub(crate) fn classify<'n>(
        &self,
        cid: &Cid,
        name: &'n str,
    ) -> Result<ShardLink<'n>, ExportError> {
        let prefix = name.get(..self.prefix_len).filter(|p| {
            p.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        });
        match prefix {
            Some(_) if name.len() == self.prefix_len => Ok(ShardLink::SubShard),
            Some(_) => Ok(ShardLink::Entry(&name[self.prefix_len..])),
            None => Err(ExportError::malformed(
                cid,
                format!(
                    "HAMT link name {name:?} lacks a {}-digit bucket prefix",
                    self.prefix_len
                ),
            )),
        }
    }
}

/// What a link of a shard node points to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ShardLink<'n> {
    /// Another shard node one level down.
    SubShard,
    /// A directory entry with this name.
    Entry(&'n str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::DataType;

    fn shard(fanout: u64) -> Shard {
        let mut d = UnixFsData::new(DataType::HamtShard);
        d.hash_type = Some(MURMUR3_X64_64);
        d.fanout = Some(fanout);
        let cid = crate::parse_cid("bafkqaaa").unwrap();
        Shard::from_data(&cid, &d).unwrap()
    }

    #[test]
    fn bucket_prefixes_take_bits_from_the_top() {
        let s = shard(256);
        let h = 0xab_cd_00_00_00_00_00_12;
        assert_eq!(s.bucket_prefix(h, 0).as_deref(), Some("AB"));
        assert_eq!(s.bucket_prefix(h, 1).as_deref(), Some("CD"));
        assert_eq!(s.bucket_prefix(h, 7).as_deref(), Some("12"));
        assert_eq!(s.bucket_prefix(h, 8), None);
        let s16 = shard(16);
        assert_eq!(s16.prefix_len, 1);
        assert_eq!(s16.bucket_prefix(h, 1).as_deref(), Some("B"));
    }

    #[test]
    fn rejects_bad_parameters() {
        let cid = crate::parse_cid("bafkqaaa").unwrap();
        let mut d = UnixFsData::new(DataType::HamtShard);
        d.fanout = Some(256);
        assert!(Shard::from_data(&cid, &d).is_err());
        d.hash_type = Some(MURMUR3_X64_64);
        for bad in [0, 1, 3, 100, 8192] {
            d.fanout = Some(bad);
            assert!(Shard::from_data(&cid, &d).is_err(), "fanout {bad}");
        }
    }

    #[test]
    fn classifies_link_names() {
        let cid = crate::parse_cid("bafkqaaa").unwrap();
        let s = shard(256);
        assert_eq!(s.classify(&cid, "0F").unwrap(), ShardLink::SubShard);
        assert_eq!(
            s.classify(&cid, "0Fa.txt").unwrap(),
            ShardLink::Entry("a.txt")
        );
        assert!(s.classify(&cid, "0f").is_err());
        assert!(s.classify(&cid, "X").is_err());
        assert!(s.classify(&cid, "é").is_err());
    }
}
