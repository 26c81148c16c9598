//! Loopback ports and polling with a deadline.

use std::net::{Ipv4Addr, TcpListener};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it).
/// Another process may take it before the caller binds it; tests that can
/// let the program under test bind port 0 and report its address should.
pub fn free_loopback_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .context("cannot bind 127.0.0.1:0 to find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `f` until it returns true; fails after `timeout`.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Result<()> {
    wait_for(timeout, || f().then_some(()))
}

/// Polls `f` until it returns `Some`, and returns that value; fails after
/// `timeout`. `f` is called at least once.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        thread::sleep(POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_returns_the_first_value() {
        let mut calls = 0;
        let got = wait_for(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        })
        .unwrap();
        assert_eq!(got, 3);
    }

    #[test]
    fn wait_until_times_out() {
        let err = wait_until(Duration::from_millis(120), || false).unwrap_err();
        assert!(err.to_string().contains("not met"), "{err}");
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_loopback_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
