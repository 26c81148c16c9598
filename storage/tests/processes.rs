//! Tests that need a second process: this executable re-runs itself as the child.
//!
//! - `kill -9` at random moments of a writer that streams DAGs in batches, pins each in its
//!   last transaction, unpins old ones and runs GC: after every kill the store opens, every
//!   block matches its hash, every pin's DAG is complete, and every pin the child reported
//!   done is there.
//! - A second process opening a data dir that is in use fails at once with a clear error.
//!
//! Runs without the libtest harness (`harness = false`) but answers libtest's `--list`, name
//! filter and `--exact`, which nextest relies on.
// Without the harness clippy does not see a test; unwrapping is how a test fails here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

mod common;

use rand::Rng;
use stargate_protocol::{Block, Cid, Codec, PbNode};
use stargate_storage::{PinFilter, PinMode, Store, StoreError, StoreOptions};

const CHILD_WRITER: &str = "--child-writer";
const CHILD_HOLD: &str = "--child-hold";
const KILL_ROUNDS: usize = 30;

/// The tests, by name, in the order they run.
const TESTS: &[(&str, fn())] = &[
    (
        "a_second_process_is_refused_at_once",
        a_second_process_is_refused_at_once,
    ),
    (
        "kill_9_never_leaves_a_broken_store",
        kill_9_never_leaves_a_broken_store,
    ),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some(CHILD_WRITER) => child_writer(Path::new(&args[2])),
        Some(CHILD_HOLD) => child_hold(Path::new(&args[2])),
        _ => run_as_libtest(&args[1..]),
    }
}

/// Answers the part of libtest's command line that cargo test and nextest use: `--list`
/// (`--ignored` lists nothing: none is ignored), a name filter, and `--exact`.
fn run_as_libtest(args: &[String]) {
    let flag = |f: &str| args.iter().any(|a| a == f);
    // Options that take a value in the next argument; the value is not a filter.
    const WITH_VALUE: &[&str] = &[
        "--format",
        "--color",
        "--test-threads",
        "--skip",
        "--logfile",
    ];
    let filter = args
        .iter()
        .enumerate()
        .find(|(i, a)| {
            !a.starts_with("--") && (*i == 0 || !WITH_VALUE.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a);
    let exact = flag("--exact");
    let selected = TESTS.iter().filter(|(name, _)| match filter {
        None => true,
        Some(f) if exact => name == f,
        Some(f) => name.contains(f.as_str()),
    });
    if flag("--list") {
        if !flag("--ignored") {
            for (name, _) in selected {
                println!("{name}: test");
            }
        }
        return;
    }
    for (name, test) in selected {
        run(name, *test);
    }
}

fn run(name: &str, test: fn()) {
    let start = Instant::now();
    println!("test {name} ...");
    test();
    println!(
        "test {name} ... ok ({:.1} s)",
        start.elapsed().as_secs_f64()
    );
}

fn spawn_child(mode: &str, dir: &Path) -> (Child, Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg(mode)
        .arg(dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    (child, lines(stdout))
}

/// Complete lines the child printed (a line cut short by the kill is dropped).
fn lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            if line.ends_with(b"\n")
                && tx
                    .send(String::from_utf8_lossy(&line).trim().to_owned())
                    .is_err()
            {
                return;
            }
            line.clear();
        }
    });
    rx
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
}

// ---- the lock ----

fn child_hold(dir: &Path) {
    let _store = Store::open(dir, StoreOptions::default()).expect("child opens the store");
    say("open");
    std::thread::sleep(Duration::from_secs(600));
}

fn a_second_process_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines) = spawn_child(CHILD_HOLD, dir.path());
    assert_eq!(
        lines.recv_timeout(Duration::from_secs(30)).as_deref(),
        Ok("open")
    );
    let start = Instant::now();
    let err = Store::open(dir.path(), StoreOptions::default()).unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "open waited for the lock"
    );
    assert_eq!(
        err,
        StoreError::InUse {
            path: dir.path().to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "data dir {} is in use by another stargate process (daemon running?)",
            dir.path().display()
        )
    );
    child.kill().unwrap();
    child.wait().unwrap();
    // The lock dies with the process.
    Store::open(dir.path(), StoreOptions::default()).unwrap();
}

// ---- kill -9 ----

/// Streams random DAGs forever: each in small batches with its recursive pin in the last
/// transaction; keeps a few pins, unpinning the oldest and collecting garbage now and then.
fn child_writer(dir: &Path) {
    let mut options = StoreOptions::default();
    options.batch_bytes = 256 * 1024;
    let store = Store::open(dir, options).expect("child opens the store");
    let mut pinned: Vec<Cid> = store
        .pins(PinFilter::Recursive)
        .expect("list pins")
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let mut rng = rand::rng();
    for round in 0u64.. {
        let blocks = random_dag(&mut rng);
        let root = *blocks.last().expect("a root").cid();
        let mut writer = store.writer();
        for block in blocks {
            writer.put(block).expect("put");
        }
        writer
            .finish(Some((root, PinMode::Recursive)))
            .expect("finish");
        say(&format!("pinned {root}"));
        pinned.push(root);
        if pinned.len() > 4 {
            let old = pinned.remove(0);
            say(&format!("unpinning {old}"));
            store.unpin(&old).expect("unpin");
        }
        if round % 3 == 2 {
            store.gc().expect("gc");
        }
    }
}

/// Leaves (raw and dag-pb), inner nodes over runs of them, and a root; root last.
fn random_dag(rng: &mut impl Rng) -> Vec<Block> {
    let leaves: Vec<Block> = (0..rng.random_range(1..24))
        .map(|_| {
            let mut data = vec![0u8; rng.random_range(0..120_000)];
            rng.fill(&mut data[..]);
            if rng.random_bool(0.5) {
                common::raw(data)
            } else {
                common::node(&[], &data)
            }
        })
        .collect();
    let mut blocks = leaves.clone();
    let inner: Vec<Block> = leaves
        .chunks(rng.random_range(1..6))
        .map(|run| common::node(&run.iter().collect::<Vec<_>>(), &[1]))
        .collect();
    blocks.extend(inner.iter().cloned());
    let salt = rng.random::<u64>().to_le_bytes().to_vec();
    blocks.push(common::node(&inner.iter().collect::<Vec<_>>(), &salt));
    blocks
}

fn kill_9_never_leaves_a_broken_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    // Pins the child reported done and did not start to remove.
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut total_acks = 0;
    for round in 0..KILL_ROUNDS {
        let (mut child, lines) = spawn_child(CHILD_WRITER, dir.path());
        // Every other round the kill comes after the child has acknowledged a DAG, however slow
        // the machine: there are acknowledged pins to lose. The others kill at any moment, also
        // while the store is still being opened (and repaired after the last kill).
        let mut seen = Vec::new();
        if round % 2 == 0 {
            while !seen.iter().any(|l: &String| l.starts_with("pinned ")) {
                let line = lines
                    .recv_timeout(Duration::from_secs(60))
                    .unwrap_or_else(|e| {
                        panic!("round {round}: the child acknowledged no DAG: {e}")
                    });
                seen.push(line);
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(30..700)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for line in seen.into_iter().chain(lines.iter()) {
            if let Some(cid) = line.strip_prefix("pinned ") {
                acknowledged.insert(cid.to_owned());
                total_acks += 1;
            } else if let Some(cid) = line.strip_prefix("unpinning ") {
                acknowledged.remove(cid);
            }
        }
        check_after_crash(dir.path(), &acknowledged, round);
    }
    println!("    {total_acks} DAGs acknowledged over {KILL_ROUNDS} kills");
}

fn check_after_crash(dir: &Path, acknowledged: &BTreeSet<String>, round: usize) {
    let store = Store::open(dir, StoreOptions::default())
        .unwrap_or_else(|e| panic!("round {round}: reopening after kill -9: {e}"));
    let report = store.verify(|_| {}).unwrap();
    assert!(
        report.corrupt.is_empty(),
        "round {round}: corrupt blocks after kill -9: {:?}",
        report.corrupt
    );
    let pins: BTreeSet<String> = store
        .pins(PinFilter::Recursive)
        .unwrap()
        .into_iter()
        .map(|(c, _)| c.to_string())
        .collect();
    for cid in acknowledged {
        assert!(
            pins.contains(cid),
            "round {round}: acknowledged pin {cid} lost"
        );
    }
    for pin in &pins {
        let cid = stargate_protocol::parse_cid(pin).unwrap();
        assert_dag_complete(&store, &cid, round);
    }
}

fn assert_dag_complete(store: &Store, root: &Cid, round: usize) {
    let mut stack = vec![*root];
    while let Some(cid) = stack.pop() {
        let block = store
            .get(&cid)
            .unwrap()
            .unwrap_or_else(|| panic!("round {round}: pinned DAG {root} lacks block {cid}"));
        if cid.codec() == Codec::DagPb.code() {
            let node = PbNode::decode(block.data()).unwrap();
            stack.extend(node.links.iter().map(|l| l.cid));
        }
    }
}
