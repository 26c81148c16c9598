//! Configuration: a TOML file in the data dir, overridden by `STARGATE_*` environment variables,
//! overridden by flags.
//!
//! The commented default file (`default-config.toml`) is the single source of the defaults: it is
//! what `stargate init` writes and what [`Config::default`] parses, so documentation and
//! behaviour cannot drift apart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use zeroize::Zeroizing;

/// The commented default configuration file.
pub(crate) const DEFAULT_CONFIG: &str = include_str!("default-config.toml");

/// Name of the configuration file inside the data dir.
pub(crate) const CONFIG_FILE: &str = "config.toml";

const ENV_PREFIX: &str = "STARGATE_";

/// Environment variables that are not configuration keys (they are read elsewhere).
const ENV_NOT_KEYS: &[&str] = &["STARGATE_DATA_DIR", "STARGATE_LOG"];

/// Other names for configuration variables: (alias, canonical name). Setting both to different
/// values is an error.
const ENV_ALIASES: &[(&str, &str)] = &[(
    // The guide's name for the network.
    "STARGATE_BITCOIN_NETWORK",
    "STARGATE_CHAIN_BITCOIN_NETWORK",
)];

/// `Authorization: Bearer` key of `POST /api/v1/anchors` (the guide's `stargate-api-key`).
const ENV_API_KEY: &str = "STARGATE_API_KEY";
/// Password of `[chain] rpc_user`.
const ENV_RPC_PASSWORD: &str = "STARGATE_CHAIN_RPC_PASSWORD";
/// Extended private key of the anchoring wallet.
const ENV_WALLET_KEY: &str = "STARGATE_CHAIN_WALLET_KEY";
/// `Authorization: Bearer` token of the ingestion pull API (the guide's `stargate-ingest-token`).
const ENV_INGEST_TOKEN: &str = "STARGATE_INGEST_TOKEN";
/// HMAC key of the stego approval callback (the guide's `starlight-stego-callback-secret`).
const ENV_STEGO_CALLBACK_SECRET: &str = "STARGATE_STEGO_CALLBACK_SECRET";
/// Suffix of a variable that names a file holding a secret (how Kubernetes mounts secrets).
const FILE_SUFFIX: &str = "_FILE";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) api: ApiConfig,
    pub(crate) gateway: GatewayConfig,
    pub(crate) swarm: SwarmConfig,
    pub(crate) routing: RoutingConfig,
    pub(crate) transfer: TransferConfig,
    pub(crate) pubsub: PubsubConfig,
    pub(crate) store: StoreConfig,
    pub(crate) daemon: DaemonConfig,
    pub(crate) log: LogConfig,
    pub(crate) chain: ChainSection,
    pub(crate) ipfs: IpfsSection,
}

/// `[ipfs]`: mirroring between instances, under the guide's `stargate.ipfs.*` names in snake
/// case (so `STARGATE_IPFS_MIRROR_TOPIC` is the guide's `mirrorTopic`). `mirror::Settings`
/// checks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IpfsSection {
    /// The guide's `apiUrl`: accepted so the guide's values map one to one, unused.
    pub(crate) api_url: String,
    pub(crate) mirror_enabled: bool,
    pub(crate) mirror_upload_enabled: bool,
    pub(crate) mirror_download_enabled: bool,
    pub(crate) mirror_topic: String,
    pub(crate) stego_topic: String,
    pub(crate) mirror_poll_interval_sec: u64,
    pub(crate) mirror_publish_interval_sec: u64,
    pub(crate) mirror_max_files: usize,
    pub(crate) http_timeout_sec: u64,
    pub(crate) mirror_max_bytes: u64,
    pub(crate) mirror_peers: Vec<String>,
    pub(crate) mirror_deny_peers: Vec<String>,
    pub(crate) mirror_rate_per_min: u32,
    pub(crate) mirror_queue_max: u64,
    pub(crate) mirror_concurrency: usize,
    pub(crate) mirror_max_attempts: u32,
    pub(crate) mirror_retry_base_sec: u64,
    pub(crate) sync_enabled: bool,
    pub(crate) stego_announce_enabled: bool,
    pub(crate) stego_sync_enabled: bool,
    pub(crate) stego_sync_interval_sec: u64,
    pub(crate) ingest_sync_enabled: bool,
    pub(crate) ingest_sync_interval_sec: u64,
    pub(crate) ingest_sync_max_entries: usize,
}

/// `[chain]`: Bitcoin anchoring. Empty URLs mean "not set"; `chain::settings` turns this into
/// the chain crate's configuration and checks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChainSection {
    pub(crate) bitcoin_network: String,
    pub(crate) electrum_url: String,
    pub(crate) electrum_validate_domain: bool,
    pub(crate) rpc_url: String,
    pub(crate) rpc_cookie: String,
    pub(crate) rpc_user: String,
    pub(crate) anchor_batch_interval_sec: u64,
    pub(crate) anchor_batch_max: usize,
    pub(crate) fee_floor_sat_vb: f64,
    pub(crate) fee_ceiling_sat_vb: f64,
    pub(crate) fee_fallback_sat_vb: f64,
    pub(crate) fee_target_blocks: u16,
    pub(crate) rbf_after_sec: u64,
    pub(crate) rebroadcast_after_sec: u64,
    pub(crate) poll_interval_sec: u64,
    pub(crate) scan_anchors: bool,
}

/// Secrets, read from the environment only (never from the file or flags), never logged.
#[derive(Default)]
pub(crate) struct Secrets {
    /// `STARGATE_API_KEY`.
    pub(crate) api_key: Option<Zeroizing<String>>,
    /// `STARGATE_CHAIN_RPC_PASSWORD`.
    pub(crate) rpc_password: Option<Zeroizing<String>>,
    /// `STARGATE_CHAIN_WALLET_KEY`.
    pub(crate) wallet_key: Option<Zeroizing<String>>,
    /// `STARGATE_INGEST_TOKEN`, or the file named by `STARGATE_INGEST_TOKEN_FILE`.
    pub(crate) ingest_token: Option<Zeroizing<String>>,
    /// `STARGATE_STEGO_CALLBACK_SECRET`, or the file named by
    /// `STARGATE_STEGO_CALLBACK_SECRET_FILE`.
    pub(crate) stego_callback_secret: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<Zeroizing<String>>| if s.is_some() { "<set>" } else { "<unset>" };
        f.debug_struct("Secrets")
            .field("api_key", &set(&self.api_key))
            .field("rpc_password", &set(&self.rpc_password))
            .field("wallet_key", &set(&self.wallet_key))
            .field("ingest_token", &set(&self.ingest_token))
            .field("stego_callback_secret", &set(&self.stego_callback_secret))
            .finish()
    }
}

impl Secrets {
    /// The secrets among `env`; empty values count as unset. Each may instead be in a file
    /// named by the variable with `_FILE` appended (how Kubernetes mounts secrets; one trailing
    /// newline is not part of the secret); setting both ways is an error, and so is a file that
    /// cannot be read.
    pub(crate) fn from_env(env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut secrets = Self::default();
        let mut files = Vec::new();
        for (name, value) in env {
            if value.is_empty() {
                continue;
            }
            if let Some(base) = name.strip_suffix(FILE_SUFFIX)
                && secrets.slot(base).is_some()
            {
                files.push((base.to_owned(), PathBuf::from(value)));
                continue;
            }
            let Some(slot) = secrets.slot(&name) else {
                continue;
            };
            *slot = Some(Zeroizing::new(value));
        }
        for (base, path) in files {
            let Some(slot) = secrets.slot(&base) else {
                continue;
            };
            if slot.is_some() {
                bail!("{base} and {base}{FILE_SUFFIX} are both set; set only one");
            }
            *slot = read_secret_file(&path).with_context(|| {
                format!(
                    "{base} from {} (named by {base}{FILE_SUFFIX})",
                    path.display()
                )
            })?;
        }
        Ok(secrets)
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<Zeroizing<String>>> {
        Some(match name {
            ENV_API_KEY => &mut self.api_key,
            ENV_RPC_PASSWORD => &mut self.rpc_password,
            ENV_WALLET_KEY => &mut self.wallet_key,
            ENV_INGEST_TOKEN => &mut self.ingest_token,
            ENV_STEGO_CALLBACK_SECRET => &mut self.stego_callback_secret,
            _ => return None,
        })
    }
}

/// A secret kept in a file: its text without one trailing newline; an empty file is no secret.
pub(crate) fn read_secret_file(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let mut text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    Ok(Some(text).filter(|t| !t.is_empty()))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiConfig {
    pub(crate) addr: SocketAddr,
    /// Listening beyond loopback with no API key and no named secret is allowed.
    pub(crate) allow_anonymous: bool,
    /// Kubo's `API.Authorizations`, by name.
    #[serde(default)]
    pub(crate) authorizations: std::collections::BTreeMap<String, AuthorizationConfig>,
}

/// One of Kubo's `API.Authorizations`: a secret and the path prefixes it may call.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthorizationConfig {
    /// Kubo's `AuthSecret`: `bearer:<token>` or `basic:<user>:<password>`.
    auth_secret: Option<String>,
    /// A file holding the same (a mounted secret).
    auth_secret_file: Option<PathBuf>,
    pub(crate) allowed_paths: Vec<String>,
}

impl std::fmt::Debug for AuthorizationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationConfig")
            .field("auth_secret", &self.auth_secret.as_ref().map(|_| "<set>"))
            .field("auth_secret_file", &self.auth_secret_file)
            .field("allowed_paths", &self.allowed_paths)
            .finish()
    }
}

impl AuthorizationConfig {
    /// The secret, from the file or inline (exactly one of the two).
    pub(crate) fn secret(&self, name: &str) -> Result<Zeroizing<String>> {
        let secret = match (&self.auth_secret, &self.auth_secret_file) {
            (Some(s), None) => Some(Zeroizing::new(s.clone())),
            (None, Some(path)) => read_secret_file(path)
                .with_context(|| format!("[api.authorizations.{name}] auth_secret_file"))?,
            _ => bail!(
                "[api.authorizations.{name}] needs exactly one of auth_secret and auth_secret_file"
            ),
        };
        secret.with_context(|| format!("[api.authorizations.{name}]: the secret is empty"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GatewayConfig {
    pub(crate) addr: SocketAddr,
    pub(crate) http_timeout_sec: u64,
    pub(crate) max_concurrent_requests: usize,
    pub(crate) max_waiting_requests: usize,
    pub(crate) stego_callback: bool,
}

/// `[swarm]`: the libp2p swarm. Addresses stay text here; `p2p::Settings` parses and checks them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwarmConfig {
    pub(crate) listen: Vec<String>,
    pub(crate) announce: Vec<String>,
    pub(crate) bootstrap: Vec<String>,
    pub(crate) peering: Vec<String>,
    pub(crate) mdns: bool,
    pub(crate) upnp: bool,
    pub(crate) autonat: bool,
    pub(crate) relay_client: bool,
    pub(crate) hole_punching: bool,
    pub(crate) kad_mode: KadMode,
    pub(crate) low_water: u32,
    pub(crate) high_water: u32,
    pub(crate) grace_period_sec: u64,
    pub(crate) max_pending: u32,
    pub(crate) max_per_peer: u32,
    pub(crate) max_memory_mib: u64,
    pub(crate) bitswap_blocks_per_sec_per_peer: u32,
}

/// `[swarm] kad_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum KadMode {
    /// Server once AutoNAT (or an announced address) says the node is reachable.
    Auto,
    Server,
    Client,
}

/// `[routing]`: providing and retrieval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoutingConfig {
    pub(crate) provide_strategy: ProvideStrategy,
    pub(crate) reprovide_interval_sec: u64,
    pub(crate) provide_concurrency: usize,
    pub(crate) provide_queue: usize,
    pub(crate) fetch_timeout_sec: u64,
    pub(crate) fetch_concurrency: usize,
}

/// `[transfer]`: the limits of the CAR transfer between Stargate nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferConfig {
    pub(crate) max_served_per_peer: usize,
    pub(crate) max_served: usize,
    pub(crate) max_fetches: usize,
    pub(crate) max_in_flight_mib: usize,
    pub(crate) stall_timeout_sec: u64,
    pub(crate) max_resumes: u32,
    pub(crate) serve_bytes_per_sec: u64,
}

/// `[pubsub]`: gossipsub, Kubo's pubsub (`p2p::Settings` checks it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PubsubConfig {
    pub(crate) enabled: bool,
    pub(crate) max_topics: usize,
    pub(crate) max_subscribers: usize,
    pub(crate) max_peer_topics: usize,
    pub(crate) max_subscriptions_per_request: usize,
}

/// `[routing] provide_strategy`: which CIDs get provider records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProvideStrategy {
    /// The CIDs of pins.
    Roots,
    /// Every block of pinned DAGs.
    Pinned,
    /// Every stored block.
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreConfig {
    pub(crate) hash_on_read: bool,
    pub(crate) block_cache_mib: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DaemonConfig {
    pub(crate) shutdown_timeout_sec: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogConfig {
    pub(crate) format: LogFormat,
    pub(crate) level: String,
}

impl Default for Config {
    fn default() -> Self {
        // The embedded file is checked by a unit test; failing here is a build defect.
        toml::from_str(DEFAULT_CONFIG).expect("embedded default configuration parses")
    }
}

impl Config {
    /// Loads `<data_dir>/config.toml` (the defaults when it does not exist), then applies
    /// `STARGATE_*` variables from `env`.
    pub(crate) fn load(
        data_dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let path = data_dir.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_CONFIG.to_owned(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Self::from_sources(&text, env).with_context(|| format!("in {}", path.display()))
    }

    fn from_sources(file: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut value: toml::Table = toml::from_str(DEFAULT_CONFIG).context("default config")?;
        let file: toml::Table = toml::from_str(file).context("invalid TOML")?;
        merge(&mut value, file);
        for (name, raw) in resolve_aliases(env.into_iter().collect())? {
            apply_env(&mut value, &name, &raw)?;
        }
        toml::Value::Table(value)
            .try_into()
            .context("invalid configuration")
    }
}

/// Writes the commented default configuration into `data_dir` unless a file is already there.
/// Returns whether it wrote one.
pub(crate) fn write_default(data_dir: &Path) -> Result<bool> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = data_dir.join(CONFIG_FILE);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            use std::io::Write;
            f.write_all(DEFAULT_CONFIG.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

/// The data dir: `--data-dir` / `STARGATE_DATA_DIR` (clap handles both), else `~/.stargate`.
pub(crate) fn data_dir(flag: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("HOME is not set: pass --data-dir or set STARGATE_DATA_DIR")?;
    Ok(PathBuf::from(home).join(".stargate"))
}

/// Overlays `over` onto `base`, recursing into tables.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Renames aliased variables to their canonical names.
fn resolve_aliases(mut env: Vec<(String, String)>) -> Result<Vec<(String, String)>> {
    for (alias, canonical) in ENV_ALIASES {
        let Some(at) = env.iter().position(|(k, _)| k == alias) else {
            continue;
        };
        let (_, value) = env.swap_remove(at);
        match env.iter().find(|(k, _)| k == canonical) {
            Some((_, other)) if *other != value => {
                bail!("{alias}={value:?} and {canonical}={other:?} disagree; set only one")
            }
            Some(_) => {}
            None => env.push(((*canonical).to_owned(), value)),
        }
    }
    Ok(env)
}

/// Applies one environment variable if it names a key of the configuration. A variable that
/// names a section but no key in it is an error, so that a typo does not silently do nothing;
/// one that names no section belongs to something else (scripts, the instance) and is ignored.
fn apply_env(value: &mut toml::Table, name: &str, raw: &str) -> Result<()> {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return Ok(());
    };
    if ENV_NOT_KEYS.contains(&name) || is_secret(name) {
        return Ok(());
    }
    let rest = rest.to_ascii_lowercase();
    let mut names_a_section = false;
    for (section, table) in value.iter_mut() {
        let Some(key) = rest.strip_prefix(&format!("{section}_")) else {
            continue;
        };
        let toml::Value::Table(table) = table else {
            continue;
        };
        names_a_section = true;
        if let Some(slot) = table.get_mut(key) {
            *slot = parse_env_value(raw);
            return Ok(());
        }
    }
    if names_a_section {
        bail!("{name} is not a configuration key (see `stargate init` for the list)")
    }
    Ok(())
}

/// Secrets are read where they are used ([`Secrets`]), never through the configuration tables.
/// (`STARGATE_CHAIN_RPC_COOKIE` names a file, not a secret: it is `[chain] rpc_cookie`.)
fn is_secret(name: &str) -> bool {
    let name = name.strip_suffix(FILE_SUFFIX).unwrap_or(name);
    ["KEY", "TOKEN", "SECRET", "PASSWORD"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn parse_env_value(raw: &str) -> toml::Value {
    // A TOML literal if it is one (`true`, `30`, `"x"`, `[..]`), else the text as a string.
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn embedded_defaults_parse() {
        let c = Config::default();
        assert_eq!(c.api.addr.to_string(), "127.0.0.1:5001");
        assert_eq!(c.gateway.addr.to_string(), "127.0.0.1:8080");
        assert!(!c.store.hash_on_read);
        assert_eq!(c.store.block_cache_mib, 64);
        assert_eq!(c.swarm.kad_mode, KadMode::Auto);
        assert!(c.swarm.mdns && !c.swarm.bootstrap.is_empty());
        assert!(c.swarm.low_water < c.swarm.high_water);
        assert_eq!(c.routing.provide_strategy, ProvideStrategy::Roots);
        assert_eq!(c.routing.reprovide_interval_sec, 22 * 3600);
    }

    #[test]
    fn swarm_lists_from_env() {
        let c = Config::from_sources(
            "",
            env(&[
                ("STARGATE_SWARM_BOOTSTRAP", "[]"),
                ("STARGATE_SWARM_MDNS", "false"),
                ("STARGATE_SWARM_KAD_MODE", "server"),
                ("STARGATE_ROUTING_PROVIDE_STRATEGY", "all"),
                ("STARGATE_SWARM_LISTEN", r#"["/ip4/127.0.0.1/tcp/0"]"#),
            ]),
        )
        .unwrap();
        assert!(c.swarm.bootstrap.is_empty());
        assert!(!c.swarm.mdns);
        assert_eq!(c.swarm.kad_mode, KadMode::Server);
        assert_eq!(c.routing.provide_strategy, ProvideStrategy::All);
        assert_eq!(c.swarm.listen, ["/ip4/127.0.0.1/tcp/0"]);
        assert!(Config::from_sources("", env(&[("STARGATE_SWARM_KAD_MODE", "maybe")])).is_err());
    }

    #[test]
    fn file_then_env_override() {
        let file = "[gateway]\naddr = \"127.0.0.1:9000\"\nhttp_timeout_sec = 5\n";
        let c = Config::from_sources(
            file,
            env(&[
                ("STARGATE_GATEWAY_HTTP_TIMEOUT_SEC", "7"),
                ("STARGATE_STORE_HASH_ON_READ", "true"),
                ("STARGATE_STORE_BLOCK_CACHE_MIB", "0"),
                ("STARGATE_LOG_FORMAT", "json"),
                ("STARGATE_DATA_DIR", "/elsewhere"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(c.gateway.addr.port(), 9000);
        assert_eq!(c.gateway.http_timeout_sec, 7);
        assert!(c.store.hash_on_read);
        assert_eq!(c.store.block_cache_mib, 0);
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(Config::from_sources("[gateway]\nadress = \"x\"\n", env(&[])).is_err());
        assert!(Config::from_sources("", env(&[("STARGATE_GATEWAY_ADRESS", "x")])).is_err());
        // Outside every section: someone else's variable.
        assert!(Config::from_sources("", env(&[("STARGATE_TEST_SKIP_LINT", "1")])).is_ok());
        assert!(Config::from_sources("", env(&[("STARGATE_GATEWAY_ADDR", "nonsense")])).is_err());
    }

    #[test]
    fn secrets_are_not_config_keys() {
        assert!(Config::from_sources("", env(&[("STARGATE_API_KEY", "s3cret")])).is_ok());
    }

    #[test]
    fn chain_from_env_and_alias() {
        let c = Config::default();
        assert_eq!(c.chain.bitcoin_network, "mainnet");
        assert!(c.chain.electrum_url.is_empty() && c.chain.rpc_url.is_empty());
        let c = Config::from_sources(
            "",
            env(&[
                ("STARGATE_BITCOIN_NETWORK", "regtest"),
                ("STARGATE_CHAIN_RPC_URL", "http://127.0.0.1:18443"),
                ("STARGATE_CHAIN_RPC_COOKIE", "/tmp/x/.cookie"),
                ("STARGATE_CHAIN_RPC_USER", "alice"),
                ("STARGATE_CHAIN_RPC_PASSWORD", "hunter2"),
                ("STARGATE_CHAIN_WALLET_KEY", "tprv..."),
                ("STARGATE_CHAIN_ANCHOR_BATCH_MAX", "10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.chain.bitcoin_network, "regtest");
        assert_eq!(c.chain.rpc_url, "http://127.0.0.1:18443");
        assert_eq!(c.chain.rpc_cookie, "/tmp/x/.cookie");
        assert_eq!(c.chain.rpc_user, "alice");
        assert_eq!(c.chain.anchor_batch_max, 10);
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = Config::from_sources(
            "[chain]\nelectrum_url = \"tcp://127.0.0.1:50001\"\n",
            env(&[
                ("STARGATE_BITCOIN_NETWORK", "signet"),
                ("STARGATE_CHAIN_BITCOIN_NETWORK", "signet"),
            ]),
        )
        .unwrap();
        assert_eq!(c.chain.bitcoin_network, "signet");
        assert_eq!(c.chain.electrum_url, "tcp://127.0.0.1:50001");
        assert!(
            Config::from_sources(
                "",
                env(&[
                    ("STARGATE_BITCOIN_NETWORK", "signet"),
                    ("STARGATE_CHAIN_BITCOIN_NETWORK", "regtest"),
                ]),
            )
            .is_err()
        );
    }

    #[test]
    fn secrets_come_from_env_only_and_stay_hidden() {
        let s = Secrets::from_env(env(&[
            ("STARGATE_API_KEY", "k3y"),
            ("STARGATE_CHAIN_RPC_PASSWORD", ""),
            ("STARGATE_CHAIN_WALLET_KEY", "tprv8x"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(s.api_key.as_deref().map(String::as_str), Some("k3y"));
        assert!(s.rpc_password.is_none());
        assert_eq!(s.wallet_key.as_deref().map(String::as_str), Some("tprv8x"));
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("k3y") && !shown.contains("tprv8x"),
            "{shown}"
        );
    }

    #[test]
    fn ingest_token_and_callback_secret_from_env_or_files() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "t0ken-from-file\n").unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "s3cret\n\n").unwrap();
        let token_path = token_file.to_str().unwrap();
        let s = Secrets::from_env(env(&[
            ("STARGATE_INGEST_TOKEN_FILE", token_path),
            (
                "STARGATE_STEGO_CALLBACK_SECRET_FILE",
                secret_file.to_str().unwrap(),
            ),
        ]))
        .unwrap();
        assert_eq!(
            s.ingest_token.as_deref().map(String::as_str),
            Some("t0ken-from-file")
        );
        // Only one trailing newline goes.
        assert_eq!(
            s.stego_callback_secret.as_deref().map(String::as_str),
            Some("s3cret\n")
        );
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("t0ken") && !shown.contains("s3cret"),
            "{shown}"
        );
        let s = Secrets::from_env(env(&[("STARGATE_INGEST_TOKEN", "plain")])).unwrap();
        assert_eq!(s.ingest_token.as_deref().map(String::as_str), Some("plain"));
        assert!(s.stego_callback_secret.is_none());
        let both = Secrets::from_env(env(&[
            ("STARGATE_INGEST_TOKEN", "plain"),
            ("STARGATE_INGEST_TOKEN_FILE", token_path),
        ]));
        assert!(both.unwrap_err().to_string().contains("set only one"));
        let missing = Secrets::from_env(env(&[(
            "STARGATE_STEGO_CALLBACK_SECRET_FILE",
            "/nonexistent/secret",
        )]));
        let message = format!("{:#}", missing.unwrap_err());
        assert!(message.contains("/nonexistent/secret"), "{message}");
        // Neither the secrets nor their file names are configuration keys.
        let c = Config::from_sources(
            "",
            env(&[
                ("STARGATE_INGEST_TOKEN", "plain"),
                ("STARGATE_IPFS_TOKEN_FILE", "/x"),
                ("STARGATE_STEGO_CALLBACK_SECRET_FILE", "/x"),
            ]),
        );
        assert!(c.is_ok());
    }

    #[test]
    fn ipfs_keys_of_the_guide_from_env() {
        let c = Config::default();
        assert!(c.ipfs.mirror_enabled && c.ipfs.sync_enabled);
        assert_eq!(c.ipfs.mirror_topic, "stargate-uploads");
        assert_eq!(c.ipfs.stego_topic, "stargate-stego");
        assert_eq!(
            (
                c.ipfs.mirror_poll_interval_sec,
                c.ipfs.mirror_publish_interval_sec,
                c.ipfs.mirror_max_files,
                c.ipfs.http_timeout_sec
            ),
            (10, 30, 2000, 30)
        );
        let c = Config::from_sources(
            "",
            env(&[
                ("STARGATE_IPFS_MIRROR_DOWNLOAD_ENABLED", "false"),
                ("STARGATE_IPFS_MIRROR_TOPIC", "my-uploads"),
                ("STARGATE_IPFS_MIRROR_POLL_INTERVAL_SEC", "1"),
                ("STARGATE_IPFS_API_URL", "http://stargate-ipfs:5001"),
                ("STARGATE_IPFS_MIRROR_DENY_PEERS", r#"["12D3KooW"]"#),
            ]),
        )
        .unwrap();
        assert!(!c.ipfs.mirror_download_enabled);
        assert_eq!(c.ipfs.mirror_topic, "my-uploads");
        assert_eq!(c.ipfs.mirror_poll_interval_sec, 1);
        assert_eq!(c.ipfs.mirror_deny_peers, ["12D3KooW"]);
        let c = Config::default();
        assert!(
            c.ipfs.stego_announce_enabled
                && c.ipfs.stego_sync_enabled
                && c.ipfs.ingest_sync_enabled
        );
        assert_eq!(
            (
                c.ipfs.stego_sync_interval_sec,
                c.ipfs.ingest_sync_interval_sec,
                c.ipfs.ingest_sync_max_entries
            ),
            (10, 60, 5000)
        );
        let c = Config::from_sources(
            "",
            env(&[
                ("STARGATE_IPFS_STEGO_SYNC_ENABLED", "false"),
                ("STARGATE_IPFS_INGEST_SYNC_INTERVAL_SEC", "5"),
            ]),
        )
        .unwrap();
        assert!(!c.ipfs.stego_sync_enabled);
        assert_eq!(c.ipfs.ingest_sync_interval_sec, 5);
    }

    #[test]
    fn write_default_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_default(dir.path()).unwrap());
        assert!(!write_default(dir.path()).unwrap());
        let c = Config::load(dir.path(), env(&[])).unwrap();
        assert_eq!(c.api.addr.port(), 5001);
    }
}
