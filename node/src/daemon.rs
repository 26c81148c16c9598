//! `stargate daemon`: builds every part of the node, serves until a signal, shuts down in order.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use stargate_http_gateway::{
    ApiAuth, AppState, Authorizations, HttpOptions, Observability, RequestLimits, StegoAuth,
};
use stargate_protocol::unixfs::export::BlockSource;
use stargate_storage::{Store, StoreOptions};

use crate::anchoring::{self, ChainAnchoring, ChainMetrics};
use crate::cli::DaemonArgs;
use crate::config::{self, ApiConfig, Config, Secrets};
use crate::mirror;
use crate::p2p;
use crate::shutdown::{self, Parts};
use crate::stego;

pub(crate) async fn run(data_dir: PathBuf, mut config: Config, args: DaemonArgs) -> Result<()> {
    config::write_default(&data_dir)?;
    if let Some(addr) = args.gateway_addr {
        config.gateway.addr = addr;
    }
    if let Some(addr) = args.api_addr {
        config.api.addr = addr;
    }
    if !args.swarm_listen.is_empty() {
        config.swarm.listen = args.swarm_listen;
    }
    if !args.bootstrap.is_empty() {
        config.swarm.bootstrap = args.bootstrap;
        config.swarm.bootstrap.retain(|b| b != "none");
    }
    let p2p_settings = p2p::Settings::new(&config.swarm, &config.routing, &config.transfer)?
        .with_pubsub(&config.pubsub)?;
    let secrets = Secrets::from_env(std::env::vars())?;
    let chain_settings = anchoring::settings(&config.chain, &secrets, &data_dir)?;
    let fetching = p2p_settings.fetching;
    let mirror_settings = if config.pubsub.enabled {
        mirror::Settings::new(&config.ipfs)?
    } else {
        tracing::info!("[pubsub] enabled = false: mirroring is off");
        None
    };

    let mut registry = Registry::default();
    let http_metrics = stargate_http_gateway::HttpMetrics::register(&mut registry);
    let limits = RequestLimits::register(&mut registry, http_options(&config));
    let p2p_metrics = p2p::Metrics::register(&mut registry);
    let api_auth = ApiAuth::register(
        &mut registry,
        secrets.api_key.as_deref().map(String::as_str),
    );
    let api_access = api_access(&config.api, &secrets, &mut registry)?;
    let stego_auth = StegoAuth::register(
        &mut registry,
        secrets.stego_callback_secret.as_deref().map(String::as_str),
        secrets.ingest_token.as_deref().map(String::as_str),
    );
    if config.ipfs.ingest_sync_enabled && secrets.ingest_token.is_none() {
        tracing::warn!(
            "[ipfs] ingest_sync_enabled is on but no ingest token is set \
             (STARGATE_INGEST_TOKEN or STARGATE_INGEST_TOKEN_FILE): the ingestion API \
             answers 503 until one is"
        );
    }
    let chain_metrics = chain_settings
        .is_some()
        .then(|| ChainMetrics::register(&mut registry));
    let mirror_metrics = mirror_settings
        .as_ref()
        .map(|s| mirror::MirrorMetrics::register(&mut registry, s.sync));
    drop(secrets);
    let store = open_store(&data_dir, &config)?;
    let stego_metrics = mirror_settings
        .as_ref()
        .map(|_| stego::StegoMetrics::register(&mut registry, store.clone()));
    stargate_http_gateway::register_store_metrics(&mut registry, store.clone());
    let registry = Arc::new(registry);

    let token = CancellationToken::new();
    let keypair = p2p::load_identity(&data_dir)?;
    let network_runtime = network_runtime()?;
    let (network, network_task) = {
        // Everything the network spawns (the swarm, its connections, the transfer) runs there.
        let _network_context = network_runtime.enter();
        p2p::spawn(
            keypair.clone(),
            p2p_settings,
            store.clone(),
            p2p_metrics,
            token.clone(),
        )?
    };
    let blocks: Arc<dyn BlockSource> = Arc::new(p2p::NetworkBlockSource::new(
        store.clone(),
        network.clone(),
        fetching,
    ));
    let mut state = AppState::new(store.clone(), Arc::clone(&blocks), http_options(&config))
        .with_network(Arc::new(network.clone()))
        .with_pubsub(Arc::new(network.clone()));
    let shutdown_limit = Duration::from_secs(config.daemon.shutdown_timeout_sec);
    let mut parts = Parts::default();
    parts.task("network", network_task);
    if let (Some(settings), Some(metrics), Some(stego_metrics)) =
        (mirror_settings, mirror_metrics, stego_metrics)
    {
        let (mirror, tasks) = mirror::Mirror::start(
            settings.clone(),
            store.clone(),
            network.clone(),
            blocks,
            keypair,
            metrics,
            token.clone(),
        )
        .await
        .context("starting the mirror")?;
        for (name, task) in tasks {
            parts.task(name, task);
        }
        let (stego, tasks) = stego::Stego::start(
            settings,
            store.clone(),
            network.clone(),
            mirror.clone(),
            stego_metrics,
            stego_auth.clone(),
            token.clone(),
        )
        .await
        .context("starting the stego part")?;
        for (name, task) in tasks {
            parts.task(name, task);
        }
        state = state
            .with_mirror(Arc::new(mirror))
            .with_stego(Arc::new(stego));
    }
    match chain_settings {
        Some(settings) => {
            let chain = Arc::new(ChainAnchoring::start(store.clone(), settings, &token)?);
            state = state.with_anchoring(chain.clone());
            if let Some(metrics) = chain_metrics {
                parts.task(
                    "chain metrics",
                    tokio::spawn(metrics.run(chain.clone(), token.clone())),
                );
            }
            let cancelled = token.clone();
            parts.future("chain watcher", async move {
                cancelled.cancelled().await;
                // The watcher finishes its round; what it wrote is committed before the store
                // closes. Its own limit is the daemon's: past it, the daemon names the watcher.
                chain.stop(shutdown_limit).await?;
                Ok(())
            });
        }
        None => {
            tracing::info!(
                "no chain backend configured ([chain] electrum_url or rpc_url): anchoring is off"
            );
        }
    }
    let obs = Observability::new(registry, http_metrics);
    // The Stargate API's anchors on both listeners: the public gateway for other services,
    // the loopback API for the operator.
    let anchors = stargate_http_gateway::anchors_router(state.clone(), api_auth);
    let mut gateway = stargate_http_gateway::gateway_router(state.clone()).merge(anchors.clone());
    if config.gateway.stego_callback {
        gateway = gateway.merge(stargate_http_gateway::stego_callback_router(
            state.clone(),
            stego_auth.clone(),
        ));
    }
    let gateway = obs.wrap(limits.wrap("gateway", gateway));
    let api = obs.wrap(
        api_access.protect(
            limits.wrap(
                "api",
                stargate_http_gateway::api_router(state.clone())
                    .merge(anchors)
                    .merge(stargate_http_gateway::mirror_router(state.clone()))
                    .merge(stargate_http_gateway::webui_router(
                        state.clone(),
                        env!("STARGATE_COMMIT"),
                    ))
                    .merge(stargate_http_gateway::stego_router(state, stego_auth)),
            ),
        ),
    );

    let gateway_listener = bind(config.gateway.addr, "gateway").await?;
    let api_listener = bind(config.api.addr, "API").await?;
    let api_file = ApiFile::write(&data_dir, api_listener.local_addr()?)?;
    // `config Addresses.API|Gateway` answer with the addresses as bound.
    let api = api.layer(axum::Extension(stargate_http_gateway::ListenAddrs {
        api: api_listener.local_addr()?,
        gateway: gateway_listener.local_addr()?,
    }));

    shutdown::on_signal(token.clone()).context("installing signal handlers")?;
    tracing::info!(
        data_dir = %data_dir.display(),
        gateway = %gateway_listener.local_addr()?,
        api = %api_listener.local_addr()?,
        peer_id = %network.local_peer_id(),
        "daemon ready"
    );

    let stop = |t: &CancellationToken| {
        let t = t.clone();
        async move { t.cancelled().await }
    };
    parts.fallible_task(
        "gateway server",
        tokio::spawn(stargate_http_gateway::serve(
            gateway_listener,
            gateway,
            stop(&token),
        )),
    );
    parts.fallible_task(
        "API server",
        tokio::spawn(stargate_http_gateway::serve(
            api_listener,
            api,
            stop(&token),
        )),
    );
    parts.run_until_cancelled(&token).await;
    drop(api_file);
    let deadline = Instant::now() + shutdown_limit;
    let stopped = parts.stop(shutdown_limit).await;
    // Its blocking tasks (store reads and writes) finish before the store closes, within what is
    // left of the limit.
    let left = deadline.saturating_duration_since(Instant::now());
    let network_stopped =
        tokio::task::spawn_blocking(move || network_runtime.shutdown_timeout(left)).await;
    if let Err(e) = network_stopped {
        tracing::error!(error = %e, "stopping the network's runtime failed");
    }
    // Last handle, unless a part was left behind: the writer thread drains its queue and the
    // database closes cleanly.
    drop(store);
    stopped?;
    tracing::info!("stopped");
    Ok(())
}

/// The network's own runtime, one thread: every yamux frame passes between a connection's task
/// and a stream's task, and on a shared pool of workers each such hand-off tends to wake the
/// other worker (a futex wake and a context switch per frame, ~13,000 per 256 MiB). On one
/// thread they run back to back: transfers are faster and the HTTP side keeps its workers. One
/// thread does Noise and yamux at several hundred MB/s, more than a home server's link; hashing
/// of received blocks and store I/O still run on their own threads.
fn network_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("stargate-net")
        .enable_all()
        .build()
        .context("starting the network's runtime")
}

/// Opens the store in the data dir; a second daemon on the same dir fails here.
pub(crate) fn open_store(data_dir: &Path, config: &Config) -> Result<Store> {
    let mut options = StoreOptions::default();
    options.hash_on_read = config.store.hash_on_read;
    options.block_cache_bytes =
        usize::try_from(config.store.block_cache_mib.saturating_mul(1 << 20))
            .context("store.block_cache_mib is too large for this machine")?;
    Store::open(data_dir, options).context("opening the store")
}

/// The HTTP limits from the configuration.
pub(crate) fn http_options(config: &Config) -> HttpOptions {
    let mut options = HttpOptions::default();
    options.timeout = std::time::Duration::from_secs(config.gateway.http_timeout_sec);
    options.max_concurrent_requests = config.gateway.max_concurrent_requests;
    options.max_waiting_requests = config.gateway.max_waiting_requests;
    options
}

/// `<data_dir>/api`, naming the API address while the daemon runs (the CLI reads it); removed
/// when dropped.
struct ApiFile(PathBuf);

impl ApiFile {
    fn write(data_dir: &Path, addr: std::net::SocketAddr) -> Result<Self> {
        let path = data_dir.join(crate::client::API_FILE);
        std::fs::write(&path, addr.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for ApiFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            tracing::warn!(path = %self.0.display(), error = %e, "could not remove the api file");
        }
    }
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {what} to {addr} (is another node running?)"))
}

/// Who may call the API listener; refuses an open API beyond loopback unless allowed.
fn api_access(
    api: &ApiConfig,
    secrets: &Secrets,
    registry: &mut Registry,
) -> Result<Authorizations> {
    let secrets_of_names = api
        .authorizations
        .iter()
        .map(|(name, a)| Ok((name.as_str(), a.secret(name)?, a.allowed_paths.as_slice())))
        .collect::<Result<Vec<_>>>()?;
    let loopback = api.addr.ip().is_loopback();
    let access = Authorizations::new(
        registry,
        secrets.api_key.as_deref().map(String::as_str),
        secrets_of_names
            .iter()
            .map(|(name, secret, paths)| (*name, secret.as_str(), *paths)),
        loopback || api.allow_anonymous,
    )?;
    if access.is_open() && !loopback {
        if !api.allow_anonymous {
            bail!(
                "[api] addr {} is beyond loopback and nothing guards it: set STARGATE_API_KEY \
                 (or STARGATE_API_KEY_FILE) or [api.authorizations], or allow_anonymous = true \
                 for development",
                api.addr
            );
        }
        tracing::warn!(addr = %api.addr, "the API listens beyond loopback with no authorization (allow_anonymous)");
    }
    Ok(access)
}
