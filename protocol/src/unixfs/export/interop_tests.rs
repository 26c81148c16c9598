//! Export checked against DAGs made by another implementation (see protocol/testdata/README.md).

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;

use super::*;
use crate::car::{car_stream, read_car};
use crate::{Block, Cid};

const JS_HAMT_CAR: &[u8] = include_bytes!("../../../testdata/hamt-js-importer.car");
const JS_HAMT_ENTRIES: usize = 600;

fn load(car: &[u8]) -> (Cid, Vec<Block>, Arc<MemoryBlocks>) {
    let (roots, blocks) = read_car(car).unwrap();
    let dag = MemoryBlocks::new();
    for b in &blocks {
        dag.insert(b.clone());
    }
    (roots[0], blocks, Arc::new(dag))
}

#[tokio::test]
async fn js_importer_sharded_directory_resolves_lists_and_reads() {
    let (root, blocks, dag) = load(JS_HAMT_CAR);
    let resolved = resolve(&*dag, root, &[]).await.unwrap();
    assert_eq!(resolved.kind, EntryKind::ShardedDirectory);

    let listed: Vec<DirEntry> = list_directory(dag.clone(), resolved.block.clone(), 4)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<String> = listed.iter().map(|e| e.name.clone()).collect();
    names.sort();
    let want: Vec<String> = (0..JS_HAMT_ENTRIES)
        .map(|i| format!("file-{i:04}.txt"))
        .collect();
    assert_eq!(names, want);

    let mut deepest = 0;
    for entry in &listed {
        let r = resolve(&*dag, root, std::slice::from_ref(&entry.name))
            .await
            .unwrap();
        assert_eq!(r.cid(), &entry.cid, "{}", entry.name);
        deepest = deepest.max(r.visited.len());
        let parts: Vec<Bytes> = read_file(dag.clone(), r.block, 0..u64::MAX, 2)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(parts.concat(), entry.name.as_bytes());
    }
    assert!(deepest >= 3, "the fixture must exercise sub-shards");

    // The whole DAG walks to exactly the blocks of the CAR, and re-exports to a CAR that reads
    // back to the same blocks.
    let walked: Vec<Block> = walk_dag(dag.clone(), root, 8).try_collect().await.unwrap();
    let set = |bs: &[Block]| bs.iter().map(|b| *b.cid()).collect::<HashSet<_>>();
    assert_eq!(walked.len(), set(&walked).len());
    assert_eq!(set(&walked), set(&blocks));
    let chunks: Vec<Bytes> = car_stream(vec![root], walk_dag(dag, root, 8))
        .try_collect()
        .await
        .unwrap();
    let (roots, again) = read_car(&chunks.concat()).unwrap();
    assert_eq!(roots, [root]);
    assert_eq!(again, walked);
}

#[tokio::test]
async fn the_trustless_probe_cid_resolves_and_exports_as_an_empty_car() {
    let probe = crate::parse_cid("bafkqaaa").unwrap();
    let empty: Arc<dyn BlockSource> = Arc::new(MemoryBlocks::new());
    let r = resolve(&*empty, probe, &[]).await.unwrap();
    assert_eq!(r.kind, EntryKind::Raw { size: 0 });
    let chunks: Vec<Bytes> = car_stream(
        vec![probe],
        walk_blocks(empty.clone(), &r, WalkOptions::default()),
    )
    .try_collect()
    .await
    .unwrap();
    let (roots, blocks) = read_car(&chunks.concat()).unwrap();
    assert_eq!(roots, [probe]);
    assert!(blocks.is_empty(), "identity blocks are never sent");
    let bytes: Vec<Bytes> = read_file(empty, r.block, 0..u64::MAX, 1)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(bytes.concat().is_empty());
}

#[test]
fn streams_can_be_response_bodies() {
    fn body<T: futures::Stream + Send + 'static>(_: &T) {}
    let src: Arc<dyn BlockSource> = Arc::new(MemoryBlocks::new());
    let block = crate::Block::from_identity(&crate::parse_cid("bafkqaaa").unwrap()).unwrap();
    let resolved = Resolved {
        block: block.clone(),
        kind: EntryKind::Raw { size: 0 },
        visited: vec![*block.cid()],
        path_cids: vec![*block.cid()],
    };
    body(&read_file(src.clone(), block.clone(), 0..1, 1).unwrap());
    body(&walk_blocks(src.clone(), &resolved, WalkOptions::default()));
    body(&car_stream(
        vec![*block.cid()],
        walk_dag(src.clone(), *block.cid(), 1),
    ));
    body(&get(src, &resolved, 1));
}
