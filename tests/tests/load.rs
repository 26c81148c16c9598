//! Many users at once (the guide's production checklist): a hundred users get right answers and
//! no errors from the gateway and the API together, with the daemon's memory bounded; past its
//! configured limits the node answers 503 with `Retry-After` instead of failing, and stays up.

use std::time::Duration;

use anyhow::{Result, ensure};
use stargate_tests::{DaemonOptions, Kind, StargateDaemon, run_users};

/// Memory the daemon may use under the load, idle included: the block cache (64 MiB), the
/// requests' buffers and the store's pages, with room to spare; a leak or an unbounded queue
/// goes far past it within seconds.
const RSS_BOUND: u64 = 512 << 20;

#[test]
fn a_hundred_users_get_right_answers_and_no_errors() -> Result<()> {
    let daemon = StargateDaemon::start(DaemonOptions::default())?;
    let report = run_users(&daemon, 100, Duration::from_secs(10))?;
    println!("{report}");
    let all = report.total(None);
    ensure!(all.errors == 0, "errors under load:\n{report}");
    ensure!(all.shed == 0, "shed below the default limits:\n{report}");
    for kind in [
        Kind::GatewaySmall,
        Kind::GatewayLarge,
        Kind::ApiAdd,
        Kind::ApiCat,
    ] {
        let served = report.by_kind.get(&kind).map_or(0, |t| t.served.len());
        ensure!(served >= 20, "{kind:?} served only {served}:\n{report}");
    }
    ensure!(
        report.peak_rss < RSS_BOUND,
        "RSS {} MiB under load:\n{report}",
        report.peak_rss >> 20
    );
    Ok(())
}

#[test]
fn past_its_limits_the_node_sheds_load_and_stays_up() -> Result<()> {
    let daemon = StargateDaemon::start(DaemonOptions {
        env: vec![
            (
                "STARGATE_GATEWAY_MAX_CONCURRENT_REQUESTS".into(),
                "4".into(),
            ),
            ("STARGATE_GATEWAY_MAX_WAITING_REQUESTS".into(), "4".into()),
        ],
        ..DaemonOptions::default()
    })?;
    let report = run_users(&daemon, 100, Duration::from_secs(5))?;
    println!("{report}");
    let all = report.total(None);
    ensure!(all.errors == 0, "failures instead of 503s:\n{report}");
    ensure!(
        all.shed > 0,
        "nothing shed with 4 slots for 100 users:\n{report}"
    );
    for gateway in [true, false] {
        let t = report.total(Some(gateway));
        ensure!(
            t.served.len() >= 10 && t.shed > 0,
            "gateway={gateway}: served {} shed {}:\n{report}",
            t.served.len(),
            t.shed
        );
    }
    // Still serving, and the shed requests are counted by listener.
    daemon.cli_ok(&["id"])?;
    let metrics = daemon.metrics()?;
    for listener in ["gateway", "api"] {
        let counted: u64 = metrics
            .lines()
            .filter(|l| {
                l.starts_with("http_requests_shed_total{")
                    && l.contains(&format!("listener=\"{listener}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        ensure!(
            counted > 0,
            "no shed requests counted for {listener}:\n{metrics}"
        );
    }
    Ok(())
}
