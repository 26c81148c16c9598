//! Starting and stopping `stargate` processes: the one place both daemon harnesses
//! ([`StargateNode`](crate::StargateNode) and [`StargateDaemon`](crate::StargateDaemon)) build
//! their commands, spawn the daemon into its log, wait for it and signal it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::paths::stargate_bin;
use crate::process::wait_or_kill;
use crate::wait::wait_for;

/// The daemon's log file in its data dir.
pub(crate) const LOG_FILE: &str = "daemon.log";

/// A `stargate --data-dir DIR` command whose environment holds none of the caller's
/// `STARGATE_*` variables, so only the test configures the node.
pub(crate) fn stargate_command(dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(stargate_bin()?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STARGATE_") {
            cmd.env_remove(key);
        }
    }
    cmd.arg("--data-dir").arg(dir);
    Ok(cmd)
}

/// Spawns `cmd` (a `daemon` command) with its output appended to `DIR/daemon.log`.
pub(crate) fn spawn_daemon(mut cmd: Command, dir: &Path) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(LOG_FILE))
        .context("creating daemon.log")?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().context("daemon.log")?)
        .stderr(log)
        .spawn()
        .context("starting stargate daemon")
}

/// Polls `ready` until it gives a value; fails at once if the daemon exits, and after
/// `timeout`. Either failure carries the daemon's log.
pub(crate) fn wait_started<T>(
    child: &mut Child,
    dir: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> Result<T> {
    let mut exited = None;
    let value = wait_for(timeout, || match child.try_wait() {
        Ok(Some(status)) => {
            exited = Some(status);
            Some(None)
        }
        _ => ready().map(Some),
    });
    if let Some(status) = exited {
        bail!("the daemon exited ({status}); log:\n{}", read_log(dir));
    }
    value
        .ok()
        .flatten()
        .with_context(|| format!("the daemon did not start; log:\n{}", read_log(dir)))
}

/// SIGTERM, then waits up to `timeout` (and kills it after that).
pub(crate) fn terminate(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -TERM {} failed", child.id());
    }
    wait_or_kill(child, timeout)
}

/// SIGKILL and reap.
pub(crate) fn kill_now(mut child: Child) -> Result<()> {
    child.kill().context("killing the daemon")?;
    child.wait().context("reaping the daemon")?;
    Ok(())
}

/// What the daemon in `dir` logged so far.
pub(crate) fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default()
}
