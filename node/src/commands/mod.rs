//! The client commands: each turns its arguments into RPC calls and prints Kubo's output.

mod add;
mod anchor;
mod block;
mod content;
mod ingest;
mod mirror;
mod pin;
mod repo;
mod swarm;
pub(crate) mod verify;

use anyhow::Result;

use crate::cli::Command;
use crate::client::Client;

/// Runs a client command against `client`.
pub(crate) async fn run(client: &Client, command: Command) -> Result<()> {
    match command {
        Command::Add(args) => add::run(client, args).await,
        Command::Cat(args) => content::cat(client, args).await,
        Command::Get(args) => content::get(client, args).await,
        Command::Ls(args) => content::ls(client, args).await,
        Command::Pin(cmd) => pin::run(client, cmd).await,
        Command::Block(cmd) => block::run(client, cmd).await,
        Command::Repo(cmd) => repo::run(client, cmd).await,
        Command::Id { peer } => swarm::id(client, peer).await,
        Command::Swarm(cmd) => swarm::swarm(client, cmd).await,
        Command::Routing(cmd) => swarm::routing(client, cmd).await,
        Command::Anchor(args) => anchor::anchor(client, args).await,
        Command::Wallet(cmd) => anchor::wallet(client, cmd).await,
        Command::Dag(cmd) => swarm::dag(client, cmd).await,
        Command::Mirror(cmd) => mirror::run(client, cmd).await,
        Command::Ingest(cmd) => ingest::run(client, cmd).await,
        Command::Init | Command::Daemon(_) | Command::Verify(_) => {
            unreachable!("init, daemon and verify are not client commands")
        }
    }
}
