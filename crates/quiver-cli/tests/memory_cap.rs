//! A collection larger than the memory its process may use: 150,000 x 256 float vectors
//! (146 MiB raw) kept on disk (`--on-disk`), opened and searched by a `quiver` process inside a
//! memory cgroup capped at 128 MiB. The capped process must open the collection, answer every
//! query exactly as an uncapped process does (same index, same data, same answers; graph and
//! exact scan), reach the recall of the graph against exact search, and really have been held
//! at the cap (the cgroup's failure count shows it reclaimed pages to stay under it). The
//! collection's files are dropped from the page cache before each capped run: cached pages
//! are charged to the cgroup that read them first.
//!
//! Needs root and the cgroup v1 memory controller at `/sys/fs/cgroup/memory` (the project's
//! machines have both). As another user the test says it skipped; as root, a cgroup that cannot
//! be made is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

const N: usize = 150_000;
const DIM: usize = 256;
const QUERIES: usize = 40;
const CAP_BYTES: u64 = 128 << 20;

fn quiver(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_quiver"));
    c.arg("--data-dir").arg(data);
    c
}

fn run(mut c: Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn xorshift(mut s: u64) -> impl FnMut() -> f32 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    }
}

/// Deterministic data shaped like text embeddings: 16 latent factors mixed into 256
/// dimensions (one fixed mixing matrix for data and queries), plus a little noise.
fn data(rows: usize, seed: u64) -> Vec<f32> {
    const LATENT: usize = 16;
    let mut mix = xorshift(0x2545_f491_4f6c_dd1d);
    let basis: Vec<f32> = (0..LATENT * DIM).map(|_| mix()).collect();
    let mut next = xorshift(seed);
    let mut out = Vec::with_capacity(rows * DIM);
    for _ in 0..rows {
        let z: Vec<f32> = (0..LATENT).map(|_| next() + next() + next()).collect();
        for d in 0..DIM {
            let v: f32 = (0..LATENT).map(|j| z[j] * basis[j * DIM + d]).sum();
            out.push(v + 0.05 * next());
        }
    }
    out
}

/// Each line of `quiver --json search --file` is one query's hits; their ids.
fn hit_ids(out: &str) -> Vec<Vec<u64>> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect()
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn read_u64(p: &Path) -> u64 {
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

#[test]
fn a_collection_larger_than_its_memory_cap_is_searched_exactly_as_without_the_cap() {
    let root = Path::new("/sys/fs/cgroup/memory");
    // SAFETY-free check of the effective user: /proc/self/status's Uid line.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid0 = status
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !uid0 || !root.join("memory.limit_in_bytes").exists() {
        eprintln!("skipped: needs root and the cgroup v1 memory controller at {}", root.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let npy = dir.path().join("x.npy");
    quiver::npy::write(&npy, &quiver::npy::encode_f32(N, DIM, &data(N, 0x9e37_79b9_7f4a_7c15))).unwrap();
    let qpath = dir.path().join("q.npy");
    quiver::npy::write(&qpath, &quiver::npy::encode_f32(QUERIES, DIM, &data(QUERIES, 12345))).unwrap();

    let mut c = quiver(&data_dir);
    c.args(["create", "big", "--dim", "256", "--on-disk"]);
    run(c);
    let mut c = quiver(&data_dir);
    c.args(["upsert", "big", "--file"]).arg(&npy);
    run(c);
    let mut c = quiver(&data_dir);
    c.args(["build-index", "big"]);
    run(c);
    std::fs::remove_file(&npy).unwrap();

    let search = |exact: bool| {
        let mut c = quiver(&data_dir);
        c.args(["--json", "search", "big", "-k", "10", "--file"]).arg(&qpath);
        if exact {
            c.arg("--exact");
        }
        c
    };
    let free = hit_ids(&run(search(false)));
    let truth = hit_ids(&run(search(true)));
    assert_eq!(free.len(), QUERIES);

    let cg = Cgroup(root.join(format!("quiver-test-{}", std::process::id())));
    std::fs::create_dir(&cg.0).expect("make a memory cgroup (root, cgroup v1)");
    std::fs::write(cg.0.join("memory.limit_in_bytes"), CAP_BYTES.to_string()).unwrap();
    assert_eq!(read_u64(&cg.0.join("memory.limit_in_bytes")), CAP_BYTES);
    // The shell moves itself into the cgroup, then becomes quiver.
    let in_cgroup = |inner: Command| {
        let mut args = vec![inner.get_program().to_string_lossy().into_owned()];
        args.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
        let script = format!("echo $$ > {}/cgroup.procs && exec \"$@\"", cg.0.display());
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script).arg("sh").args(&args);
        sh
    };
    // Page-cache pages are charged to the cgroup that reads them first: drop the collection's
    // files from the cache (GNU dd's `nocache`), or the capped process would find its vectors
    // already read, and paid for, by the free one.
    let uncache = || {
        for f in walk(&data_dir) {
            let ok = Command::new("dd")
                .arg(format!("if={}", f.display()))
                .args(["iflag=nocache", "count=0", "status=none"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "dd could not drop {} from the page cache", f.display());
        }
    };
    uncache();
    let capped = hit_ids(&run(in_cgroup(search(false))));
    assert_eq!(capped, free, "the capped process answers as the free one does");
    // An exact scan reads every vector, more than the cap holds: the pages come and go.
    uncache();
    let capped_exact = hit_ids(&run(in_cgroup(search(true))));
    assert_eq!(capped_exact, truth, "the capped exact scan answers as the free one does");
    let found: usize = capped
        .iter()
        .zip(&truth)
        .map(|(a, t)| a.iter().filter(|id| t.contains(id)).count())
        .sum();
    let recall = found as f64 / (QUERIES * 10) as f64;
    assert!(recall >= 0.9, "recall@10 {recall}");
    let max = read_u64(&cg.0.join("memory.max_usage_in_bytes"));
    let failcnt = read_u64(&cg.0.join("memory.failcnt"));
    eprintln!(
        "capped at {} MiB (raw vectors {} MiB): peak {} MiB, {failcnt} reclaims at the cap, recall@10 {recall:.3}",
        CAP_BYTES >> 20,
        (N * DIM * 4) >> 20,
        max >> 20
    );
    assert!(max <= CAP_BYTES, "peak {max}");
    assert!(failcnt > 0, "the process never reached its cap: the test would prove nothing");
    assert!(((N * DIM * 4) as u64) > CAP_BYTES);
}
