//! How fast the store absorbs an add, and reads and verifies it back.
//!
//! ```text
//! cargo run --release -p stargate-storage --example put_throughput [-- MIB [DIR [BATCHES]]]
//! ```
//!
//! Writes MIB (default 256) MiB of random 256 KiB raw blocks plus a root linking them all
//! through one `BlockWriter` ending in a recursive pin, as `stargate add` does, once per batch
//! size in BATCHES (MiB, comma-separated, default `2,8,32`); reads and verifies the 8 MiB run
//! (or the first) back; then times many small concurrent `put`s (the Bitswap pattern). Blocks are hashed before the clock starts: this measures the store alone. DIR
//! (default: the system temp dir) should be on the disk the data dir will live on.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use rand::RngCore;
use stargate_protocol::Block;
use stargate_storage::{PinMode, Store, StoreOptions};

const BLOCK: usize = 256 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let mib: usize = args
        .next()
        .map_or(256, |a| a.parse().expect("MIB is a number"));
    let base = args.next().map_or_else(std::env::temp_dir, PathBuf::from);
    let batches: Vec<usize> = args.next().map_or(vec![2, 8, 32], |list| {
        list.split(',')
            .map(|b| b.parse().expect("BATCHES is a comma-separated list of MiB"))
            .collect()
    });
    let total = mib << 20;
    println!(
        "store throughput: {mib} MiB in {} KiB blocks, {} cores, sha extensions: {}, dir {}",
        BLOCK / 1024,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        has_sha_extensions(),
        base.display()
    );

    let leaves = random_blocks(total / BLOCK, BLOCK);
    let root = root_of(&leaves);

    let read_back = if batches.contains(&8) { 8 } else { batches[0] };
    for &batch_mib in &batches {
        let dir = tempfile::tempdir_in(&base).unwrap();
        let mut options = StoreOptions::default();
        options.batch_bytes = batch_mib << 20;
        let store = Store::open(dir.path(), options).unwrap();
        let start = Instant::now();
        let mut writer = store.writer();
        for leaf in &leaves {
            writer.put(leaf.clone()).unwrap();
        }
        writer.put(root.clone()).unwrap();
        writer
            .finish(Some((*root.cid(), PinMode::Recursive)))
            .unwrap();
        let secs = start.elapsed().as_secs_f64();
        let stat = store.stat().unwrap();
        println!(
            "  add via BlockWriter, batch {batch_mib:>2} MiB: {:>6.0} MB/s ({secs:.2} s, {} commits, file on disk {:.0} MiB)",
            total as f64 / secs / 1e6,
            store.metrics().commits,
            stat.file_bytes as f64 / f64::from(1 << 20),
        );
        if batch_mib == read_back {
            read_and_verify(&store, &leaves, total);
        }
    }

    concurrent_small_puts(&base);
}

fn read_and_verify(store: &Store, leaves: &[Block], total: usize) {
    let start = Instant::now();
    for leaf in leaves {
        let got = store.get(leaf.cid()).unwrap().unwrap();
        assert_eq!(got.data().len(), BLOCK);
    }
    let secs = start.elapsed().as_secs_f64();
    println!("  get every block: {:>6.0} MB/s", total as f64 / secs / 1e6);

    let start = Instant::now();
    let report = store.verify(|_| {}).unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(report.corrupt.is_empty());
    println!(
        "  verify (all cores): {:>6.0} MB/s",
        report.bytes_checked as f64 / secs / 1e6
    );
}

/// 8 threads each putting 4 KiB blocks one at a time: the writer thread groups them.
fn concurrent_small_puts(base: &std::path::Path) {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 500;
    let dir = tempfile::tempdir_in(base).unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let sets: Vec<Vec<Block>> = (0..THREADS)
        .map(|_| random_blocks(PER_THREAD, 4096))
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for set in &sets {
            let store = store.clone();
            s.spawn(move || {
                for block in set {
                    store.put(block.clone()).unwrap();
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = THREADS * PER_THREAD;
    println!(
        "  {THREADS} threads x {PER_THREAD} single 4 KiB puts: {:>6.0} blocks/s ({} commits for {n} puts, each durable)",
        n as f64 / secs,
        store.metrics().commits
    );
}

fn random_blocks(n: usize, size: usize) -> Vec<Block> {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let mut data = vec![0u8; size];
            rng.fill_bytes(&mut data);
            common::raw(data)
        })
        .collect()
}

fn root_of(leaves: &[Block]) -> Block {
    common::node(&leaves.iter().collect::<Vec<_>>(), b"root")
}

fn has_sha_extensions() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|s| s.contains(" sha_ni"))
}
