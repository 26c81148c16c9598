//! The guide's "100 concurrent users" against one daemon for a while: gateway reads of small and
//! large stored files, API adds and cats, together. Prints requests/s, MB/s and latency
//! quantiles by kind, for the gateway and the API, the 503s the node shed and the errors (wrong
//! or failed answers), and the daemon's resident memory. Run through
//! `scripts/bench-users.sh [USERS] [SECONDS]` (inside the loopback-only namespace, `STARGATE_BIN`
//! pointing at a release build).

use std::time::Duration;

use anyhow::{Context, Result};
use stargate_tests::{DaemonOptions, StargateDaemon, run_users};

fn main() -> Result<()> {
    const USAGE: &str = "usage: bench-users [USERS=100] [SECONDS=60]";
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().map_or(Ok(100), |a| a.parse()).context(USAGE)?;
    let secs: u64 = args.next().map_or(Ok(60), |a| a.parse()).context(USAGE)?;
    let daemon = StargateDaemon::start(DaemonOptions {
        env: vec![
            // The harness reads the gateway address from the "daemon ready" line.
            ("STARGATE_LOG".into(), "warn,stargate::daemon=info".into()),
        ],
        ..DaemonOptions::default()
    })?;
    let report = run_users(&daemon, users.max(1), Duration::from_secs(secs))?;
    print!("{report}");
    Ok(())
}
