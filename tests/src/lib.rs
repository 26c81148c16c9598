//! Shared helpers of Stargate's integration tests: where the built binaries
//! and installed tools are, a real Kubo peer, real clients of Kubo's RPC API,
//! the Node scripts that give a second UnixFS implementation and a CAR
//! verifier, deterministic test data,
//! loopback ports and deadlines, real `stargate daemon`s on loopback, a
//! Bitcoin regtest stack (bcoin + e-x), the `stargate` CLI and the gateway
//! served over a data dir.
//!
//! Everything here expects `scripts/install-test-deps.sh` to have run (it
//! says so when something is missing) and the tests to run inside the
//! loopback-only namespace of `scripts/test.sh`.
#![deny(clippy::print_stdout, clippy::print_stderr)]

// One private module per subject; its API is re-exported below (a new module
// is its `mod` line plus its `pub use` line).
mod clients;
mod daemon;
mod data;
mod gateway;
mod js;
mod kubo;
mod launch;
mod load;
mod mirror;
mod node;
mod paths;
mod process;
mod regtest;
mod stego;
mod wait;

pub use clients::{ClientRun, aioipfs, kubo_rpc_client, kubo_rpc_client_auth, metrics_formats};
pub use daemon::{DaemonIdentity, DaemonOptions, StargateDaemon, peer_ids};
pub use data::{
    BOUNDARY_FILES, CHUNK, MAX_LINKS, NamedFile, SHARD_THRESHOLD, SHARDED_DIR_FILES,
    write_boundary_files, write_nested_dir, write_pseudo_random_file, write_sharded_dir,
    write_text_file, write_threshold_dir,
};
pub use gateway::{GatewayServer, HttpAnswer};
pub use js::{
    CarReport, ImportEntry, ImportOptions, ImportResult, js_car_verify, js_unixfs_import,
    js_webui_check,
};
pub use kubo::{KeyType, KuboAdd, KuboOptions, KuboPeer, PubsubMessage, SubscriptionId};
pub use load::{Kind, LoadReport, Tally, run_users};
pub use mirror::{mirror_config, mirror_options};
pub use node::StargateNode;
pub use paths::{repo_root, stargate_bin, test_artifacts_dir, venv_python, workspace_bin};
pub use process::{CommandOutput, run_with_timeout, wait_or_kill};
pub use regtest::{
    BURN_ADDRESS, COINBASE_MATURITY, ChainSource, NewWallet, Payer, Regtest, SEGWIT_HEIGHT,
};
pub use stego::{
    INGEST_TOKEN, STEGO_SECRET, callback_body, sign_callback, stego_options, unix_now,
};
pub use wait::{free_loopback_port, wait_for, wait_until};
