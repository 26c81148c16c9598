//! Real clients of Kubo's RPC API, run unchanged against a daemon: npm `kubo-rpc-client`
//! (`tests/js/kubo-rpc-client.mjs`) and PyPI `aioipfs` (`tests/harness/aioipfs_client.py`).
//! Each calls every command the node serves as the library's users call it and prints one
//! JSON report; a check that fails inside the script fails the run with its message.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::paths::{harness_script, js_dir, venv_python};
use crate::process::run_with_timeout;

/// A whole run: some dozens of calls, one of which waits for a provider record.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);

/// What the client needs besides the daemon: the fixtures (`blob.bin` and the directory
/// `tree`), a peer connected to the daemon (its multiaddr with `/p2p/`) for the swarm commands,
/// and a CID that another connected peer provides, with that provider's ID.
#[derive(Debug, Clone, Copy)]
pub struct ClientRun<'a> {
    pub fixtures: &'a Path,
    pub peer: &'a str,
    pub provided: &'a str,
    pub provider: &'a str,
}

/// Runs `tests/js/kubo-rpc-client.mjs` against the API at `api_url` (`http://127.0.0.1:PORT`).
///
/// # Errors
/// The script failed (its stderr says which call) or printed no report.
pub fn kubo_rpc_client(api_url: &str, run: ClientRun<'_>) -> Result<Value> {
    let dir = js_dir()?;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("kubo-rpc-client.mjs")).current_dir(dir);
    report(cmd, api_url, run)
}

/// Runs `tests/harness/aioipfs_client.py` with the test venv's Python against the API at
/// `api_url`, which aioipfs takes as a multiaddr (`/ip4/127.0.0.1/tcp/PORT`).
///
/// # Errors
/// The script failed (its stderr says which call) or printed no report.
pub fn aioipfs(api_multiaddr: &str, run: ClientRun<'_>) -> Result<Value> {
    let mut cmd = Command::new(venv_python()?);
    cmd.arg(harness_script("aioipfs_client.py")?);
    report(cmd, api_multiaddr, run)
}

fn report(mut cmd: Command, api: &str, run: ClientRun<'_>) -> Result<Value> {
    let fixtures = std::path::absolute(run.fixtures)?;
    cmd.arg(api)
        .arg(fixtures)
        .args([run.peer, run.provided, run.provider]);
    let out = run_with_timeout(&mut cmd, CLIENT_TIMEOUT)?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, out.stderr_str());
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{cmd:?} printed no report: {}", out.stdout_str()))
}
