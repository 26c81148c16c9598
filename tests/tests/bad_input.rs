//! Bad input gets a clear error and changes nothing: malformed and unsupported CIDs, blocks that
//! are not what they claim, path tricks, oversized requests — through the CLI (store opened
//! directly), through a daemon, and on the raw RPC API.

use anyhow::{Context, Result, ensure};
use stargate_protocol::{Cid, Codec, HashCode, Multihash, digest};
use stargate_tests::StargateNode;

/// `repo stat`'s object count and byte total: the store's observable state.
fn snapshot(node: &StargateNode) -> Result<String> {
    let stat = node.cli_ok(&["repo", "stat"])?;
    Ok(stat
        .lines()
        .filter(|l| l.starts_with("NumObjects") || l.starts_with("BlockBytes"))
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Runs a command that must fail with a message containing `needle`.
fn rejects(node: &StargateNode, args: &[&str], needle: &str) -> Result<()> {
    let err = node.cli_err(args)?;
    ensure!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stargate {}: expected an error mentioning {needle:?}, got: {err}",
        args.join(" ")
    );
    Ok(())
}

fn bad_input(node: &StargateNode) -> Result<()> {
    let work = tempfile::tempdir()?;
    let tree = work.path().join("d");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(tree.join("a.txt"), b"hello")?;
    let root = node
        .cli_ok(&["add", "-Q", "-r", tree.to_str().context("utf-8")?])?
        .trim()
        .to_owned();
    let before = snapshot(node)?;

    for bad in ["notacid", "Qm123", "bafy!!!", "ipfs://bafkqaaa"] {
        rejects(node, &["cat", bad], "invalid CID")?;
    }
    for empty in ["", "/ipfs/"] {
        rejects(node, &["cat", empty], "empty content path")?;
    }
    let git = Cid::new_v1(0x78, digest(HashCode::Sha2_256, b"x")).to_string();
    rejects(node, &["cat", &git], "unsupported codec")?;
    rejects(node, &["block", "get", &git], "unsupported codec")?;
    let md5 = Cid::new_v1(Codec::Raw.code(), Multihash::wrap(0xd5, &[0; 16])?).to_string();
    rejects(node, &["cat", &md5], "unsupported hash")?;
    rejects(node, &["pin", "add", &md5], "unsupported hash")?;
    let short = Cid::new_v1(Codec::Raw.code(), Multihash::wrap(0x12, &[0; 20])?).to_string();
    rejects(node, &["block", "stat", &short], "digest")?;

    for tricky in [
        "/../a.txt",
        "/./a.txt",
        "//a.txt",
        "/a.txt/..",
        "/%2E%2E",
        "/a%2Fb",
    ] {
        rejects(node, &["cat", &format!("{root}{tricky}")], "segment")?;
    }
    rejects(node, &["cat", &format!("{root}/missing")], "no entry")?;
    rejects(node, &["cat", &root], "directory")?;
    let long = format!("{root}/{}", "x/".repeat(3000));
    rejects(node, &["cat", &long], "limit")?;

    // Blocks that are not what they claim to be are refused before anything is stored.
    let not_dagpb = work.path().join("garbage");
    std::fs::write(&not_dagpb, b"\xff\xff\xff not a protobuf")?;
    let garbage = not_dagpb.to_str().context("utf-8")?;
    rejects(
        node,
        &["block", "put", "--cid-codec", "dag-pb", garbage],
        "dag-pb",
    )?;
    rejects(
        node,
        &["block", "put", "--cid-codec", "nonsense", garbage],
        "codec",
    )?;
    rejects(node, &["block", "put", "--mhtype", "md5", garbage], "hash")?;
    let big = work.path().join("big");
    std::fs::write(&big, vec![7u8; 1024 * 1024 + 1])?;
    let big = big.to_str().context("utf-8")?;
    rejects(node, &["block", "put", big], "over")?;
    let huge = work.path().join("huge");
    std::fs::write(&huge, vec![7u8; 2 * 1024 * 1024 + 1])?;
    rejects(
        node,
        &[
            "block",
            "put",
            "--allow-big-block",
            huge.to_str().context("utf-8")?,
        ],
        "over",
    )?;
    // Removing a pinned block is refused.
    rejects(node, &["block", "rm", &root], "pinned")?;
    // A chunker Kubo would not take.
    rejects(node, &["add", "--chunker", "size-0", garbage], "chunk")?;
    rejects(node, &["add", "--chunker", "rabin", garbage], "chunk")?;
    rejects(
        node,
        &["add", "--chunker", "size-2000000", garbage],
        "chunk",
    )?;

    ensure!(snapshot(node)? == before, "bad input changed the store");
    // And the store is still whole.
    node.cli_ok(&["repo", "verify"])?;
    // A good big block is accepted with the flag.
    let cid = node.cli_ok(&["block", "put", "--allow-big-block", big])?;
    ensure!(cid.trim().starts_with("bafk"), "{cid}");
    Ok(())
}

#[test]
fn bad_input_without_a_daemon() -> Result<()> {
    bad_input(&StargateNode::new()?)
}

#[test]
fn bad_input_through_the_daemon() -> Result<()> {
    let mut node = StargateNode::new()?;
    node.start()?;
    bad_input(&node)?;
    ensure!(node.stop()?.success());
    Ok(())
}

#[test]
fn the_rpc_api_rejects_malformed_requests() -> Result<()> {
    let mut node = StargateNode::new()?;
    node.start()?;
    let http = reqwest::blocking::Client::new();
    let call = |path: &str| -> Result<(u16, serde_json::Value)> {
        let res = http.post(format!("{}{path}", node.api_url())).send()?;
        let status = res.status().as_u16();
        Ok((status, res.json().unwrap_or(serde_json::Value::Null)))
    };
    for (path, needle) in [
        ("/api/v0/cat", "required"),
        ("/api/v0/cat?arg=nope", "invalid"),
        ("/api/v0/cat?arg=bafkqaaa&bogus=1", "unknown option"),
        ("/api/v0/pin/add?arg=bafkqaaa&recursive=maybe", "boolean"),
        ("/api/v0/cat?arg=bafkqaaa&offset=-1", "number"),
        ("/api/v0/pin/ls?type=weird", "invalid type"),
    ] {
        let (status, body) = call(path)?;
        ensure!(status == 400, "{path}: status {status}");
        ensure!(body["Type"] == "error", "{path}: {body}");
        let message = body["Message"].as_str().unwrap_or_default();
        ensure!(message.contains(needle), "{path}: {message}");
    }
    // Kubo's RPC is POST only.
    let get = http
        .get(format!("{}/api/v0/version", node.api_url()))
        .send()?;
    ensure!(
        get.status().as_u16() == 405,
        "GET answered {}",
        get.status()
    );
    let (status, body) = call("/api/v0/cat?arg=bafkqaaa")?;
    ensure!(
        status == 200 && body.is_null(),
        "the empty identity CID: {status} {body}"
    );
    ensure!(node.stop()?.success());
    Ok(())
}
