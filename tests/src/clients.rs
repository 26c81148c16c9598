//! Real clients of Kubo's RPC API, run unchanged against a daemon: npm `kubo-rpc-client`
//! (`tests/js/kubo-rpc-client.mjs`) and PyPI `aioipfs` (`tests/harness/aioipfs_client.py`).
//! Each calls every command the node serves as the library's users call it and prints one
//! JSON report; a check that fails inside the script fails the run with its message. And the
//! Prometheus text parsers of PyPI `prometheus-client`, as scrapers read `/metrics`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::paths::{harness_script, js_dir, venv_python};
use crate::process::run_with_timeout;

/// A whole run: some dozens of calls, one of which waits for a provider record.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(240);
/// Two scrapes.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(60);

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
    json_report(cmd, CLIENT_TIMEOUT)
}

/// Runs `cmd` and parses the one JSON value it prints.
fn json_report(mut cmd: Command, timeout: Duration) -> Result<Value> {
    let out = run_with_timeout(&mut cmd, timeout)?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, out.stderr_str());
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{cmd:?} printed no report: {}", out.stdout_str()))
}

/// Scrapes `metrics_url` without `Accept` and as Prometheus does, parsing each answer with
/// prometheus-client's parser for its format (`tests/harness/metrics_formats.py`): per format
/// (`text`, `openmetrics`), the content type and every family's type and sample count.
///
/// # Errors
/// A scrape or a parse failed.
pub fn metrics_formats(metrics_url: &str) -> Result<Value> {
    let mut cmd = Command::new(venv_python()?);
    cmd.arg(harness_script("metrics_formats.py")?)
        .arg(metrics_url);
    json_report(cmd, SCRAPE_TIMEOUT)
}

/// Runs `tests/js/auth.mjs` against the API at `api_url`: `add`, `cat` and `pin.add` of the
/// stored file `stored` through kubo-rpc-client, with no credentials and with each
/// `Authorization` value in `credentials` passed as the client's users pass headers. The
/// report maps each credential (`none` for none) to each call's outcome (`ok` or the error).
///
/// # Errors
/// The script failed or printed no report.
pub fn kubo_rpc_client_auth(api_url: &str, stored: &str, credentials: &[&str]) -> Result<Value> {
    let dir = js_dir()?;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("auth.mjs"))
        .current_dir(dir)
        .arg(api_url)
        .arg(stored)
        .args(credentials);
    json_report(cmd, CLIENT_TIMEOUT)
}
