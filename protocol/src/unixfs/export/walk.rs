//! Walking the blocks of a resolved path for CAR responses, `dag export` and instance-to-instance
//! transfer, following the trustless gateway spec: the blocks that prove the path first, then the
//! DAG below its end as `dag-scope` and `entity-bytes` select, depth-first, pre-order, in link
//! order (`order=dfs`), each block once (`dups=n`), identity blocks never.

use std::collections::HashSet;
use std::ops::Range;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use ipld_core::codec::Links;
use thiserror::Error;

use super::dfs::{Dfs, Visit, Visitor};
use super::file::{Part, file_node};
use super::hamt::ShardLink;
use super::node::{Decoded, EntryKind};
use super::resolve::{Resolved, shard_params};
use super::{BlockSource, ExportError};
use crate::unixfs::DataType;
use crate::{Block, Cid, Codec, HashCode};

/// Which blocks below the end of the path a walk includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DagScope {
    /// Only the block at the end of the path.
    Block,
    /// What is needed to read that entity: a whole file (or the `entity-bytes` of it), the
    /// shard nodes of a sharded directory, the single node of anything else.
    Entity,
    /// The whole DAG below it.
    #[default]
    All,
}

/// A `dag-scope` or `entity-bytes` value that cannot be parsed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalkParamError {
    /// Not `block`, `entity` or `all`.
    #[error("invalid dag-scope {0:?}: expected block, entity or all")]
    DagScope(String),
    /// Not `from:to` with integers (negative counting from the end) or `*` for `to`.
    #[error(
        "invalid entity-bytes {0:?}: expected from:to, integers (negative from the end) or * for to"
    )]
    EntityBytes(String),
}

impl FromStr for DagScope {
    type Err = WalkParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "block" => Ok(Self::Block),
            "entity" => Ok(Self::Entity),
            "all" => Ok(Self::All),
            other => Err(WalkParamError::DagScope(other.chars().take(40).collect())),
        }
    }
}

/// An `entity-bytes=from:to` range: inclusive bounds, negative values counting from the end,
/// `to = None` for `*` (the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityBytes {
    /// First byte; negative counts back from the end.
    pub from: i64,
    /// Last byte, inclusive; negative counts back from the end; `None` is the last byte.
    pub to: Option<i64>,
}

impl FromStr for EntityBytes {
    type Err = WalkParamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || WalkParamError::EntityBytes(s.chars().take(40).collect());
        let (from, to) = s.split_once(':').ok_or_else(bad)?;
        let int = |v: &str| {
            let digits = v.strip_prefix('-').unwrap_or(v);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            v.parse::<i64>().map_err(|_| bad())
        };
        let from = int(from)?;
        let to = if to == "*" { None } else { Some(int(to)?) };
        Ok(Self { from, to })
    }
}

impl EntityBytes {
    /// The byte range (end exclusive) this selects in an entity of `size` bytes, or `None` when
    /// it selects nothing (then the walk includes only the entity's root block, as the spec asks).
    pub fn range(&self, size: u64) -> Option<Range<u64>> {
        let size_i = i128::from(size);
        let resolve = |v: i64| {
            let v = i128::from(v);
            if v < 0 { size_i + v } else { v }
        };
        // A start before the beginning means the beginning; an end before it selects nothing.
        let from = resolve(self.from).max(0);
        let last = self.to.map_or(size_i - 1, resolve).min(size_i - 1);
        if from > last {
            return None;
        }
        // Both are within 0..size here.
        Some(u64::try_from(from).ok()?..u64::try_from(last + 1).ok()?)
    }
}

/// What a walk includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkOptions {
    /// Which blocks below the end of the path.
    pub scope: DagScope,
    /// For `Entity` scope on a file: only the blocks of this range.
    pub entity_bytes: Option<EntityBytes>,
    /// Blocks fetched ahead.
    pub window: usize,
}

impl Default for WalkOptions {
    fn default() -> Self {
        Self {
            scope: DagScope::All,
            entity_bytes: None,
            window: super::DEFAULT_WINDOW,
        }
    }
}

#[derive(Debug)]
enum Role {
    /// A block proving the path: included, not descended into.
    Path,
    /// The end of the path.
    Terminal,
    /// Inside an `All` walk: every link.
    All,
    /// Inside a file, limited to a range.
    File(Part),
    /// A sub-shard of a sharded directory in an `Entity` walk.
    Shard,
}

struct CarVisitor {
    scope: DagScope,
    range: Option<Range<u64>>,
    entity_bytes: Option<EntityBytes>,
    seen: HashSet<Cid>,
}

impl Visitor for CarVisitor {
    type Ctx = Role;
    type Out = Block;

    fn visit(&mut self, block: Block, role: Role) -> Result<Visit<Role, Block>, ExportError> {
        let first = self.seen.insert(*block.cid());
        let identity = block.cid().hash().code() == HashCode::Identity.code();
        let children = match role {
            Role::Path => Vec::new(),
            // Everything below a block seen before was walked then (file ranges excepted: the
            // same subtree may sit at another offset).
            Role::All | Role::Shard if !first => Vec::new(),
            Role::Terminal => self.terminal_children(&block)?,
            Role::All => all_links(&block)?
                .into_iter()
                .map(|c| (c, Role::All))
                .collect(),
            Role::File(part) => self.file_children(&block, part)?,
            Role::Shard => sub_shards(&block)?,
        };
        Ok(Visit {
            children,
            out: (first && !identity).then_some(block),
        })
    }
}

impl CarVisitor {
    fn terminal_children(&mut self, block: &Block) -> Result<Vec<(Cid, Role)>, ExportError> {
        match self.scope {
            DagScope::Block => Ok(Vec::new()),
            DagScope::All => Ok(all_links(block)?
                .into_iter()
                .map(|c| (c, Role::All))
                .collect()),
            DagScope::Entity => match super::node::kind_of(block)? {
                EntryKind::File { size } => {
                    self.range = match self.entity_bytes {
                        Some(eb) => match eb.range(size) {
                            Some(r) => Some(r),
                            None => return Ok(Vec::new()),
                        },
                        None => None,
                    };
                    self.file_children(
                        block,
                        Part {
                            offset: 0,
                            declared: None,
                        },
                    )
                }
                EntryKind::ShardedDirectory => sub_shards(block),
                _ => Ok(Vec::new()),
            },
        }
    }

    fn file_children(&self, block: &Block, part: Part) -> Result<Vec<(Cid, Role)>, ExportError> {
        Ok(file_node(block, part, self.range.as_ref())?
            .children
            .into_iter()
            .map(|(c, p)| (c, Role::File(p)))
            .collect())
    }
}

/// Every CID a block links to, for the codecs whose links we can read (dag-pb, dag-cbor).
fn all_links(block: &Block) -> Result<Vec<Cid>, ExportError> {
    match block.codec() {
        Some(Codec::DagPb) => match Decoded::new(block)? {
            Decoded::Pb { node, .. } => Ok(node.links.into_iter().map(|l| l.cid).collect()),
            _ => Ok(Vec::new()),
        },
        Some(Codec::DagCbor) => serde_ipld_dagcbor::codec::DagCborCodec::links(block.data())
            .map(Iterator::collect)
            .map_err(|e| ExportError::malformed(block.cid(), format!("dag-cbor: {e}"))),
        // Raw blocks have no links; dag-json and libp2p-key are walked as single blocks.
        _ => Ok(Vec::new()),
    }
}

/// The sub-shard links of a HAMT shard node.
fn sub_shards(block: &Block) -> Result<Vec<(Cid, Role)>, ExportError> {
    let Decoded::Pb { node, unixfs } = Decoded::new(block)? else {
        return Err(ExportError::malformed(
            block.cid(),
            "HAMT shard is not dag-pb",
        ));
    };
    if unixfs.as_ref().map(|fs| fs.kind) != Some(DataType::HamtShard) {
        return Err(ExportError::malformed(
            block.cid(),
            "expected a HAMT shard node",
        ));
    }
    let shard = shard_params(block.cid(), &node)?;
    let mut out = Vec::new();
    for link in &node.links {
        let name = link.name.as_deref().unwrap_or_default();
        if shard.classify(block.cid(), name)? == ShardLink::SubShard {
            out.push((link.cid, Role::Shard));
        }
    }
    Ok(out)
}

/// The blocks of a walk, in order. Ends at the first error (a consumer streaming a CAR then has
/// an incomplete CAR, which clients detect).
pub struct BlockWalk {
    walk: Dfs<CarVisitor>,
}

impl std::fmt::Debug for BlockWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockWalk")
            .field("walk", &self.walk)
            .finish()
    }
}

impl Stream for BlockWalk {
    type Item = Result<Block, ExportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.walk).poll_next(cx)
    }
}

/// The blocks a CAR for `resolved` holds: those `resolve` visited on the way, then what `options`
/// selects below the end of the path.
pub fn walk_blocks(
    source: Arc<dyn BlockSource>,
    resolved: &Resolved,
    options: WalkOptions,
) -> BlockWalk {
    let (terminal, path) = match resolved.visited.split_last() {
        Some((t, p)) => (*t, p),
        None => (*resolved.cid(), &[][..]),
    };
    let mut roots: Vec<(Cid, Role)> = path.iter().map(|c| (*c, Role::Path)).collect();
    roots.push((terminal, Role::Terminal));
    let visitor = CarVisitor {
        scope: if options.entity_bytes.is_some() && options.scope != DagScope::Block {
            DagScope::Entity
        } else {
            options.scope
        },
        range: None,
        entity_bytes: options.entity_bytes,
        seen: HashSet::new(),
    };
    BlockWalk {
        walk: Dfs::new(source, visitor, options.window, roots),
    }
}

/// The whole DAG under `root` (`dag export`, instance-to-instance transfer).
pub fn walk_dag(source: Arc<dyn BlockSource>, root: Cid, window: usize) -> BlockWalk {
    let visitor = CarVisitor {
        scope: DagScope::All,
        range: None,
        entity_bytes: None,
        seen: HashSet::new(),
    };
    BlockWalk {
        walk: Dfs::new(source, visitor, window, vec![(root, Role::Terminal)]),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;
    use crate::unixfs::export::testdag::{self, Probe};
    use crate::unixfs::export::{MemoryBlocks, resolve};

    async fn cids(walk: BlockWalk) -> Vec<Cid> {
        walk.map_ok(|b| *b.cid()).try_collect().await.unwrap()
    }

    fn opts(scope: DagScope, entity_bytes: Option<&str>) -> WalkOptions {
        WalkOptions {
            scope,
            entity_bytes: entity_bytes.map(|s| s.parse().unwrap()),
            window: 3,
        }
    }

    #[test]
    fn parses_parameters() {
        assert_eq!("entity".parse::<DagScope>(), Ok(DagScope::Entity));
        assert!("ALL".parse::<DagScope>().is_err());
        let eb = |s: &str| s.parse::<EntityBytes>();
        assert_eq!(eb("0:*"), Ok(EntityBytes { from: 0, to: None }));
        assert_eq!(
            eb("-1024:*"),
            Ok(EntityBytes {
                from: -1024,
                to: None
            })
        );
        assert_eq!(
            eb("499:-1000"),
            Ok(EntityBytes {
                from: 499,
                to: Some(-1000)
            })
        );
        for bad in [
            "",
            "1",
            "a:b",
            "1:",
            ":1",
            "*:1",
            "+1:2",
            "1:2:3",
            "99999999999999999999:1",
        ] {
            assert!(eb(bad).is_err(), "{bad:?}");
        }
        let r = |s: &str, size| eb(s).unwrap().range(size);
        assert_eq!(r("0:*", 10), Some(0..10));
        assert_eq!(r("2:4", 10), Some(2..5));
        assert_eq!(r("-3:*", 10), Some(7..10));
        assert_eq!(r("-30:*", 10), Some(0..10));
        assert_eq!(r("5:100", 10), Some(5..10));
        assert_eq!(r("1:-2", 10), Some(1..9));
        assert_eq!(r("10:*", 10), None);
        assert_eq!(r("4:3", 10), None);
        assert_eq!(r("0:*", 0), None);
        assert_eq!(r("0:-20", 10), None);
    }

    #[tokio::test]
    async fn all_scope_is_depth_first_pre_order_without_duplicates() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(50, 1);
        let f = testdag::file(&dag, &data, 10, 2, false);
        let same = f.clone();
        let inline = Cid::new_v1(Codec::Raw.code(), crate::digest(HashCode::Identity, b"hi"));
        let sub = testdag::dir(&dag, &[("f", &f)]);
        let mut fs = crate::unixfs::UnixFsData::new(DataType::Directory);
        fs.mode = Some(0o755);
        let links = vec![
            testdag::link(Some("a"), &sub),
            testdag::link(Some("b"), &same),
            crate::PbLink {
                cid: inline,
                name: Some("c".into()),
                tsize: Some(2),
            },
        ];
        let root = testdag::pb(&dag, links, &fs);
        let src: Arc<dyn BlockSource> = Arc::new(dag.clone());
        let resolved = resolve(&*src, *root.cid(), &[]).await.unwrap();
        let got = cids(walk_blocks(src.clone(), &resolved, WalkOptions::default())).await;

        // Expected: pre-order over links, each block once, the identity block never.
        fn preorder(dag: &MemoryBlocks, cid: Cid, out: &mut Vec<Cid>) {
            if cid.hash().code() == 0 || out.contains(&cid) {
                return;
            }
            out.push(cid);
            let b = futures::executor::block_on(dag.get(cid)).unwrap();
            if let Ok(n) = crate::PbNode::decode(b.data()) {
                for l in n.links {
                    preorder(dag, l.cid, out);
                }
            }
        }
        let mut want = Vec::new();
        preorder(&dag, *root.cid(), &mut want);
        assert_eq!(got, want);
        // root, sub, then the file once: 5 leaves under 3 + 2 + 1 nodes.
        assert_eq!(got.len(), 2 + 6 + 5);
        assert!(!got.contains(&inline));
    }

    #[tokio::test]
    async fn path_blocks_come_first_then_the_scope() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(40, 2);
        let f = testdag::file(&dag, &data, 10, 4, true);
        let sub = testdag::dir(&dag, &[("f", &f)]);
        let root = testdag::dir(&dag, &[("sub", &sub)]);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let path = ["sub".to_owned(), "f".to_owned()];
        let resolved = resolve(&*src, *root.cid(), &path).await.unwrap();
        let block = cids(walk_blocks(
            src.clone(),
            &resolved,
            opts(DagScope::Block, None),
        ))
        .await;
        assert_eq!(block, [*root.cid(), *sub.cid(), *f.cid()]);
        let entity = cids(walk_blocks(
            src.clone(),
            &resolved,
            opts(DagScope::Entity, None),
        ))
        .await;
        assert_eq!(entity.len(), 3 + 4);
        let dir = resolve(&*src, *root.cid(), &path[..1]).await.unwrap();
        let dir_entity = cids(walk_blocks(src.clone(), &dir, opts(DagScope::Entity, None))).await;
        assert_eq!(dir_entity, [*root.cid(), *sub.cid()]);
        let dir_all = cids(walk_blocks(src, &dir, opts(DagScope::All, None))).await;
        assert_eq!(dir_all.len(), 2 + 1 + 4);
    }

    #[tokio::test]
    async fn entity_bytes_select_only_the_blocks_of_the_range() {
        let dag = MemoryBlocks::new();
        let data = testdag::bytes(1000, 3);
        let f = testdag::file(&dag, &data, 10, 4, true);
        let probe = Probe::new(dag, std::time::Duration::ZERO);
        let src: Arc<dyn BlockSource> = probe.clone();
        let resolved = resolve(&*src, *f.cid(), &[]).await.unwrap();
        let blocks: Vec<Block> = walk_blocks(
            src.clone(),
            &resolved,
            opts(DagScope::Entity, Some("495:524")),
        )
        .try_collect()
        .await
        .unwrap();
        let leaves: Vec<&[u8]> = blocks
            .iter()
            .filter(|b| b.cid().codec() == Codec::Raw.code())
            .map(|b| &b.data()[..])
            .collect();
        let want: Vec<&[u8]> = data[490..530].chunks(10).collect();
        assert_eq!(leaves, want);
        assert_eq!(blocks[0].cid(), f.cid());
        // Interior nodes on the way only: one per level (4 levels above the leaves here).
        assert!(blocks.len() - leaves.len() <= 5, "{}", blocks.len());

        // Negative and open-ended ranges, and ranges selecting nothing.
        let tail = walk_blocks(src.clone(), &resolved, opts(DagScope::All, Some("-5:*")));
        let tail: Vec<Block> = tail.try_collect().await.unwrap();
        assert_eq!(tail.last().unwrap().data(), &data[990..]);
        let none = cids(walk_blocks(
            src,
            &resolved,
            opts(DagScope::Entity, Some("2000:*")),
        ))
        .await;
        assert_eq!(none, [*f.cid()]);
    }

    #[tokio::test]
    async fn entity_of_a_sharded_directory_is_its_shard_nodes() {
        let dag = MemoryBlocks::new();
        let entries: Vec<(String, Cid)> = (0..700)
            .map(|i| {
                let n = format!("e{i}");
                let cid = *testdag::raw(&dag, n.as_bytes()).cid();
                (n, cid)
            })
            .collect();
        let root = testdag::hamt(&dag, &entries, 256);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let resolved = resolve(&*src, *root.cid(), &[]).await.unwrap();
        let entity = cids(walk_blocks(
            src.clone(),
            &resolved,
            opts(DagScope::Entity, None),
        ))
        .await;
        assert!(entity.len() > 1);
        assert!(entity.iter().all(|c| c.codec() == Codec::DagPb.code()));
        let all = cids(walk_dag(src, *root.cid(), 4)).await;
        assert_eq!(all.len(), entity.len() + entries.len());
        assert_eq!(all[0], *root.cid());
    }

    #[tokio::test]
    async fn a_missing_block_ends_the_walk_with_an_error() {
        let dag = MemoryBlocks::new();
        let f = testdag::file(&dag, &testdag::bytes(100, 4), 10, 4, true);
        let leaf = testdag::raw(&dag, &testdag::bytes(100, 4)[50..60]);
        dag.remove(leaf.cid());
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let res: Result<Vec<Block>, _> = walk_dag(src, *f.cid(), 4).try_collect().await;
        assert!(matches!(res, Err(ExportError::Source(_))));
    }
}
