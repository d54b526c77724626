"""Text queries through `quiver serve` (documents embedded by the server with all-MiniLM-L6-v2),
one client at a time and 16 at once. Concurrent documents are embedded in shared passes
(crates/quiver-server/src/embed_queue.rs), so throughput should grow with concurrency even
though one pass already uses every core.

Usage: scripts/fetch-model.sh && cargo build --release -p quiver-cli &&
       python3 bench/text_query_load.py [target/release/quiver]
Prints text queries per second (stdlib only; no results file).
"""
import json, sys, threading, time, urllib.request, subprocess, socket, tempfile, os
QUIVER = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "quiver")
def port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
d = tempfile.mkdtemp(); p = port()
srv = subprocess.Popen([QUIVER, "--data-dir", d, "serve", "--port", str(p)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
srv.stdout.readline()
url = f"http://127.0.0.1:{p}"
def call(method, path, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method, headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())
call("PUT", "/collections/t", {"vectors": {"size": 384, "distance": "Cosine"}, "embedder": "all-minilm-l6-v2"})
words = "vector database stores embeddings for semantic search and retrieval augmented generation with fast exact".split()
pts = [{"id": i, "vector": {"text": " ".join(words[(i*j) % len(words)] for j in range(12)), "model": "sentence-transformers/all-MiniLM-L6-v2"}} for i in range(200)]
call("PUT", "/collections/t/points?wait=true", {"points": pts})
def q(i):
    return {"query": {"nearest": {"text": f"question {i} about " + " ".join(words[(i*k) % len(words)] for k in range(8)), "model": "sentence-transformers/all-MiniLM-L6-v2"}}, "limit": 5}
for c in [1, 16]:
    n_each = 150 // c if c > 1 else 100
    def worker(t):
        for i in range(n_each):
            call("POST", "/collections/t/points/query", q(t * 1000 + i))
    ts = [threading.Thread(target=worker, args=(t,)) for t in range(c)]
    t0 = time.perf_counter(); [t.start() for t in ts]; [t.join() for t in ts]
    dt = time.perf_counter() - t0
    print(f"concurrency {c}: {c*n_each/dt:.0f} text queries/s")
srv.terminate(); srv.wait()
