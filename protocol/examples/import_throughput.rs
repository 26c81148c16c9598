//! Import throughput of `add --only-hash` on a 256 MiB pseudo-random input held in memory.
//!
//! `cargo run --release -p stargate-protocol --example import_throughput [MiB]`
//!
//! Prints wall-clock MB/s and MB per CPU-second (all threads), which shifts little when other
//! work shares the machine; Kubo's add benchmark reports the same pair.

use std::time::Instant;

use rand::{RngCore, SeedableRng};
use stargate_protocol::Version;
use stargate_protocol::unixfs::{DiscardBlocks, ImportOptions, import_file};

/// CPU time of every thread of this process so far (what the scheduler accounts, in ns).
fn cpu_seconds() -> Result<f64, Box<dyn std::error::Error>> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        ns += stat
            .split_whitespace()
            .next()
            .unwrap_or("0")
            .parse::<u64>()?;
    }
    Ok(ns as f64 / 1e9)
}

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
    let cpu = cpu_seconds()?;
    let start = Instant::now();
    let digest = stargate_protocol::sha2_256(&input);
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds()? - cpu;
    let mb = input.len() as f64 / 1e6;
    println!(
        "sha2-256 alone on one core: {:.0} MB/s, {:.0} MB per CPU-second ({})",
        mb / wall,
        mb / cpu,
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
        let mut best_cpu = f64::INFINITY;
        let mut cid = None;
        for _ in 0..3 {
            let cpu = cpu_seconds()?;
            let start = Instant::now();
            let file = import_file(&input[..], &opts, &mut DiscardBlocks, |_| {})?;
            best = best.min(start.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds()? - cpu);
            cid = Some(file.cid);
        }
        let mb = input.len() as f64 / 1e6;
        println!(
            "{name}: {:.0} MB/s (best of 3, {best:.3} s), {:.0} MB per CPU-second, root {}",
            mb / best,
            mb / best_cpu,
            cid.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    Ok(())
}
