//! Content added with the real `stargate` binary comes back through the gateway byte for byte:
//! the boundary files and a nested tree, whole and by ranges, HEAD, listings, raw blocks whose
//! sha2-256 matches their CID, and CARs that npm `@ipld/car` reads and verifies, holding exactly
//! the blocks of the DAG.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use sha2::{Digest, Sha256};
use stargate_tests::{
    CHUNK, GatewayServer, StargateNode, js_car_verify, write_boundary_files, write_nested_dir,
};

/// `stargate add -r PATH` on `node` (no daemon: the CLI writes the store): every
/// `added <cid> <name>` line, by name (`dir`, `dir/sub/file`, ...).
fn add(node: &StargateNode, path: &Path) -> Result<BTreeMap<String, String>> {
    let out = node.cli_ok(&["add", "-r", path.to_str().context("UTF-8 temp path")?])?;
    out.lines()
        .map(|line| {
            let (cid, name) = line
                .strip_prefix("added ")
                .and_then(|rest| rest.split_once(' '))
                .with_context(|| format!("unexpected add output {line:?}"))?;
            Ok((name.to_owned(), cid.to_owned()))
        })
        .collect()
}

/// Saves the CAR at `path_and_query`, verifies it with `@ipld/car`, and returns its roots and
/// the multihashes of its blocks.
fn fetch_verified_car(
    gw: &GatewayServer,
    dir: &Path,
    path_and_query: &str,
) -> Result<(Vec<String>, Vec<Vec<u8>>)> {
    let a = gw.get(path_and_query, &[])?;
    ensure!(a.status == 200, "{path_and_query}: {}", a.status);
    ensure!(
        a.header("content-type") == "application/vnd.ipld.car; version=1; order=dfs; dups=n",
        "{}",
        a.header("content-type")
    );
    let file = dir.join("answer.car");
    fs::write(&file, a.bytes()?)?;
    let report = js_car_verify(&file)?;
    ensure!(report.ok, "@ipld/car refused the CAR: {:?}", report.error);
    ensure!(report.version == Some(1), "{report:?}");
    let hashes = report
        .blocks
        .iter()
        .map(|c| Ok(stargate_protocol::parse_cid(c)?.hash().to_bytes()))
        .collect::<Result<Vec<_>>>()?;
    Ok((report.roots, hashes))
}

/// Ranges worth asking for in a `len`-byte file: the edges, the middle, chunk boundaries, the
/// tail by suffix.
fn ranges(len: u64) -> Vec<(String, std::ops::Range<u64>)> {
    let mut out = vec![
        ("bytes=0-0".to_owned(), 0..1),
        (format!("bytes={}-", len - 1), len - 1..len),
        (format!("bytes=-{}", len.min(100)), len - len.min(100)..len),
        (
            format!("bytes={}-{}", len / 2, len / 2 + 999),
            len / 2..(len / 2 + 1000).min(len),
        ),
    ];
    if len > CHUNK + 10 {
        out.push((
            format!("bytes={}-{}", CHUNK - 10, CHUNK + 9),
            CHUNK - 10..CHUNK + 10,
        ));
    }
    if len > 2 * CHUNK {
        out.push((format!("bytes={CHUNK}-"), CHUNK..len));
    }
    out
}

#[test]
fn boundary_files_round_trip_whole_by_range_and_as_verified_cars() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let files_dir = tmp.path().join("files");
    let files = write_boundary_files(&files_dir, 20_260_611)?;
    let node = StargateNode::new()?;
    let added = add(&node, &files_dir)?;
    let gw = GatewayServer::start(node.data_dir())?;
    let root = added.get("files").context("no root in add output")?;

    for f in &files {
        let want = fs::read(&f.path)?;
        let cid = added
            .get(&format!("files/{}", f.name))
            .with_context(|| format!("{} not added", f.name))?;
        let by_cid = gw.get(&format!("/ipfs/{cid}"), &[])?;
        ensure!(by_cid.status == 200, "{}: {}", f.name, by_cid.status);
        ensure!(
            by_cid.bytes()? == want.as_slice(),
            "{}: bytes differ",
            f.name
        );
        ensure!(by_cid.header("etag") == format!("\"{cid}\""), "{}", f.name);
        ensure!(
            by_cid.header("content-length") == f.len.to_string(),
            "{}",
            f.name
        );
        ensure!(
            by_cid.header("cache-control") == "public, max-age=29030400, immutable",
            "{}",
            f.name
        );

        let by_path = gw.get(&format!("/ipfs/{root}/{}", f.name), &[])?;
        ensure!(by_path.bytes()? == want.as_slice(), "{}: path", f.name);
        ensure!(
            by_path.header("x-ipfs-roots") == format!("{root},{cid}"),
            "{}: {}",
            f.name,
            by_path.header("x-ipfs-roots")
        );

        let head = gw.request("HEAD", &format!("/ipfs/{cid}"), &[])?;
        ensure!(
            head.status == 200 && head.bytes()?.is_empty(),
            "{}: HEAD",
            f.name
        );
        ensure!(
            head.header("content-length") == f.len.to_string(),
            "{}: HEAD length {}",
            f.name,
            head.header("content-length")
        );
        ensure!(
            head.header("content-type") == by_cid.header("content-type"),
            "{}: HEAD type",
            f.name
        );

        if f.len == 0 {
            let a = gw.get(&format!("/ipfs/{cid}"), &[("range", "bytes=0-")])?;
            ensure!(a.status == 416, "empty file range: {}", a.status);
            continue;
        }
        for (range, slice) in ranges(f.len) {
            let a = gw.get(&format!("/ipfs/{cid}"), &[("range", &range)])?;
            ensure!(a.status == 206, "{} {range}: {}", f.name, a.status);
            let (from, to) = (usize::try_from(slice.start)?, usize::try_from(slice.end)?);
            ensure!(a.bytes()? == &want[from..to], "{} {range}: bytes", f.name);
            ensure!(
                a.header("content-range") == format!("bytes {from}-{}/{}", to - 1, f.len),
                "{} {range}: {}",
                f.name,
                a.header("content-range")
            );
        }
        let past = gw.get(
            &format!("/ipfs/{cid}"),
            &[("range", &format!("bytes={}-", f.len))],
        )?;
        ensure!(
            past.status == 416,
            "{}: past the end {}",
            f.name,
            past.status
        );
    }

    // The whole directory as a CAR: verified by @ipld/car, exactly the blocks add stored.
    let (roots, blocks) = fetch_verified_car(&gw, tmp.path(), &format!("/ipfs/{root}?format=car"))?;
    ensure!(roots == [root.clone()], "{roots:?}");
    let unique: BTreeSet<Vec<u8>> = blocks.iter().cloned().collect();
    ensure!(unique.len() == blocks.len(), "a block was sent twice");
    ensure!(
        unique == gw.stored_multihashes()?,
        "the CAR's blocks differ from the DAG's"
    );

    // A byte range of the largest file, verifiably: a small subset of its blocks.
    let big = files.iter().max_by_key(|f| f.len).context("no files")?;
    let (_, part) = fetch_verified_car(
        &gw,
        tmp.path(),
        &format!(
            "/ipfs/{root}/{}?format=car&entity-bytes={}:{}",
            big.name,
            3 * CHUNK,
            5 * CHUNK - 1
        ),
    )?;
    ensure!(
        part.iter().all(|h| unique.contains(h)),
        "entity-bytes CAR holds foreign blocks"
    );
    // The two path blocks, the file's interior nodes on the way, and the 2 leaves.
    ensure!(
        part.len() <= 2 + 3 + 2,
        "{} blocks for two chunks",
        part.len()
    );
    Ok(())
}

#[test]
fn a_nested_tree_round_trips_with_listings_raw_blocks_and_a_verified_car() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let tree = tmp.path().join("tree");
    write_nested_dir(&tree, 77)?;
    let node = StargateNode::new()?;
    let added = add(&node, &tree)?;
    let gw = GatewayServer::start(node.data_dir())?;
    let root = added.get("tree").context("no root in add output")?;

    let mut dirs = vec![String::new()];
    while let Some(rel) = dirs.pop() {
        let mut names = Vec::new();
        for entry in fs::read_dir(tree.join(&rel))? {
            let entry = entry?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| anyhow::anyhow!("non-UTF-8 name {n:?} in the generated tree"))?;
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type()?.is_dir() {
                let a = gw.get(&format!("/ipfs/{root}/{child}"), &[])?;
                ensure!(a.status == 301, "{child}: {}", a.status);
                ensure!(a.header("location").ends_with('/'), "{child}");
                dirs.push(child);
            } else {
                let a = gw.get(&format!("/ipfs/{root}/{child}"), &[])?;
                ensure!(a.status == 200, "{child}: {}", a.status);
                ensure!(
                    a.bytes()? == fs::read(entry.path())?.as_slice(),
                    "{child}: bytes"
                );
                ensure!(
                    a.header("x-ipfs-roots").split(',').count() == child.split('/').count() + 1,
                    "{child}: {}",
                    a.header("x-ipfs-roots")
                );
            }
            names.push(name);
        }
        let listing = gw.get(&format!("/ipfs/{root}/{rel}/").replace("//", "/"), &[])?;
        ensure!(listing.status == 200, "listing {rel:?}: {}", listing.status);
        ensure!(
            listing.header("content-type") == "text/html; charset=utf-8",
            "{rel:?}"
        );
        let html = String::from_utf8(listing.bytes()?.to_vec())?;
        for name in names {
            ensure!(
                html.contains(&format!(">{name}</a>")),
                "{rel:?}: {name} not listed"
            );
        }
    }

    // Every stored block as a raw block whose sha2-256 is its CID's digest.
    let stored = gw.stored_multihashes()?;
    for info in gw.store().blocks()? {
        let cid = info?.cid();
        let a = gw.get(&format!("/ipfs/{cid}?format=raw"), &[])?;
        ensure!(a.status == 200, "{cid}: {}", a.status);
        ensure!(
            a.header("content-type") == "application/vnd.ipld.raw",
            "{cid}"
        );
        ensure!(cid.hash().code() == 0x12, "{cid}: add hashes with sha2-256");
        ensure!(
            Sha256::digest(a.bytes()?).as_slice() == cid.hash().digest(),
            "{cid}: the raw block does not hash to its CID"
        );
    }

    let (roots, blocks) = fetch_verified_car(&gw, tmp.path(), &format!("/ipfs/{root}?format=car"))?;
    ensure!(roots == [root.clone()], "{roots:?}");
    let sent: BTreeSet<Vec<u8>> = blocks.iter().cloned().collect();
    ensure!(sent.len() == blocks.len(), "a block was sent twice");
    ensure!(sent == stored, "the CAR's blocks differ from the DAG's");
    Ok(())
}
