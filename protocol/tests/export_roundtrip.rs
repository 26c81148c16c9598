//! Import then export: what `add` builds, `cat`, `get`, CAR export and path resolution give back
//! byte for byte, for files at the layout's boundary sizes and for nested and sharded directories.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use proptest::prelude::*;
use stargate_protocol::car::{car_stream, read_car};
use stargate_protocol::unixfs::export::{
    BlockSource, DagScope, EntryKind, GetEvent, MemoryBlocks, WalkOptions, get, list_directory,
    read_file, resolve, walk_blocks, walk_dag,
};
use stargate_protocol::unixfs::{DirectoryBuilder, ImportOptions, import_file, import_symlink};
use stargate_protocol::{Block, Bytes, Cid, ContentPath, Version};

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn store(blocks: Vec<Block>) -> Arc<MemoryBlocks> {
    let dag = MemoryBlocks::new();
    for b in blocks {
        dag.insert(b);
    }
    Arc::new(dag)
}

async fn cat(src: Arc<MemoryBlocks>, cid: Cid, range: std::ops::Range<u64>) -> Vec<u8> {
    let r = resolve(&*src, cid, &[]).await.unwrap();
    let parts: Vec<Bytes> = read_file(src, r.block, range, 8)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

fn options() -> Vec<(&'static str, ImportOptions)> {
    vec![
        ("kubo defaults", ImportOptions::default()),
        ("raw leaves", ImportOptions::default().with_raw_leaves(true)),
        (
            "cid v1",
            ImportOptions::default().with_cid_version(Version::V1),
        ),
    ]
}

#[tokio::test]
async fn files_at_boundary_sizes_read_back() {
    let chunk = 256 * 1024;
    let sizes = [
        0,
        1,
        chunk - 1,
        chunk,
        chunk + 1,
        174 * chunk,
        174 * chunk + 1,
    ];
    for (label, opts) in options() {
        for &len in &sizes {
            let data = content(len, len as u64 + 1);
            let mut blocks = Vec::new();
            let f = import_file(&data[..], &opts, &mut blocks, |_| {}).unwrap();
            let src = store(blocks);
            assert_eq!(f.size, len as u64);
            let whole = cat(src.clone(), f.cid, 0..u64::MAX).await;
            assert!(whole == data, "{label}, {len} bytes");
            if len > 2 {
                let (a, b) = (len as u64 / 3, len as u64 / 3 * 2 + 1);
                let part = cat(src.clone(), f.cid, a..b).await;
                assert!(
                    part == data[a as usize..b as usize],
                    "{label}, {len} bytes, {a}..{b}"
                );
            }
            // The whole DAG, through a CAR and back, is every block once, all verified.
            let chunks: Vec<Bytes> = car_stream(vec![f.cid], walk_dag(src.clone(), f.cid, 8))
                .try_collect()
                .await
                .unwrap();
            let (_, again) = read_car(&chunks.concat()).unwrap();
            let cids: HashSet<Cid> = again.iter().map(|b| *b.cid()).collect();
            assert_eq!(
                cids.len(),
                again.len(),
                "{label}, {len}: duplicates in the CAR"
            );
            assert!(cids.len() <= src.len(), "{label}, {len}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn random_ranges_of_imported_files(
        len in 0usize..40_000,
        chunker in prop_oneof![Just("size-1000"), Just("size-4096"), Just("size-262144")],
        raw in any::<bool>(),
        a in 0u64..41_000,
        b in 0u64..41_000,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let opts = ImportOptions::default().with_raw_leaves(raw).with_chunker(chunker).unwrap();
        let data = content(len, a ^ (b << 20));
        let mut blocks = Vec::new();
        let f = import_file(&data[..], &opts, &mut blocks, |_| {}).unwrap();
        let (from, to) = (a.min(b).min(len as u64), a.max(b));
        let got = rt.block_on(cat(store(blocks), f.cid, from..to));
        prop_assert_eq!(got, &data[from as usize..(to as usize).min(len)]);
    }
}

/// A tree of files, with one directory large enough to shard, as `add -r` would import it.
fn import_tree(opts: &ImportOptions) -> (Cid, Vec<Block>, BTreeMap<PathBuf, Vec<u8>>) {
    let mut blocks = Vec::new();
    let mut dir = DirectoryBuilder::new(opts);
    let mut files = BTreeMap::new();
    let mut add = |path: String, data: Vec<u8>, dir: &mut DirectoryBuilder| {
        let f = import_file(&data[..], opts, &mut blocks, |_| {}).unwrap();
        dir.add_file(&path, &f).unwrap();
        files.insert(PathBuf::from(path), data);
    };
    add("a.txt".into(), b"hello".to_vec(), &mut dir);
    add(
        "nested/deeper/big.bin".into(),
        content(700_000, 9),
        &mut dir,
    );
    add("nested/empty".into(), Vec::new(), &mut dir);
    for i in 0..400 {
        add(
            format!("many/entry-{i:03}.txt"),
            format!("entry {i}").into_bytes(),
            &mut dir,
        );
    }
    dir.add_directory("nested/void").unwrap();
    let link = import_symlink(b"../a.txt", opts, &mut blocks).unwrap();
    dir.add_file("nested/ln", &link).unwrap();
    let dirs = dir.finish(&mut blocks).unwrap();
    (dirs.last().unwrap().cid, blocks, files)
}

#[tokio::test]
async fn directory_trees_resolve_list_get_and_export() {
    // A low shard threshold makes "many" a HAMT, as Kubo shards past 256 KiB of links.
    let opts = ImportOptions::default().with_shard_threshold(4096);
    let (root, blocks, files) = import_tree(&opts);
    let src = store(blocks);

    let many = resolve(&*src, root, &["many".to_owned()]).await.unwrap();
    assert_eq!(many.kind, EntryKind::ShardedDirectory);
    let listed: Vec<_> = list_directory(src.clone(), many.block.clone(), 4)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 400);

    for (path, data) in &files {
        let text = format!("/ipfs/{root}/{}", path.display());
        let p = ContentPath::parse(&text).unwrap();
        let r = resolve(&*src, *p.root(), p.segments()).await.unwrap();
        assert_eq!(r.kind.file_size(), Some(data.len() as u64), "{text}");
        assert!(
            cat(src.clone(), *r.cid(), 0..u64::MAX).await == *data,
            "{text}"
        );
    }
    let ln = resolve(&*src, root, &["nested".to_owned(), "ln".to_owned()])
        .await
        .unwrap();
    assert!(matches!(ln.kind, EntryKind::Symlink { ref target } if target == "../a.txt"));

    // `get` of the whole tree gives every file, directory and the symlink.
    let top = resolve(&*src, root, &[]).await.unwrap();
    let events: Vec<GetEvent> = get(src.clone(), &top, 8).try_collect().await.unwrap();
    let mut got: BTreeMap<PathBuf, Vec<u8>> = BTreeMap::new();
    let mut dirs = HashSet::new();
    let mut current = None;
    for e in events {
        match e {
            GetEvent::File { path, .. } => {
                current = Some(path.to_path_buf());
                got.insert(path.to_path_buf(), Vec::new());
            }
            GetEvent::Data(d) => got
                .get_mut(current.as_ref().unwrap())
                .unwrap()
                .extend_from_slice(&d),
            GetEvent::Directory { path } => {
                dirs.insert(path.to_path_buf());
            }
            GetEvent::Symlink { path, target } => {
                assert_eq!(path.to_path_buf(), PathBuf::from("nested/ln"));
                assert_eq!(&target[..], b"../a.txt");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, files);
    for d in ["", "many", "nested", "nested/deeper", "nested/void"] {
        assert!(dirs.contains(&PathBuf::from(d)), "{d:?}");
    }

    // A CAR of everything holds every imported block once; entity scope of the sharded
    // directory holds its shard nodes after the root.
    let all: Vec<Block> = walk_dag(src.clone(), root, 8).try_collect().await.unwrap();
    let set: HashSet<Cid> = all.iter().map(|b| *b.cid()).collect();
    assert_eq!(set.len(), all.len());
    assert_eq!(set.len(), src.len());
    let entity: Vec<Block> = walk_blocks(
        src.clone() as Arc<dyn BlockSource>,
        &many,
        WalkOptions {
            scope: DagScope::Entity,
            entity_bytes: None,
            window: 4,
        },
    )
    .try_collect()
    .await
    .unwrap();
    assert_eq!(entity[0].cid(), &root);
    assert_eq!(entity[1].cid(), many.cid());
    assert!(entity.len() > 2);
}
