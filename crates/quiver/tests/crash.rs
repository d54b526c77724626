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
        for r in &page.points {
            let p = r.payload.as_ref().unwrap();
            let batch = p["batch"].as_u64().unwrap();
            let size = p["size"].as_u64().unwrap() as usize;
            let e = seen.entry(batch).or_insert((0, size));
            e.0 += 1;
        }
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
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
        _ => {}
    }
    // Under `cargo test`, libtest-style flags may be passed; we run every test regardless.
    let tests: [(&str, fn()); 2] = [
        ("second_process_gets_lock_error", second_process_gets_lock_error),
        ("crash_rounds", crash_rounds),
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
