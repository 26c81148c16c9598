//! Several real `stargate daemon`s on loopback: identity, swarm commands, the DHT in line and
//! star topologies, restarts, and connection limits under a burst of dials.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use stargate_tests::{DaemonOptions, StargateDaemon, free_loopback_port, peer_ids, wait_until};

/// Long enough for a DHT query on loopback under a loaded 2-core machine.
const DHT_TIMEOUT: Duration = Duration::from_secs(90);

/// Adds a fresh pseudo-random file on `node` and returns its CID.
fn add_file(node: &StargateDaemon, len: u64, seed: u64) -> Result<String> {
    Ok(node.add_file(len, seed)?.0)
}

fn wait_for_providers(
    node: &StargateDaemon,
    cid: &str,
    expected: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    node.wait_for_providers(cid, expected, DHT_TIMEOUT)
}

#[test]
fn identity_and_swarm_commands() -> Result<()> {
    let nodes = StargateDaemon::start_many(2)?;
    let (a, b) = (&nodes[0], &nodes[1]);

    let id = a.identity();
    ensure!(id.agent_version.starts_with("stargate/"), "{id:?}");
    for p in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/kad/1.0.0"] {
        ensure!(id.protocols.iter().any(|x| x == p), "{p} missing: {id:?}");
    }
    ensure!(
        id.addresses
            .iter()
            .all(|x| x.starts_with("/ip4/127.0.0.1/tcp/") && x.ends_with(&id.id)),
        "{id:?}"
    );

    // The key file: 0600, and never in the log.
    let key_path = a.dir().join("identity.key");
    let mode = std::fs::metadata(&key_path)?.permissions().mode() & 0o777;
    ensure!(mode == 0o600, "identity.key has mode {mode:o}");
    let key = std::fs::read(&key_path)?;
    let log = a.log();
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    ensure!(!log.contains(&hex), "the key appears in the log");

    a.connect(b)?;
    wait_until(Duration::from_secs(20), || {
        a.peers().is_ok_and(|p| p == [b.peer_id()]) && b.peers().is_ok_and(|p| p == [a.peer_id()])
    })?;
    // Connecting again to a connected peer succeeds.
    a.connect(b)?;
    // What identify told b about a.
    let seen: serde_json::Value = serde_json::from_str(&b.cli_ok(&["id", a.peer_id()])?)?;
    ensure!(seen["ID"] == a.peer_id(), "{seen}");
    ensure!(
        seen["AgentVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("stargate/")),
        "{seen}"
    );
    let verbose = a.cli_ok(&["swarm", "peers", "--verbose"])?;
    ensure!(verbose.contains("outbound"), "{verbose}");

    // Kademlia looks itself up half a second after a peer joins its routing table, and that
    // lookup dials the peer again: disconnect once both are done with it.
    wait_until(Duration::from_secs(20), || {
        [a, b]
            .iter()
            .all(|n| n.log().contains("DHT bootstrap done"))
    })?;
    b.cli_ok(&["swarm", "disconnect", &format!("/p2p/{}", a.peer_id())])?;
    wait_until(Duration::from_secs(20), || {
        a.peers().is_ok_and(|p| p.is_empty()) && b.peers().is_ok_and(|p| p.is_empty())
    })?;

    // Bad input is refused with a clear message and changes nothing.
    let out = a.cli(&["swarm", "connect", "not-a-multiaddr"])?;
    ensure!(!out.status.success(), "connecting to garbage succeeded");
    ensure!(
        out.stderr_str().contains("invalid argument"),
        "{}",
        out.stderr_str()
    );
    let out = a.cli(&["swarm", "disconnect", &format!("/p2p/{}", b.peer_id())])?;
    ensure!(
        out.stderr_str().contains("not connected"),
        "{}",
        out.stderr_str()
    );
    Ok(())
}

#[test]
fn network_commands_need_a_daemon() -> Result<()> {
    let dir = tempfile::tempdir()?;
    for args in [
        vec!["id"],
        vec!["swarm", "peers"],
        vec![
            "routing",
            "findprovs",
            "QmTN9kQpoyWurpJJCroExwsMfM9d1UN7R3Dek79cZ4gS67",
        ],
    ] {
        let out = stargate_tests::run_with_timeout(
            std::process::Command::new(stargate_tests::stargate_bin()?)
                .arg("--data-dir")
                .arg(dir.path())
                .args(&args),
            Duration::from_secs(30),
        )?;
        ensure!(!out.status.success(), "{args:?} succeeded without a daemon");
        ensure!(
            out.stderr_str().contains("needs a running daemon"),
            "{args:?}: {}",
            out.stderr_str()
        );
    }
    Ok(())
}

#[test]
fn line_of_five_finds_providers_across_hops() -> Result<()> {
    let nodes = StargateDaemon::start_line(5)?;
    let (first, last) = (&nodes[0], &nodes[4]);
    let cid = add_file(first, 1 << 20, 1)?;
    let found = wait_for_providers(last, &cid, &peer_ids(&[first]))?;
    ensure!(found == peer_ids(&[first]), "findprovs {cid}: {found:?}");
    Ok(())
}

#[test]
fn star_findprovs_names_exactly_the_providers() -> Result<()> {
    let nodes = StargateDaemon::start_star(5)?;
    let (shared, shared_path) = nodes[1].add_file(300_000, 7)?;
    ensure!(
        add_file(&nodes[3], 300_000, 7)? == shared,
        "same bytes, same CID"
    );
    let (alone, alone_path) = nodes[2].add_file(1_300_000, 8)?;

    let asker = &nodes[5];
    let found = wait_for_providers(asker, &shared, &peer_ids(&[&nodes[1], &nodes[3]]))?;
    ensure!(found == peer_ids(&[&nodes[1], &nodes[3]]), "{found:?}");
    let found = wait_for_providers(asker, &alone, &peer_ids(&[&nodes[2]]))?;
    ensure!(found == peer_ids(&[&nodes[2]]), "{found:?}");
    // `routing provide` of a block this node does not have is refused.
    let out = asker.cli(&["routing", "provide", &alone])?;
    ensure!(
        !out.status.success() && out.stderr_str().contains("not found locally"),
        "{}",
        out.stderr_str()
    );
    // The asker fetches both across the star, from the leaves that have them.
    for (cid, path) in [(&shared, &shared_path), (&alone, &alone_path)] {
        let out = asker.cli_with_timeout(&["cat", cid], DHT_TIMEOUT)?;
        ensure!(out.status.success(), "cat {cid}: {}", out.stderr_str());
        ensure!(
            out.stdout == std::fs::read(path)?,
            "cat {cid}: other bytes than the {} added",
            path.display()
        );
    }
    let transfer = asker.retrieved_blocks("transfer")?;
    ensure!(
        transfer >= 3 + 6,
        "{transfer} blocks came over the transfer"
    );
    Ok(())
}

#[test]
fn restart_keeps_identity_peering_and_reprovides() -> Result<()> {
    let hub_port = free_loopback_port()?;
    let hub = StargateDaemon::start(DaemonOptions {
        swarm_port: hub_port,
        ..DaemonOptions::default()
    })?;
    let node = StargateDaemon::start(DaemonOptions {
        peering: vec![hub.multiaddr()?],
        ..DaemonOptions::default()
    })?;
    let id = node.peer_id().to_owned();
    wait_until(Duration::from_secs(30), || {
        hub.peers().is_ok_and(|p| p.contains(&id))
    })
    .context("the peering peer was not dialled at start")?;
    let cid = add_file(&node, 200_000, 3)?;
    wait_for_providers(&hub, &cid, &[id.clone()].into())?;

    // The hub forgets every provider record when it restarts (they live in memory); the node
    // must come back with the same identity, dial its peering peer again and re-provide.
    let mut node = node;
    node.stop()?;
    let hub = hub.restart()?;
    ensure!(hub.findprovs(&cid)?.is_empty(), "the hub kept records");
    let node = node.restart()?;
    ensure!(node.peer_id() == id, "the peer ID changed on restart");
    wait_until(Duration::from_secs(30), || {
        hub.peers().is_ok_and(|p| p.contains(&id))
    })
    .context("the restarted node did not dial its peering peer")?;
    wait_for_providers(&hub, &cid, &[id.clone()].into())?;

    // A peering peer that goes away is dialled again when it is back.
    let hub = hub.restart()?;
    wait_until(Duration::from_secs(60), || {
        hub.peers().is_ok_and(|p| p.contains(&id))
    })
    .context("the node did not redial its peering peer after the peer restarted")?;
    Ok(())
}

#[test]
fn connection_limits_hold_under_a_burst_of_dials() -> Result<()> {
    const LOW: usize = 4;
    const HIGH: usize = 8;
    const DIALERS: usize = 16;
    let target = StargateDaemon::start(DaemonOptions {
        swarm: format!(
            "low_water = {LOW}\nhigh_water = {HIGH}\ngrace_period_sec = 10\nmax_per_peer = 1"
        ),
        ..DaemonOptions::default()
    })?;
    let dialers = StargateDaemon::start_many(DIALERS)?;
    let addr = target.multiaddr()?;

    let mut most = 0;
    let outcomes: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = dialers
            .iter()
            .map(|d| s.spawn(|| d.cli_ok(&["swarm", "connect", &addr]).is_ok()))
            .collect();
        // Sample while the dials land.
        while handles.iter().any(|h| !h.is_finished()) {
            if let Ok(n) = target.connection_count() {
                most = most.max(n);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(false))
            .collect()
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        most = most.max(target.connection_count()?);
    }
    ensure!(
        most <= HIGH,
        "{most} connections, above the high water mark {HIGH}"
    );
    ensure!(
        outcomes.iter().filter(|ok| **ok).count() >= HIGH / 2,
        "too few dials succeeded: {outcomes:?}"
    );
    eprintln!("connections at most: {most}; dials: {outcomes:?}");
    ensure!(
        most == HIGH,
        "the burst never reached the high water mark ({most})"
    );
    // Past the grace period the manager trims to the low water mark.
    wait_until(Duration::from_secs(30), || {
        target.connection_count().is_ok_and(|n| n <= LOW)
    })
    .context("connections were not trimmed to the low water mark")?;
    // Still answering.
    target.cli_ok(&["id"])?;
    Ok(())
}
