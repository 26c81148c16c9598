//! Bad requests to the gateway over a real TCP connection: each gets a clear 4xx (never a 5xx),
//! the store is unchanged afterwards, and the gateway keeps serving. Paths are sent as raw
//! request lines so that no client normalises `..` or escapes away.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use stargate_protocol::{Cid, Codec, HashCode, Multihash, digest};
use stargate_tests::{GatewayServer, StargateNode, write_nested_dir};

fn snapshot(gw: &GatewayServer) -> Result<(BTreeSet<Vec<u8>>, String)> {
    let blocks = gw.stored_multihashes()?;
    let pins = format!("{:?}", gw.store().pins(stargate_storage::PinFilter::All)?);
    Ok((blocks, pins))
}

#[test]
fn bad_requests_are_clear_client_errors_and_change_nothing() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let tree = tmp.path().join("tree");
    write_nested_dir(&tree, 5)?;
    let node = StargateNode::new()?;
    let out = node.cli_ok(&["add", "-Q", "-r", tree.to_str().context("UTF-8 temp path")?])?;
    let root = out.trim().to_owned();
    let gw = GatewayServer::start(node.data_dir())?;
    let before = snapshot(&gw)?;

    let git_raw = Cid::new_v1(0x78, digest(HashCode::Sha2_256, b"x"));
    let md5 = Cid::new_v1(Codec::Raw.code(), Multihash::wrap(0xd5, &[7u8; 16])?);
    let absent = Cid::new_v1(Codec::Raw.code(), digest(HashCode::Sha2_256, b"not stored"));
    let cases: Vec<(&str, String, u16)> = vec![
        ("GET", "/ipfs/not-a-cid".into(), 400),
        ("GET", "/ipfs/Qm".into(), 400),
        (
            "GET",
            "/ipfs/bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd!".into(),
            400,
        ),
        ("GET", format!("/ipfs/{git_raw}"), 400),
        ("GET", format!("/ipfs/{md5}"), 400),
        ("GET", format!("/ipfs/{root}/../{root}/a.txt"), 400),
        ("GET", format!("/ipfs/{root}/sub1/.."), 400),
        ("GET", format!("/ipfs/{root}/%2e%2e/a.txt"), 400),
        ("GET", format!("/ipfs/{root}/sub1%2Fc.txt"), 400),
        ("GET", format!("/ipfs/{root}/sub1%00"), 400),
        ("GET", format!("/ipfs/{root}//a.txt"), 400),
        ("GET", format!("/ipfs/{root}/%e9"), 400),
        ("GET", "/ipfs/".into(), 400),
        (
            "GET",
            format!("/ipfs/{root}/{}", "x".repeat(16 * 1024)),
            414,
        ),
        ("GET", format!("/ipfs/{root}?{}", "k=v&".repeat(4096)), 414),
        ("GET", format!("/ipfs/{root}?format=tar"), 400),
        (
            "GET",
            format!("/ipfs/{root}?format=car&dag-scope=everything"),
            400,
        ),
        ("GET", format!("/ipfs/{absent}"), 404),
        ("GET", format!("/ipfs/{root}/no-such-name"), 404),
        ("GET", format!("/ipfs/{root}/a.txt/below"), 404),
        ("POST", format!("/ipfs/{root}"), 405),
        ("PUT", format!("/ipfs/{root}/a.txt"), 405),
        ("DELETE", format!("/ipfs/{root}"), 405),
        ("PATCH", format!("/ipfs/{root}"), 405),
        ("POST", "/api/v0/add".into(), 404),
    ];
    for (method, target, want) in &cases {
        let shown: String = target.chars().take(90).collect();
        let got = gw.raw_status(method, target)?;
        ensure!(got == *want, "{method} {shown}: {got}, expected {want}");
    }

    // The reason is given in the body, as text.
    let a = gw.get("/ipfs/not-a-cid", &[])?;
    let text = String::from_utf8(a.bytes()?.to_vec())?;
    ensure!(text.contains("not-a-cid"), "{text}");
    ensure!(a.header("content-type") == "text/plain; charset=utf-8");
    let a = gw.get(&format!("/ipfs/{root}/no-such-name"), &[])?;
    let text = String::from_utf8(a.bytes()?.to_vec())?;
    ensure!(text.contains("no-such-name"), "{text}");

    ensure!(snapshot(&gw)? == before, "a bad request changed the store");
    let ok = gw.get(&format!("/ipfs/{root}/a.txt"), &[])?;
    ensure!(
        ok.status == 200,
        "the gateway stopped serving: {}",
        ok.status
    );
    Ok(())
}
