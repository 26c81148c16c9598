//! Import throughput of `add --only-hash` on a 256 MiB pseudo-random input held in memory.
//!
//! `cargo run --release -p stargate-protocol --example import_throughput [MiB]`

use std::time::Instant;

use rand::{RngCore, SeedableRng};
use stargate_protocol::Version;
use stargate_protocol::unixfs::{DiscardBlocks, ImportOptions, import_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mib: usize = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 256,
    };
    let mut input = vec![0u8; mib << 20];
    rand::rngs::StdRng::seed_from_u64(7).fill_bytes(&mut input);

    let sha_ni = std::fs::read_to_string("/proc/cpuinfo")
        .map(|c| c.split_whitespace().any(|w| w == "sha_ni"))
        .unwrap_or(false);
    println!(
        "input {mib} MiB, {} rayon threads, CPU SHA extensions: {}",
        rayon::current_num_threads(),
        if sha_ni { "yes" } else { "no" }
    );

    // The bound: how fast one core hashes the same bytes.
    let start = Instant::now();
    let digest = stargate_protocol::sha2_256(&input);
    let one_core = input.len() as f64 / 1e6 / start.elapsed().as_secs_f64();
    println!(
        "sha2-256 alone on one core: {one_core:.0} MB/s ({})",
        digest[0]
    );

    let cases = [
        ("default (CIDv0, dag-pb leaves)", ImportOptions::default()),
        (
            "--cid-version 1 (raw leaves)",
            ImportOptions::default().with_cid_version(Version::V1),
        ),
        (
            "--chunker size-1048576",
            ImportOptions::default().with_chunker("size-1048576")?,
        ),
    ];
    for (name, opts) in cases {
        let mut best = f64::INFINITY;
        let mut cid = None;
        for _ in 0..3 {
            let start = Instant::now();
            let file = import_file(&input[..], &opts, &mut DiscardBlocks, |_| {})?;
            best = best.min(start.elapsed().as_secs_f64());
            cid = Some(file.cid);
        }
        let mb_s = input.len() as f64 / 1e6 / best;
        println!(
            "{name}: {mb_s:.0} MB/s (best of 3, {best:.3} s), root {}",
            cid.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    Ok(())
}
