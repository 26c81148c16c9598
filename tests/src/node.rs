//! A `stargate` node under test: its own temporary data dir, the CLI run against it, and its
//! daemon started, stopped, killed and restarted on loopback ports.

use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::daemon::LOOPBACK_SWARM;
use crate::launch::{kill_now, read_log, spawn_daemon, stargate_command, terminate, wait_started};
use crate::process::{CommandOutput, run_with_timeout};
use crate::wait::free_loopback_port;

/// How long a CLI command may take in tests.
const CLI_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a daemon may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One node: a data dir, and a daemon when started.
#[derive(Debug)]
pub struct StargateNode {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    api_port: u16,
    gateway_port: u16,
    extra_args: Vec<String>,
}

impl StargateNode {
    /// A node with a fresh data dir and no daemon; CLI commands open the store directly.
    ///
    /// # Errors
    /// The temp dir cannot be made or no loopback port is free.
    pub fn new() -> Result<Self> {
        Ok(Self {
            dir: tempfile::tempdir().context("creating a data dir")?,
            daemon: None,
            api_port: free_loopback_port()?,
            gateway_port: free_loopback_port()?,
            extra_args: Vec::new(),
        })
    }

    /// The data dir.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The gateway's base URL (`http://127.0.0.1:<port>`).
    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// The API's base URL.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api_port)
    }

    /// A `stargate` command with `--data-dir` set and the environment cleared of `STARGATE_*`.
    pub fn command(&self) -> Result<Command> {
        let mut cmd = stargate_command(self.dir.path())?;
        // The swarm on 127.0.0.1 only, off every other network (see LOOPBACK_SWARM).
        cmd.env("STARGATE_SWARM_LISTEN", "[\"/ip4/127.0.0.1/tcp/0\"]");
        for (key, value) in LOOPBACK_SWARM {
            cmd.env(format!("STARGATE_SWARM_{}", key.to_uppercase()), value);
        }
        Ok(cmd)
    }

    /// Runs a CLI command, whatever its exit status.
    ///
    /// # Errors
    /// It could not run or timed out.
    pub fn cli(&self, args: &[&str]) -> Result<CommandOutput> {
        let mut cmd = self.command()?;
        cmd.args(args);
        run_with_timeout(&mut cmd, CLI_TIMEOUT)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    ///
    /// # Errors
    /// It failed, with its stderr in the message.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        self.cli(args)?
            .ok_stdout(&format!("stargate {}", args.join(" ")))
    }

    /// Runs a CLI command that must fail; returns its stderr.
    ///
    /// # Errors
    /// It succeeded.
    pub fn cli_err(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if out.status.success() {
            bail!(
                "stargate {} succeeded but should have failed: {}",
                args.join(" "),
                out.stdout_str()
            );
        }
        Ok(out.stderr_str())
    }

    /// Extra arguments for every `daemon` start (e.g. swarm flags).
    pub fn daemon_args(&mut self, args: &[&str]) -> &mut Self {
        self.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        self
    }

    /// Starts the daemon on loopback ports and waits until its API answers.
    ///
    /// # Errors
    /// It exited or did not answer in time.
    pub fn start(&mut self) -> Result<()> {
        if self.daemon.is_some() {
            bail!("the daemon is already running");
        }
        let mut cmd = self.command()?;
        cmd.arg("daemon")
            .arg("--api-addr")
            .arg(format!("127.0.0.1:{}", self.api_port))
            .arg("--gateway-addr")
            .arg(format!("127.0.0.1:{}", self.gateway_port))
            .args(&self.extra_args);
        let mut child = spawn_daemon(cmd, self.dir.path())?;
        let health = format!("{}/health", self.api_url());
        let started = wait_started(&mut child, self.dir.path(), START_TIMEOUT, || {
            reqwest::blocking::get(&health)
                .is_ok_and(|r| r.status().is_success())
                .then_some(())
        });
        if started.is_ok() {
            self.daemon = Some(child);
        } else {
            let _ = kill_now(child);
        }
        started
    }

    /// Stops the daemon with SIGTERM and returns its exit status.
    ///
    /// # Errors
    /// No daemon runs, or it did not exit in time.
    pub fn stop(&mut self) -> Result<ExitStatus> {
        let mut child = self.daemon.take().context("no daemon is running")?;
        terminate(&mut child, Duration::from_secs(30))
    }

    /// Kills the daemon with SIGKILL.
    ///
    /// # Errors
    /// No daemon runs.
    pub fn kill9(&mut self) -> Result<()> {
        kill_now(self.daemon.take().context("no daemon is running")?)
    }

    /// The daemon's process, while it runs.
    pub fn daemon_mut(&mut self) -> Option<&mut Child> {
        self.daemon.as_mut()
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }
}

impl Drop for StargateNode {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
