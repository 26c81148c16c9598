//! `get`: a whole file or directory tree as a stream of events a writer turns into files.
//!
//! Writing stays with the caller (this crate does no I/O). What is checked here is what makes
//! writing safe: every name is a single plain path component ([`check_entry_name`]), so joining
//! the [`RelPath`]s below a target directory can never leave it. A writer must still create each
//! directory and file anew (`create_dir`, `create_new`) and fail on anything that exists, which
//! also stops a hostile DAG that lists one name twice from writing through its own symlink.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;

use super::dfs::{Dfs, Flat, Visit, Visitor};
use super::file::{Part, file_node};
use super::hamt::ShardLink;
use super::node::{Decoded, EntryKind};
use super::resolve::{Resolved, shard_params};
use super::{BlockSource, ExportError};
use crate::{Block, Cid};

/// Why a directory entry name cannot be written to a filesystem, if it cannot.
///
/// Refused: the empty name, `.` and `..`, and names holding `/`, `\` or NUL (a separator on some
/// system, or the end of a C string). Everything else is a single path component on Unix and
/// Windows alike.
pub fn check_entry_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("the name is empty");
    }
    if name == "." || name == ".." {
        return Err("the name is . or ..");
    }
    if name.contains('/') {
        return Err("the name contains '/'");
    }
    if name.contains('\\') {
        return Err("the name contains '\\'");
    }
    if name.contains('\0') {
        return Err("the name contains NUL");
    }
    Ok(())
}

/// A path below the export target, made only of names that passed [`check_entry_name`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelPath(Vec<String>);

impl RelPath {
    /// The names, outermost first; empty for the target itself.
    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The path relative to the target (empty for the target itself).
    pub fn to_path_buf(&self) -> PathBuf {
        self.0.iter().collect()
    }

    fn child(&self, dir: &Cid, name: &str) -> Result<Self, ExportError> {
        check_entry_name(name).map_err(|reason| ExportError::UnsafeName {
            dir: dir.to_string(),
            name: name.chars().take(200).collect(),
            reason,
        })?;
        let mut names = self.0.clone();
        names.push(name.to_owned());
        Ok(Self(names))
    }
}

/// One step of writing a tree out, in DFS pre-order: a directory comes before its entries, a
/// file's `Data` right after its `File`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetEvent {
    /// Create this directory.
    Directory {
        /// Where.
        path: RelPath,
    },
    /// Create this file; its bytes follow as `Data` events.
    File {
        /// Where.
        path: RelPath,
        /// How many bytes the `Data` events will add up to.
        size: u64,
    },
    /// The next bytes of the file last started.
    Data(Bytes),
    /// Create this symbolic link (the target as stored; it is not followed).
    Symlink {
        /// Where.
        path: RelPath,
        /// What it points to.
        target: Bytes,
    },
}

enum Ctx {
    /// A directory entry (or the root) to create at this path.
    Entry(RelPath),
    /// A sub-shard of the sharded directory at this path.
    Shard(RelPath),
    /// A block inside a file.
    File(Part),
}

struct GetVisitor;

impl Visitor for GetVisitor {
    type Ctx = Ctx;
    type Out = Vec<GetEvent>;

    fn visit(&mut self, block: Block, ctx: Ctx) -> Result<Visit<Ctx, Vec<GetEvent>>, ExportError> {
        match ctx {
            Ctx::Entry(path) => entry(&block, path),
            Ctx::Shard(path) => Ok(Visit {
                children: shard_entries(&block, &path)?,
                out: None,
            }),
            Ctx::File(part) => {
                let node = file_node(&block, part, None)?;
                Ok(Visit {
                    children: wrap_parts(node.children),
                    out: (!node.data.is_empty()).then(|| vec![GetEvent::Data(node.data)]),
                })
            }
        }
    }
}

fn entry(block: &Block, path: RelPath) -> Result<Visit<Ctx, Vec<GetEvent>>, ExportError> {
    let decoded = Decoded::new(block)?;
    let kind = decoded.kind(block)?;
    let (out, children) = match (kind, decoded) {
        (EntryKind::Directory, Decoded::Pb { node, .. }) => {
            let mut children = Vec::with_capacity(node.links.len());
            for link in node.links {
                let name = link.name.unwrap_or_default();
                children.push((link.cid, Ctx::Entry(path.child(block.cid(), &name)?)));
            }
            (vec![GetEvent::Directory { path: path.clone() }], children)
        }
        (EntryKind::ShardedDirectory, _) => {
            let children = shard_entries(block, &path)?;
            (vec![GetEvent::Directory { path }], children)
        }
        (EntryKind::File { size } | EntryKind::Raw { size }, _) => {
            let root = Part {
                offset: 0,
                declared: None,
            };
            let node = file_node(block, root, None)?;
            let mut out = vec![GetEvent::File { path, size }];
            if !node.data.is_empty() {
                out.push(GetEvent::Data(node.data));
            }
            (out, wrap_parts(node.children))
        }
        (EntryKind::Symlink { target }, _) => (vec![GetEvent::Symlink { path, target }], vec![]),
        (other, _) => {
            return Err(ExportError::NotAFile {
                cid: block.cid().to_string(),
                kind: other.name(),
            });
        }
    };
    Ok(Visit {
        children,
        out: Some(out),
    })
}

fn wrap_parts(children: Vec<(Cid, Part)>) -> Vec<(Cid, Ctx)> {
    children
        .into_iter()
        .map(|(c, p)| (c, Ctx::File(p)))
        .collect()
}

/// The children of a shard node, in link order: sub-shards and entries.
fn shard_entries(block: &Block, path: &RelPath) -> Result<Vec<(Cid, Ctx)>, ExportError> {
    let Decoded::Pb { node, .. } = Decoded::new(block)? else {
        return Err(ExportError::malformed(
            block.cid(),
            "HAMT shard is not dag-pb",
        ));
    };
    let shard = shard_params(block.cid(), &node)?;
    let mut out = Vec::with_capacity(node.links.len());
    for link in &node.links {
        let name = link.name.as_deref().unwrap_or_default();
        let ctx = match shard.classify(block.cid(), name)? {
            ShardLink::SubShard => Ctx::Shard(path.clone()),
            ShardLink::Entry(n) => Ctx::Entry(path.child(block.cid(), n)?),
        };
        out.push((link.cid, ctx));
    }
    Ok(out)
}

/// The events of a `get`, in order. Ends at the first error.
#[derive(Debug)]
pub struct GetWalk(Flat<GetVisitor, GetEvent>);

impl Stream for GetWalk {
    type Item = Result<GetEvent, ExportError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

/// Walks what `resolved` names (file, directory tree or symlink) for writing out, fetching up to
/// `window` blocks ahead. Every name is checked before its event is yielded.
pub fn get(source: Arc<dyn BlockSource>, resolved: &Resolved, window: usize) -> GetWalk {
    GetWalk(Flat::new(Dfs::from_block(
        source,
        GetVisitor,
        window,
        resolved.block.clone(),
        Ctx::Entry(RelPath::default()),
    )))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::TryStreamExt;

    use super::*;
    use crate::PbLink;
    use crate::unixfs::export::testdag;
    use crate::unixfs::export::{MemoryBlocks, resolve};
    use crate::unixfs::{DataType, UnixFsData};

    #[test]
    fn entry_names_are_single_components() {
        for ok in ["a", "a b", "...", ".hidden", "é", "a:b", "-rf"] {
            assert_eq!(check_entry_name(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", ".", "..", "a/b", "/abs", "..\\x", "c:\\x", "a\0"] {
            assert!(check_entry_name(bad).is_err(), "{bad:?}");
        }
    }

    /// Plays the events into a map from path to what is there.
    async fn play(walk: GetWalk) -> Result<BTreeMap<PathBuf, String>, ExportError> {
        let events: Vec<GetEvent> = walk.try_collect().await?;
        let mut out = BTreeMap::new();
        let mut current: Option<(PathBuf, Vec<u8>, u64)> = None;
        let flush = |c: &mut Option<(PathBuf, Vec<u8>, u64)>, out: &mut BTreeMap<_, _>| {
            if let Some((p, data, size)) = c.take() {
                assert_eq!(data.len() as u64, size);
                out.insert(p, format!("file:{}", String::from_utf8(data).unwrap()));
            }
        };
        for e in events {
            match e {
                GetEvent::Data(d) => current.as_mut().unwrap().1.extend_from_slice(&d),
                GetEvent::File { path, size } => {
                    flush(&mut current, &mut out);
                    current = Some((path.to_path_buf(), Vec::new(), size));
                }
                GetEvent::Directory { path } => {
                    flush(&mut current, &mut out);
                    out.insert(path.to_path_buf(), "dir".to_owned());
                }
                GetEvent::Symlink { path, target } => {
                    flush(&mut current, &mut out);
                    let t = String::from_utf8(target.to_vec()).unwrap();
                    out.insert(path.to_path_buf(), format!("symlink:{t}"));
                }
            }
        }
        flush(&mut current, &mut out);
        Ok(out)
    }

    #[tokio::test]
    async fn writes_out_trees_with_files_symlinks_and_shards() {
        let dag = MemoryBlocks::new();
        let big = "0123456789".repeat(20);
        let f1 = testdag::file(&dag, big.as_bytes(), 16, 3, false);
        let f2 = testdag::raw(&dag, b"raw");
        let ln = testdag::symlink(&dag, "../../outside");
        let entries: Vec<(String, Cid)> = (0..300)
            .map(|i| {
                let n = format!("s{i}");
                (n.clone(), *testdag::raw(&dag, n.as_bytes()).cid())
            })
            .collect();
        let sharded = testdag::hamt(&dag, &entries, 16);
        let inner = testdag::dir(&dag, &[("big.txt", &f1), ("ln", &ln)]);
        let root = testdag::dir(&dag, &[("inner", &inner), ("r", &f2), ("shard", &sharded)]);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let resolved = resolve(&*src, *root.cid(), &[]).await.unwrap();
        let got = play(get(src.clone(), &resolved, 4)).await.unwrap();

        let mut want = BTreeMap::new();
        want.insert(PathBuf::new(), "dir".to_owned());
        want.insert(PathBuf::from("inner"), "dir".to_owned());
        want.insert(PathBuf::from("inner/big.txt"), format!("file:{big}"));
        want.insert(
            PathBuf::from("inner/ln"),
            "symlink:../../outside".to_owned(),
        );
        want.insert(PathBuf::from("r"), "file:raw".to_owned());
        want.insert(PathBuf::from("shard"), "dir".to_owned());
        for (n, _) in &entries {
            want.insert(PathBuf::from("shard").join(n), format!("file:{n}"));
        }
        assert_eq!(got, want);

        // A single file: one File event at the target itself.
        let file = resolve(&*src, *root.cid(), &["r".to_owned()])
            .await
            .unwrap();
        let got = play(get(src, &file, 4)).await.unwrap();
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [(PathBuf::new(), "file:raw".to_owned())]
        );
    }

    #[tokio::test]
    async fn hostile_names_stop_the_walk_before_anything_is_written_for_them() {
        for bad in ["..", ".", "", "a/b", "/etc", "..\\..\\x", "nul\0"] {
            let dag = MemoryBlocks::new();
            let f = testdag::raw(&dag, b"payload");
            let links = vec![
                PbLink {
                    cid: *f.cid(),
                    name: Some("fine".to_owned()),
                    tsize: Some(7),
                },
                PbLink {
                    cid: *f.cid(),
                    name: Some(bad.to_owned()),
                    tsize: Some(7),
                },
            ];
            let root = testdag::pb(&dag, links, &UnixFsData::new(DataType::Directory));
            let src: Arc<dyn BlockSource> = Arc::new(dag);
            let resolved = resolve(&*src, *root.cid(), &[]).await.unwrap();
            let mut walk = get(src, &resolved, 4);
            let mut seen = Vec::new();
            let err = loop {
                match futures::StreamExt::next(&mut walk).await {
                    Some(Ok(e)) => seen.push(e),
                    Some(Err(e)) => break e,
                    None => panic!("{bad:?} accepted"),
                }
            };
            assert!(
                matches!(err, ExportError::UnsafeName { .. }),
                "{bad:?}: {err}"
            );
            // The directory is refused as a whole: none of its entries was yielded.
            assert_eq!(seen, []);
        }
        // Inside a HAMT too.
        let dag = MemoryBlocks::new();
        let f = testdag::raw(&dag, b"x");
        let root = testdag::hamt(&dag, &[("../escape".to_owned(), *f.cid())], 256);
        let src: Arc<dyn BlockSource> = Arc::new(dag);
        let resolved = resolve(&*src, *root.cid(), &[]).await.unwrap();
        assert!(matches!(
            play(get(src, &resolved, 4)).await,
            Err(ExportError::UnsafeName { .. })
        ));
    }
}
