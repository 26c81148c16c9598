//! Resolving a content path to what it names, through basic and HAMT-sharded directories.

use super::hamt::{Shard, ShardLink, hash_name};
use super::node::{Decoded, EntryKind};
use super::source::fetch;
use super::{BlockSource, ExportError};
use crate::limits::MAX_DAG_DEPTH;
use crate::path::ContentPath;
use crate::unixfs::DataType;
use crate::{Block, Cid, PbNode};

/// What a path resolved to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The block at the end of the path.
    pub block: Block,
    /// What it is.
    pub kind: EntryKind,
    /// Every block fetched on the way, in order: the root first, HAMT shard nodes included, the
    /// final block last. A trustless CAR response starts with these.
    pub visited: Vec<Cid>,
    /// The CID each element of the path named: the root, then one per segment. Unlike
    /// `visited`, HAMT shard nodes passed through are not in it (a gateway's `X-Ipfs-Roots`).
    pub path_cids: Vec<Cid>,
}

impl Resolved {
    /// The CID at the end of the path.
    pub fn cid(&self) -> &Cid {
        self.block.cid()
    }
}

/// Resolves a [`ContentPath`].
///
/// # Errors
/// As [`resolve`].
pub async fn resolve_path(
    source: &dyn BlockSource,
    path: &ContentPath,
) -> Result<Resolved, ExportError> {
    resolve(source, *path.root(), path.segments()).await
}

/// Follows `segments` from `root` through UnixFS directories (basic or sharded).
///
/// # Errors
/// [`ExportError::NoSuchEntry`] for a missing name, [`ExportError::NotADirectory`] when a path
/// continues below a file, symlink or non-UnixFS block, [`ExportError::Source`] when a block cannot
/// be had, [`ExportError::Malformed`] for broken directories.
pub async fn resolve(
    source: &dyn BlockSource,
    root: Cid,
    segments: &[String],
) -> Result<Resolved, ExportError> {
    let mut visited = vec![root];
    let mut path_cids = vec![root];
    let mut block = fetch(source, root).await?;
    for name in segments {
        let decoded = Decoded::new(&block)?;
        let kind = decoded.kind(&block)?;
        let next = match (decoded, &kind) {
            (Decoded::Pb { node, .. }, EntryKind::Directory) => node
                .links
                .iter()
                .find(|l| l.name.as_deref() == Some(name.as_str()))
                .map(|l| l.cid)
                .ok_or_else(|| ExportError::NoSuchEntry {
                    dir: block.cid().to_string(),
                    name: name.clone(),
                })?,
            (Decoded::Pb { node, .. }, EntryKind::ShardedDirectory) => {
                shard_lookup(source, &block, node, name, &mut visited).await?
            }
            _ => {
                return Err(ExportError::NotADirectory {
                    cid: block.cid().to_string(),
                    kind: kind.name(),
                    name: name.clone(),
                });
            }
        };
        visited.push(next);
        path_cids.push(next);
        block = fetch(source, next).await?;
    }
    let kind = super::node::kind_of(&block)?;
    Ok(Resolved {
        block,
        kind,
        visited,
        path_cids,
    })
}

/// Finds `name` in the sharded directory whose root node is `dir`, recording the shard nodes it
/// fetches in `visited`.
async fn shard_lookup(
    source: &dyn BlockSource,
    dir: &Block,
    root: PbNode,
    name: &str,
    visited: &mut Vec<Cid>,
) -> Result<Cid, ExportError> {
    let hash = hash_name(name.as_bytes());
    let missing = || ExportError::NoSuchEntry {
        dir: dir.cid().to_string(),
        name: name.to_owned(),
    };
    let mut node_cid = *dir.cid();
    let mut node = root;
    for depth in 0u32.. {
        if depth as usize >= MAX_DAG_DEPTH {
            return Err(ExportError::malformed(
                &node_cid,
                "HAMT deeper than any hash allows",
            ));
        }
        let shard = shard_params(&node_cid, &node)?;
        let prefix = shard.bucket_prefix(hash, depth).ok_or_else(|| {
            ExportError::malformed(&node_cid, "HAMT nests deeper than the 64-bit hash allows")
        })?;
        let mut sub = None;
        for link in &node.links {
            let Some(link_name) = link.name.as_deref() else {
                return Err(ExportError::malformed(
                    &node_cid,
                    "HAMT link without a name",
                ));
            };
            if !link_name.starts_with(&prefix) {
                continue;
            }
            match shard.classify(&node_cid, link_name)? {
                ShardLink::Entry(entry) if entry == name => return Ok(link.cid),
                ShardLink::Entry(_) => {}
                ShardLink::SubShard => sub = Some(link.cid),
            }
        }
        let next = sub.ok_or_else(missing)?;
        visited.push(next);
        let block = fetch(source, next).await?;
        node = match Decoded::new(&block)? {
            Decoded::Pb { node, .. } => node,
            _ => {
                return Err(ExportError::malformed(
                    &next,
                    "HAMT sub-shard is not dag-pb",
                ));
            }
        };
        node_cid = next;
    }
    Err(missing())
}

/// The shard parameters of a node that must be a HAMT shard.
pub(crate) fn shard_params(cid: &Cid, node: &PbNode) -> Result<Shard, ExportError> {
    let fs = crate::unixfs::UnixFsData::from_node_data(node.data.as_ref())
        .map_err(|e| ExportError::malformed(cid, e.to_string()))?;
    if fs.kind != DataType::HamtShard {
        return Err(ExportError::malformed(cid, "expected a HAMT shard node"));
    }
    Shard::from_data(cid, &fs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unixfs::export::testdag::{self, Probe};
    use crate::unixfs::export::{MemoryBlocks, SourceError};

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("entry-{i}.txt")).collect()
    }

    fn segs(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn resolves_through_basic_directories() {
        let dag = MemoryBlocks::new();
        let file = testdag::file(&dag, b"hello world", 4, 2, false);
        let link = testdag::symlink(&dag, "../elsewhere");
        let inner = testdag::dir(&dag, &[("hello.txt", &file), ("ln", &link)]);
        let root = testdag::dir(&dag, &[("sub dir", &inner)]);
        let r = resolve(&dag, *root.cid(), &segs(&["sub dir", "hello.txt"]))
            .await
            .unwrap();
        assert_eq!(r.cid(), file.cid());
        assert_eq!(r.kind, EntryKind::File { size: 11 });
        assert_eq!(r.visited, [*root.cid(), *inner.cid(), *file.cid()]);
        assert_eq!(r.path_cids, r.visited);

        let r = resolve(&dag, *root.cid(), &[]).await.unwrap();
        assert_eq!(r.kind, EntryKind::Directory);
        let r = resolve(&dag, *root.cid(), &segs(&["sub dir", "ln"]))
            .await
            .unwrap();
        assert!(matches!(r.kind, EntryKind::Symlink { ref target } if target == "../elsewhere"));

        let path =
            ContentPath::parse(&format!("/ipfs/{}/sub%20dir/hello.txt", root.cid())).unwrap();
        assert_eq!(resolve_path(&dag, &path).await.unwrap().cid(), file.cid());
    }

    #[tokio::test]
    async fn typed_errors_for_bad_paths() {
        let dag = MemoryBlocks::new();
        let file = testdag::file(&dag, b"x", 4, 2, true);
        let root = testdag::dir(&dag, &[("f", &file)]);
        assert_eq!(
            resolve(&dag, *root.cid(), &segs(&["nope"]))
                .await
                .unwrap_err(),
            ExportError::NoSuchEntry {
                dir: root.cid().to_string(),
                name: "nope".into()
            }
        );
        assert!(matches!(
            resolve(&dag, *root.cid(), &segs(&["f", "below"])).await,
            Err(ExportError::NotADirectory {
                kind: "raw block",
                ..
            })
        ));
        dag.remove(file.cid());
        assert_eq!(
            resolve(&dag, *root.cid(), &segs(&["f"])).await.unwrap_err(),
            ExportError::Source(SourceError::NotFound {
                cid: file.cid().to_string()
            })
        );
    }

    #[tokio::test]
    async fn resolves_every_entry_of_sharded_directories() {
        for (fanout, count) in [(256u64, 600usize), (16, 200), (4, 50)] {
            let dag = MemoryBlocks::new();
            let entries: Vec<(String, Cid)> = names(count)
                .into_iter()
                .map(|n| {
                    let cid = *testdag::raw(&dag, n.as_bytes()).cid();
                    (n, cid)
                })
                .collect();
            let root = testdag::hamt(&dag, &entries, fanout);
            let probe = Probe::new(dag, std::time::Duration::ZERO);
            for (name, cid) in &entries {
                let r = resolve(&*probe, *root.cid(), std::slice::from_ref(name))
                    .await
                    .unwrap();
                assert_eq!(r.cid(), cid, "{name} in fanout {fanout}");
                assert_eq!(
                    r.kind,
                    EntryKind::Raw {
                        size: name.len() as u64
                    }
                );
                assert_eq!(r.visited.first(), Some(root.cid()));
                assert_eq!(r.visited.last(), Some(cid));
            }
            assert!(matches!(
                resolve(&*probe, *root.cid(), &segs(&["absent"])).await,
                Err(ExportError::NoSuchEntry { .. })
            ));
            // Shard nodes visited are recorded: a lookup touches at least one sub-shard here.
            let deep = resolve(
                &*probe,
                *root.cid(),
                &entries[0]
                    .0
                    .clone()
                    .split('/')
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            )
            .await
            .unwrap();
            assert!(
                deep.visited.len() >= 3,
                "{fanout}: {:?}",
                deep.visited.len()
            );
            assert_eq!(deep.path_cids, [*root.cid(), entries[0].1]);
        }
    }
}
