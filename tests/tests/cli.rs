//! The `stargate` CLI end to end: what `add` stores, `cat`, `get` and `ls` give back identical
//! bytes, with and without a daemon; `add -n` gives Kubo's CIDs; the daemon's lifecycle;
//! a reader that closes stdout early ends a command quietly; `--version` names the commit.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use stargate_tests::{
    KuboPeer, StargateNode, repo_root, stargate_bin, write_boundary_files, write_nested_dir,
    write_pseudo_random_file,
};

/// The CID `add -Q` printed.
fn add_quiet(node: &StargateNode, args: &[&str]) -> Result<String> {
    let mut all = vec!["add", "-Q"];
    all.extend_from_slice(args);
    Ok(node.cli_ok(&all)?.trim().to_owned())
}

fn cat(node: &StargateNode, path: &str) -> Result<Vec<u8>> {
    let out = node.cli(&["cat", path])?;
    ensure!(out.status.success(), "cat {path}: {}", out.stderr_str());
    Ok(out.stdout)
}

/// Compares two trees: same names, same kinds, same bytes, same symlink targets.
fn assert_same_tree(a: &Path, b: &Path) -> Result<()> {
    let ma = fs::symlink_metadata(a)?;
    let mb = fs::symlink_metadata(b).with_context(|| format!("{} missing", b.display()))?;
    ensure!(
        ma.file_type().is_dir() == mb.file_type().is_dir()
            && ma.file_type().is_symlink() == mb.file_type().is_symlink(),
        "{} and {} differ in kind",
        a.display(),
        b.display()
    );
    if ma.file_type().is_symlink() {
        ensure!(
            fs::read_link(a)? == fs::read_link(b)?,
            "{}: link target",
            b.display()
        );
    } else if ma.is_dir() {
        let names = |p: &Path| -> Result<Vec<_>> {
            let mut v: Vec<_> = fs::read_dir(p)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<Result<_, _>>()?;
            v.sort();
            Ok(v)
        };
        let (na, nb) = (names(a)?, names(b)?);
        ensure!(na == nb, "{}: entries {na:?} != {nb:?}", b.display());
        for n in na {
            assert_same_tree(&a.join(&n), &b.join(&n))?;
        }
    } else {
        ensure!(
            fs::read(a)? == fs::read(b)?,
            "{}: content differs",
            b.display()
        );
    }
    Ok(())
}

/// Adds the boundary files and a nested tree, then reads everything back three ways.
fn round_trips(node: &StargateNode, work: &Path) -> Result<()> {
    let files = write_boundary_files(&work.join("files"), 7)?;
    for f in &files {
        let path = f.path.to_str().context("utf-8 path")?;
        let cid = add_quiet(node, &[path])?;
        let want = fs::read(&f.path)?;
        ensure!(cat(node, &cid)? == want, "cat of {} differs", f.name);
        let out = work.join(format!("got-{}", f.name));
        node.cli_ok(&["get", &cid, "-o", out.to_str().context("utf-8")?])?;
        ensure!(fs::read(&out)? == want, "get of {} differs", f.name);
        // A range from the middle, crossing chunk boundaries where the file has several.
        let (offset, len) = (f.len / 3, f.len / 2);
        let part = node.cli(&[
            "cat",
            &cid,
            "--offset",
            &offset.to_string(),
            "--length",
            &len.to_string(),
        ])?;
        ensure!(part.status.success(), "ranged cat: {}", part.stderr_str());
        let (from, to) = (offset as usize, (offset + len) as usize);
        ensure!(
            part.stdout == want[from..to.min(want.len())],
            "range of {}",
            f.name
        );
    }

    let tree = work.join("tree");
    write_nested_dir(&tree, 11)?;
    let root = add_quiet(node, &["-r", tree.to_str().context("utf-8")?])?;
    let out = work.join("tree-out");
    node.cli_ok(&["get", &root, "-o", out.to_str().context("utf-8")?])?;
    assert_same_tree(&tree, &out)?;
    let b = cat(node, &format!("{root}/sub1/b.bin"))?;
    ensure!(
        b == fs::read(tree.join("sub1/b.bin"))?,
        "cat through a path"
    );
    let ls = node.cli_ok(&["ls", &root])?;
    ensure!(
        ls.contains(" a.txt\n") && ls.contains(" sub1/\n"),
        "ls: {ls}"
    );
    let verify = node.cli_ok(&["repo", "verify"])?;
    ensure!(verify.contains("all"), "verify: {verify}");
    Ok(())
}

#[test]
fn round_trips_without_a_daemon() -> Result<()> {
    let node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    round_trips(&node, work.path())
}

#[test]
fn round_trips_through_the_daemon() -> Result<()> {
    let mut node = StargateNode::new()?;
    node.start()?;
    let work = tempfile::tempdir()?;
    round_trips(&node, work.path())?;
    let status = node.stop()?;
    ensure!(status.success(), "daemon exit status {status}");
    ensure!(
        !node.data_dir().join("api").exists(),
        "the api file outlived the daemon"
    );
    // Without the daemon the CLI reads the same store itself.
    ensure!(
        node.cli_ok(&["pin", "ls", "-t", "recursive", "-q"])?
            .lines()
            .count()
            >= 9
    );
    Ok(())
}

#[test]
fn only_hash_gives_kubos_cids_and_stores_nothing() -> Result<()> {
    let node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    let files = write_boundary_files(&work.path().join("files"), 3)?;
    let tree = work.path().join("tree");
    write_nested_dir(&tree, 5)?;
    let mut kubo = KuboPeer::start()?;
    for path in files.iter().map(|f| f.path.clone()).chain([tree.clone()]) {
        let p = path.to_str().context("utf-8")?;
        let ours = add_quiet(&node, &["-n", "-r", "-H", p])?;
        let theirs = kubo.add(&path, true)?.cid;
        ensure!(ours == theirs, "{p}: stargate {ours}, kubo {theirs}");
    }
    let stat = node.cli_ok(&["repo", "stat"])?;
    ensure!(
        stat.contains("NumObjects: 0"),
        "only-hash stored something: {stat}"
    );
    Ok(())
}

#[test]
fn add_prints_every_entry_like_kubo() -> Result<()> {
    let node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    let tree = work.path().join("t");
    fs::create_dir_all(tree.join("sub"))?;
    fs::write(tree.join("a.txt"), b"a")?;
    fs::write(tree.join("sub/b.txt"), b"b")?;
    fs::write(tree.join(".hidden"), b"h")?;
    let out = node.cli_ok(&["add", "-r", tree.to_str().context("utf-8")?])?;
    let names: Vec<_> = out
        .lines()
        .map(|l| l.splitn(3, ' ').collect::<Vec<_>>())
        .map(|p| (p[0].to_owned(), p[2].to_owned()))
        .collect();
    ensure!(names.iter().all(|(w, _)| w == "added"), "{out}");
    let paths: Vec<_> = names.iter().map(|(_, n)| n.as_str()).collect();
    ensure!(
        paths == ["t/a.txt", "t/sub/b.txt", "t/sub", "t"],
        "{paths:?}"
    );
    let quiet = node.cli_ok(&["add", "-q", "-r", tree.to_str().context("utf-8")?])?;
    ensure!(
        quiet.lines().count() == 4 && !quiet.contains("added"),
        "{quiet}"
    );
    let dir = node.cli_err(&["add", tree.to_str().context("utf-8")?])?;
    ensure!(dir.contains("-r"), "adding a directory without -r: {dir}");
    Ok(())
}

#[test]
fn a_second_daemon_on_the_same_data_dir_fails_clearly() -> Result<()> {
    let mut first = StargateNode::new()?;
    first.start()?;
    let out = run_second_daemon(&first)?;
    ensure!(!out.status.success(), "the second daemon started");
    ensure!(
        out.stderr_str()
            .contains("in use by another stargate process"),
        "{}",
        out.stderr_str()
    );
    ensure!(first.stop()?.success());
    Ok(())
}

/// Starts a second daemon on `first`'s data dir (with the same loopback-only settings).
fn run_second_daemon(first: &StargateNode) -> Result<stargate_tests::CommandOutput> {
    let mut cmd = first.command()?;
    cmd.args([
        "daemon",
        "--api-addr",
        "127.0.0.1:0",
        "--gateway-addr",
        "127.0.0.1:0",
    ]);
    stargate_tests::run_with_timeout(&mut cmd, std::time::Duration::from_secs(60))
}

#[test]
fn gc_drops_unpinned_blocks_only() -> Result<()> {
    let node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    let (kept, dropped) = (work.path().join("kept"), work.path().join("dropped"));
    write_pseudo_random_file(&kept, 600_000, 1)?;
    write_pseudo_random_file(&dropped, 600_000, 2)?;
    let kept_cid = add_quiet(&node, &[kept.to_str().context("utf-8")?])?;
    let dropped_cid = add_quiet(&node, &["--pin=false", dropped.to_str().context("utf-8")?])?;
    node.cli_ok(&["repo", "gc"])?;
    ensure!(cat(&node, &kept_cid)? == fs::read(&kept)?);
    let err = node.cli_err(&["cat", &dropped_cid])?;
    ensure!(err.contains("not found"), "{err}");
    node.cli_ok(&["pin", "rm", &kept_cid])?;
    node.cli_ok(&["repo", "gc"])?;
    ensure!(node.cli_ok(&["repo", "stat"])?.contains("NumObjects: 0"));
    Ok(())
}

/// Runs `stargate ARGS` with its stdout a pipe nobody reads (`stargate ... | head -0`).
fn with_stdout_closed(node: &StargateNode, args: &[&str]) -> Result<()> {
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    let mut child = node
        .command()?
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let status = stargate_tests::wait_or_kill(&mut child, std::time::Duration::from_secs(60))?;
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        std::io::Read::read_to_string(&mut e, &mut stderr)?;
    }
    ensure!(
        status.success() && stderr.trim().is_empty(),
        "stargate {} with stdout closed: {status}, stderr {stderr:?}",
        args.join(" ")
    );
    Ok(())
}

#[test]
fn a_reader_that_goes_away_ends_a_command_quietly() -> Result<()> {
    let node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    let file = work.path().join("f");
    write_pseudo_random_file(&file, 4 << 20, 9)?;
    let cid = add_quiet(&node, &[file.to_str().context("path")?])?;
    // A line at a time (`println!` used to panic here) and a stream of bytes.
    with_stdout_closed(&node, &["pin", "ls"])?;
    with_stdout_closed(&node, &["cat", &cid])?;
    // Nothing was lost: the store still answers.
    ensure!(cat(&node, &cid)? == fs::read(&file)?, "cat after");
    Ok(())
}

#[test]
fn version_names_the_release_and_the_commit() -> Result<()> {
    let run = |program: &Path, args: &[&str]| -> Result<String> {
        let out = std::process::Command::new(program)
            .args(args)
            .current_dir(repo_root())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        ensure!(
            out.status.success(),
            "{} {args:?} failed",
            program.display()
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let version = run(&stargate_bin()?, &["--version"])?;
    let head = run(Path::new("git"), &["rev-parse", "--short=12", "HEAD"])?;
    let expected = format!("stargate {} (commit {head})", env!("CARGO_PKG_VERSION"));
    ensure!(
        version == expected,
        "--version said {version:?}, expected {expected:?}"
    );
    Ok(())
}
