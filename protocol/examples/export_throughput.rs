//! Export throughput from memory: `cat` (ranged file read) and a whole-DAG CAR stream of a 256 MiB
//! file imported with Kubo's defaults, so the figure is the export code's own cost, without a
//! store or network behind it.
//!
//! Then the same `cat` from a source that answers each block after 2 ms, as a network peer might,
//! with no prefetch and with the window: what pipelining buys.
//!
//! `cargo run --release -p stargate-protocol --example export_throughput [MiB] [window]`

use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use futures::future::BoxFuture;
use rand::{RngCore, SeedableRng};
use stargate_protocol::car::car_stream;
use stargate_protocol::unixfs::export::{
    BlockSource, MemoryBlocks, SourceError, read_file, walk_dag,
};
use stargate_protocol::unixfs::{ImportOptions, import_file};
use stargate_protocol::{Block, Cid};

/// Answers each request after a fixed latency.
struct Delayed(Arc<dyn BlockSource>, std::time::Duration);

impl BlockSource for Delayed {
    fn get(&self, cid: Cid) -> BoxFuture<'_, Result<Block, SourceError>> {
        Box::pin(async move {
            tokio::time::sleep(self.1).await;
            self.0.get(cid).await
        })
    }
}

async fn cat(
    src: Arc<dyn BlockSource>,
    root: Block,
    window: usize,
) -> Result<f64, Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut read = 0usize;
    let mut stream = read_file(src, root, 0..u64::MAX, window)?;
    while let Some(chunk) = stream.try_next().await? {
        read += chunk.len();
    }
    Ok(read as f64 / start.elapsed().as_secs_f64() / 1e6)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mib: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let window: usize = args.next().map_or(Ok(16), |a| a.parse())?;
    let mut input = vec![0u8; mib << 20];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut input);
    let mut blocks = Vec::new();
    let file = import_file(&input[..], &ImportOptions::default(), &mut blocks, |_| {})?;
    let dag = MemoryBlocks::new();
    let count = blocks.len();
    for b in blocks {
        dag.insert(b);
    }
    let src: Arc<dyn BlockSource> = Arc::new(dag);
    let root = src.get(file.cid).await?;
    println!("{mib} MiB file, {count} blocks, prefetch window {window}");

    println!(
        "cat: {:.0} MB/s",
        cat(src.clone(), root.clone(), window).await?
    );

    let start = Instant::now();
    let mut car = 0usize;
    let mut stream = std::pin::pin!(car_stream(
        vec![file.cid],
        walk_dag(src.clone(), file.cid, window)
    ));
    while let Some(chunk) = stream.try_next().await? {
        car += chunk.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("CAR: {:.0} MB/s ({car} bytes)", car as f64 / secs / 1e6);

    let slow: Arc<dyn BlockSource> = Arc::new(Delayed(src, std::time::Duration::from_millis(2)));
    for w in [1, window] {
        let mbs = cat(slow.clone(), root.clone(), w).await?;
        println!("cat, 2 ms per block, window {w}: {mbs:.0} MB/s");
    }
    Ok(())
}
