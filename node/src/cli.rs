//! Command-line interface. Command names, flags and output follow Kubo's `ipfs` where both have
//! the command, so that scripts written for one work with the other.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "stargate",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("STARGATE_COMMIT"), ")"),
    about = "Stargate Node: an IPFS peer with Bitcoin anchoring"
)]
pub(crate) struct Cli {
    /// Data directory (default: ~/.stargate).
    #[arg(long, global = true, env = "STARGATE_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data dir with a commented default configuration.
    Init,
    /// Run the node: the peer-to-peer swarm, the gateway and the API.
    Daemon(DaemonArgs),
    /// Add files or directories, printing their CIDs.
    Add(AddArgs),
    /// Print the content of a file.
    Cat(CatArgs),
    /// Download a file or directory.
    Get(GetArgs),
    /// List the links of a directory.
    Ls(LsArgs),
    /// Pin or unpin content so that garbage collection keeps or drops it.
    #[command(subcommand)]
    Pin(PinCommand),
    /// Work with raw blocks.
    #[command(subcommand)]
    Block(BlockCommand),
    /// Maintain the store.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Commit CIDs to Bitcoin, follow their anchors and get their proofs. Needs a running
    /// daemon with a chain backend ([chain] in the configuration): its watcher does the work.
    Anchor(AnchorArgs),
    /// The wallet that pays for anchors. Needs a running daemon with a chain backend.
    #[command(subcommand)]
    Wallet(WalletCommand),
    /// Check a Bitcoin anchor proof offline (no network, no data dir).
    Verify(VerifyArgs),
    /// Show this node's (or a connected peer's) ID, addresses, agent and protocols.
    Id {
        /// A connected peer's ID (default: this node).
        peer: Option<String>,
    },
    /// Manage connections to peers.
    #[command(subcommand)]
    Swarm(SwarmCommand),
    /// Query and announce in the DHT.
    #[command(subcommand)]
    Routing(RoutingCommand),
    /// Work with whole DAGs.
    #[command(subcommand)]
    Dag(DagCommand),
    /// What this node mirrors from other instances. Needs a running daemon.
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Ingestion records made from mirrored stego uploads (what the platform pulls).
    #[command(subcommand)]
    Ingest(IngestCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum IngestCommand {
    /// Ingestion records in id order: id, image CID, payload CID, pending or consumed,
    /// original publisher, metadata.
    Ls {
        /// Only records with an id above this one.
        #[arg(long, value_name = "ID", default_value_t = 0)]
        after: u64,
        /// Only records the platform has not acknowledged.
        #[arg(long)]
        pending: bool,
        /// At most this many (up to 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// Topics and their peers, the download queue, what is stored and what failed, manifests.
    Status,
    /// Mirrored uploads, newest first.
    Ls {
        /// Only this announcement type.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only uploads first announced by this instance (a peer ID).
        #[arg(long, value_name = "PEER")]
        from: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DagCommand {
    /// Fetch the whole DAG under a CID from a Stargate peer over the fast transfer protocol
    /// (`/stargate/car/1.0.0`), verifying and storing every block.
    Fetch {
        /// The Stargate peer: its peer ID (if connected) or a multiaddr ending in /p2p/<id>.
        #[arg(long, value_name = "PEER")]
        from: String,
        cid: String,
        /// Pin the DAG once it is complete.
        #[arg(long)]
        pin: bool,
    },
}

/// `stargate anchor CID...` queues; `stargate anchor status|proof ...` reports.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct AnchorArgs {
    #[command(subcommand)]
    pub(crate) command: Option<AnchorCommand>,
    /// CIDs to queue for anchoring; they are committed with the next batch (printed: each
    /// CID and its state).
    #[arg(required = true, value_name = "CID")]
    pub(crate) cids: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AnchorCommand {
    /// The watcher (network, tip, lag, last error) and CIDs by state; with CIDs, the state of
    /// each: queued, broadcast (txid), confirmed (txid, height, depth) or failed (reason).
    Status {
        /// CIDs to report on.
        #[arg(value_name = "CID")]
        cids: Vec<String>,
    },
    /// Print the self-contained proof of a confirmed anchor (JSON; check it with `stargate
    /// verify`).
    Proof {
        #[arg(value_name = "CID")]
        cid: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WalletCommand {
    /// Print a fresh address to fund the wallet.
    Address,
    /// Print the balance in satoshis: confirmed, pending, immature.
    Balance,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The proof, as `stargate anchor proof CID` or `GET /api/v1/anchors/<cid>` gave it.
    #[arg(value_name = "PROOF_JSON")]
    pub(crate) proof: PathBuf,
    /// Also check that the block is in this header chain: hex of consecutive 80-byte headers
    /// (Electrum's blockchain.block.headers, or `bitcoin-cli getblockheader HASH false` lines).
    #[arg(long, value_name = "FILE", requires = "headers_start")]
    pub(crate) headers: Option<PathBuf>,
    /// Height of the first header in --headers.
    #[arg(long, value_name = "HEIGHT", requires = "headers")]
    pub(crate) headers_start: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SwarmCommand {
    /// Connect to peers (multiaddrs, usually ending in /p2p/<peer id>).
    Connect {
        #[arg(required = true, value_name = "MULTIADDR")]
        addrs: Vec<String>,
    },
    /// List connected peers.
    Peers {
        /// Show latency and direction too.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Close every connection to peers (multiaddrs ending in /p2p/<peer id>, or peer IDs).
    Disconnect {
        #[arg(required = true, value_name = "MULTIADDR")]
        addrs: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RoutingCommand {
    /// Find peers that provide a CID.
    Findprovs {
        cid: String,
        /// Stop after this many providers.
        #[arg(short = 'n', long, default_value_t = 20)]
        num_providers: usize,
    },
    /// Announce to the DHT that this node provides CIDs (which must be stored here).
    Provide {
        #[arg(required = true)]
        cids: Vec<String>,
        /// Provide every block of each DAG.
        #[arg(short, long)]
        recursive: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Gateway listen address (overrides [gateway] addr).
    #[arg(long, value_name = "ADDR")]
    pub(crate) gateway_addr: Option<SocketAddr>,
    /// API listen address (overrides [api] addr).
    #[arg(long, value_name = "ADDR")]
    pub(crate) api_addr: Option<SocketAddr>,
    /// Peer-to-peer listen address (repeatable; replaces [swarm] listen).
    #[arg(long, value_name = "MULTIADDR")]
    pub(crate) swarm_listen: Vec<String>,
    /// Bootstrap peer (repeatable; replaces [swarm] bootstrap); `none` for no bootstrap peers.
    #[arg(long, value_name = "MULTIADDR|none")]
    pub(crate) bootstrap: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// Paths to add.
    #[arg(required = true, value_name = "PATH")]
    pub(crate) paths: Vec<PathBuf>,
    /// Add directories recursively.
    #[arg(short, long)]
    pub(crate) recursive: bool,
    /// Print only the final CID.
    #[arg(short = 'Q', long)]
    pub(crate) quieter: bool,
    /// Print only CIDs, one per line.
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Include files whose names start with a dot (recursive adds skip them by default).
    #[arg(short = 'H', long)]
    pub(crate) hidden: bool,
    /// Wrap everything in a directory and print its CID last.
    #[arg(short, long)]
    pub(crate) wrap_with_directory: bool,
    /// Only compute the CIDs; store nothing.
    #[arg(short = 'n', long)]
    pub(crate) only_hash: bool,
    /// CID version (0 or 1). Version 1 implies --raw-leaves.
    #[arg(long, value_name = "0|1", value_parser = clap::value_parser!(u8).range(0..=1))]
    pub(crate) cid_version: Option<u8>,
    /// Use raw blocks for leaves (--raw-leaves=false to turn off the CIDv1 default).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub(crate) raw_leaves: Option<bool>,
    /// Chunking algorithm: size-<bytes>.
    #[arg(
        short = 's',
        long,
        default_value = "size-262144",
        value_name = "size-N"
    )]
    pub(crate) chunker: String,
    /// Pin what is added (default true).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", default_value = "true", require_equals = true, value_name = "BOOL")]
    pub(crate) pin: bool,
    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub(crate) progress: Option<bool>,
    /// Announce what is added on the mirror topic with this type (`contract`, `proposal`,
    /// ...), so that other instances mirror it. Needs a running daemon that mirrors.
    #[arg(long, value_name = "TYPE")]
    pub(crate) announce: Option<String>,
    /// Metadata of the announcement, KEY=VALUE (repeatable); needs --announce.
    #[arg(long, value_name = "KEY=VALUE", requires = "announce")]
    pub(crate) meta: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// CID or content path (CID/path/inside).
    pub(crate) path: String,
    /// Byte offset to start at.
    #[arg(short, long, default_value_t = 0)]
    pub(crate) offset: u64,
    /// Most bytes to print.
    #[arg(short, long)]
    pub(crate) length: Option<u64>,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// CID or content path.
    pub(crate) path: String,
    /// Where to write (default: the CID or last path segment, in the current directory).
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// CIDs or content paths of directories.
    #[arg(required = true)]
    pub(crate) paths: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PinCommand {
    /// Pin content (recursively by default).
    Add {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Pin the whole DAG (--recursive=false pins only the block).
        #[arg(short, long, num_args = 0..=1, default_missing_value = "true", default_value = "true", require_equals = true, value_name = "BOOL")]
        recursive: bool,
    },
    /// Remove pins.
    Rm {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Remove a recursive pin (--recursive=false removes a direct one).
        #[arg(short, long, num_args = 0..=1, default_missing_value = "true", default_value = "true", require_equals = true, value_name = "BOOL")]
        recursive: bool,
    },
    /// List pins.
    Ls {
        /// Only these CIDs.
        paths: Vec<String>,
        /// direct, indirect, recursive or all.
        #[arg(short = 't', long = "type", default_value = "all")]
        kind: String,
        /// Print only CIDs.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlockCommand {
    /// Print a block's raw bytes.
    Get { cid: String },
    /// Store the bytes of each file (or stdin) as a block and print its CID.
    Put {
        /// Files to store; none reads stdin.
        files: Vec<PathBuf>,
        /// Codec of the new CID: raw, dag-pb, dag-cbor, dag-json.
        #[arg(long, default_value = "raw")]
        cid_codec: String,
        /// Hash function: sha2-256, sha2-512, blake3.
        #[arg(long = "mhtype", default_value = "sha2-256")]
        mhtype: String,
        /// Pin the block.
        #[arg(long)]
        pin: bool,
        /// Accept blocks up to 2 MiB instead of 1 MiB.
        #[arg(long)]
        allow_big_block: bool,
    },
    /// Print a block's CID and size.
    Stat { cid: String },
    /// Remove blocks (pinned blocks are refused).
    Rm {
        #[arg(required = true)]
        cids: Vec<String>,
        /// Ignore blocks that are not there.
        #[arg(short, long)]
        force: bool,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Remove every block that no pin keeps.
    Gc {
        /// Print only the removed CIDs, one per line (as Kubo's `repo gc -q`).
        #[arg(short, long)]
        quiet: bool,
    },
    /// Re-hash every block; exit non-zero if any does not match its CID.
    Verify,
    /// Show store size and counts.
    Stat {
        /// Print sizes in human units.
        #[arg(long)]
        human: bool,
    },
}
