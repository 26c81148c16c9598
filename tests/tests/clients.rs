//! Real clients of Kubo's RPC API work unchanged against a daemon: npm `kubo-rpc-client` and
//! PyPI `aioipfs` (with the aiohttp pinned in tests/harness/requirements.txt) call every command
//! the node serves as their users call them. What they get back is compared with Kubo: CIDs with
//! a real Kubo peer's `add` (or, for the options its library cannot take, with npm
//! `ipfs-unixfs-importer` configured as Kubo), answers with the shapes Kubo sends, and the
//! commands the node does not have with Kubo's 404.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{Context, Result, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha2::Digest;
use stargate_protocol::car::read_car;
use stargate_protocol::{Block, Cid, Codec, Multihash, PbNode};
use stargate_tests::{
    ClientRun, ImportOptions, KuboPeer, StargateNode, aioipfs, js_unixfs_import, kubo_rpc_client,
    write_pseudo_random_file,
};

/// A daemon connected to a Kubo peer and to another Stargate node that provides some content,
/// and the files the clients add.
struct Setup {
    node: StargateNode,
    kubo: KuboPeer,
    fixtures: tempfile::TempDir,
    peer: String,
    provided: String,
    provider_id: String,
    // Kept running for the clients' `routing findprovs`.
    _provider: StargateNode,
}

impl Setup {
    fn start() -> Result<Self> {
        let fixtures = tempfile::tempdir()?;
        let dir = fixtures.path();
        write_pseudo_random_file(&dir.join("blob.bin"), 700_000, 1)?;
        fs::create_dir_all(dir.join("tree/sub"))?;
        fs::create_dir_all(dir.join("tree/empty"))?;
        fs::write(dir.join("tree/a.txt"), "alpha\n")?;
        write_pseudo_random_file(&dir.join("tree/sub/b.bin"), 300_000, 2)?;
        fs::write(dir.join("tree/sub/c.txt"), "gamma\n")?;

        let kubo = KuboPeer::start()?;
        let mut node = StargateNode::new()?;
        node.start()?;
        let peer = kubo.tcp_multiaddr()?;
        node.cli_ok(&["swarm", "connect", &peer])?;
        // A provider the node's DHT hears from (Kubo's own provide is not reliably sent here).
        let mut provider = StargateNode::new()?;
        provider.start()?;
        let identity: Value = serde_json::from_str(&provider.cli_ok(&["id"])?)?;
        let provider_id = text(&identity["ID"], "ID")?.to_owned();
        let provider_addr = identity["Addresses"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .find(|a| a.contains("/tcp/"))
            })
            .context("the provider has no TCP address")?
            .to_owned();
        node.cli_ok(&["swarm", "connect", &provider_addr])?;
        let provided_file = dir.join("provided.txt");
        fs::write(&provided_file, "provided by another Stargate node\n")?;
        let provided = provider
            .cli_ok(&["add", "-Q", &provided_file.display().to_string()])?
            .trim()
            .to_owned();
        fs::remove_file(provided_file)?;
        Ok(Self {
            node,
            kubo,
            fixtures,
            peer,
            provided,
            provider_id,
            _provider: provider,
        })
    }

    fn run(&self) -> ClientRun<'_> {
        ClientRun {
            fixtures: self.fixtures.path(),
            peer: &self.peer,
            provided: &self.provided,
            provider: &self.provider_id,
        }
    }

    /// Kubo's CID for `bytes` added as a file.
    fn kubo_cid_of(&mut self, bytes: &[u8]) -> Result<String> {
        let scratch = tempfile::tempdir()?;
        let path = scratch.path().join("content");
        fs::write(&path, bytes)?;
        Ok(self.kubo.add(&path, true)?.cid)
    }

    /// Kubo's CID for a fixture (a file or the directory `tree`).
    fn kubo_cid(&mut self, name: &str) -> Result<String> {
        let path = self.fixtures.path().join(name);
        Ok(self.kubo.add(&path, true)?.cid)
    }

    /// Every entry of the fixture `name` as Kubo's `add` names it (`tree/sub/c.txt`), with its
    /// CID and DAG size, from the JS importer configured as Kubo with `opts`.
    fn importer_entries(
        &self,
        name: &str,
        opts: &ImportOptions,
    ) -> Result<BTreeMap<String, (String, u64)>> {
        let imported = js_unixfs_import(&self.fixtures.path().join(name), opts)?;
        Ok(imported
            .entries
            .into_iter()
            .map(|e| (e.path, (e.cid, e.size)))
            .collect())
    }
}

fn text<'a>(v: &'a Value, what: &str) -> Result<&'a str> {
    v.as_str()
        .with_context(|| format!("{what}: {v} is not a string"))
}

/// `{path, cid, size}` as the scripts report an added entry; sizes are numbers in
/// kubo-rpc-client's objects and strings in Kubo's JSON (aioipfs hands that on).
fn entry(v: &Value) -> Result<(String, String, u64)> {
    let size = match &v["size"] {
        Value::String(s) => s.parse()?,
        other => other.as_u64().context("size")?,
    };
    Ok((
        text(&v["path"], "path")?.to_owned(),
        text(&v["cid"], "cid")?.to_owned(),
        size,
    ))
}

fn entries(v: &Value) -> Result<Vec<(String, String, u64)>> {
    v.as_array()
        .with_context(|| format!("{v} is not a list"))?
        .iter()
        .map(entry)
        .collect()
}

/// The CIDv1 of `data` with `codec`, hashed here (sha2-256 or sha2-512) independently of the node.
fn cid_of(codec: u64, data: &[u8], sha512: bool) -> Result<String> {
    let hash = if sha512 {
        Multihash::wrap(0x13, &sha2::Sha512::digest(data))?
    } else {
        Multihash::wrap(0x12, &sha2::Sha256::digest(data))?
    };
    Ok(Cid::new_v1(codec, hash).to_string())
}

/// Kubo's add options, as the JS importer takes them, from its defaults.
fn opts(set: impl FnOnce(&mut ImportOptions)) -> ImportOptions {
    let mut opts = ImportOptions::default();
    set(&mut opts);
    opts
}

/// Each `blob.bin` a client added with options (named, with them, and what came back) against
/// the JS importer configured as Kubo with the same options.
fn check_blob_options<const N: usize>(
    setup: &Setup,
    cases: [(&str, ImportOptions, &Value); N],
) -> Result<()> {
    for (key, opts, added) in cases {
        let want = &setup.importer_entries("blob.bin", &opts)?["blob.bin"];
        let (_, cid, size) = entry(added)?;
        ensure!(
            (&cid, size) == (&want.0, want.1),
            "add {key}: {cid} {size}, Kubo: {want:?}"
        );
    }
    Ok(())
}

/// The directory `tree` as the clients list it: name, type, size.
fn check_listing(ls: &Value, entries: &BTreeMap<String, (String, u64)>) -> Result<()> {
    let listed: Vec<(String, String)> = ls
        .as_array()
        .context("ls is not a list")?
        .iter()
        .map(|l| {
            Ok((
                text(&l["name"], "name")?.to_owned(),
                text(&l["cid"], "cid")?.to_owned(),
            ))
        })
        .collect::<Result<_>>()?;
    let expected: Vec<(String, String)> = ["a.txt", "empty", "sub"]
        .into_iter()
        .map(|name| {
            let (cid, _) = &entries[&format!("tree/{name}")];
            (name.to_owned(), cid.clone())
        })
        .collect();
    ensure!(listed == expected, "ls: {listed:?}, Kubo: {expected:?}");
    ensure!(ls[0]["size"] == 6, "ls a.txt size: {}", ls[0]);
    Ok(())
}

fn check_swarm(report: &Value, kubo_id: &str, provider_id: &str) -> Result<()> {
    let has = |key: &str| {
        report[key]
            .as_array()
            .is_some_and(|peers| peers.iter().any(|p| p == kubo_id))
    };
    ensure!(has("swarm_peers"), "swarm peers: {}", report["swarm_peers"]);
    ensure!(
        !has("swarm_peers_disconnected"),
        "after disconnect: {report}"
    );
    ensure!(has("swarm_peers_connected"), "after connect: {report}");
    let found = report["findprovs"].as_array();
    ensure!(
        found.is_some_and(|f| f.iter().any(|p| p == provider_id)),
        "findprovs: {}",
        report["findprovs"]
    );
    Ok(())
}

#[test]
fn kubo_rpc_client_works_unchanged() -> Result<()> {
    let mut setup = Setup::start()?;
    // The Kubo peer listens on the topic the client publishes on.
    let topic = "stargate-uploads";
    let kubo_sub = setup.kubo.pubsub_subscribe(topic)?;
    let report = kubo_rpc_client(&setup.node.api_url(), setup.run())?;
    check_pubsub(&mut setup, &report, topic, kubo_sub)?;

    // add: a string and bytes are files named by their CID, with Kubo's CID.
    let hello = setup.kubo_cid_of(b"hello")?;
    for key in ["add_string", "add_bytes"] {
        let (path, cid, size) = entry(&report[key])?;
        ensure!(
            cid == hello && path == hello,
            "{key}: {cid} named {path}, Kubo: {hello}"
        );
        ensure!(size == 13, "{key}: size {size}");
    }
    let blob = setup.kubo_cid("blob.bin")?;
    ensure!(entry(&report["add_file"])?.1 == blob, "add file: {report}");
    // A directory (globSource, wrapped): every entry as Kubo's importer makes it, the root
    // Kubo's CID for the directory.
    let tree = setup.importer_entries("tree", &ImportOptions::default())?;
    let root = setup.kubo_cid("tree")?;
    let dir = entries(&report["add_dir"])?;
    for (path, cid, size) in &dir {
        let want = match path.as_str() {
            "" => (root.clone(), tree["tree"].1),
            path => tree[&format!("tree/{path}")].clone(),
        };
        ensure!(
            (cid, *size) == (&want.0, want.1),
            "add {path:?}: {cid} {size}, Kubo: {want:?}"
        );
    }
    ensure!(dir.len() == tree.len(), "add dir: {dir:?}, Kubo: {tree:?}");
    ensure!(
        dir.last()
            .is_some_and(|(p, c, _)| p.is_empty() && *c == root),
        "add dir root: {dir:?}"
    );
    // Options, against the importer configured as Kubo with them.
    let options = &report["add_options"];
    check_blob_options(
        &setup,
        [
            (
                "cid_version_1",
                opts(|o| o.cid_version = Some(1)),
                &options["cid_version_1"],
            ),
            (
                "raw_leaves",
                opts(|o| o.raw_leaves = Some(true)),
                &options["raw_leaves"],
            ),
            (
                "chunker",
                opts(|o| o.chunk_size = Some(65_536)),
                &options["chunker"],
            ),
        ],
    )?;
    let wrapped = entries(&options["wrapped"])?;
    let want = setup.importer_entries("blob.bin", &opts(|o| o.wrap_with_directory = true))?;
    ensure!(
        wrapped.len() == 2 && wrapped[0].1 == blob && wrapped[1].1 == want[""].0,
        "add wrapped: {wrapped:?}, Kubo: {want:?}"
    );

    check_listing(&report["ls"], &tree)?;
    ensure!(
        report["ls_stream"] == serde_json::json!(["a.txt", "empty", "sub"]),
        "{report}"
    );

    // block rm: a pinned block and a missing one are refused with Kubo's per-block error, and
    // no error at all with force.
    let why = |key: &str| report[key].as_str().unwrap_or_default().to_owned();
    ensure!(
        why("block_rm_pinned").contains("pinned"),
        "{}",
        report["block_rm_pinned"]
    );
    ensure!(
        why("block_rm_missing").contains("could not find"),
        "{}",
        report["block_rm_missing"]
    );
    ensure!(
        report["block_rm_forced"].is_null(),
        "{}",
        report["block_rm_forced"]
    );
    ensure!(
        report["pin_ls_unpinned"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not pinned")),
        "{}",
        report["pin_ls_unpinned"]
    );

    let id = setup.node.cli_ok(&["id"])?;
    ensure!(
        id.contains(text(&report["id"]["id"], "id")?),
        "id: {}",
        report["id"]
    );
    check_swarm(&report, setup.kubo.peer_id(), &setup.provider_id)?;
    check_gc(&report)?;
    ensure!(
        report["gc_collected"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found")),
        "a collected block: {}",
        report["gc_collected"]
    );

    check_dag_js(&mut setup, &report)?;
    let node_id = text(&report["id"]["id"], "id")?;
    let want = json!({
        "api": multiaddr_of(&setup.node.api_url())?,
        "gateway": multiaddr_of(&setup.node.gateway_url())?,
        "peer_id": node_id,
        "swarm": report["config"]["swarm"],
    });
    ensure!(
        report["config"] == want,
        "config: {}, expected {want}",
        report["config"]
    );
    ensure!(
        report["config"]["swarm"]
            .as_array()
            .is_some_and(|a| !a.is_empty()
                && a.iter()
                    .all(|m| m.as_str().is_some_and(|m| m.starts_with("/ip4/127.0.0.1/")))),
        "config Addresses.Swarm: {}",
        report["config"]["swarm"]
    );
    for key in ["config_set", "config_unknown"] {
        ensure!(report[key]["status"] == 400, "{key}: {}", report[key]);
    }
    check_key_id(&report["key_list"], "name", "id", node_id)?;
    ensure!(
        report["get_compress_bad_level"]["status"] == 400,
        "get_compress_bad_level: {}",
        report["get_compress_bad_level"]
    );
    ensure!(
        report["dag_resolve"]["rem_path"] == "name"
            && report["dag_resolve"]["cid"] == report["dag_put"]["cbor"],
        "dag_resolve: {}",
        report["dag_resolve"]
    );
    // stats/bw: the bytes of the connection to the Kubo peer, once and polled three times.
    ensure!(
        report["stats_bw"]["polled"] == 3
            && report["stats_bw"]["total_in"]
                .as_u64()
                .is_some_and(|n| n > 0),
        "stats_bw: {}",
        report["stats_bw"]
    );

    // Commands the node does not have: Kubo's 404, the command named.
    let unknown = report["unknown"]
        .as_object()
        .context("no unknown commands")?;
    for (call, command) in [
        ("bitswap_stat", "bitswap/stat"),
        ("files_ls", "files/ls"),
        ("key_gen", "key/gen"),
        ("name_resolve", "name/resolve"),
    ] {
        let failure = &unknown[call];
        ensure!(failure["status"] == 404, "{call}: {failure}");
        let message = text(&failure["message"], call)?;
        ensure!(
            message.contains(&format!("{command:?}")),
            "{call}: {message}"
        );
    }
    Ok(())
}

#[test]
fn aioipfs_works_unchanged() -> Result<()> {
    let mut setup = Setup::start()?;
    let api = setup.node.api_url();
    let port = api.rsplit(':').next().context("no port in the API URL")?;
    let report = aioipfs(&format!("/ip4/127.0.0.1/tcp/{port}"), setup.run())?;

    let hello = setup.kubo_cid_of(b"hello")?;
    for key in ["add_bytes", "add_str"] {
        let (path, cid, size) = entry(&report[key])?;
        ensure!(
            cid == hello && path == hello,
            "{key}: {cid} named {path}, Kubo: {hello}"
        );
        ensure!(size == 13, "{key}: size {size}");
    }
    // add_json: the bytes aiohttp encoded, as Kubo adds them.
    let json = setup.kubo_cid_of(text(&report["json_bytes"], "json_bytes")?.as_bytes())?;
    ensure!(entry(&report["add_json"])?.1 == json, "add_json: {report}");
    let blob = setup.kubo_cid("blob.bin")?;
    ensure!(
        entries(&report["add_file"])? == [("blob.bin".to_owned(), blob.clone(), 700_194)],
        "add file: {}",
        report["add_file"]
    );
    // A directory (recursive): every entry named and made as Kubo's add makes it.
    let tree = setup.importer_entries("tree", &ImportOptions::default())?;
    let root = setup.kubo_cid("tree")?;
    let dir = entries(&report["add_dir"])?;
    let got: BTreeMap<String, (String, u64)> = dir
        .iter()
        .map(|(p, c, s)| (p.clone(), (c.clone(), *s)))
        .collect();
    ensure!(got == tree, "add dir: {got:?}, Kubo: {tree:?}");
    ensure!(
        dir.last()
            .is_some_and(|(p, c, _)| p == "tree" && *c == root),
        "{dir:?}"
    );
    let options = &report["add_options"];
    check_blob_options(
        &setup,
        [
            (
                "cid_version_1",
                opts(|o| o.cid_version = Some(1)),
                &options["cid_version_1"][0],
            ),
            (
                "only_hash",
                opts(|o| o.raw_leaves = Some(true)),
                &options["only_hash"][0],
            ),
        ],
    )?;

    check_listing(&report["ls"], &tree)?;
    ensure!(
        report["ls"][0]["type"] == 2 && report["ls"][1]["type"] == 1,
        "{}",
        report["ls"]
    );
    ensure!(
        report["ls_stream"] == serde_json::json!(["a.txt", "empty", "sub"]),
        "{report}"
    );

    // block put (raw CIDv1, sha2-256 and sha2-512), then rm as Kubo answers it: one document,
    // `Error` only when the block was not removed.
    let data = b"a block of bytes";
    let raw = cid_of(0x55, data, false)?;
    ensure!(
        report["block_put"] == serde_json::json!({ "Key": raw, "Size": 16 }),
        "{report}"
    );
    ensure!(
        report["block_put_sha512"]["Key"] == cid_of(0x55, data, true)?,
        "{report}"
    );
    let pinned = &report["block_rm_pinned"];
    ensure!(
        pinned["Hash"] == raw.as_str() && text(&pinned["Error"], "Error")?.contains("pinned"),
        "block rm of a pinned block: {pinned}"
    );
    ensure!(
        report["block_rm"] == serde_json::json!({ "Hash": raw }),
        "{}",
        report["block_rm"]
    );
    let missing = &report["block_rm_missing"];
    ensure!(
        text(&missing["Error"], "Error")?.contains("could not find"),
        "{missing}"
    );
    check_dag_aioipfs(&mut setup, &report)?;
    let node_id = text(&report["id"], "id")?;
    check_key_id(&report["key_list"]["Keys"], "Name", "Id", node_id)?;
    let bw = &report["stats_bw"];
    ensure!(
        ["TotalIn", "TotalOut"]
            .iter()
            .all(|k| bw[k].as_u64().is_some_and(|n| n > 0))
            && ["RateIn", "RateOut"].iter().all(|k| bw[k].is_f64()),
        "stats_bw: {bw}"
    );
    ensure!(
        report["config_peer_id"] == json!({ "Key": "Identity.PeerID", "Value": node_id })
            && report["config_api"]
                == json!({ "Key": "Addresses.API", "Value": multiaddr_of(&api)? }),
        "config: {} {}",
        report["config_peer_id"],
        report["config_api"]
    );
    check_gc(&report)?;
    ensure!(
        text(&report["gc_collected"]["Error"], "Error")?.contains("could not find"),
        "a collected block: {}",
        report["gc_collected"]
    );
    ensure!(
        report["pin_ls_unpinned"]["status"] == 500
            && text(&report["pin_ls_unpinned"]["message"], "message")?.contains("is not pinned"),
        "{}",
        report["pin_ls_unpinned"]
    );

    let id = setup.node.cli_ok(&["id"])?;
    ensure!(
        id.contains(text(&report["id"], "id")?),
        "id: {}",
        report["id"]
    );
    check_swarm(&report, setup.kubo.peer_id(), &setup.provider_id)?;
    let kubo_id = setup.kubo.peer_id().to_owned();
    let identify = &report["swarm_identify"][&kubo_id];
    ensure!(
        identify["ID"] == kubo_id.as_str()
            && text(&identify["AgentVersion"], "AgentVersion")?.starts_with("kubo/")
            && identify["Protocols"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
        "swarm peers (verbose) of Kubo: {identify}"
    );
    for (key, verb) in [
        ("swarm_disconnect", "disconnect"),
        ("swarm_connect", "connect"),
    ] {
        ensure!(
            report[key] == serde_json::json!({ "Strings": [format!("{verb} {kubo_id} success")] }),
            "{key}: {}",
            report[key]
        );
    }

    for (call, failure) in report["unknown"]
        .as_object()
        .context("no unknown commands")?
    {
        ensure!(failure["kind"] == "endpoint not found", "{call}: {failure}");
    }
    Ok(())
}

/// `pubsub`: the client saw its subscription and the Kubo peer on the topic, and got its own
/// message back signed by the node; Kubo got exactly the bytes published.
fn check_pubsub(
    setup: &mut Setup,
    report: &Value,
    topic: &str,
    kubo_sub: stargate_tests::SubscriptionId,
) -> Result<()> {
    let identity: Value = serde_json::from_str(&setup.node.cli_ok(&["id"])?)?;
    let node_id = text(&identity["ID"], "ID")?;
    // The node's own subscriptions are listed as Kubo lists all of its own: the mirror's
    // topics, the client's among them.
    ensure!(
        report["pubsub_ls"] == serde_json::json!(["stargate-stego", topic]),
        "pubsub.ls: {}",
        report["pubsub_ls"]
    );
    // On the topic: the Kubo peer, and the provider, a Stargate node that mirrors it too.
    let mut expected = vec![setup.kubo.peer_id(), setup.provider_id.as_str()];
    expected.sort_unstable();
    let mut peers: Vec<&str> = report["pubsub_peers"]
        .as_array()
        .context("pubsub.peers is no list")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    peers.sort_unstable();
    ensure!(
        peers == expected,
        "pubsub.peers: {peers:?}, expected {expected:?}"
    );
    let data = r#"{"cid":"bafkqaaa","type":"test","metadata":{}}"#;
    ensure!(
        report["pubsub_message"]
            == serde_json::json!({ "from": node_id, "topic": topic, "data": data }),
        "pubsub.subscribe: {}",
        report["pubsub_message"]
    );
    let got = setup
        .kubo
        .pubsub_next(kubo_sub, std::time::Duration::from_secs(10))?
        .context("Kubo received nothing")?;
    ensure!(
        got.from == node_id && got.data == data.as_bytes() && got.topic == topic,
        "Kubo received {got:?}"
    );
    Ok(())
}

/// `repo gc` named each removed block as Kubo does, the client's unpinned block among them.
fn check_gc(report: &Value) -> Result<()> {
    let removed = report["gc_removed"]
        .as_array()
        .context("no gc_removed in the report")?;
    let expected = text(&report["gc_expected"], "gc_expected")?;
    ensure!(
        removed
            .iter()
            .all(|cid| cid.as_str().is_some_and(|c| c.parse::<Cid>().is_ok())),
        "repo gc answered lines that are not CIDs: {removed:?}"
    );
    ensure!(
        removed.iter().any(|cid| cid == expected),
        "repo gc did not name {expected}: {removed:?}"
    );
    Ok(())
}

/// The blocks of a CAR a client exported (base64 in the report), each verified against its CID
/// as they are read, and its roots.
fn exported_car(report: &Value, key: &str) -> Result<(Vec<Cid>, Vec<Block>)> {
    let bytes = BASE64.decode(text(&report[key], key)?)?;
    read_car(&bytes).with_context(|| format!("{key} is not a valid CAR"))
}

/// The CIDs of the dag-pb DAG in `blocks` from `root`, depth-first, pre-order, in link order,
/// each once: the order Kubo's `dag export` writes blocks in.
fn dfs_order(root: Cid, blocks: &[Block]) -> Result<Vec<Cid>> {
    let by_cid: BTreeMap<Cid, &Block> = blocks.iter().map(|b| (*b.cid(), b)).collect();
    let mut order = Vec::new();
    let mut stack = vec![root];
    while let Some(cid) = stack.pop() {
        if order.contains(&cid) {
            continue;
        }
        order.push(cid);
        if cid.codec() == Codec::DagPb.code() {
            let block = by_cid
                .get(&cid)
                .with_context(|| format!("{cid} is not in the CAR"))?;
            let node = PbNode::decode(block.data())?;
            stack.extend(node.links.iter().rev().map(|l| l.cid));
        }
    }
    Ok(order)
}

/// `dag export` of a DAG Kubo made: its root Kubo's CID, then every block once in Kubo's order.
fn check_export_of(report: &Value, key: &str, kubo_root: &str) -> Result<Vec<Block>> {
    let (roots, blocks) = exported_car(report, key)?;
    let root: Cid = kubo_root.parse()?;
    ensure!(
        roots == [root],
        "{key}: roots {roots:?}, Kubo's root {root}"
    );
    let got: Vec<Cid> = blocks.iter().map(|b| *b.cid()).collect();
    let want = dfs_order(root, &blocks)?;
    ensure!(got == want, "{key}: blocks {got:?}, depth-first {want:?}");
    Ok(blocks)
}

/// The dag commands through kubo-rpc-client (its CIDs were checked there against the
/// reference codecs): export of Kubo's DAG for blob.bin and of a dag-cbor pair, import,
/// block put's options, and bad input answered with Kubo's error shape.
fn check_dag_js(setup: &mut Setup, report: &Value) -> Result<()> {
    let put = &report["dag_put"];
    for (key, codec) in [("cbor", Codec::DagCbor), ("json", Codec::DagJson)] {
        let cid: Cid = text(&put[key], key)?.parse()?;
        ensure!(cid.codec() == codec.code(), "dag put {key}: {cid}");
    }
    ensure!(put["cbor"] == put["from_text"], "dag put: {put}");
    let blob = setup.kubo_cid("blob.bin")?;
    let blocks = check_export_of(report, "dag_export_file_car", &blob)?;
    ensure!(
        blocks.len() > 2 && report["dag_export_file"]["roots"] == json!([blob]),
        "{}",
        report["dag_export_file"]
    );
    let hello = setup.kubo_cid_of(b"hello")?;
    let pair = &report["dag_export_pair"];
    ensure!(
        pair["roots"] == json!([report["dag_parent"]])
            && pair["blocks"] == json!([report["dag_parent"], put["cbor"], hello]),
        "dag export of the pair: {pair}"
    );
    ensure!(
        text(&report["dag_import_missing"], "dag_import_missing")?.contains("not in the store"),
        "dag import of a missing root: {}",
        report["dag_import_missing"]
    );
    let big = &report["block_put_big"];
    ensure!(
        big["status"] == 400 && text(&big["message"], "message")?.contains("over"),
        "block put of a big block: {big}"
    );
    for (call, failure) in report["bad_input"]
        .as_object()
        .context("no bad_input in the report")?
    {
        ensure!(
            failure["status"] == 400 && !text(&failure["message"], call)?.is_empty(),
            "{call}: {failure}"
        );
    }
    Ok(())
}

/// The dag commands through aioipfs: the document put, read back as canonical dag-json (its
/// dag-json CID is the hash of that text), by path and through a link into Kubo's dag-pb;
/// stat, export and import of the directory Kubo made.
fn check_dag_aioipfs(setup: &mut Setup, report: &Value) -> Result<()> {
    let hello = setup.kubo_cid_of(b"hello")?;
    let canonical =
        format!(r#"{{"link":{{"/":"{hello}"}},"list":[1,2,{{"deep":true}}],"name":"stargate"}}"#);
    ensure!(
        report["dag_get"] == canonical.as_str(),
        "dag get: {}, canonical dag-json: {canonical}",
        report["dag_get"]
    );
    ensure!(
        report["dag_put"]["json"] == cid_of(Codec::DagJson.code(), canonical.as_bytes(), false)?,
        "dag put as dag-json: {}",
        report["dag_put"]
    );
    let cbor: Cid = text(&report["dag_put"]["cbor"], "cbor")?.parse()?;
    ensure!(cbor.codec() == Codec::DagCbor.code(), "dag put: {cbor}");
    ensure!(
        report["dag_get_path"] == r#"{"deep":true}"#,
        "{}",
        report["dag_get_path"]
    );
    // Kubo's file "hello" as a dag-pb document: a UnixFS file node's bytes, no links.
    let node: Value = serde_json::from_str(text(&report["dag_get_link"], "dag_get_link")?)?;
    let data = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(text(&node["Data"]["/"]["bytes"], "Data")?)?;
    ensure!(
        node["Links"] == json!([]) && data.windows(5).any(|w| w == b"hello"),
        "dag get through a link: {node}"
    );

    let tree = setup.kubo_cid("tree")?;
    let blocks = check_export_of(report, "dag_export", &tree)?;
    let stats = report["dag_stat"].as_array().context("dag stat")?;
    let last = stats.last().context("dag stat answered nothing")?;
    let total: usize = blocks.iter().map(|b| b.data().len()).sum();
    ensure!(
        last["UniqueBlocks"] == blocks.len()
            && last["TotalSize"] == total
            && last["DagStats"]
                == json!([{ "Cid": { "/": tree }, "Size": total, "NumBlocks": blocks.len() }]),
        "dag stat: {last}, the CAR has {} blocks of {total} bytes",
        blocks.len()
    );
    ensure!(
        stats.len() == blocks.len() + 1,
        "dag stat progress: {stats:?}"
    );
    ensure!(
        report["dag_import"] == json!({ "Root": { "Cid": { "/": tree }, "PinErrorMsg": "" } }),
        "dag import: {}",
        report["dag_import"]
    );
    ensure!(
        report["dag_get_bad"]["status"] == 400,
        "dag get of a malformed CID: {}",
        report["dag_get_bad"]
    );
    Ok(())
}

/// `http://127.0.0.1:PORT` as Kubo's config writes a listen address.
fn multiaddr_of(url: &str) -> Result<String> {
    let addr: std::net::SocketAddr = url
        .strip_prefix("http://")
        .context("not an http URL")?
        .parse()?;
    Ok(format!("/ip4/{}/tcp/{}", addr.ip(), addr.port()))
}

/// `key list`: one key, `self`, whose ID is the node's peer ID as Kubo shows it (a base36
/// CIDv1 of the libp2p-key codec over the peer ID's multihash).
fn check_key_id(keys: &Value, name: &str, id: &str, node_id: &str) -> Result<()> {
    let [key] = keys.as_array().context("key list is no list")?.as_slice() else {
        anyhow::bail!("key list: {keys}");
    };
    let shown = text(&key[id], "key id")?;
    let cid: Cid = shown.parse()?;
    let peer = bitcoin::base58::decode(node_id)?;
    ensure!(
        key[name] == "self"
            && shown.starts_with('k')
            && cid.codec() == 0x72
            && cid.hash().to_bytes() == peer,
        "key list: {keys}, the node is {node_id}"
    );
    Ok(())
}
