//! `kill -9` of a daemon in the middle of a large add: after a restart `repo verify` passes, no
//! pin names an incomplete DAG, and adding again completes.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use stargate_tests::{StargateNode, write_pseudo_random_file};

#[test]
fn kill_9_during_an_add_leaves_a_sound_store() -> Result<()> {
    let mut node = StargateNode::new()?;
    let work = tempfile::tempdir()?;
    let big = work.path().join("big");
    write_pseudo_random_file(&big, 400 * 1024 * 1024, 42)?;
    let big = big.to_str().context("utf-8")?.to_owned();
    let want_cid = node.cli_ok(&["add", "-Q", "-n", &big])?.trim().to_owned();

    // How long a whole add takes here, so the kills land inside one.
    node.start()?;
    let started = Instant::now();
    node.cli_ok(&["add", "-Q", "--pin=false", &big])?;
    let full = started.elapsed();
    node.cli_ok(&["repo", "gc"])?;
    node.stop()?;

    // Kill early, in the middle and near the end of the add. An add that beats its kill (adds
    // vary in speed from run to run) is collected and tried again with half the delay.
    for fraction in [0.15, 0.4, 0.65] {
        let mut delay = full.mul_f64(fraction);
        let mut attempts = 0;
        node.start()?;
        loop {
            let mut add = node.command()?;
            add.args(["add", "-Q", &big])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut client = add.spawn().context("starting the add")?;
            std::thread::sleep(delay);
            if client.try_wait()?.is_none() {
                node.kill9()?;
                let _ = client.wait();
                break;
            }
            attempts += 1;
            ensure!(
                attempts < 5,
                "every add finished before its kill (last at {delay:?}): the crash was not exercised"
            );
            node.cli_ok(&["pin", "rm", &want_cid])?;
            node.cli_ok(&["repo", "gc"])?;
            delay /= 2;
        }

        node.start()?;
        let verify = node.cli(&["repo", "verify"])?;
        ensure!(
            verify.status.success(),
            "verify after kill at {delay:?}: {}{}",
            verify.stdout_str(),
            verify.stderr_str()
        );
        // Every recursive pin's DAG is complete: exporting it reads every block.
        for (i, cid) in node
            .cli_ok(&["pin", "ls", "-t", "recursive", "-q"])?
            .lines()
            .enumerate()
        {
            let out = work.path().join(format!("export-{fraction}-{i}"));
            node.cli_ok(&["get", cid, "-o", out.to_str().context("utf-8")?])
                .with_context(|| format!("pin {cid} after kill at {delay:?}"))?;
            std::fs::remove_file(&out).or_else(|_| std::fs::remove_dir_all(&out))?;
        }
        // What the killed add left behind is unpinned; collect it so the next add starts afresh.
        node.cli_ok(&["repo", "gc"])?;
        node.cli_ok(&["repo", "verify"])?;
        node.stop()?;
    }

    // Adding again completes and gives the same content back.
    node.start()?;
    let cid = node.cli_ok(&["add", "-Q", &big])?.trim().to_owned();
    ensure!(cid == want_cid, "re-add gave {cid}, expected {want_cid}");
    let mut cat = node.command()?;
    cat.args(["cat", &cid]);
    let out = stargate_tests::run_with_timeout(&mut cat, Duration::from_secs(300))?;
    ensure!(out.status.success(), "{}", out.stderr_str());
    ensure!(
        out.stdout == std::fs::read(&big)?,
        "content differs after re-add"
    );
    node.cli_ok(&["repo", "verify"])?;
    ensure!(node.stop()?.success());
    Ok(())
}
