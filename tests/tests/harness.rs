//! The test harness itself works: the real Kubo and the JS importer agree on
//! Kubo's default-option CIDs (so the JS importer can stand in for Kubo on
//! the options Kubo's library cannot take), the CAR verifier rejects a
//! corrupted CAR, and Kubo peers of both key types talk over loopback.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stargate_tests::{
    BOUNDARY_FILES, ImportOptions, KeyType, KuboOptions, KuboPeer, js_car_verify, js_unixfs_import,
    repo_root, run_with_timeout, stargate_bin, wait_until, write_boundary_files, write_nested_dir,
    write_pseudo_random_file, write_sharded_dir, write_threshold_dir,
};

#[test]
fn kubo_and_js_importer_agree_on_boundary_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_boundary_files(dir.path(), 20_251_126).unwrap();
    assert_eq!(files.len(), BOUNDARY_FILES.len());
    let mut kubo = KuboPeer::start().unwrap();
    let mut seen = Vec::new();
    for f in &files {
        let kubo_cid = kubo.add(&f.path, true).unwrap().cid;
        let js = js_unixfs_import(&f.path, &ImportOptions::default()).unwrap();
        assert_eq!(js.root.cid, kubo_cid, "{} ({} bytes)", f.name, f.len);
        assert_eq!(js.root.path, f.name);
        assert!(
            kubo_cid.starts_with("Qm"),
            "Kubo's default is CIDv0: {kubo_cid}"
        );
        assert!(!seen.contains(&kubo_cid), "{} repeats a CID", f.name);
        seen.push(kubo_cid);
    }
    kubo.shutdown().unwrap();
}

#[test]
fn kubo_and_js_importer_agree_on_directories() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("nested");
    let sharded = dir.path().join("sharded");
    write_nested_dir(&nested, 7).unwrap();
    write_sharded_dir(&sharded, 7).unwrap();
    // Estimated one byte under and exactly at the threshold (Kubo shards at >=).
    let threshold: Vec<_> = [-1i8, 0]
        .iter()
        .map(|&delta| {
            let d = dir.path().join(format!("threshold{delta:+}"));
            write_threshold_dir(&d, delta).unwrap();
            d
        })
        .collect();
    let mut kubo = KuboPeer::start().unwrap();
    for root in [&nested, &sharded].into_iter().chain(&threshold) {
        let kubo_cid = kubo.add(root, true).unwrap().cid;
        let js = js_unixfs_import(root, &ImportOptions::default()).unwrap();
        assert_eq!(js.root.cid, kubo_cid, "{}", root.display());
    }
    // The nested tree holds every kind of entry the generator promises.
    let js = js_unixfs_import(&nested, &ImportOptions::default()).unwrap();
    for path in [
        "nested/empty-dir",
        "nested/sub1/sub2/é ü name.txt",
        "nested/sub1/sub2/sub3/empty.bin",
        "nested/z last/one.bin",
    ] {
        assert!(js.entry(path).is_some(), "{path} missing from {js:?}");
    }
    kubo.shutdown().unwrap();
}

#[test]
fn js_importer_options_change_cids_as_kubo_documents() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    write_pseudo_random_file(&file, 1_000_000, 3).unwrap();
    let cid = |opts: ImportOptions| js_unixfs_import(&file, &opts).unwrap().root.cid;
    let v0 = cid(ImportOptions::default());
    let v1 = cid(ImportOptions {
        cid_version: Some(1),
        ..Default::default()
    });
    let v1_explicit_raw = cid(ImportOptions {
        cid_version: Some(1),
        raw_leaves: Some(true),
        ..Default::default()
    });
    let v1_no_raw = cid(ImportOptions {
        cid_version: Some(1),
        raw_leaves: Some(false),
        ..Default::default()
    });
    let small_chunks = cid(ImportOptions {
        chunk_size: Some(1024),
        ..Default::default()
    });
    assert!(v0.starts_with("Qm"), "{v0}");
    assert!(v1.starts_with("bafy"), "{v1}");
    // --cid-version 1 implies raw leaves, as in Kubo.
    assert_eq!(v1, v1_explicit_raw);
    assert_ne!(v1, v1_no_raw);
    assert_ne!(v0, small_chunks);
    // A one-chunk file with raw leaves is a single raw block.
    let tiny = dir.path().join("tiny");
    fs::write(&tiny, b"hello").unwrap();
    let raw = js_unixfs_import(
        &tiny,
        &ImportOptions {
            cid_version: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(raw.root.cid.starts_with("bafkrei"), "{}", raw.root.cid);
}

#[test]
fn car_verify_accepts_a_good_car_and_rejects_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.bin");
    write_pseudo_random_file(&input, 3 * 1024 * 1024 + 5, 11).unwrap();
    let car = dir.path().join("good.car");
    let root = ipfs_car_pack(&input, &car);

    let good = js_car_verify(&car).unwrap();
    assert!(good.ok, "{good:?}");
    assert_eq!(good.version, Some(1));
    assert_eq!(good.roots, vec![root.clone()]);
    assert!(good.missing_roots.is_empty(), "{good:?}");
    assert!(good.blocks.len() > 1, "{good:?}");
    assert!(good.blocks.contains(&root));

    // The last byte of a CAR is the last byte of its last block's data.
    let bytes = fs::read(&car).unwrap();
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 0x01;
    let bad = dir.path().join("flipped.car");
    fs::write(&bad, &flipped).unwrap();
    let report = js_car_verify(&bad).unwrap();
    assert!(!report.ok, "{report:?}");
    let error = report.error.unwrap_or_default();
    assert!(error.contains("does not match"), "{error}");

    let truncated = dir.path().join("truncated.car");
    fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    assert!(!js_car_verify(&truncated).unwrap().ok);

    let not_a_car = dir.path().join("not.car");
    fs::write(&not_a_car, b"hello").unwrap();
    assert!(!js_car_verify(&not_a_car).unwrap().ok);
}

#[test]
fn kubo_peers_of_both_key_types_transfer_and_pubsub_on_loopback() {
    let mut rsa = KuboPeer::start().unwrap();
    let mut ed = KuboPeer::start_with(KuboOptions {
        key_type: KeyType::Ed25519,
        ..Default::default()
    })
    .unwrap();
    assert!(rsa.peer_id().starts_with("Qm"), "{}", rsa.peer_id());
    assert!(ed.peer_id().starts_with("12D3KooW"), "{}", ed.peer_id());
    for addr in rsa.addrs().iter().chain(ed.addrs()) {
        assert!(addr.starts_with("/ip4/127.0.0.1/"), "{addr}");
    }
    let (id, _) = ed.id().unwrap();
    assert_eq!(id, ed.peer_id());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    write_pseudo_random_file(&file, 2 * 1024 * 1024 + 1, 5).unwrap();
    let added = rsa.add(&file, false).unwrap();

    ed.connect(&rsa.tcp_multiaddr().unwrap()).unwrap();
    let rsa_id = rsa.peer_id().to_owned();
    wait_until(Duration::from_secs(10), || {
        ed.peers()
            .unwrap()
            .iter()
            .any(|p| p.ends_with(rsa_id.as_str()))
    })
    .unwrap();
    let out = dir.path().join("fetched");
    ed.download(&added.cid, &out, Duration::from_secs(60))
        .unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&file).unwrap());

    let topic = "stargate-harness-test";
    let sub = ed.pubsub_subscribe(topic).unwrap();
    let _own = rsa.pubsub_subscribe(topic).unwrap();
    let ed_id = ed.peer_id().to_owned();
    wait_until(Duration::from_secs(20), || {
        rsa.pubsub_peers(topic).unwrap().contains(&ed_id)
    })
    .unwrap();
    let payload = br#"{"cid":"QmTest","type":"contract","metadata":{}}"#;
    rsa.pubsub_publish(topic, payload).unwrap();
    let msg = ed
        .pubsub_next(sub, Duration::from_secs(10))
        .unwrap()
        .expect("no pubsub message within 10 s");
    assert_eq!(msg.data, payload);
    assert_eq!(msg.from, rsa.peer_id());
    assert_eq!(msg.topic, topic);
    assert_eq!(
        ed.pubsub_next(sub, Duration::from_millis(300)).unwrap(),
        None
    );

    // A bad request is an error, and the peer keeps working after it.
    assert!(
        ed.connect("/ip4/127.0.0.1/tcp/1/p2p/not-a-peer-id")
            .is_err()
    );
    assert_eq!(ed.id().unwrap().0, ed.peer_id());

    rsa.shutdown().unwrap();
    ed.shutdown().unwrap();
}

#[test]
fn kubo_peer_restarts_with_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let opts = KuboOptions {
        key_type: KeyType::Ed25519,
        repo: Some(repo),
        ..Default::default()
    };
    let first = KuboPeer::start_with(opts.clone()).unwrap();
    let id = first.peer_id().to_owned();
    first.shutdown().unwrap();
    let second = KuboPeer::start_with(opts).unwrap();
    assert_eq!(second.peer_id(), id);
    second.shutdown().unwrap();
}

#[test]
fn stargate_binary_is_built() {
    let bin = stargate_bin().unwrap();
    let meta = fs::metadata(&bin).unwrap();
    assert!(meta.is_file() && meta.len() > 0, "{}", bin.display());
    use std::os::unix::fs::PermissionsExt as _;
    assert_ne!(
        meta.permissions().mode() & 0o111,
        0,
        "{} is not executable",
        bin.display()
    );
}

/// Packs `input` into `car` with npm `ipfs-car` (a second, independent CAR
/// writer) and returns the root CID it printed.
fn ipfs_car_pack(input: &Path, car: &Path) -> String {
    let bin = repo_root().join("tests/js/node_modules/.bin/ipfs-car");
    let out = run_with_timeout(
        Command::new(bin)
            .arg("pack")
            .arg(input)
            .arg("--output")
            .arg(car),
        Duration::from_secs(120),
    )
    .expect("running ipfs-car pack");
    assert!(out.status.success(), "ipfs-car pack: {}", out.stderr_str());
    let root = out.stdout_str().trim().to_owned();
    assert!(root.starts_with("baf"), "ipfs-car printed {root:?}");
    root
}
