//! The balanced file layout of go-unixfs/boxo (`importer/balanced`), built as leaves stream in.
//!
//! boxo grows the tree from the first leaf: a full node of depth d becomes the first child of a new
//! root of depth d+1 only when more data follows. Keeping one open node per level and sealing a
//! level when a new item arrives while it already holds the maximum number of links produces the
//! same tree, with O(depth × max links) memory. A single leaf is the file's root itself.

use super::error::ImportError;
use super::node::write_node;
use super::sink::BlockSink;
use crate::limits::DEFAULT_MAX_LINKS;
use crate::unixfs::{DataType, UnixFsData};
use crate::{Cid, PbLink, Version};

/// A built subtree as its parent links to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Child {
    pub(super) cid: Cid,
    /// Encoded size of the subtree's blocks (dag-pb `Tsize`).
    pub(super) tsize: u64,
    /// File bytes under it (UnixFS `blocksizes` entry).
    pub(super) filesize: u64,
}

/// The open nodes of a file DAG under construction, one per level above the leaves.
#[derive(Debug)]
pub(super) struct Balanced {
    version: Version,
    levels: Vec<Vec<Child>>,
}

impl Balanced {
    pub(super) fn new(version: Version) -> Self {
        Self {
            version,
            levels: Vec::new(),
        }
    }

    /// Appends the next leaf (its block already given to the sink).
    pub(super) fn push_leaf<S: BlockSink + ?Sized>(
        &mut self,
        leaf: Child,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        self.push(0, leaf, sink)
    }

    fn push<S: BlockSink + ?Sized>(
        &mut self,
        level: usize,
        child: Child,
        sink: &mut S,
    ) -> Result<(), ImportError> {
        if self.levels.len() == level {
            self.levels.push(Vec::with_capacity(DEFAULT_MAX_LINKS));
        }
        if self.levels[level].len() == DEFAULT_MAX_LINKS {
            let full = std::mem::replace(
                &mut self.levels[level],
                Vec::with_capacity(DEFAULT_MAX_LINKS),
            );
            let parent = self.seal(&full, sink)?;
            self.push(level + 1, parent, sink)?;
        }
        self.levels[level].push(child);
        Ok(())
    }

    /// Seals every open node bottom-up and returns the root, or `None` when no leaf was pushed.
    pub(super) fn finish<S: BlockSink + ?Sized>(
        mut self,
        sink: &mut S,
    ) -> Result<Option<Child>, ImportError> {
        let mut level = 0;
        while level < self.levels.len() {
            let open = std::mem::take(&mut self.levels[level]);
            let top = level + 1 == self.levels.len();
            if top && open.len() == 1 {
                return Ok(open.first().copied());
            }
            if !open.is_empty() {
                let parent = self.seal(&open, sink)?;
                self.push(level + 1, parent, sink)?;
            }
            level += 1;
        }
        Ok(None)
    }

    /// Writes the internal node over `children` and returns it as a child of the level above.
    fn seal<S: BlockSink + ?Sized>(
        &self,
        children: &[Child],
        sink: &mut S,
    ) -> Result<Child, ImportError> {
        let mut data = UnixFsData::new(DataType::File);
        data.blocksizes = children.iter().map(|c| c.filesize).collect();
        let filesize = data.blocksizes.iter().sum();
        data.filesize = Some(filesize);
        // Kubo writes an empty name on every file link.
        let links = children
            .iter()
            .map(|c| PbLink {
                cid: c.cid,
                name: Some(String::new()),
                tsize: Some(c.tsize),
            })
            .collect();
        let (cid, tsize) = write_node(links, &data, self.version, sink)?;
        Ok(Child {
            cid,
            tsize,
            filesize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Block, Codec, HashCode, PbNode, digest};

    fn leaf(i: u64) -> Child {
        Child {
            cid: Cid::new_v1(
                Codec::Raw.code(),
                digest(HashCode::Sha2_256, &i.to_le_bytes()),
            ),
            tsize: 10,
            filesize: 10,
        }
    }

    /// Builds over `n` leaves and returns (root, blocks written).
    fn build(n: u64) -> (Option<Child>, Vec<Block>) {
        let mut blocks = Vec::new();
        let mut b = Balanced::new(Version::V0);
        for i in 0..n {
            b.push_leaf(leaf(i), &mut blocks).unwrap();
        }
        (b.finish(&mut blocks).unwrap(), blocks)
    }

    fn links(block: &Block) -> usize {
        PbNode::decode(block.data()).unwrap().links.len()
    }

    #[test]
    fn no_leaf_no_root() {
        assert_eq!(build(0), (None, vec![]));
    }

    #[test]
    fn single_leaf_is_the_root() {
        assert_eq!(build(1), (Some(leaf(0)), vec![]));
    }

    #[test]
    fn shapes_match_boxo() {
        let max = DEFAULT_MAX_LINKS as u64;
        // (leaves, links of each node in the order written)
        let cases: [(u64, Vec<usize>); 4] = [
            (2, vec![2]),
            (max, vec![174]),
            // a full depth-1 node, then a depth-1 node holding the last leaf, under a new root
            (max + 1, vec![174, 1, 2]),
            (max * max + 1, {
                let mut v = vec![174; 174];
                v.extend([1, 174, 1, 2]);
                v
            }),
        ];
        for (n, expected) in cases {
            let (root, blocks) = build(n);
            assert_eq!(
                blocks.iter().map(links).collect::<Vec<_>>(),
                expected,
                "{n} leaves"
            );
            let root = root.unwrap();
            let last = blocks.last().unwrap();
            assert_eq!(root.cid, *last.cid());
            assert_eq!(root.filesize, n * 10);
            let all: u64 = blocks.iter().map(|b| b.data().len() as u64).sum();
            assert_eq!(root.tsize, all + n * 10);
        }
    }
}
