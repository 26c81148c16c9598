//! Gateway time to first byte for a CID held two hops away, with real daemons on loopback: a
//! line A–B–C, a fresh 1 MiB file added on A per run, its provider record in the DHT, then C's
//! gateway is asked (C streams the DAG from A over the CAR transfer, A being a Stargate node; the
//! blocks each path brought are printed). Run through `scripts/bench-ttfb.sh [RUNS]` (inside the loopback-only
//! namespace, `STARGATE_BIN` pointing at a release build).

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use stargate_tests::{DaemonOptions, StargateDaemon};

const DHT_TIMEOUT: Duration = Duration::from_secs(120);

fn main() -> Result<()> {
    let runs = match std::env::args().nth(1) {
        Some(n) => n.parse().context("usage: bench-ttfb [RUNS]")?,
        None => 10,
    };
    ensure!(runs > 0, "usage: bench-ttfb [RUNS] (at least 1)");
    ttfb(runs)
}

fn ttfb(runs: usize) -> Result<()> {
    let nodes: Vec<StargateDaemon> = (0..3)
        .map(|_| StargateDaemon::start(DaemonOptions::default()))
        .collect::<Result<_>>()?;
    nodes[0].connect(&nodes[1])?;
    nodes[1].connect(&nodes[2])?;
    let (holder, asker) = (&nodes[0], &nodes[2]);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()?;
    let gateway = asker.gateway_url()?;
    let mut firsts = Vec::with_capacity(runs);
    let mut wholes = Vec::with_capacity(runs);
    for run in 0..runs {
        // The asker may have dialled the holder in an earlier run: start two hops away again.
        let _ = asker.cli(&["swarm", "disconnect", holder.peer_id()]);
        let (cid, path) = holder.add_file(1 << 20, 1000 + run as u64)?;
        asker.wait_for_providers(&cid, &[holder.peer_id().to_owned()].into(), DHT_TIMEOUT)?;
        let started = Instant::now();
        let mut answer = client.get(format!("{gateway}/ipfs/{cid}")).send()?;
        ensure!(answer.status() == 200, "GET {cid}: {}", answer.status());
        let mut byte = [0u8; 1];
        answer.read_exact(&mut byte)?;
        let first = started.elapsed();
        let mut rest = Vec::new();
        answer.read_to_end(&mut rest)?;
        let whole = started.elapsed();
        ensure!(
            rest.len() + 1 == std::fs::metadata(&path)?.len() as usize,
            "short body"
        );
        firsts.push(first);
        wholes.push(whole);
    }
    println!(
        "gateway GET of a 1 MiB file two hops away (line A-B-C, added on A, asked at C), {runs} runs:"
    );
    println!("  time to first byte: {}", summary(&mut firsts));
    println!("  whole body:         {}", summary(&mut wholes));
    println!(
        "  blocks fetched by C over the transfer: {}, over Bitswap: {}",
        asker.retrieved_blocks("transfer")?,
        asker.retrieved_blocks("bitswap")?
    );
    Ok(())
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    )
}
