"""Table and plot of bench/on_disk.sh's results (bench/results/on-disk.jsonl).

QPS at recall 0.95 is read off each run's recall-QPS curve (its `ef` points), interpolated
linearly in recall between the two points around 0.95; "-" when no `ef` reached it.
Usage: python bench/on_disk_report.py bench/results/on-disk.jsonl
"""

import json
import sys
from pathlib import Path

TARGET = 0.95


def qps_at(runs, target=TARGET):
    pts = sorted((r["recall"], r["qps"]) for r in runs)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if pts and pts[0][0] >= target:
        return pts[0][1]
    return None


def mib(b):
    return f"{b / 2**20:,.0f}" if b is not None else "-"


def main(path):
    lines = [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]
    builds = {l["points"]: l for l in lines if l.get("bench") == "build"}
    runs = [l for l in lines if l.get("bench") == "collection"]
    cpu = next((l["cpu"] for l in lines if "cpu" in l), "?")
    dim = next((l["dim"] for l in lines if "dim" in l), "?")
    snaps = [l for l in lines if l.get("bench") == "snapshot"]
    out = [
        f"CPU: {cpu} (2 cores). {dim}-d synthetic clustered vectors (24 latent factors + noise), cosine, int8 codes, "
        f"k=10, one thread, one query at a time; 1,000 queries, median of 2 timed passes after a warm-up pass "
        f"(capped runs: the first 300 queries, 1 timed pass after a warm-up pass, cold page cache). "
        f"Raw = N x {dim} x 4 bytes. `disk-capped`: vectors on disk, the process in a cgroup-v1 memory cgroup "
        f"capped at 0.8 x raw. Made by `bash bench/on_disk.sh` (DIM, sizes).",
        "",
        "| points | raw MiB | upsert s | index build s | disk MiB | mode | cap MiB | open s | resident MiB (anon + file) | peak in cgroup MiB | QPS at recall 0.95 | best recall (QPS) |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    series = {}
    for r in runs:
        n = r["points"]
        b = builds.get(n, {})
        raw = n * r["dim"] * 4
        res = r["resident_after_search"]
        q95 = qps_at(r["runs"])
        best = max(r["runs"], key=lambda x: (x["recall"], x["qps"]))
        out.append(
            f"| {n:,} | {mib(raw)} | {b.get('upsert_s', 0):.1f} | {b.get('build_s', 0):.1f} | {mib(b.get('disk_bytes'))} | "
            f"{r['mode']} | {mib(r.get('cap_bytes'))} | {r['open_s']:.2f} | {mib(res['rss_bytes'])} "
            f"({mib(res['anon_bytes'])} + {mib(res['file_bytes'])}) | {mib(r.get('peak_bytes'))} | "
            f"{q95:,.0f} | {best['recall']:.3f} ({best['qps']:,.0f}) |"
            if q95 is not None
            else f"| {n:,} | {mib(raw)} | {b.get('upsert_s', 0):.1f} | {b.get('build_s', 0):.1f} | {mib(b.get('disk_bytes'))} | "
            f"{r['mode']} | {mib(r.get('cap_bytes'))} | {r['open_s']:.2f} | {mib(res['rss_bytes'])} "
            f"({mib(res['anon_bytes'])} + {mib(res['file_bytes'])}) | {mib(r.get('peak_bytes'))} | - | "
            f"{best['recall']:.3f} ({best['qps']:,.0f}) |"
        )
        series.setdefault(r["mode"], []).append((n, r["open_s"], res["anon_bytes"] / raw, q95))
    for sn in snaps:
        mb = sn["bytes"] / 1e6
        out.append("")
        out.append(
            f"Snapshot of {sn['points']:,} points ({mb:,.0f} MB archive, vectors on disk): created in {sn['create_s']:.1f} s "
            f"({mb / sn['create_s']:,.0f} MB/s), restored in {sn['restore_s']:.1f} s ({mb / sn['restore_s']:,.0f} MB/s)."
        )
    for l in lines:
        if l.get("bench") in ("capped-skipped", "capped-failed"):
            out.append("")
            out.append(f"{l['points']:,} points: capped run {l['bench'].split('-')[1]} (cap {mib(l['cap_bytes'])} MiB; "
                       f"anonymous resident {mib(l.get('anon_bytes'))} MiB must fit under it).")
    out.append("")
    out.append("Per `ef` (recall, QPS):")
    out.append("")
    for r in runs:
        pts = ", ".join(f"ef {x['ef']}: {x['recall']:.3f} @ {x['qps']:,.0f}" for x in r["runs"])
        out.append(f"* {r['points']:,} {r['mode']}: {pts}")
    md = Path(path).with_suffix(".md")
    md.write_text("\n".join(out) + "\n")
    print("\n".join(out))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 3, figsize=(14, 4))
    for mode, pts in sorted(series.items()):
        pts.sort()
        ns = [p[0] for p in pts]
        ax[0].plot(ns, [p[1] for p in pts], "o-", label=mode)
        ax[1].plot(ns, [p[2] for p in pts], "o-", label=mode)
        ax[2].plot([p[0] for p in pts if p[3]], [p[3] for p in pts if p[3]], "o-", label=mode)
    for a, t in zip(ax, ["open time (s)", "anonymous resident / raw vector bytes", "QPS at recall@10 0.95 (1 thread)"]):
        a.set_xscale("log")
        a.set_xlabel(f"points ({dim}-d)")
        a.set_title(t)
        a.legend()
        a.grid(alpha=0.3)
    ax[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(Path(path).with_suffix(".png"), dpi=110)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench/results/on-disk.jsonl")
