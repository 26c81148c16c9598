//! Shutdown has a time limit: a part of the daemon that will not stop (here the gateway, held by
//! a client that asked for a large file and reads none of it) makes the daemon exit non-zero
//! within `[daemon] shutdown_timeout_sec`, naming that part, instead of running on forever.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use stargate_tests::{StargateNode, write_pseudo_random_file};

const LIMIT_SEC: u64 = 2;

#[test]
fn a_request_that_never_finishes_does_not_hold_the_daemon() -> Result<()> {
    let mut node = StargateNode::new()?;
    std::fs::write(
        node.data_dir().join("config.toml"),
        format!("[daemon]\nshutdown_timeout_sec = {LIMIT_SEC}\n"),
    )?;
    node.start()?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("big");
    // Far more than loopback's socket buffers hold, so the server's writes block.
    write_pseudo_random_file(&file, 64 << 20, 7)?;
    let cid = node
        .cli_ok(&["add", "-Q", file.to_str().context("utf-8")?])?
        .trim()
        .to_owned();

    let addr = node.gateway_url().replace("http://", "");
    let mut stalled = TcpStream::connect(&addr)?;
    write!(
        stalled,
        "GET /ipfs/{cid} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    stalled.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = [0u8; 64];
    let n = stalled.read(&mut head)?;
    let head = String::from_utf8_lossy(&head[..n]);
    ensure!(head.starts_with("HTTP/1.1 200"), "answer began {head:?}");

    let asked = Instant::now();
    let status = node.stop()?;
    let took = asked.elapsed();
    let log = node.log();
    ensure!(
        status.code() == Some(1),
        "exit status {status}; log:\n{log}"
    );
    ensure!(
        took < Duration::from_secs(LIMIT_SEC + 8),
        "took {took:?} to exit; log:\n{log}"
    );
    ensure!(
        log.contains(&format!("gateway server did not stop within {LIMIT_SEC}s")),
        "the log does not name the gateway server:\n{log}"
    );
    drop(stalled);
    Ok(())
}
