//! Listing directories, basic or sharded, as a stream of entries.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use super::dfs::{Dfs, Flat, Visit, Visitor};
use super::hamt::ShardLink;
use super::node::{Decoded, EntryKind};
use super::resolve::shard_params;
use super::source::fetch;
use super::{BlockSource, ExportError};
use crate::{Block, Cid};

/// One entry of a directory, as its link records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name (without a HAMT bucket prefix).
    pub name: String,
    /// What it links to.
    pub cid: Cid,
    /// The link's cumulative DAG size (`Tsize`), when recorded.
    pub tsize: Option<u64>,
}

struct ShardVisitor;

impl Visitor for ShardVisitor {
    type Ctx = ();
    type Out = Vec<DirEntry>;

    fn visit(&mut self, block: Block, (): ()) -> Result<Visit<(), Vec<DirEntry>>, ExportError> {
        let Decoded::Pb { node, .. } = Decoded::new(&block)? else {
            return Err(ExportError::malformed(
                block.cid(),
                "HAMT shard is not dag-pb",
            ));
        };
        let shard = shard_params(block.cid(), &node)?;
        let mut entries = Vec::new();
        let mut subs = Vec::new();
        for link in node.links {
            let name = link.name.unwrap_or_default();
            match shard.classify(block.cid(), &name)? {
                ShardLink::SubShard => subs.push((link.cid, ())),
                ShardLink::Entry(n) => entries.push(DirEntry {
                    name: n.to_owned(),
                    cid: link.cid,
                    tsize: link.tsize,
                }),
            }
        }
        Ok(Visit {
            children: subs,
            out: Some(entries),
        })
    }
}

/// The entries of a directory. A basic directory's come from its one block; a sharded one is
/// walked shard by shard (each shard node's own entries first, then its sub-shards), so only the
/// shards in flight are held, however large the directory.
#[derive(Debug)]
pub struct DirListing(Listing);

#[derive(Debug)]
enum Listing {
    Basic(std::vec::IntoIter<DirEntry>),
    Sharded(Flat<ShardVisitor, DirEntry>),
}

impl Stream for DirListing {
    type Item = Result<DirEntry, ExportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.0 {
            Listing::Basic(entries) => Poll::Ready(entries.next().map(Ok)),
            Listing::Sharded(walk) => Pin::new(walk).poll_next(cx),
        }
    }
}

/// Lists the directory `dir` (basic or sharded), fetching up to `window` shard nodes ahead.
///
/// # Errors
/// [`ExportError::NotADirectoryNode`] when `dir` is not a UnixFS directory.
pub fn list_directory(
    source: Arc<dyn BlockSource>,
    dir: Block,
    window: usize,
) -> Result<DirListing, ExportError> {
    let decoded = Decoded::new(&dir)?;
    match (decoded.kind(&dir)?, decoded) {
        (EntryKind::Directory, Decoded::Pb { node, .. }) => {
            let entries: Vec<DirEntry> = node
                .links
                .into_iter()
                .map(|l| DirEntry {
                    name: l.name.unwrap_or_default(),
                    cid: l.cid,
                    tsize: l.tsize,
                })
                .collect();
            Ok(DirListing(Listing::Basic(entries.into_iter())))
        }
        (EntryKind::ShardedDirectory, _) => Ok(DirListing(Listing::Sharded(Flat::new(
            Dfs::from_block(source, ShardVisitor, window, dir, ()),
        )))),
        (kind, _) => Err(ExportError::NotADirectoryNode {
            cid: dir.cid().to_string(),
            kind: kind.name(),
        }),
    }
}

/// What `cid` names (one block fetched): for listings that show entry types and sizes.
///
/// # Errors
/// [`ExportError::Source`] when the block cannot be had; [`ExportError::Malformed`] when it is
/// broken.
pub async fn stat(source: &dyn BlockSource, cid: Cid) -> Result<EntryKind, ExportError> {
    let block = fetch(source, cid).await?;
    super::node::kind_of(&block)
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::unixfs::export::MemoryBlocks;
    use crate::unixfs::export::testdag::{self, Probe};

    #[tokio::test]
    async fn lists_basic_directories_in_link_order() {
        let dag = MemoryBlocks::new();
        let a = testdag::raw(&dag, b"a");
        let b = testdag::file(&dag, b"bbbb", 2, 2, false);
        let d = testdag::dir(&dag, &[("b", &b), ("a", &a)]);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let list: Vec<DirEntry> = list_directory(src.clone(), d, 4)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let names: Vec<_> = list.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(list[1].cid, *b.cid());
        assert_eq!(
            stat(&*src, list[1].cid).await.unwrap(),
            EntryKind::File { size: 4 }
        );
        assert!(matches!(
            list_directory(src, a, 4),
            Err(ExportError::NotADirectoryNode { .. })
        ));
    }

    #[tokio::test]
    async fn lists_every_entry_of_a_sharded_directory_once() {
        let dag = MemoryBlocks::new();
        let entries: Vec<(String, Cid)> = (0..3000)
            .map(|i| {
                let name = format!("n{i}");
                let cid = *testdag::raw(&dag, name.as_bytes()).cid();
                (name, cid)
            })
            .collect();
        let root = testdag::hamt(&dag, &entries, 256);
        let probe = Probe::new(dag, std::time::Duration::from_micros(200));
        let listed: Vec<DirEntry> = list_directory(probe.clone(), root, 8)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let mut got: Vec<(String, Cid)> = listed.into_iter().map(|e| (e.name, e.cid)).collect();
        got.sort();
        let mut want = entries;
        want.sort();
        assert_eq!(got, want);
        // Only shard nodes were fetched, never the entries.
        assert!(
            probe
                .fetched()
                .iter()
                .all(|c| c.codec() == crate::Codec::DagPb.code())
        );
    }
}
