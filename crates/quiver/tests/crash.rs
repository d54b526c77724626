//! Process-crash tests, with their own `main` (harness = false) so the test binary can run
//! itself as the child:
//!
//! * `crash_rounds`: a child upserts batches and prints `ACK <batch> <size>` after each returns;
//!   the parent kills it with SIGKILL after a random number of acknowledgements (fixed seeds),
//!   reopens the folder, and checks that every acknowledged batch is present in full and that no
//!   batch is present in part. Some batches are large enough to take the bulk-segment path, and
//!   the child flushes and compacts now and then, so kills land in every stage of the write path.
//! * `second_process_gets_lock_error`: while the parent holds a data folder, a child that opens
//!   it must fail at once with the lock error.
//! * `snapshot_rounds`: a child takes snapshots of a collection, or recovers another collection
//!   from two snapshot files in turn, again and again; the parent kills it with SIGKILL at a
//!   random moment (fixed seeds) inside an operation, reopens the folder, and checks that the
//!   snapshotted collection is unchanged, that every snapshot listed is whole (it recovers),
//!   and that the recovered collection holds exactly one of the two snapshots' contents, never
//!   a mix, with no staging folder left behind.

use quiver::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const DIM: usize = 64;
const BATCH_ID_STRIDE: u64 = 1_000_000;

fn child_writer(dir: &Path, round: u64) {
    let db = Database::open(dir).expect("child opens the folder");
    let c = match db.collection("c") {
        Ok(c) => c,
        Err(Error::CollectionNotFound(_)) => db.create_collection("c", CollectionConfig::new(DIM, Metric::Dot)).expect("create"),
        Err(e) => panic!("child: {e}"),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + round);
    let stdout = std::io::stdout();
    for b in 0u64.. {
        let batch = round * 10_000 + b;
        // Mostly small batches; now and then one of ~17 MB that becomes a segment directly.
        let n = if rng.gen_bool(0.05) { 70_000 } else { rng.gen_range(1..300) };
        let points: Vec<Point> = (0..n)
            .map(|i| {
                Point::new(batch * BATCH_ID_STRIDE + i as u64, vec![(i % 7) as f32; DIM])
                    .with_payload(json!({"batch": batch, "size": n}).as_object().unwrap().clone())
            })
            .collect();
        c.upsert(points).expect("child upsert");
        writeln!(stdout.lock(), "ACK {batch} {n}").unwrap();
        match rng.gen_range(0..40) {
            0..=1 => c.flush().expect("flush"),
            2 => c.compact().expect("compact"),
            3 => {
                // Overwrite a point of this batch with the same batch tag: must not break it.
                c.set_payload(
                    &PointSelector::Ids(vec![PointId::Num(batch * BATCH_ID_STRIDE)]),
                    json!({"touched": true}).as_object().unwrap().clone(),
                )
                .expect("set payload");
            }
            _ => {}
        }
    }
}

fn check_folder(dir: &Path, acked: &BTreeMap<u64, usize>, round: u64) {
    let db = Database::open(dir).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    let c = db.collection("c").unwrap_or_else(|e| panic!("round {round}: {e}"));
    // Group what is stored by batch.
    let mut seen: BTreeMap<u64, (usize, usize)> = BTreeMap::new();
    for p in all_payloads(&c) {
        let batch = p["batch"].as_u64().unwrap();
        let size = p["size"].as_u64().unwrap() as usize;
        let e = seen.entry(batch).or_insert((0, size));
        e.0 += 1;
    }
    for (batch, size) in acked {
        let got = seen.get(batch).map(|e| e.0).unwrap_or(0);
        assert_eq!(got, *size, "round {round}: acknowledged batch {batch} has {got} of {size} points");
    }
    for (batch, (count, size)) in &seen {
        assert_eq!(count, size, "round {round}: batch {batch} is present in part ({count} of {size})");
    }
}

fn crash_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: BTreeMap<u64, usize> = BTreeMap::new();
    let rounds = 8u64;
    for round in 0..rounds {
        let seed = 42 + round;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let kill_after = rng.gen_range(1..60);
        eprintln!("crash round {round}: seed {seed}, SIGKILL after {kill_after} acknowledgements");
        let mut child = Command::new(&exe)
            .arg("--child-writer")
            .arg(dir.path())
            .arg(round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut n_acks = 0;
        while n_acks < kill_after {
            let Some(Ok(line)) = lines.next() else { break };
            let mut parts = line.split_whitespace();
            assert_eq!(parts.next(), Some("ACK"), "child said {line:?}");
            let batch: u64 = parts.next().unwrap().parse().unwrap();
            let size: usize = parts.next().unwrap().parse().unwrap();
            acked.insert(batch, size);
            n_acks += 1;
        }
        child.kill().unwrap(); // SIGKILL on Unix
                               // Acknowledgements already printed before the kill landed count too.
        for line in lines.map_while(Result::ok) {
            let mut parts = line.split_whitespace();
            if parts.next() == Some("ACK") {
                acked.insert(parts.next().unwrap().parse().unwrap(), parts.next().unwrap().parse().unwrap());
            }
        }
        let status = child.wait().unwrap();
        assert!(n_acks == kill_after, "round {round}: child ended early with {status}");
        check_folder(dir.path(), &acked, round);
    }
    eprintln!("crash rounds: {} acknowledged batches checked over {rounds} kills", acked.len());
}

/// Points of snapshot content `tag`: `n` points whose payload names the tag.
fn tagged_points(tag: u64, n: usize) -> Vec<Point> {
    (0..n)
        .map(|i| {
            Point::new(tag * BATCH_ID_STRIDE + i as u64, vec![(i % 13) as f32 + tag as f32; DIM])
                .with_payload(json!({"tag": tag, "i": i}).as_object().unwrap().clone())
        })
        .collect()
}

/// (count, the tags present) of a collection.
fn contents(c: &Collection) -> (usize, std::collections::BTreeSet<u64>) {
    let payloads = all_payloads(c);
    let tags = payloads.iter().map(|p| p["tag"].as_u64().unwrap()).collect();
    (payloads.len(), tags)
}

/// Every point's payload, in id order.
fn all_payloads(c: &Collection) -> Vec<Payload> {
    let mut out = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&ScrollRequest {
                offset,
                limit: 10_000,
                filter: None,
                with_payload: true,
                with_vector: false,
            })
            .unwrap();
        out.extend(page.points.into_iter().map(|r| r.payload.unwrap()));
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => return out,
        }
    }
}

/// The child of `snapshot_rounds`: `create` snapshots collection `src` forever, `recover`
/// recovers `dst` from the two files in turn forever; `BEGIN` before each operation.
fn child_snapshots(dir: &Path, mode: &str, files: &[String]) {
    let db = Database::open(dir).expect("child opens the folder");
    let stdout = std::io::stdout();
    for i in 0u64.. {
        writeln!(stdout.lock(), "BEGIN {i}").unwrap();
        match mode {
            "create" => {
                db.create_snapshot("src").expect("snapshot");
            }
            _ => {
                let f = &files[i as usize % files.len()];
                db.recover_snapshot("dst", Path::new(f), None).expect("recover");
            }
        }
    }
}

fn snapshot_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let (n_a, n_b) = (30_000, 20_000);
    // Two snapshot files of different contents, outside the data folder.
    let files: Vec<String> = {
        let db = Database::open(dir.path()).unwrap();
        let src = db.create_collection("src", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        src.upsert(tagged_points(1, n_a)).unwrap();
        let other = db.create_collection("other", CollectionConfig::new(DIM, Metric::Dot)).unwrap();
        other.upsert(tagged_points(2, n_b)).unwrap();
        let keep = dir.path().join("files");
        std::fs::create_dir(&keep).unwrap();
        let mut files = Vec::new();
        for name in ["src", "other"] {
            let info = db.create_snapshot(name).unwrap();
            let from = db.snapshot_file(name, &info.name).unwrap().unwrap();
            let to = keep.join(format!("{name}.snapshot"));
            std::fs::copy(&from, &to).unwrap();
            db.delete_snapshot(name, &info.name).unwrap();
            files.push(to.to_string_lossy().into_owned());
        }
        db.recover_snapshot("dst", Path::new(&files[1]), None).unwrap();
        files
    };
    // The files sit in the data folder's root, in a folder Quiver did not make (and leaves
    // alone).
    for round in 0..12u64 {
        let seed = 7 + round;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mode = if round % 2 == 0 { "create" } else { "recover" };
        let begins = rng.gen_range(1..4);
        let delay_us = rng.gen_range(0..40_000);
        eprintln!("snapshot round {round}: {mode}, SIGKILL {delay_us} us after operation {begins} began");
        let mut child = Command::new(&exe)
            .arg("--child-snapshots")
            .arg(dir.path())
            .arg(mode)
            .args(&files)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen <= begins {
            let Some(Ok(line)) = lines.next() else { break };
            assert!(line.starts_with("BEGIN"), "child said {line:?}");
            seen += 1;
        }
        // The kill's moment inside the operation is a fault's timing, not a synchronisation:
        // whatever it is, the checks below must hold.
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(seen > begins, "round {round}: child ended early with {status}");

        let db = Database::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let src = db.collection("src").unwrap();
        assert_eq!(
            contents(&src),
            (n_a, [1].into()),
            "round {round}: the snapshotted collection changed"
        );
        let dst = db.collection("dst").unwrap_or_else(|e| panic!("round {round}: dst lost: {e}"));
        let got = contents(&dst);
        assert!(
            got == (n_a, [1].into()) || got == (n_b, [2].into()),
            "round {round}: dst holds a mix: {got:?}"
        );
        for s in db.list_snapshots("src").unwrap() {
            let f = db.snapshot_file("src", &s.name).unwrap().unwrap();
            let check = db
                .recover_snapshot("check", &f, s.checksum.as_deref())
                .unwrap_or_else(|e| panic!("round {round}: listed snapshot {} is not whole: {e}", s.name));
            assert_eq!(contents(&check), (n_a, [1].into()), "round {round}: snapshot {}", s.name);
            db.drop_collection("check").unwrap();
        }
        let leftovers: Vec<String> = std::fs::read_dir(dir.path().join("collections"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: {leftovers:?}");
    }
}

fn child_lock(dir: &Path) {
    match Database::open(dir) {
        Err(e) if e.kind() == ErrorKind::Locked => println!("LOCKED {e}"),
        Err(e) => println!("ERROR {e}"),
        Ok(_) => println!("OPENED"),
    }
}

fn second_process_gets_lock_error() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let run_child = || {
        let out = Command::new(&exe).arg("--child-lock").arg(dir.path()).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let db = Database::open(dir.path()).unwrap();
    let said = run_child();
    assert!(
        said.starts_with("LOCKED") && said.contains("in use by another process"),
        "child said {said:?}"
    );
    drop(db);
    let said = run_child();
    assert!(said.starts_with("OPENED"), "after release the child said {said:?}");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--child-writer") => return child_writer(Path::new(&args[2]), args[3].parse().unwrap()),
        Some("--child-lock") => return child_lock(Path::new(&args[2])),
        Some("--child-snapshots") => return child_snapshots(Path::new(&args[2]), &args[3], &args[4..]),
        _ => {}
    }
    // Under `cargo test`, libtest-style flags may be passed; we run every test regardless.
    let tests: [(&str, fn()); 3] = [
        ("second_process_gets_lock_error", second_process_gets_lock_error),
        ("crash_rounds", crash_rounds),
        ("snapshot_rounds", snapshot_rounds),
    ];
    let mut failed = 0;
    for (name, f) in tests {
        let ok = std::panic::catch_unwind(f).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += !ok as usize;
    }
    println!("crash: {} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
