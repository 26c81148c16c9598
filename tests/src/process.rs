//! Running helper programs with a deadline.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// What a finished command printed.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    /// Stdout as UTF-8 (lossy), for messages and parsing.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Stderr as UTF-8 (lossy), for messages.
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Stdout of a command that must have succeeded; `what` names it in the error, which
    /// carries its stderr.
    ///
    /// # Errors
    /// It exited non-zero.
    pub fn ok_stdout(self, what: &str) -> Result<String> {
        if !self.status.success() {
            bail!(
                "{what} failed ({}): {}",
                self.status,
                self.stderr_str().trim()
            );
        }
        Ok(self.stdout_str())
    }
}

/// Runs `cmd` to completion with stdin closed, collecting stdout and stderr;
/// kills it and fails if it runs longer than `timeout`. A non-zero exit is
/// not an error here: the caller decides.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<CommandOutput> {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {shown}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_or_kill(&mut child, timeout).with_context(|| format!("running {shown}"))?;
    let stdout = stdout
        .join()
        .map_err(|_| anyhow::anyhow!("stdout reader panicked"))?;
    let stderr = stderr
        .join()
        .map_err(|_| anyhow::anyhow!("stderr reader panicked"))?;
    Ok(CommandOutput {
        status,
        stdout,
        stderr,
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error ends the capture; the exit status still tells the story.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` until `timeout`, then kills it and fails.
pub fn wait_or_kill(child: &mut Child, timeout: Duration) -> Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child process")? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {timeout:?} (killed)");
        }
        thread::sleep(Duration::from_millis(20));
    }
}
