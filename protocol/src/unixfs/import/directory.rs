//! Directory trees (`add -r`) and symlinks, as Kubo v0.22 writes them.
//!
//! Kubo adds entries to MFS directories (boxo `io.DynamicDirectory`): a basic UnixFS Directory
//! node with one link per entry, sorted by name, that switches to a HAMT when its size estimate
//! (sum over entries of name length + CID byte length) reaches the threshold (`>=`). Entries are
//! only added while importing and a CID's length never changes for one set of options, so the
//! estimate only grows and the final estimate alone decides.
//!
//! Why not rust-unixfs's `BufferingTreeBuilder`: it shards only when the estimate is strictly
//! above the threshold, so a directory whose estimate is exactly 256 KiB gets a different CID
//! than Kubo's; it also refuses directory blocks over 512 KiB by default, has no way to add an
//! empty directory other than through metadata, panics on some malformed paths
//! (`unreachable!`) and hashes with its own sha2 where we want ring and our verified `Block`.
//! The HAMT layout itself is small (see `hamt.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::ImportError;
use super::file::ImportedFile;
use super::hamt;
use super::node::write_node;
use super::options::ImportOptions;
use super::sink::BlockSink;
use crate::unixfs::{DataType, UnixFsData};
use crate::{Cid, PbLink, Version};

/// A directory as imported: its path relative to the imported root (`""` for the root itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedDirectory {
    /// `/`-separated path below the root; empty for the root.
    pub path: String,
    /// Its CID (a basic directory node or the root of a HAMT).
    pub cid: Cid,
    /// The encoded size of its whole DAG.
    pub tsize: u64,
}

/// Imports a symlink: one UnixFS Symlink node whose data is the target, as Kubo writes it.
///
/// # Errors
/// [`ImportError::Block`] for a target larger than a block, [`ImportError::Sink`].
pub fn import_symlink<S: BlockSink + ?Sized>(
    target: &[u8],
    opts: &ImportOptions,
    sink: &mut S,
) -> Result<ImportedFile, ImportError> {
    let mut data = UnixFsData::new(DataType::Symlink);
    data.data = Some(Bytes::copy_from_slice(target));
    let (cid, tsize) = write_node(Vec::new(), &data, opts.cid_version(), sink)?;
    Ok(ImportedFile {
        cid,
        size: target.len() as u64,
        tsize,
    })
}

/// Collects the entries of a directory tree, in any order, then writes its directory nodes.
///
/// Files and symlinks are imported first ([`super::import_file`], [`import_symlink`]) and added
/// here by path; parent directories are created as needed, and empty ones with
/// [`Self::add_directory`]. Memory grows with the number of entries (a name and a CID each).
#[derive(Debug)]
pub struct DirectoryBuilder {
    version: Version,
    shard_threshold: usize,
    /// Arena of directories; index 0 is the root.
    dirs: Vec<Dir>,
}

#[derive(Debug, Default)]
struct Dir {
    path: String,
    entries: BTreeMap<String, Node>,
}

#[derive(Debug)]
enum Node {
    /// An imported file or symlink.
    Leaf { cid: Cid, tsize: u64 },
    /// A directory: index into the arena.
    Dir(usize),
}

impl DirectoryBuilder {
    /// An empty tree whose directory nodes follow `opts` (CID version, shard threshold).
    pub fn new(opts: &ImportOptions) -> Self {
        Self {
            version: opts.cid_version(),
            shard_threshold: opts.shard_threshold(),
            dirs: vec![Dir::default()],
        }
    }

    /// Adds an imported file or symlink at `path` (relative, `/`-separated).
    ///
    /// # Errors
    /// [`ImportError::InvalidPath`], [`ImportError::DuplicatePath`] if something is already at
    /// `path`, [`ImportError::NotADirectory`] if a parent is a file.
    pub fn add_file(&mut self, path: &str, file: &ImportedFile) -> Result<(), ImportError> {
        let (parent, name) = self.parent_of(path)?;
        let entries = &mut self.dirs[parent].entries;
        if entries.contains_key(name) {
            return Err(ImportError::DuplicatePath {
                path: path.to_owned(),
            });
        }
        entries.insert(
            name.to_owned(),
            Node::Leaf {
                cid: file.cid,
                tsize: file.tsize,
            },
        );
        Ok(())
    }

    /// Makes sure a directory exists at `path` (empty directories, or to name one explicitly).
    /// `""` is the root. Adding an existing directory again is allowed.
    ///
    /// # Errors
    /// [`ImportError::InvalidPath`], [`ImportError::DuplicatePath`] if `path` is a file,
    /// [`ImportError::NotADirectory`] if a parent is.
    pub fn add_directory(&mut self, path: &str) -> Result<(), ImportError> {
        if path.is_empty() {
            return Ok(());
        }
        let (parent, name) = self.parent_of(path)?;
        match self.child_dir(parent, name, path) {
            Some(_) => Ok(()),
            None => Err(ImportError::DuplicatePath {
                path: path.to_owned(),
            }),
        }
    }

    /// Writes every directory node to `sink` and returns the directories in post-order
    /// (children by name before their parent); the last one is the root.
    ///
    /// # Errors
    /// [`ImportError::Sink`], [`ImportError::Block`] for a directory node over the block limit
    /// (only when sharding is disabled), [`ImportError::ShardTooDeep`].
    pub fn finish<S: BlockSink + ?Sized>(
        self,
        sink: &mut S,
    ) -> Result<Vec<ImportedDirectory>, ImportError> {
        let mut built: Vec<Option<(Cid, u64)>> = vec![None; self.dirs.len()];
        let mut out = Vec::with_capacity(self.dirs.len());
        // Iterative post-order, so deep trees cannot exhaust the stack.
        let mut stack = vec![(0usize, false)];
        while let Some((index, expanded)) = stack.pop() {
            let dir = &self.dirs[index];
            if !expanded {
                stack.push((index, true));
                stack.extend(dir.entries.values().rev().filter_map(|n| match n {
                    Node::Dir(i) => Some((*i, false)),
                    Node::Leaf { .. } => None,
                }));
                continue;
            }
            let entries: Vec<hamt::Entry> = dir
                .entries
                .iter()
                .map(|(name, node)| {
                    let (cid, tsize) = match node {
                        Node::Leaf { cid, tsize } => (*cid, *tsize),
                        // Children are built before their parent.
                        Node::Dir(i) => built[*i].unwrap_or_default(),
                    };
                    hamt::Entry {
                        name: name.clone(),
                        cid,
                        tsize,
                    }
                })
                .collect();
            let (cid, tsize) = self.write_dir(&entries, &dir.path, sink)?;
            built[index] = Some((cid, tsize));
            out.push(ImportedDirectory {
                path: dir.path.clone(),
                cid,
                tsize,
            });
        }
        Ok(out)
    }

    fn write_dir<S: BlockSink + ?Sized>(
        &self,
        entries: &[hamt::Entry],
        path: &str,
        sink: &mut S,
    ) -> Result<(Cid, u64), ImportError> {
        let estimate: usize = entries
            .iter()
            .map(|e| e.name.len() + e.cid.encoded_len())
            .sum();
        if self.shard_threshold > 0 && estimate >= self.shard_threshold {
            return hamt::build(entries, self.version, path, sink);
        }
        let links = entries
            .iter()
            .map(|e| PbLink {
                cid: e.cid,
                name: Some(e.name.clone()),
                tsize: Some(e.tsize),
            })
            .collect();
        write_node(
            links,
            &UnixFsData::new(DataType::Directory),
            self.version,
            sink,
        )
    }

    /// The directory that holds `path` (created as needed) and `path`'s last component. Nothing
    /// is created unless the whole path is valid.
    fn parent_of<'p>(&mut self, path: &'p str) -> Result<(usize, &'p str), ImportError> {
        let invalid = |reason| ImportError::InvalidPath {
            path: path.to_owned(),
            reason,
        };
        if path.starts_with('/') {
            return Err(invalid("must be relative to the imported directory"));
        }
        for part in path.split('/') {
            match part {
                "" => return Err(invalid("has an empty component")),
                "." | ".." => return Err(invalid("has a . or .. component")),
                _ if part.contains('\0') => return Err(invalid("contains a NUL byte")),
                _ => {}
            }
        }
        let (parents, name) = path.rsplit_once('/').unwrap_or(("", path));
        let mut dir = 0;
        if !parents.is_empty() {
            let mut end = 0;
            for part in parents.split('/') {
                end += part.len() + usize::from(end > 0);
                dir = self.child_dir(dir, part, &parents[..end]).ok_or_else(|| {
                    ImportError::NotADirectory {
                        path: path.to_owned(),
                        parent: parents[..end].to_owned(),
                    }
                })?;
            }
        }
        Ok((dir, name))
    }

    /// The subdirectory `name` of `parent`, created if missing (`path` is its full path), or
    /// `None` if `name` is a file there.
    fn child_dir(&mut self, parent: usize, name: &str, path: &str) -> Option<usize> {
        match self.dirs[parent].entries.get(name) {
            Some(Node::Dir(i)) => Some(*i),
            Some(Node::Leaf { .. }) => None,
            None => {
                let index = self.dirs.len();
                self.dirs.push(Dir {
                    path: path.to_owned(),
                    entries: BTreeMap::new(),
                });
                self.dirs[parent]
                    .entries
                    .insert(name.to_owned(), Node::Dir(index));
                Some(index)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PbNode;
    use crate::unixfs::import::{DiscardBlocks, import_file};

    fn file(content: &[u8], opts: &ImportOptions) -> ImportedFile {
        import_file(content, opts, &mut DiscardBlocks, |_| {}).unwrap()
    }

    #[test]
    fn empty_directory_is_kubos() {
        let opts = ImportOptions::default();
        let dirs = DirectoryBuilder::new(&opts)
            .finish(&mut DiscardBlocks)
            .unwrap();
        assert_eq!(dirs.len(), 1);
        assert_eq!(
            dirs[0].cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        assert_eq!((dirs[0].path.as_str(), dirs[0].tsize), ("", 4));
    }

    #[test]
    fn order_of_adds_does_not_matter_and_output_is_post_order() {
        let opts = ImportOptions::default();
        let a = file(b"a", &opts);
        let b = file(b"b", &opts);
        let paths = ["x/y/b", "a", "x/a", "z"];
        let mut forward = DirectoryBuilder::new(&opts);
        let mut backward = DirectoryBuilder::new(&opts);
        for p in paths {
            forward
                .add_file(p, if p.ends_with('a') { &a } else { &b })
                .unwrap();
        }
        for p in paths.iter().rev() {
            backward
                .add_file(p, if p.ends_with('a') { &a } else { &b })
                .unwrap();
        }
        forward.add_directory("x/empty").unwrap();
        backward.add_directory("x/empty").unwrap();
        backward.add_directory("x").unwrap();
        let f = forward.finish(&mut DiscardBlocks).unwrap();
        let b = backward.finish(&mut DiscardBlocks).unwrap();
        assert_eq!(f, b);
        let order: Vec<&str> = f.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(order, ["x/empty", "x/y", "x", ""]);
    }

    #[test]
    fn links_are_sorted_by_bytes_with_tsizes() {
        let opts = ImportOptions::default();
        let f = file(b"hello\n", &opts);
        let mut d = DirectoryBuilder::new(&opts);
        for name in ["é", "b", "B", "a"] {
            d.add_file(name, &f).unwrap();
        }
        let mut blocks = Vec::new();
        let root = d.finish(&mut blocks).unwrap().pop().unwrap();
        let node = PbNode::decode(blocks[0].data()).unwrap();
        let names: Vec<_> = node.links.iter().map(|l| l.name.clone().unwrap()).collect();
        assert_eq!(names, ["B", "a", "b", "é"]);
        assert!(node.links.iter().all(|l| l.tsize == Some(f.tsize)));
        assert_eq!(root.tsize, blocks[0].data().len() as u64 + 4 * f.tsize);
    }

    #[test]
    fn shards_exactly_at_the_threshold() {
        let opts = ImportOptions::default();
        let f = file(b"x", &opts);
        // Each entry estimates to name (4 bytes) + CIDv0 (34 bytes) = 38.
        let build = |threshold: usize| {
            let mut d = DirectoryBuilder::new(&opts.clone().with_shard_threshold(threshold));
            for i in 0..10 {
                d.add_file(&format!("f{i:03}"), &f).unwrap();
            }
            let mut blocks = Vec::new();
            d.finish(&mut blocks).unwrap();
            let root = PbNode::decode(blocks.last().unwrap().data()).unwrap();
            UnixFsData::from_node_data(root.data.as_ref()).unwrap().kind
        };
        assert_eq!(build(381), DataType::Directory);
        assert_eq!(build(380), DataType::HamtShard);
        assert_eq!(build(0), DataType::Directory);
    }

    #[test]
    fn rejects_bad_paths_and_conflicts() {
        let opts = ImportOptions::default();
        let f = file(b"x", &opts);
        let mut d = DirectoryBuilder::new(&opts);
        for bad in ["", "/a", "a//b", "a/", "./a", "a/../b", "a\0b"] {
            assert!(
                matches!(d.add_file(bad, &f), Err(ImportError::InvalidPath { .. })),
                "{bad:?}"
            );
        }
        d.add_file("a/b", &f).unwrap();
        assert!(matches!(
            d.add_file("a/b", &f),
            Err(ImportError::DuplicatePath { .. })
        ));
        assert!(matches!(
            d.add_file("a", &f),
            Err(ImportError::DuplicatePath { .. })
        ));
        assert!(matches!(
            d.add_file("a/b/c", &f),
            Err(ImportError::NotADirectory { .. })
        ));
        assert!(matches!(
            d.add_directory("a/b"),
            Err(ImportError::DuplicatePath { .. })
        ));
        assert!(matches!(
            d.add_file("n/../b", &f),
            Err(ImportError::InvalidPath { .. })
        ));
        // Nothing of the failed adds is left behind.
        let dirs = d.finish(&mut DiscardBlocks).unwrap();
        assert_eq!(dirs.len(), 2);
    }

    #[test]
    fn symlink_node_is_kubos_layout() {
        let mut blocks = Vec::new();
        let s = import_symlink(b"../target", &ImportOptions::default(), &mut blocks).unwrap();
        let node = PbNode::decode(blocks[0].data()).unwrap();
        assert!(node.links.is_empty());
        // Type Symlink, Data target, no filesize.
        let mut expected = vec![0x08, 0x04, 0x12, 9];
        expected.extend_from_slice(b"../target");
        assert_eq!(node.data.as_deref(), Some(&expected[..]));
        assert_eq!(s.tsize, blocks[0].data().len() as u64);
    }
}
