//! `stargate add -n` gives the CIDs Kubo v0.22's `ipfs add` gives: compared with a real Kubo on
//! its default options (files at the chunking boundaries, nested, sharded and at-threshold
//! directories, symlinks, dot-files), and with npm `ipfs-unixfs-importer` configured as Kubo for
//! the options Kubo's library cannot take (CIDv1, raw leaves, chunker sizes, shard thresholds).
//! Every input is generated in the test run.
//!
//! The checks take the implementation under test as an [`Adder`]: the importer library here; the
//! `stargate add -n` binary can be passed to the same checks.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use stargate_protocol::Version;
use stargate_protocol::unixfs::{
    self, DirectoryBuilder, DiscardBlocks, import_file, import_file_at, import_symlink,
};
use stargate_tests::{
    CHUNK, ImportEntry, ImportOptions as AddFlags, ImportResult, KuboPeer, MAX_LINKS,
    js_unixfs_import, write_boundary_files, write_nested_dir, write_pseudo_random_file,
    write_sharded_dir, write_text_file, write_threshold_dir,
};

/// An implementation of `ipfs add --only-hash [-r]` with the given flags: every entry it would
/// print as `added <cid> <path>`, with its cumulative DAG size, the root last.
type Adder = fn(&Path, &AddFlags) -> Result<ImportResult>;

/// The importer library, walking the file system as `ipfs add -r` does.
fn library_add(path: &Path, flags: &AddFlags) -> Result<ImportResult> {
    let opts = library_options(flags)?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", path.display()))?;
    let mut entries = Vec::new();
    if fs::symlink_metadata(path)?.is_dir() {
        let mut tree = DirectoryBuilder::new(&opts);
        walk(path, "", flags.hidden, &opts, &mut tree, &mut entries, name)?;
        for dir in tree.finish(&mut DiscardBlocks)? {
            entries.push(ImportEntry {
                path: join(name, &dir.path),
                cid: dir.cid.to_string(),
                size: dir.tsize,
            });
        }
    } else {
        let file = import_leaf(path, &opts)?;
        entries.push(ImportEntry {
            path: name.to_owned(),
            cid: file.cid.to_string(),
            size: file.tsize,
        });
    }
    let root = entries.last().cloned().context("nothing was imported")?;
    Ok(ImportResult { root, entries })
}

fn library_options(flags: &AddFlags) -> Result<unixfs::ImportOptions> {
    ensure!(!flags.wrap_with_directory, "-w is not exercised here");
    let mut opts = unixfs::ImportOptions::default();
    match flags.cid_version {
        None | Some(0) => {}
        Some(1) => opts = opts.with_cid_version(Version::V1),
        Some(v) => bail!("no CID version {v}"),
    }
    if let Some(raw) = flags.raw_leaves {
        opts = opts.with_raw_leaves(raw);
    }
    if let Some(size) = flags.chunk_size {
        opts = opts.with_chunker(&format!("size-{size}"))?;
    }
    if let Some(t) = flags.shard_threshold {
        opts = opts.with_shard_threshold(usize::try_from(t)?);
    }
    Ok(opts)
}

/// Adds everything under `root/rel` to `tree`, files and symlinks to `entries`.
fn walk(
    root: &Path,
    rel: &str,
    hidden: bool,
    opts: &unixfs::ImportOptions,
    tree: &mut DirectoryBuilder,
    entries: &mut Vec<ImportEntry>,
    name: &str,
) -> Result<()> {
    tree.add_directory(rel)?;
    let mut children = Vec::new();
    for child in fs::read_dir(root.join(rel))? {
        let child = child?.file_name();
        let child = child
            .into_string()
            .map_err(|n| anyhow::anyhow!("{n:?} is not UTF-8"))?;
        if hidden || !child.starts_with('.') {
            children.push(child);
        }
    }
    children.sort();
    for child in children {
        let child_rel = join(rel, &child);
        let path = root.join(&child_rel);
        if fs::symlink_metadata(&path)?.is_dir() {
            walk(root, &child_rel, hidden, opts, tree, entries, name)?;
        } else {
            let file = import_leaf(&path, opts)?;
            tree.add_file(&child_rel, &file)?;
            entries.push(ImportEntry {
                path: join(name, &child_rel),
                cid: file.cid.to_string(),
                size: file.tsize,
            });
        }
    }
    Ok(())
}

/// A file or a symlink (not followed).
fn import_leaf(path: &Path, opts: &unixfs::ImportOptions) -> Result<unixfs::ImportedFile> {
    if fs::symlink_metadata(path)?.is_symlink() {
        let target = fs::read_link(path)?;
        let target = target.to_str().context("symlink target is not UTF-8")?;
        return Ok(import_symlink(target.as_bytes(), opts, &mut DiscardBlocks)?);
    }
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    // Both inputs of the importer: streamed (a daemon's API) and read by position (the CLI
    // without a daemon) must give the one CID compared below.
    let at = import_file_at(&file, len, opts, &mut DiscardBlocks, |_| {})?;
    let streamed = import_file(file, opts, &mut DiscardBlocks, |_| {})?;
    ensure!(
        at == streamed,
        "{}: read by position {at:?}, streamed {streamed:?}",
        path.display()
    );
    Ok(streamed)
}

fn join(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_owned(),
        (_, true) => parent.to_owned(),
        _ => format!("{parent}/{child}"),
    }
}

/// Every entry by path, for comparisons that do not depend on output order.
fn by_path(result: &ImportResult) -> BTreeMap<String, (String, u64)> {
    result
        .entries
        .iter()
        .map(|e| (e.path.clone(), (e.cid.clone(), e.size)))
        .collect()
}

/// The UnixFS type of a directory root (to check a threshold test tests what it says).
fn is_hamt(add: Adder, dir: &Path, flags: &AddFlags) -> Result<bool> {
    let ours = add(dir, flags)?;
    let opts = library_options(flags)?;
    let mut blocks = Vec::new();
    let mut tree = DirectoryBuilder::new(&opts);
    let mut entries = Vec::new();
    walk(dir, "", flags.hidden, &opts, &mut tree, &mut entries, "")?;
    let root = tree.finish(&mut blocks)?.pop().context("no root")?;
    ensure!(root.cid.to_string() == ours.root.cid, "walks disagree");
    let block = blocks
        .iter()
        .find(|b| *b.cid() == root.cid)
        .context("root block missing")?;
    let node = stargate_protocol::PbNode::decode(block.data())?;
    let data = unixfs::UnixFsData::from_node_data(node.data.as_ref())?;
    Ok(data.kind == unixfs::DataType::HamtShard)
}

/// The boundary files, with Kubo's defaults, against Kubo's AddFile (only-hash).
fn check_boundary_files_against_kubo(add: Adder) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let files = write_boundary_files(dir.path(), 20_261_126)?;
    let mut kubo = KuboPeer::start()?;
    for f in &files {
        let kubo_cid = kubo.add(&f.path, true)?.cid;
        let ours = add(&f.path, &AddFlags::default())?;
        ensure!(
            ours.root.cid == kubo_cid,
            "{} ({} bytes): ours {} but Kubo {kubo_cid}",
            f.name,
            f.len,
            ours.root.cid
        );
        ensure!(ours.root.path == f.name, "named {:?}", ours.root.path);
    }
    kubo.shutdown()
}

/// Nested (with symlinks and dot-files), sharded, and estimated one byte under, at and over the
/// shard threshold, against Kubo's AddFile, which includes dot-files.
fn check_directories_against_kubo(add: Adder) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nested = dir.path().join("nested");
    write_nested_dir(&nested, 11)?;
    write_text_file(&nested.join(".hidden"), 20, 12)?;
    std::os::unix::fs::symlink("a.txt", nested.join("link to a"))?;
    std::os::unix::fs::symlink("../nowhere", nested.join("sub1/dangling"))?;
    let sharded = dir.path().join("sharded");
    write_sharded_dir(&sharded, 11)?;
    let subdirs = dir.path().join("subdirs");
    write_subdirectory_threshold_dir(&subdirs)?;
    ensure!(
        is_hamt(add, &subdirs, &AddFlags::default())?,
        "the subdirectory links should have crossed the threshold"
    );
    let mut roots = vec![nested, sharded, subdirs];
    for delta in [-1i8, 0, 1] {
        let d = dir.path().join(format!("threshold{delta:+}"));
        write_threshold_dir(&d, delta)?;
        let flags = AddFlags::default();
        ensure!(
            is_hamt(add, &d, &flags)? == (delta >= 0),
            "threshold{delta:+} is on the wrong side"
        );
        roots.push(d);
    }
    let flags = AddFlags {
        hidden: true,
        ..AddFlags::default()
    };
    let mut kubo = KuboPeer::start()?;
    for root in &roots {
        let kubo_cid = kubo.add(root, true)?.cid;
        let ours = add(root, &flags)?;
        ensure!(
            ours.root.cid == kubo_cid,
            "{}: ours {} but Kubo {kubo_cid}",
            root.display(),
            ours.root.cid
        );
    }
    kubo.shutdown()
}

/// Writes a directory that only its subdirectories' links push to Kubo's shard threshold: 4,000
/// files and 96 one-file subdirectories, all with 30-byte names, estimated at 4,096 × 64 =
/// 262,144 bytes with CIDv0. Kubo adds each subdirectory's link when it creates it and keeps it,
/// so it shards this directory; the JS importer only counts a subdirectory link while that
/// subdirectory is empty, so it does not (which is why this is compared with Kubo only).
fn write_subdirectory_threshold_dir(root: &Path) -> Result<()> {
    fs::create_dir_all(root)?;
    for i in 0..4_000 {
        fs::write(root.join(format!("f{i:029}")), i.to_string())?;
    }
    for i in 0..96 {
        let sub = root.join(format!("d{i:029}"));
        fs::create_dir(&sub)?;
        fs::write(sub.join("x"), i.to_string())?;
    }
    Ok(())
}

/// Every entry the JS importer reports (CID and cumulative size) equals ours with the same flags,
/// and so do the roots. The JS importer reports no entry for a HAMT-sharded subdirectory; the
/// root's CID covers those.
fn check_against_js(add: Adder, path: &Path, flags: &AddFlags) -> Result<()> {
    let ours = by_path(&add(path, flags)?);
    let js = js_unixfs_import(path, flags)?;
    let differing: Vec<_> = by_path(&js)
        .into_iter()
        .filter(|(path, entry)| ours.get(path) != Some(entry))
        .map(|(path, entry)| format!("{path}: js {entry:?}, ours {:?}", ours.get(&path)))
        .collect();
    ensure!(
        differing.is_empty(),
        "{} with {flags:?}:\n{}",
        path.display(),
        differing.join("\n")
    );
    let our_root = ours.get(&js.root.path);
    ensure!(
        our_root == Some(&(js.root.cid.clone(), js.root.size)),
        "roots differ: {our_root:?} {:?}",
        js.root
    );
    Ok(())
}

fn option_sets() -> Vec<AddFlags> {
    let chunked = |size| AddFlags {
        chunk_size: Some(size),
        ..AddFlags::default()
    };
    vec![
        AddFlags {
            cid_version: Some(1),
            ..AddFlags::default()
        },
        AddFlags {
            cid_version: Some(1),
            raw_leaves: Some(false),
            ..AddFlags::default()
        },
        AddFlags {
            raw_leaves: Some(true),
            ..AddFlags::default()
        },
        chunked(1_048_576),
        chunked(65_536),
        chunked(1_000),
        AddFlags {
            cid_version: Some(1),
            chunk_size: Some(4_096),
            ..AddFlags::default()
        },
    ]
}

/// Boundary files under CIDv1, raw leaves and other chunk sizes, against the JS importer.
fn check_file_options_against_js(add: Adder) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let small = [
        "empty",
        "one-byte",
        "one-chunk",
        "one-chunk-plus-one",
        "text",
    ];
    for f in write_boundary_files(dir.path(), 77)? {
        let options = if small.contains(&f.name) {
            option_sets()
        } else if f.name == "175-chunks" {
            option_sets().into_iter().take(4).collect()
        } else {
            continue;
        };
        for flags in options {
            check_against_js(add, &f.path, &flags)?;
        }
    }
    // Three levels of internal nodes: one more leaf than a full two-level tree holds.
    let deep = dir.path().join("deep");
    write_pseudo_random_file(&deep, MAX_LINKS * MAX_LINKS * 1_024 + 1, 78)?;
    check_against_js(
        add,
        &deep,
        &AddFlags {
            chunk_size: Some(1_024),
            ..AddFlags::default()
        },
    )?;
    // Single-byte chunks: a two-level tree over a small file.
    let tiny_chunks = dir.path().join("tiny-chunks");
    write_text_file(&tiny_chunks, 2 * MAX_LINKS + 7, 79)?;
    check_against_js(
        add,
        &tiny_chunks,
        &AddFlags {
            chunk_size: Some(1),
            ..AddFlags::default()
        },
    )?;
    ensure!(CHUNK == 262_144, "the harness changed Kubo's chunk size");
    Ok(())
}

/// Directories (every entry, not only roots) under several options, against the JS importer.
fn check_directory_options_against_js(add: Adder) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let nested = dir.path().join("nested");
    write_nested_dir(&nested, 21)?;
    write_text_file(&nested.join(".hidden"), 20, 22)?;
    std::os::unix::fs::symlink("sub1/c.txt", nested.join("sub1/sub2/link"))?;
    let sharded = dir.path().join("sharded");
    write_sharded_dir(&sharded, 21)?;
    let at = dir.path().join("threshold+0");
    write_threshold_dir(&at, 0)?;

    let mut cases = vec![AddFlags::default()];
    cases.extend(option_sets().into_iter().take(3));
    for flags in &cases {
        for root in [&nested, &sharded, &at] {
            check_against_js(add, root, flags)?;
        }
    }
    let others = [
        AddFlags {
            hidden: true,
            ..AddFlags::default()
        },
        // Small thresholds shard some of the nested tree's directories. (Chosen so that files
        // alone, or the files and any one subdirectory, decide: the JS importer counts a
        // subdirectory's link only while that subdirectory is empty, Kubo always; see
        // `write_subdirectory_threshold_dir`.)
        AddFlags {
            shard_threshold: Some(40),
            ..AddFlags::default()
        },
        AddFlags {
            shard_threshold: Some(60),
            cid_version: Some(1),
            ..AddFlags::default()
        },
    ];
    for flags in &others {
        check_against_js(add, &nested, flags)?;
    }
    // Sharding disabled: one basic node with every entry.
    check_against_js(
        add,
        &sharded,
        &AddFlags {
            shard_threshold: Some(0),
            ..AddFlags::default()
        },
    )
}

#[test]
fn boundary_files_match_kubo() {
    check_boundary_files_against_kubo(library_add).unwrap();
}

#[test]
fn directories_match_kubo() {
    check_directories_against_kubo(library_add).unwrap();
}

#[test]
fn file_options_match_the_js_importer() {
    check_file_options_against_js(library_add).unwrap();
}

#[test]
fn directory_options_match_the_js_importer() {
    check_directory_options_against_js(library_add).unwrap();
}
