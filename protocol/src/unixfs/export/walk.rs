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
            if v < 0 { (size_i + v).max(0) } else { v }
        };
        let from = resolve(self.from);
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
