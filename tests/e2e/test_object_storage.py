"""End to end: `quiver serve --storage s3://...` against a real S3-API server on loopback (moto's
server mode), driven by the official Qdrant Python client.

- The S3 server is first checked to honour conditional writes (If-None-Match: * refused with
  412 on an existing key), which Quiver's fencing relies on.
- A writer is killed with SIGKILL while clients upsert: a new writer on an empty cache takes
  over and holds every acknowledged point (and nothing is torn: it opens).
- With `--wal local`, writes acknowledged from the local WAL survive kill -9: the same node
  restarting on its disk uploads them.
- A second writer is refused while the first holds the collection; with --takeover it wins, and
  the old writer's next write fails.
- A read replica (--read-only) sees a commit within its poll interval, refuses writes (403), and
  keeps answering with the writer dead and with its cache folder deleted under it.
- Object-store errors (HTTP 500 and 503) injected by a proxy between Quiver and the S3 server:
  writes retried and acknowledged; a store that keeps failing surfaces a clear error, and once
  it heals nothing acknowledged is missing.
- A replica on an empty cache answers at once, the same as one that downloaded everything,
  with its base segment only partly fetched (through a proxy that fails every fourth request),
  then fetches the rest on its own; `--cold-start on-demand` fetches only what searches read.
- Snapshots taken by the writer are in the bucket; a replica lists them and serves their files;
  only the writer deletes them.

Usage: python tests/e2e/test_object_storage.py path/to/quiver
Prints one line per test and a closing 'e2e: N passed, M failed'.
"""
import hashlib
import http.client
import http.server
import json
import os
import random
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request

import boto3
import botocore
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

QUIVER = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/quiver")
DIM = 8
KEYS = {"AWS_ACCESS_KEY_ID": "quiver", "AWS_SECRET_ACCESS_KEY": "quiver-secret", "AWS_REGION": "us-east-1"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, check, timeout=30.0):
    """Polls `check` until it returns a true value (a condition, not a sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class S3:
    """moto's S3 server on a free loopback port."""

    def __init__(self):
        self.port = free_port()
        moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
        self.proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.client = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEYS["AWS_ACCESS_KEY_ID"],
                                   aws_secret_access_key=KEYS["AWS_SECRET_ACCESS_KEY"], region_name=KEYS["AWS_REGION"])

        def up():
            try:
                self.client.list_buckets()
                return True
            except Exception:  # noqa: BLE001 - not listening yet
                return False
        wait_until("the S3 server", up)

    def bucket(self, name):
        self.client.create_bucket(Bucket=name)
        return name

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class FaultyProxy:
    """Forwards HTTP to the S3 server; fails requests on demand: `fail_every` answers every n-th
    request with 500/503 instead of forwarding it, `down` answers every request with 503."""

    def __init__(self, target_port):
        self.fail_every = 0
        self.down = False
        self.count = 0
        self.injected = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def relay(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.count += 1
                if proxy.down or (proxy.fail_every and proxy.count % proxy.fail_every == 0):
                    proxy.injected += 1
                    status = 503 if proxy.down or proxy.count % 2 else 500
                    msg = b"<Error><Code>SlowDown</Code><Message>injected</Message></Error>" if status == 503 else \
                        b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", target_port, timeout=60)
                headers = {k: v for k, v in self.headers.items()}
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = relay

        class Threaded(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.port = free_port()
        self.server = Threaded(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()


class Quiver:
    def __init__(self, endpoint, url, *extra, cache=None, env=None):
        self.dir = cache or tempfile.mkdtemp(prefix="quiver-s3-cache-")
        self.port = free_port()
        e = dict(os.environ, **KEYS, AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true", **(env or {}))
        self.proc = subprocess.Popen(
            [QUIVER, "--data-dir", self.dir, "--storage", url, *extra, "serve", "--port", str(self.port)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=e,
        )
        line = self.proc.stdout.readline()
        assert "quiver serving on" in line, f"server did not start: {line!r}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = QdrantClient(url=self.url, timeout=120)

    def storage(self):
        with urllib.request.urlopen(self.url + "/storage") as r:
            return json.load(r)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def points(ids, rng):
    vs = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    return [models.PointStruct(id=int(i), vector=v.tolist(), payload={"n": int(i)}) for i, v in zip(ids, vs)]


def all_ids(client, name):
    got, offset = set(), None
    while True:
        page, offset = client.scroll(name, limit=1000, offset=offset, with_payload=False)
        got.update(p.id for p in page)
        if offset is None:
            return got


def main():
    results = []
    s3 = S3()
    rng = np.random.default_rng(5)
    procs = []

    def start(*a, **k):
        q = Quiver(*a, **k)
        procs.append(q)
        return q

    def run(test):
        try:
            test()
            results.append(True)
            print(f"test {test.__name__} ... ok", flush=True)
        except Exception:  # noqa: BLE001 - report and keep going
            results.append(False)
            print(f"test {test.__name__} ... FAILED", flush=True)
            traceback.print_exc()

    def test_the_s3_server_honours_conditional_writes():
        b = s3.bucket("conditional")
        s3.client.put_object(Bucket=b, Key="k", Body=b"1", IfNoneMatch="*")
        try:
            s3.client.put_object(Bucket=b, Key="k", Body=b"2", IfNoneMatch="*")
            raise AssertionError("a second create-if-absent was accepted: this server cannot fence writers")
        except botocore.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response
        assert s3.client.get_object(Bucket=b, Key="k")["Body"].read() == b"1"

    def test_kill_9_mid_upload_loses_nothing_acknowledged():
        url = f"s3://{s3.bucket('kill')}/db"
        w = start(s3.endpoint, url)
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        acked, stop = set(), threading.Event()
        local = np.random.default_rng(1)

        def writer_loop(base):
            i = 0
            while not stop.is_set():
                ids = list(range(base + i * 50, base + i * 50 + 50))
                try:
                    w.client.upsert("docs", points(ids, local), wait=True)
                except Exception:  # noqa: BLE001 - the server died under this request
                    return
                acked.update(ids)
                i += 1
        threads = [threading.Thread(target=writer_loop, args=(b,)) for b in (0, 1_000_000)]
        for t in threads:
            t.start()
        wait_until("some acknowledged writes", lambda: len(acked) >= 1500)
        w.kill()
        stop.set()
        for t in threads:
            t.join()
        # A new machine (empty cache) takes over from the dead writer (its lease is still fresh).
        w2 = start(s3.endpoint, url, "--takeover")
        got = all_ids(w2.client, "docs")
        missing = acked - got
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {sorted(missing)[:5]}"
        assert w2.client.count("docs").count == len(got)
        w2.stop()

    def test_local_wal_survives_kill_9_and_a_restart_on_the_same_disk():
        url = f"s3://{s3.bucket('local-wal')}/db"
        # Group commits held for 10 s: at the kill, the writes are in the local WAL only.
        w = start(s3.endpoint, url, "--wal", "local", "--storage-group-ms", "10000")
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
        acked = set()
        for i in range(30):
            ids = list(range(i * 10, i * 10 + 10))
            w.client.upsert("docs", points(ids, rng), wait=True)
            acked.update(ids)
        w.kill()
        logged = s3.client.list_objects_v2(Bucket="local-wal", Prefix="db/collections/docs/log/")["Contents"]
        assert len(logged) <= 3, [o["Key"] for o in logged]  # create, open, and at most one group
        # The same machine comes back on the same disk: its own lease does not stop it, and
        # whatever its WAL acknowledged and the store lacks is uploaded.
        again = start(s3.endpoint, url, "--wal", "local", cache=w.dir)
        assert all_ids(again.client, "docs") == acked
        again.stop()
        fresh = start(s3.endpoint, url)
        assert all_ids(fresh.client, "docs") == acked
        fresh.stop()

    def test_two_writers_race_and_one_wins():
        url = f"s3://{s3.bucket('race')}/db"
        a = start(s3.endpoint, url)
        a.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
        a.client.upsert("docs", points(range(100), rng), wait=True)
        b = start(s3.endpoint, url)
        try:
            b.client.upsert("docs", points(range(100, 110), rng), wait=True)
            raise AssertionError("a second writer wrote while the first held the collection")
        except UnexpectedResponse as e:
            assert e.status_code == 503 and "--takeover" in str(e.content), e
        c = start(s3.endpoint, url, "--takeover")
        c.client.upsert("docs", points(range(200, 210), rng), wait=True)
        try:
            a.client.upsert("docs", points(range(300, 310), rng), wait=True)
            raise AssertionError("the writer that was taken over still committed")
        except UnexpectedResponse as e:
            assert "taken over" in str(e.content), e
        assert all_ids(c.client, "docs") == set(range(100)) | set(range(200, 210))
        for s in (a, b, c):
            s.stop()

    def test_a_replica_follows_refuses_writes_and_outlives_the_writer():
        url = f"s3://{s3.bucket('replica')}/db"
        w = start(s3.endpoint, url)
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        w.client.upsert("docs", points(range(500), rng), wait=True)
        r = start(s3.endpoint, url, "--read-only", "--storage-poll-ms", "200")
        assert r.client.count("docs").count == 500
        # A commit is visible within the replica's stated staleness.
        t0 = time.monotonic()
        w.client.upsert("docs", points(range(500, 600), rng), wait=True)
        wait_until("the replica to see the commit", lambda: r.client.count("docs").count == 600)
        lag = time.monotonic() - t0
        st = r.storage()["collections"]["docs"]
        assert st["role"] == "replica" and st["staleness_ms"] is not None and st["error"] is None, st
        assert lag < 5.0, lag
        # Writes are refused, clearly.
        try:
            r.client.upsert("docs", points([1], rng), wait=True)
            raise AssertionError("a replica accepted a write")
        except UnexpectedResponse as e:
            assert e.status_code == 403 and "read-only" in str(e.content), e
        # The writer dies: the replica answers.
        w.kill()
        q = rng.standard_normal(DIM).tolist()
        assert len(r.client.query_points("docs", query=q, limit=5).points) == 5
        # Its cache deleted under it: it still answers, and a restart on the same folder rebuilds it.
        shutil.rmtree(r.dir)
        assert len(r.client.query_points("docs", query=q, limit=5).points) == 5
        r.stop()
        r2 = start(s3.endpoint, url, "--read-only", cache=r.dir)
        assert r2.client.count("docs").count == 600
        r2.stop()

    def test_store_errors_are_retried_and_surface_when_they_persist():
        url = f"s3://{s3.bucket('faults')}/db"
        proxy = FaultyProxy(s3.port)
        w = start(proxy.endpoint, url, env={"QUIVER_OBJECT_RETRY_SECS": "3"})
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
        proxy.fail_every = 3
        acked = set()
        for i in range(20):
            ids = list(range(i * 20, i * 20 + 20))
            w.client.upsert("docs", points(ids, rng), wait=True)
            acked.update(ids)
        assert proxy.injected > 0
        # The store goes down: a write fails with a clear error instead of hanging.
        proxy.fail_every, proxy.down = 0, True
        try:
            w.client.upsert("docs", points(range(1000, 1010), rng), wait=True)
            raise AssertionError("a write was acknowledged while the store was down")
        except UnexpectedResponse as e:
            assert e.status_code == 500 and "object storage" in str(e.content), e
        # It heals: writes go on, and a new machine sees everything acknowledged.
        proxy.down = False
        w.client.upsert("docs", points(range(2000, 2010), rng), wait=True)
        acked.update(range(2000, 2010))
        w.stop()
        # A clean stop gives the lease up: the next writer need not wait for it.
        keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket="faults").get("Contents", [])]
        assert "db/collections/docs/lease" not in keys, keys
        fresh = start(s3.endpoint, url)
        got = all_ids(fresh.client, "docs")
        assert acked <= got, f"lost {sorted(acked - got)[:5]}"
        fresh.stop()
        proxy.stop()

    def test_a_cold_replica_answers_before_its_data_is_fetched_and_then_warms():
        url = f"s3://{s3.bucket('cold')}/db"
        w = start(s3.endpoint, url)
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
        local = np.random.default_rng(9)
        for start_id in range(0, 20_000, 2_000):
            ids = range(start_id, start_id + 2_000)
            vs = local.standard_normal((len(ids), DIM)).astype(np.float32)
            w.client.upsert("docs", [models.PointStruct(id=i, vector=v.tolist(), payload={"n": i, "text": "word " * 60})
                                     for i, v in zip(ids, vs)], wait=True)
        w.stop()
        # Compacted into one base segment by the CLI (a writer of its own, after the server's
        # clean stop gave the lease up).
        e = dict(os.environ, **KEYS, AWS_ENDPOINT_URL=s3.endpoint, AWS_ALLOW_HTTP="true")
        cli_cache = tempfile.mkdtemp(prefix="quiver-s3-cli-")
        subprocess.run([QUIVER, "--data-dir", cli_cache, "--storage", url, "compact", "docs"], env=e, check=True,
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(cli_cache)
        queries = local.standard_normal((10, DIM)).astype(np.float32).tolist()

        def answers(client):
            out = []
            for q in queries:
                hits = client.query_points("docs", query=q, limit=10, with_payload=True).points
                out.append([(h.id, round(h.score, 5), h.payload["n"]) for h in hits])
            return out
        eager = start(s3.endpoint, url, "--read-only", "--cold-start", "eager")
        want = answers(eager.client)
        assert eager.storage()["collections"]["docs"]["base_bytes"] is None
        eager.stop()
        # A lazy replica behind a proxy failing every fourth request: it answers at once, the
        # same, with its base segment partly fetched, and then completes it on its own.
        proxy = FaultyProxy(s3.port)
        proxy.fail_every = 4
        r = start(proxy.endpoint, url, "--read-only")
        assert answers(r.client) == want
        st = r.storage()["collections"]["docs"]
        assert st["base_bytes"] and st["base_bytes"] > 2_000_000, st
        wait_until("the replica to fetch its whole base segment",
                   lambda: r.storage()["collections"]["docs"]["base_present_bytes"] == st["base_bytes"], timeout=60)
        assert proxy.injected > 0
        assert answers(r.client) == want
        assert r.storage()["collections"]["docs"]["error"] is None
        r.stop()
        proxy.stop()
        # On demand only: the first searches fetch a part of the base, and answer the same.
        od = start(s3.endpoint, url, "--read-only", "--cold-start", "on-demand")
        assert answers(od.client)[:1] == want[:1]
        st = od.storage()["collections"]["docs"]
        assert st["base_fetched_bytes"] < st["base_bytes"] / 2, st
        assert answers(od.client) == want
        od.stop()

    def test_snapshots_are_kept_in_the_store_and_served_by_a_replica():
        url = f"s3://{s3.bucket('snaps')}/db"
        w = start(s3.endpoint, url)
        w.client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT))
        w.client.upsert("docs", points(range(300), rng), wait=True)
        snap = w.client.create_snapshot("docs", wait=True)
        r = start(s3.endpoint, url, "--read-only")
        listed = r.client.list_snapshots("docs")
        assert [(x.name, x.size, x.checksum) for x in listed] == [(snap.name, snap.size, snap.checksum)], listed
        with urllib.request.urlopen(f"{r.url}/collections/docs/snapshots/{snap.name}") as resp:
            body = resp.read()
        assert len(body) == snap.size and hashlib.sha256(body).hexdigest() == snap.checksum
        keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket="snaps").get("Contents", [])]
        assert f"db/snapshots/docs/{snap.name}" in keys, keys
        # Only the writer deletes it.
        try:
            r.client.delete_snapshot("docs", snap.name, wait=True)
            raise AssertionError("a replica deleted a snapshot")
        except UnexpectedResponse as e:
            assert e.status_code == 403, e
        assert w.client.delete_snapshot("docs", snap.name, wait=True)
        assert r.client.list_snapshots("docs") == []
        r.stop()
        w.stop()

    try:
        for t in [test_the_s3_server_honours_conditional_writes, test_kill_9_mid_upload_loses_nothing_acknowledged,
                  test_local_wal_survives_kill_9_and_a_restart_on_the_same_disk,
                  test_two_writers_race_and_one_wins, test_a_replica_follows_refuses_writes_and_outlives_the_writer,
                  test_store_errors_are_retried_and_surface_when_they_persist,
                  test_a_cold_replica_answers_before_its_data_is_fetched_and_then_warms,
                  test_snapshots_are_kept_in_the_store_and_served_by_a_replica]:
            if os.environ.get("ONLY", t.__name__) in t.__name__:
                run(t)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.kill()
                p.proc.wait()
            shutil.rmtree(p.dir, ignore_errors=True)
        s3.stop()
    passed = sum(results)
    print(f"e2e: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
