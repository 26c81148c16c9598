//! `stargate`: the Stargate Node binary. Parses the command line, sets up logging and runs the
//! command; `stargate daemon` runs the node, every other command is a client of it (or of the
//! store directly when no daemon runs).
//!
//! Modules:
//! - `cli`: the commands and flags (clap); `commands/`: what each command does and prints, over
//!   `client` (the RPC API of a running daemon, or an in-process one over the store) and
//!   `output` (stdout, quiet when its reader goes away);
//! - `config`: the TOML file, `STARGATE_*` variables and flags, and the secrets; `logging`:
//!   tracing to stderr;
//! - `daemon`: builds every part of the node and serves until a signal; `shutdown`: the signal,
//!   and the named parts that must stop within the time limit;
//! - `p2p/`: the libp2p swarm and its event loop, Bitswap, the CAR transfer, the DHT, providing
//!   and retrieval, behind the `Network` handle;
//! - `anchoring`: the chain crate's service wired into the daemon and the HTTP API;
//! - `mirror/`: mirroring between instances (announcements, downloads, manifests, status).
//! - `stego/`: stego results (approval, the stego topic, their fetching) and ingestion records.

mod anchoring;
mod cli;
mod client;
mod clock;
mod commands;
mod config;
mod daemon;
mod logging;
mod mirror;
mod output;
mod p2p;
mod shutdown;
mod stego;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::client::Client;
use crate::config::Config;
use crate::output::outln;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // Its reader went away (`stargate id | head -1`): nothing left to say, nor anyone to hear it.
        Err(e) if output::is_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole context chain, as `anyhow` formats it with `{:#}`.
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    if let Command::Verify(args) = &cli.command {
        // Offline by design: no configuration, data dir or network.
        commands::verify::run(args)?;
        return Ok(ExitCode::SUCCESS);
    }
    let data_dir = config::data_dir(cli.data_dir)?;
    if let Command::Init = cli.command {
        if config::write_default(&data_dir)? {
            outln!("initialized {}", data_dir.display())?;
        } else {
            outln!("{} is already initialized", data_dir.display())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(&data_dir, std::env::vars())?;
    logging::init(&config.log, matches!(cli.command, Command::Daemon(_)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init | Command::Verify(_) => unreachable!("handled above"),
            Command::Daemon(args) => daemon::run(data_dir, config, args).await,
            command => {
                let client = connect(&data_dir, &config).await?;
                commands::run(&client, command).await
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The running daemon's API if one holds the data dir, else an in-process API over the store.
async fn connect(data_dir: &std::path::Path, config: &Config) -> Result<Client> {
    if let Some(client) = Client::running_daemon(data_dir).await? {
        return Ok(client);
    }
    let store = daemon::open_store(data_dir, config)?;
    let state = stargate_http_gateway::AppState::new(
        store.clone(),
        std::sync::Arc::new(store),
        daemon::http_options(config),
    );
    // The mirror's routes and the stego callback answer that they need a daemon; `ingest ls`
    // reads the store. No secrets in this process: the token-guarded routes answer 503.
    let stego_auth = stargate_http_gateway::StegoAuth::register(
        &mut prometheus_client::registry::Registry::default(),
        None,
        None,
    );
    Ok(Client::local(
        stargate_http_gateway::api_router(state.clone())
            .merge(stargate_http_gateway::mirror_router(state.clone()))
            .merge(stargate_http_gateway::stego_router(state, stego_auth)),
    ))
}
