//! `stargate`: the Stargate Node binary. Parses the command line, sets up logging and runs the
//! command; `stargate daemon` runs the node, every other command is a client of it (or of the
//! store directly when no daemon runs).

mod cli;
mod config;
mod daemon;
mod logging;
mod shutdown;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::Config;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The whole context chain, as `anyhow` formats it with `{:#}`.
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let data_dir = config::data_dir(cli.data_dir)?;
    if let Command::Init = cli.command {
        if config::write_default(&data_dir)? {
            println!("initialized {}", data_dir.display());
        } else {
            println!("{} is already initialized", data_dir.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(&data_dir, std::env::vars())?;
    logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Init => unreachable!("handled above"),
            Command::Daemon(args) => daemon::run(data_dir, config, args).await,
            other => anyhow::bail!("{other:?} is not available yet"),
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
