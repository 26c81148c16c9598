//! The fast DAG transfer between two real `stargate daemon`s on loopback (`dag fetch`).

use anyhow::{Context, Result, ensure};
use stargate_tests::{DaemonOptions, StargateDaemon, write_pseudo_random_file};

#[test]
fn a_multi_level_dag_moves_between_daemons_verified_and_pinned() -> Result<()> {
    let a = StargateDaemon::start(DaemonOptions::default())?;
    let b = StargateDaemon::start(DaemonOptions::default())?;

    // 1 KiB chunks: 600 leaves under 4 interior nodes, a two-level DAG.
    let path = a.dir().join("input");
    write_pseudo_random_file(&path, 600 * 1024, 7)?;
    let input = path.to_str().context("path")?;
    let cid = a.cli_ok(&["add", "-Q", "--chunker", "size-1024", input])?;
    let cid = cid.trim();

    let out = b.cli_ok(&["dag", "fetch", "--from", &a.multiaddr()?, cid, "--pin"])?;
    ensure!(
        out.starts_with(&format!("fetched {cid}: 605 blocks, ")),
        "unexpected output: {out}"
    );
    // Everything is there, pinned, intact, and reads back as the file.
    let pins = b.cli_ok(&["pin", "ls", "--type", "recursive"])?;
    ensure!(pins.contains(cid), "not pinned on b: {pins}");
    let verify = b.cli_ok(&["repo", "verify"])?;
    ensure!(!verify.contains("corrupt"), "{verify}");
    let copy = b.dir().join("copy");
    b.cli_ok(&["get", cid, "-o", copy.to_str().context("path")?])?;
    ensure!(
        std::fs::read(&copy)? == std::fs::read(&path)?,
        "different bytes"
    );

    // What the provider does not have is a clear error.
    let other = b.dir().join("other");
    write_pseudo_random_file(&other, 1000, 8)?;
    let missing = b.cli_ok(&["add", "-Q", "-n", other.to_str().context("path")?])?;
    let res = b.cli(&["dag", "fetch", "--from", a.peer_id(), missing.trim()])?;
    let stderr = res.stderr_str();
    ensure!(!res.status.success(), "fetching a missing DAG succeeded");
    ensure!(stderr.contains("NotFound"), "{stderr}");
    Ok(())
}
