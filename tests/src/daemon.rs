//! A real `stargate daemon` process on loopback, for multi-node tests.
//!
//! Each daemon gets its own data dir, a configuration that keeps it on 127.0.0.1 (API, gateway
//! and swarm on port 0, empty bootstrap list, mDNS, UPnP and AutoNAT off, the DHT in server
//! mode since no AutoNAT server on loopback would ever call it reachable), and its log in
//! `<data dir>/daemon.log`. The CLI is run against it with [`StargateDaemon::cli`]. The process
//! is killed when the value is dropped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use tempfile::TempDir;

use crate::data::write_pseudo_random_file;
use crate::launch::{read_log, spawn_daemon, stargate_command, terminate, wait_started};
use crate::process::{CommandOutput, run_with_timeout};
use crate::regtest::{BURN_ADDRESS, COINBASE_MATURITY, Regtest};
use crate::wait::wait_for;

/// From spawn to a daemon that answers `id`.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of one CLI call unless the caller gives one.
const CLI_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a SIGTERM may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start a [`StargateDaemon`].
#[derive(Debug, Clone, Default)]
pub struct DaemonOptions {
    /// TCP port of the swarm on 127.0.0.1; 0 lets the OS choose (a restart then gets another).
    pub swarm_port: u16,
    /// Multiaddrs (with `/p2p/`) for `[swarm] peering`.
    pub peering: Vec<String>,
    /// More TOML appended to the generated configuration: sections other than `[api]`,
    /// `[gateway]` and `[swarm]` (e.g. `[routing]`).
    pub extra_config: String,
    /// More `[swarm]` keys, one `key = value` per line.
    pub swarm: String,
    /// Extra environment variables for the daemon.
    pub env: Vec<(String, String)>,
}

/// What `stargate id` prints.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DaemonIdentity {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Addresses")]
    pub addresses: Vec<String>,
    #[serde(rename = "AgentVersion")]
    pub agent_version: String,
    #[serde(rename = "Protocols")]
    pub protocols: Vec<String>,
}

/// A running `stargate daemon`.
#[derive(Debug)]
pub struct StargateDaemon {
    child: Option<Child>,
    dir: PathBuf,
    options: DaemonOptions,
    identity: DaemonIdentity,
    // Declared last: removed after the child is gone.
    temp: Option<TempDir>,
}

impl StargateDaemon {
    /// Starts `n` daemons with default options, each in a fresh data dir.
    pub fn start_many(n: usize) -> Result<Vec<Self>> {
        (0..n)
            .map(|_| Self::start(DaemonOptions::default()))
            .collect()
    }

    /// Starts `n` daemons connected in a line (each to the next), so that the ends learn of
    /// each other only through the DHT. That may be before the caller asks anything: Kademlia
    /// looks itself up half a second after a peer joins its routing table, and that lookup
    /// walks the line.
    ///
    /// # Errors
    /// A daemon does not start or connect.
    pub fn start_line(n: usize) -> Result<Vec<Self>> {
        let nodes = Self::start_many(n)?;
        for pair in nodes.windows(2) {
            pair[0].connect(&pair[1])?;
        }
        Ok(nodes)
    }

    /// Starts a hub and `leaves` daemons connected to it; the hub comes first.
    ///
    /// # Errors
    /// A daemon does not start or connect.
    pub fn start_star(leaves: usize) -> Result<Vec<Self>> {
        let nodes = Self::start_many(leaves + 1)?;
        for leaf in &nodes[1..] {
            leaf.connect(&nodes[0])?;
        }
        Ok(nodes)
    }

    /// Starts a daemon in a fresh temporary data dir.
    pub fn start(options: DaemonOptions) -> Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix("stargate-node-")
            .tempdir()
            .context("creating a data dir")?;
        let dir = temp.path().to_path_buf();
        Self::start_in(dir, Some(temp), options)
    }

    fn start_in(dir: PathBuf, temp: Option<TempDir>, options: DaemonOptions) -> Result<Self> {
        std::fs::write(dir.join("config.toml"), config_for(&options))
            .context("writing config.toml")?;
        // A killed daemon leaves its API file behind. Were it there, the readiness probe's
        // `stargate id` would find no daemon at that address and open the store itself,
        // racing the starting daemon for the data dir's lock.
        match std::fs::remove_file(dir.join("api")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context("removing a stale API file");
            }
            _ => {}
        }
        let mut cmd = stargate_command(&dir)?;
        cmd.arg("daemon")
            .env("STARGATE_LOG", "info,stargate=debug")
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        let mut child = spawn_daemon(cmd, &dir)?;
        let started = wait_started(&mut child, &dir, START_TIMEOUT, || {
            api_identity(&dir, &options).ok()
        });
        let mut daemon = Self {
            child: Some(child),
            dir,
            options,
            identity: DaemonIdentity::default(),
            temp,
        };
        daemon.identity = started?;
        Ok(daemon)
    }

    /// Runs `stargate --data-dir <dir> ARGS` and returns what it printed, whatever its exit.
    pub fn cli(&self, args: &[&str]) -> Result<CommandOutput> {
        self.cli_with_timeout(args, CLI_TIMEOUT)
    }

    /// [`cli`](Self::cli) with a deadline.
    pub fn cli_with_timeout(&self, args: &[&str], timeout: Duration) -> Result<CommandOutput> {
        let mut cmd = cli_command(&self.dir, &self.options)?;
        cmd.args(args);
        run_with_timeout(&mut cmd, timeout)
    }

    /// Runs the CLI and returns its stdout; fails with its stderr on a non-zero exit.
    pub fn cli_ok(&self, args: &[&str]) -> Result<String> {
        self.cli(args)?
            .ok_stdout(&format!("stargate {}", args.join(" ")))
    }

    /// Writes `len` pseudo-random bytes (from `seed`) to `<data dir>/input-<seed>`, adds the
    /// file and returns its CID and path.
    pub fn add_file(&self, len: u64, seed: u64) -> Result<(String, PathBuf)> {
        let path = self.dir.join(format!("input-{seed}"));
        write_pseudo_random_file(&path, len, seed)?;
        let cid = self.cli_ok(&["add", "-Q", path.to_str().context("non-UTF-8 path")?])?;
        Ok((cid.trim().to_owned(), path))
    }

    /// Provider peer IDs one `routing findprovs` call finds for `cid`.
    pub fn findprovs(&self, cid: &str) -> Result<BTreeSet<String>> {
        Ok(self
            .cli_ok(&["routing", "findprovs", cid])?
            .lines()
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Polls `findprovs` until it names every peer of `expected`; fails after `timeout`.
    pub fn wait_for_providers(
        &self,
        cid: &str,
        expected: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<BTreeSet<String>> {
        wait_for(timeout, || {
            self.findprovs(cid)
                .ok()
                .filter(|found| expected.is_subset(found))
        })
        .with_context(|| format!("findprovs {cid} never found {expected:?}"))
    }

    /// The data dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The peer ID.
    pub fn peer_id(&self) -> &str {
        &self.identity.id
    }

    /// What `id` said at start.
    pub fn identity(&self) -> &DaemonIdentity {
        &self.identity
    }

    /// The first TCP listen address, with `/p2p/<id>`.
    pub fn multiaddr(&self) -> Result<String> {
        self.identity
            .addresses
            .iter()
            .find(|a| a.contains("/tcp/"))
            .cloned()
            .with_context(|| format!("no TCP address in {:?}", self.identity.addresses))
    }

    /// `swarm connect` to `other`.
    pub fn connect(&self, other: &StargateDaemon) -> Result<()> {
        self.cli_ok(&["swarm", "connect", &other.multiaddr()?])
            .map(drop)
    }

    /// Peer IDs of the connected peers (`swarm peers`), without duplicates.
    pub fn peers(&self) -> Result<Vec<String>> {
        let out = self.cli_ok(&["swarm", "peers"])?;
        let mut peers: Vec<String> = out
            .lines()
            .filter_map(|l| l.rsplit_once("/p2p/").map(|(_, p)| p.trim().to_owned()))
            .collect();
        peers.sort();
        peers.dedup();
        Ok(peers)
    }

    /// Connections listed by `swarm peers` (one line each).
    pub fn connection_count(&self) -> Result<usize> {
        Ok(self.cli_ok(&["swarm", "peers"])?.lines().count())
    }

    /// The gateway's base URL, from the "daemon ready" log line.
    pub fn gateway_url(&self) -> Result<String> {
        let log = self.log();
        let addr = log
            .lines()
            .filter(|l| l.contains("daemon ready"))
            .filter_map(|l| l.split("gateway=").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .next_back()
            .context("no `daemon ready` line with the gateway address in the log")?;
        Ok(format!("http://{addr}"))
    }

    /// The API's base URL (`http://127.0.0.1:PORT`), from the `api` file the daemon writes.
    pub fn api_url(&self) -> Result<String> {
        let addr = std::fs::read_to_string(self.dir.join("api")).context("reading the api file")?;
        Ok(format!("http://{}", addr.trim()))
    }

    /// The gateway's `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        let url = format!("{}/metrics", self.gateway_url()?);
        let answer = reqwest::blocking::Client::builder()
            .timeout(CLI_TIMEOUT)
            .no_proxy()
            .build()?
            .get(&url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        ensure!(
            answer.status().is_success(),
            "GET {url}: {}",
            answer.status()
        );
        Ok(answer.text()?)
    }

    /// Blocks this daemon fetched from peers over `path` (`transfer` or `bitswap`), from
    /// `stargate_retrieval_blocks_total` in its metrics (0 before the first one).
    pub fn retrieved_blocks(&self, path: &str) -> Result<u64> {
        let series = format!("stargate_retrieval_blocks_total{{path=\"{path}\"}} ");
        let text = self.metrics()?;
        match text.lines().find_map(|l| l.strip_prefix(&series)) {
            Some(n) => n
                .trim()
                .parse()
                .with_context(|| format!("{series}{n}: not a count")),
            None => Ok(0),
        }
    }

    /// Funds the daemon's wallet (its `[chain]` pointing at `regtest`): one coinbase to its
    /// address, matured, then waits until the wallet counts it as confirmed. Returns the address.
    ///
    /// # Errors
    /// Mining failed, or the balance stayed at zero for `timeout`.
    pub fn fund_wallet(
        &self,
        rt: &tokio::runtime::Runtime,
        regtest: &Regtest,
        timeout: Duration,
    ) -> Result<String> {
        let address = self.cli_ok(&["wallet", "address"])?.trim().to_owned();
        rt.block_on(regtest.mine_blocks(1, &address))?;
        rt.block_on(regtest.mine_blocks(COINBASE_MATURITY, BURN_ADDRESS))?;
        wait_for(timeout, || {
            let balance = self.cli_ok(&["wallet", "balance"]).ok()?;
            let confirmed: u64 = balance.lines().find_map(|l| {
                l.strip_prefix("confirmed ")?
                    .strip_suffix(" sat")?
                    .parse()
                    .ok()
            })?;
            (confirmed > 0).then_some(())
        })
        .with_context(|| format!("the wallet was never funded; log:\n{}", self.log()))?;
        Ok(address)
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        read_log(&self.dir)
    }

    /// The OS process ID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let exit = terminate(&mut child, STOP_TIMEOUT)?;
        if !exit.success() {
            bail!(
                "daemon exited with {exit} after SIGTERM; log:\n{}",
                self.log()
            );
        }
        Ok(())
    }

    /// SIGKILL: the process dies at once.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the daemon and starts it again on the same data dir and options (new ports).
    pub fn restart(mut self) -> Result<Self> {
        self.stop()?;
        let temp = self.temp.take();
        let dir = self.dir.clone();
        let options = self.options.clone();
        Self::start_in(dir, temp, options)
    }
}

/// The peer IDs of `nodes`.
pub fn peer_ids(nodes: &[&StargateDaemon]) -> BTreeSet<String> {
    nodes.iter().map(|n| n.peer_id().to_owned()).collect()
}

/// `stargate id` of the daemon holding `dir` (once its API file exists).
/// The CLI for the daemon in `dir`, as an operator runs it: the shell knows the daemon's API
/// key.
fn cli_command(dir: &Path, options: &DaemonOptions) -> Result<std::process::Command> {
    let mut cmd = stargate_command(dir)?;
    cmd.envs(
        options
            .env
            .iter()
            .filter(|(k, _)| k == "STARGATE_API_KEY")
            .map(|(k, v)| (k, v)),
    );
    Ok(cmd)
}

fn api_identity(dir: &Path, options: &DaemonOptions) -> Result<DaemonIdentity> {
    if !dir.join("api").exists() {
        bail!("no API yet");
    }
    let mut cmd = cli_command(dir, options)?;
    cmd.arg("id");
    let out = run_with_timeout(&mut cmd, CLI_TIMEOUT)?.ok_stdout("stargate id")?;
    serde_json::from_str(&out).context("parsing `stargate id`")
}

impl Drop for StargateDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `[swarm]` keys (TOML values) that keep a test node off every network but loopback: no
/// bootstrap peers, no mDNS, UPnP, AutoNAT or relays, and the DHT in server mode (no AutoNAT
/// server on loopback would ever call it reachable).
pub(crate) const LOOPBACK_SWARM: &[(&str, &str)] = &[
    ("bootstrap", "[]"),
    ("mdns", "false"),
    ("upnp", "false"),
    ("autonat", "false"),
    ("relay_client", "false"),
    ("hole_punching", "false"),
    ("kad_mode", "\"server\""),
];

fn config_for(options: &DaemonOptions) -> String {
    let peering = options
        .peering
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"[api]
addr = "127.0.0.1:0"

[gateway]
addr = "127.0.0.1:0"

[swarm]
listen = ["/ip4/127.0.0.1/tcp/{port}"]
peering = [{peering}]
{loopback}
{swarm}

{extra}
"#,
        port = options.swarm_port,
        loopback = LOOPBACK_SWARM
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        swarm = options.swarm,
        extra = options.extra_config,
    )
}
