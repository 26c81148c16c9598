//! The Node scripts in `tests/js`: a second UnixFS importer configured as
//! Kubo's `ipfs add`, a CAR verifier built on `@ipld/car`, and the status
//! page driven in Debian's chromium by `playwright-core`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::paths::js_dir;
use crate::process::run_with_timeout;

/// Long enough for hundreds of MiB at the JS importer's speed.
const NODE_TIMEOUT: Duration = Duration::from_secs(600);

/// Options of [`js_unixfs_import`]; `Default` is Kubo's `ipfs add` default
/// (CIDv0, 256 KiB chunks, dag-pb leaves, hidden files skipped).
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `--cid-version`; `None` is Kubo's default (0).
    pub cid_version: Option<u8>,
    /// `--raw-leaves`; `None` lets the CID version decide, as in Kubo.
    pub raw_leaves: Option<bool>,
    /// `--chunker size-N`; `None` is 262144.
    pub chunk_size: Option<u64>,
    /// Include dot-files of a directory (`--hidden`). Kubo's `ipfs add -r`
    /// skips them by default; the in-process Kubo's AddFile includes them.
    pub hidden: bool,
    /// `ipfs add -w`.
    pub wrap_with_directory: bool,
    /// HAMT threshold in estimated bytes; `None` is Kubo's 262144.
    pub shard_threshold: Option<u64>,
}

/// One node the importer produced, as an `added <cid> <path>` line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImportEntry {
    pub path: String,
    pub cid: String,
    /// Cumulative DAG size (the Tsize a parent link would carry).
    pub size: u64,
}

/// Result of [`js_unixfs_import`].
#[derive(Debug, Clone, Deserialize)]
pub struct ImportResult {
    /// The last entry: what `ipfs add -Q` prints.
    pub root: ImportEntry,
    /// Every file and directory, files first, directories bottom-up.
    pub entries: Vec<ImportEntry>,
}

impl ImportResult {
    /// The entry for `path` (as `ipfs add` names it, e.g. `dir/sub/file`).
    pub fn entry(&self, path: &str) -> Option<&ImportEntry> {
        self.entries.iter().find(|e| e.path == path)
    }
}

/// Imports the file or directory at `path` with npm `ipfs-unixfs-importer`
/// configured as Kubo v0.22's `ipfs add` and returns every CID.
pub fn js_unixfs_import(path: &Path, opts: &ImportOptions) -> Result<ImportResult> {
    let mut cmd = node_script("unixfs-import.mjs")?;
    if let Some(v) = opts.cid_version {
        cmd.arg("--cid-version").arg(v.to_string());
    }
    if let Some(raw) = opts.raw_leaves {
        cmd.arg(format!("--raw-leaves={raw}"));
    }
    if let Some(size) = opts.chunk_size {
        cmd.arg("--chunker").arg(format!("size-{size}"));
    }
    if opts.hidden {
        cmd.arg("--hidden");
    }
    if opts.wrap_with_directory {
        cmd.arg("--wrap-with-directory");
    }
    if let Some(t) = opts.shard_threshold {
        cmd.arg("--shard-threshold").arg(t.to_string());
    }
    cmd.arg(absolute(path)?);
    let out = run_with_timeout(&mut cmd, NODE_TIMEOUT)?;
    if !out.status.success() {
        bail!(
            "unixfs-import.mjs {} failed ({}): {}",
            path.display(),
            out.status,
            out.stderr_str()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("unixfs-import.mjs printed {:?}", out.stdout_str()))
}

/// What [`js_car_verify`] found in a CAR file.
#[derive(Debug, Clone, Deserialize)]
pub struct CarReport {
    /// Every block parsed and hashed to its CID.
    pub ok: bool,
    /// CAR version from the header (`None` if the header did not parse).
    pub version: Option<u64>,
    pub roots: Vec<String>,
    /// CIDs of the blocks that verified, in file order (up to the failure).
    pub blocks: Vec<String>,
    /// Roots that are not among the blocks (not a failure by itself).
    pub missing_roots: Vec<String>,
    /// Why verification failed, when `ok` is false.
    pub error: Option<String>,
}

/// Reads the CAR at `path` with npm `@ipld/car` and re-hashes every block
/// (sha2-256, sha2-512, identity). A CAR that fails verification is an `Ok`
/// report with `ok == false`; only a broken tool is an `Err`.
pub fn js_car_verify(path: &Path) -> Result<CarReport> {
    let mut cmd = node_script("car-verify.mjs")?;
    cmd.arg(absolute(path)?);
    let out = run_with_timeout(&mut cmd, NODE_TIMEOUT)?;
    let report: CarReport = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "car-verify.mjs {} printed no report ({}): {}",
            path.display(),
            out.status,
            out.stderr_str()
        )
    })?;
    if report.ok != out.status.success() {
        bail!(
            "car-verify.mjs exit status {} disagrees with its report {report:?}",
            out.status
        );
    }
    Ok(report)
}

/// Where `webui.mjs` finds the browser (Debian's `chromium`; playwright-core downloads none).
const CHROMIUM: &str = "/usr/bin/chromium";
/// Starting chromium, the checks, a mirrored upload and the screenshot, on a loaded machine.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs `tests/js/webui.mjs` with `spec` (its fields are described there): it opens the status
/// page in chromium, checks it, waits for a live update and saves a screenshot. Its report, or
/// why a check failed. Fails loudly when chromium or playwright-core is missing.
pub fn js_webui_check(spec: &serde_json::Value) -> Result<serde_json::Value> {
    if !Path::new(CHROMIUM).is_file() {
        bail!(
            "{CHROMIUM} not found (Debian package chromium): {}",
            crate::paths::INSTALL_HINT
        );
    }
    let dir = js_dir()?;
    if !dir.join("node_modules/playwright-core").is_dir() {
        bail!(
            "npm playwright-core is not installed in {}: {}",
            dir.display(),
            crate::paths::INSTALL_HINT
        );
    }
    let mut cmd = node_script("webui.mjs")?;
    cmd.arg(spec.to_string());
    let out = run_with_timeout(&mut cmd, BROWSER_TIMEOUT)?;
    if !out.status.success() {
        bail!("webui.mjs failed ({}): {}", out.status, out.stderr_str());
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("webui.mjs printed {:?}", out.stdout_str()))
}

// The scripts run in tests/js, so relative paths would resolve there.
fn absolute(path: &Path) -> Result<std::path::PathBuf> {
    std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))
}

fn node_script(name: &str) -> Result<Command> {
    let dir = js_dir()?;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(name)).current_dir(dir);
    Ok(cmd)
}
