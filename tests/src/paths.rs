//! Where things are: the repo, the built binaries, the installed test tools.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Hint printed whenever something `scripts/install-test-deps.sh` provides is missing.
pub(crate) const INSTALL_HINT: &str = "run scripts/test.sh (or scripts/install-test-deps.sh) first";

/// The repository root (the directory holding the workspace `Cargo.toml`).
pub fn repo_root() -> &'static Path {
    // This crate lives in <repo>/tests.
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The directory holding the test executable, i.e. `target/<profile>`, where
/// cargo also puts the workspace's binaries.
fn target_profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the running test executable")?;
    // <target>/<profile>/deps/<test>-<hash>
    let deps = exe
        .parent()
        .with_context(|| format!("test executable {} has no parent", exe.display()))?;
    let dir = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().unwrap_or(deps)
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// Path of a binary built from this workspace (`cargo build --bins`), found
/// next to the running test executable. Fails loudly if it was not built.
pub fn workspace_bin(name: &str) -> Result<PathBuf> {
    let path = target_profile_dir()?.join(name);
    if !path.is_file() {
        bail!(
            "binary {name} not found at {}: run scripts/test.sh or cargo build --bins first",
            path.display()
        );
    }
    Ok(path)
}

/// Path of the built `stargate` binary: `STARGATE_BIN` if set (the benchmarks point it at a
/// release build), else the one next to the running executable.
pub fn stargate_bin() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("STARGATE_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("STARGATE_BIN names {}, which is not a file", path.display());
        }
        return Ok(path);
    }
    workspace_bin("stargate")
}

/// `target/test-artifacts`, created: where tests leave files for people to look at
/// (screenshots), beside the build they come from.
pub fn test_artifacts_dir() -> Result<PathBuf> {
    let profile = target_profile_dir()?;
    let dir = profile.parent().unwrap_or(&profile).join("test-artifacts");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The Python interpreter of the test venv (`.venv` at the repo root).
pub fn venv_python() -> Result<PathBuf> {
    let python = repo_root().join(".venv/bin/python");
    if !python.is_file() {
        bail!(
            "the test venv is missing ({} not found): {INSTALL_HINT}",
            python.display()
        );
    }
    Ok(python)
}

/// `tests/harness/<name>`, the Python side of the harness.
pub(crate) fn harness_script(name: &str) -> Result<PathBuf> {
    existing(repo_root().join("tests/harness").join(name))
}

/// `tests/js`, with its `node_modules` installed.
pub(crate) fn js_dir() -> Result<PathBuf> {
    let dir = repo_root().join("tests/js");
    if !dir.join("node_modules").is_dir() {
        bail!(
            "npm packages are not installed in {}: {INSTALL_HINT}",
            dir.display()
        );
    }
    Ok(dir)
}

fn existing(path: PathBuf) -> Result<PathBuf> {
    if !path.exists() {
        bail!("{} not found", path.display());
    }
    Ok(path)
}
