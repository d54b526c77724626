"""End to end: `quiver serve` driven by the official Qdrant Python client (qdrant-client).

Starts the server on a free loopback port with a fresh data folder, then goes through what a
RAG application does: create a collection, upsert thousands of points with payloads, query with
and without filters, scroll, count, retrieve, set payloads, delete by filter, create a payload
index, batch queries, recommend and query by id, MMR, facets and order_by, aliases, discovery,
groups, order_by as a query, strict mode, snapshots (create, recover from a file, upload, delete),
delete the collection. Every search result is compared with an exact search computed here with NumPy. A second server runs with API keys: no key and a wrong key are
refused, the read-only key can search but not write. A third takes text: documents
(`models.Document`) are embedded by the server with all-MiniLM-L6-v2 (fetched by
scripts/fetch-model.sh) and the texts come back in the payload.

Usage: python tests/e2e/test_qdrant_client.py path/to/quiver
Prints one line per test and a closing 'e2e: N passed, M failed'.
"""
import os
import socket
import subprocess
import sys
import tempfile
import traceback
import uuid

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

QUIVER = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/debug/quiver")
DIM = 16
N = 3000
SEED = 7
COLORS = ["red", "green", "blue"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, *extra):
        self.dir = tempfile.mkdtemp(prefix="quiver-e2e-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [QUIVER, "--data-dir", self.dir, "serve", "--port", str(self.port), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline()  # blocks until the server is listening
        assert "quiver serving on" in line, f"server did not start: {line!r}"
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def point_id(i):
    # Every tenth point has a UUID id, the rest integers.
    return str(uuid.UUID(int=i + 1)) if i % 10 == 0 else i


def dataset():
    rng = np.random.default_rng(SEED)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    payloads = [{"group": i % 5, "color": COLORS[i % 3], "price": float(i % 100) / 4.0, "tags": ["t%d" % (i % 7)]} for i in range(N)]
    return vectors, payloads


def normalise(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def exact(vectors, q, mask, k):
    scores = normalise(vectors) @ normalise(q)
    scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [i for i in order if mask[i]]


def ids_of(points):
    return [p.id for p in points]


def check_main(results):
    srv = Server()
    try:
        client = QdrantClient(url=srv.url, prefer_grpc=False, timeout=60, check_compatibility=False)
        vectors, payloads = dataset()

        def test_create():
            client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
            assert client.collection_exists("docs")
            assert not client.collection_exists("nope")
            names = [c.name for c in client.get_collections().collections]
            assert names == ["docs"], names

        def test_upsert_thousands():
            for start in range(0, N, 500):
                pts = [models.PointStruct(id=point_id(i), vector=vectors[i].tolist(), payload=payloads[i]) for i in range(start, min(N, start + 500))]
                r = client.upsert("docs", points=pts, wait=True)
                assert r.status == models.UpdateStatus.COMPLETED
            info = client.get_collection("docs")
            assert info.points_count == N, info.points_count
            assert info.config.params.vectors.size == DIM

        def test_upsert_batch_form():
            ids = [N + i for i in range(10)]
            extra = np.ones((10, DIM), dtype=np.float32)
            client.upsert("docs", points=models.Batch(ids=ids, vectors=extra.tolist(), payloads=[{"extra": True}] * 10), wait=True)
            assert client.count("docs", exact=True).count == N + 10
            client.delete("docs", points_selector=models.PointIdsList(points=ids), wait=True)
            assert client.count("docs", exact=True).count == N

        def test_query_matches_exact():
            rng = np.random.default_rng(SEED + 1)
            everything = np.ones(N, dtype=bool)
            for _ in range(20):
                q = rng.standard_normal(DIM).astype(np.float32)
                got = client.query_points("docs", query=q.tolist(), limit=10).points
                want = [point_id(i) for i in exact(vectors, q, everything, 10)]
                assert ids_of(got) == want, (ids_of(got), want)
                assert all(p.payload is not None for p in got)

        def test_filtered_query_matches_exact():
            rng = np.random.default_rng(SEED + 2)
            mask = np.array([p["color"] == "red" and p["price"] < 10 for p in payloads])
            flt = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="red")),
                                      models.FieldCondition(key="price", range=models.Range(lt=10))])
            for _ in range(10):
                q = rng.standard_normal(DIM).astype(np.float32)
                got = client.query_points("docs", query=q.tolist(), query_filter=flt, limit=10, with_payload=True).points
                want = [point_id(i) for i in exact(vectors, q, mask, 10)]
                assert ids_of(got) == want, (ids_of(got), want)
                assert all(p.payload["color"] == "red" and p.payload["price"] < 10 for p in got)

        def test_scroll_everything():
            seen, offset = [], None
            while True:
                pts, offset = client.scroll("docs", limit=256, offset=offset, with_payload=False)
                seen.extend(ids_of(pts))
                if offset is None:
                    break
            assert len(seen) == N and len(set(map(str, seen))) == N

        def test_count_with_filter():
            flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchAny(any=[1, 2]))],
                                must_not=[models.FieldCondition(key="tags", match=models.MatchValue(value="t3"))])
            want = sum(1 for p in payloads if p["group"] in (1, 2) and "t3" not in p["tags"])
            assert client.count("docs", count_filter=flt, exact=True).count == want

        def test_retrieve():
            ids = [point_id(i) for i in (0, 5, 17, 2999)]
            recs = client.retrieve("docs", ids=ids, with_vectors=True)
            assert sorted(map(str, ids_of(recs))) == sorted(map(str, ids))
            for r in recs:
                i = next(j for j in (0, 5, 17, 2999) if str(point_id(j)) == str(r.id))
                assert np.allclose(r.vector, normalise(vectors[i]), atol=1e-5)

        def test_set_payload_and_delete_by_filter():
            flt = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=4))])
            client.set_payload("docs", payload={"archived": True}, points=flt, wait=True)
            archived = models.Filter(must=[models.FieldCondition(key="archived", match=models.MatchValue(value=True))])
            n4 = sum(1 for p in payloads if p["group"] == 4)
            assert client.count("docs", count_filter=archived, exact=True).count == n4
            client.delete("docs", points_selector=models.FilterSelector(filter=archived), wait=True)
            assert client.count("docs", exact=True).count == N - n4

        def test_payload_index():
            client.create_payload_index("docs", field_name="color", field_schema=models.PayloadSchemaType.KEYWORD, wait=True)
            info = client.get_collection("docs")
            assert "color" in info.payload_schema
            flt = models.Filter(must=[models.FieldCondition(key="color", match=models.MatchValue(value="blue"))])
            want = sum(1 for p in payloads if p["color"] == "blue" and p["group"] != 4)
            assert client.count("docs", count_filter=flt, exact=True).count == want

        def test_batch_queries():
            rng = np.random.default_rng(SEED + 3)
            qs = rng.standard_normal((5, DIM)).astype(np.float32)
            reqs = [models.QueryRequest(query=q.tolist(), limit=5) for q in qs]
            got = client.query_batch_points("docs", requests=reqs)
            alive = np.array([p["group"] != 4 for p in payloads])
            for q, r in zip(qs, got):
                assert ids_of(r.points) == [point_id(i) for i in exact(vectors, q, alive, 5)]

        def test_recommend_and_query_by_id_match_exact():
            alive = np.array([p["group"] != 4 for p in payloads])
            # Point 7's nearest neighbours, itself left out.
            base = 7
            mask = alive.copy()
            mask[base] = False
            got = client.query_points("docs", query=point_id(base), limit=5).points
            assert ids_of(got) == [point_id(i) for i in exact(vectors, vectors[base], mask, 5)]
            # average_vector: avg(pos) + (avg(pos) - avg(neg)) over the stored (normalised) vectors.
            pos, neg = [3, 8], [11]  # alive: group (i % 5) is not 4
            nv = normalise(vectors)
            q = 2 * nv[pos].mean(axis=0) - nv[neg].mean(axis=0)
            mask = alive.copy()
            mask[pos + neg] = False
            got = client.query_points("docs", query=models.RecommendQuery(recommend=models.RecommendInput(
                positive=[point_id(i) for i in pos], negative=[point_id(i) for i in neg])), limit=5).points
            assert ids_of(got) == [point_id(i) for i in exact(vectors, q, mask, 5)], ids_of(got)
            # best_score through the client's enum, ranked as the formula says.
            got = client.query_points("docs", query=models.RecommendQuery(recommend=models.RecommendInput(
                positive=[point_id(3)], negative=[point_id(11)], strategy=models.RecommendStrategy.BEST_SCORE)), limit=5).points
            sp, sn = nv @ nv[3], nv @ nv[11]
            score = np.where(sp > sn, 0.5 * (sp / (1 + np.abs(sp)) + 1), -0.5 * (sn / (1 + np.abs(sn)) + 1))
            mask = alive.copy()
            mask[[3, 11]] = False
            order = [i for i in np.argsort(-np.where(mask, score, -np.inf), kind="stable")[:5]]
            assert ids_of(got) == [point_id(i) for i in order], (ids_of(got), order)

        def test_mmr_first_hit_is_the_nearest():
            q = np.random.default_rng(SEED + 4).standard_normal(DIM).astype(np.float32)
            got = client.query_points("docs", query=models.NearestQuery(nearest=q.tolist(), mmr=models.Mmr(diversity=0.5, candidates_limit=50)), limit=5).points
            alive = np.array([p["group"] != 4 for p in payloads])
            assert ids_of(got)[0] == point_id(exact(vectors, q, alive, 1)[0]) and len(set(map(str, ids_of(got)))) == 5

        def test_facet_and_order_by_from_indexes():
            client.create_payload_index("docs", field_name="group", field_schema=models.PayloadSchemaType.INTEGER, wait=True)
            hits = client.facet("docs", key="color").hits
            want = {}
            for p in payloads:
                if p["group"] != 4:
                    want[p["color"]] = want.get(p["color"], 0) + 1
            assert {h.value: h.count for h in hits} == want, hits
            client.create_payload_index("docs", field_name="price", field_schema=models.PayloadSchemaType.FLOAT, wait=True)
            pts, nxt = client.scroll("docs", limit=20, order_by=models.OrderBy(key="price", direction=models.Direction.DESC), with_payload=True)
            prices = [p.payload["price"] for p in pts]
            assert prices == sorted(prices, reverse=True) and prices[0] == max(p["price"] for p in payloads if p["group"] != 4)
            assert nxt is None

        def test_aliases_switch_readers():
            client.create_collection("docs_v2", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
            client.upsert("docs_v2", points=[models.PointStruct(id=1, vector=[1.0] * DIM, payload={"v": 2})], wait=True)
            client.update_collection_aliases(change_aliases_operations=[
                models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="docs", alias_name="live"))])
            assert client.count("live", exact=True).count == client.count("docs", exact=True).count
            client.update_collection_aliases(change_aliases_operations=[
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="live")),
                models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="docs_v2", alias_name="live"))])
            assert client.count("live", exact=True).count == 1
            assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [("live", "docs_v2")]
            assert client.delete_collection("docs_v2")
            assert client.get_aliases().aliases == []

        def test_discover_groups_and_order_by_query():
            alive = [i for i in range(N) if payloads[i]["group"] != 4]
            q = vectors[alive[0]].tolist()
            # Discovery with a target and one context pair: every hit is on the positive side.
            pos, neg = alive[1], alive[2]
            got = client.query_points("docs", query=models.DiscoverQuery(discover=models.DiscoverInput(
                target=q, context=[models.ContextPair(positive=point_id(pos), negative=point_id(neg))])), limit=5).points
            assert len(got) == 5
            vp, vn = normalise(vectors[pos]), normalise(vectors[neg])
            for p in got:
                i = N + 1000
                for j in alive:
                    if point_id(j) == p.id:
                        i = j
                if i < N:
                    v = normalise(vectors[i])
                    assert float(v @ vp) >= float(v @ vn) - 1e-5, (p.id, float(v @ vp), float(v @ vn))
            # Groups: at most 2 hits per colour, 3 colours.
            groups = client.query_points_groups("docs", query=q, group_by="color", limit=3, group_size=2).groups
            assert sorted(g.id for g in groups) == sorted(COLORS), [g.id for g in groups]
            assert all(1 <= len(g.hits) <= 2 for g in groups)
            # order_by as a query: prices descending, as the scroll gives them.
            pts = client.query_points("docs", query=models.OrderByQuery(order_by=models.OrderBy(key="price", direction=models.Direction.DESC)),
                                      limit=10, with_payload=True).points
            prices = [p.payload["price"] for p in pts]
            assert prices == sorted(prices, reverse=True), prices

        def test_strict_mode_limits_queries():
            client.update_collection("docs", strict_mode_config=models.StrictModeConfig(enabled=True, max_query_limit=5))
            try:
                client.query_points("docs", query=vectors[1].tolist(), limit=10)
            except UnexpectedResponse as e:
                assert e.status_code == 400 and "limit" in str(e), str(e)
            else:
                raise AssertionError("strict mode should refuse limit 10 > 5")
            assert len(client.query_points("docs", query=vectors[1].tolist(), limit=5).points) == 5
            client.update_collection("docs", strict_mode_config=models.StrictModeConfig(enabled=False))
            assert len(client.query_points("docs", query=vectors[1].tolist(), limit=10).points) == 10

        def test_snapshots_create_recover_upload():
            before = client.count("docs", exact=True).count
            snap = client.create_snapshot("docs", wait=True)
            assert snap.name in [s.name for s in client.list_snapshots("docs")]
            path = os.path.join(srv.dir, "snapshots", "docs", snap.name)
            client.recover_snapshot("docs_copy", location="file://" + path, checksum=snap.checksum, wait=True)
            assert client.count("docs_copy", exact=True).count == before
            # A file outside the snapshots folder is refused.
            try:
                client.recover_snapshot("docs_copy", location="file:///etc/hostname", wait=True)
            except UnexpectedResponse as e:
                assert e.status_code in (400, 403), str(e)
            else:
                raise AssertionError("a file outside the snapshots folder must be refused")
            # Upload, through the client's own API (a multipart form).
            with open(path, "rb") as f:
                r = client.http.snapshots_api.recover_from_uploaded_snapshot("docs_upload", wait=True, checksum=snap.checksum, snapshot=f)
            assert r.result is True, r
            assert client.count("docs_upload", exact=True).count == before
            assert client.delete_snapshot("docs", snap.name, wait=True)
            assert client.list_snapshots("docs") == []
            client.delete_collection("docs_copy")
            client.delete_collection("docs_upload")

        def test_unsupported_is_a_clear_400():
            try:
                client.query_points("docs", query=models.FusionQuery(fusion=models.Fusion.RRF), limit=3)
            except UnexpectedResponse as e:
                assert e.status_code == 400 and "fusion needs prefetches" in str(e), str(e)
            else:
                raise AssertionError("fusion without prefetch should be refused")
            # A formula rescores the prefetch: each score is the prefetch's plus the boost.
            plain = {p.id: p.score for p in client.query_points("docs", query=[0.1] * DIM, limit=5).points}
            boosted = client.query_points("docs", query=models.FormulaQuery(formula=models.SumExpression(sum=["$score", 1.0])),
                                          prefetch=models.Prefetch(query=[0.1] * DIM, limit=5), limit=3).points
            assert len(boosted) == 3 and all(abs(p.score - (plain[p.id] + 1.0)) < 1e-4 for p in boosted), (plain, boosted)

        def test_vectors_on_disk_and_back():
            # The client's own on_disk flag puts the vectors in a paged file; update_collection
            # moves them; answers never change. The server reports where they are.
            import json as _json
            import urllib.request

            def storage(name):
                with urllib.request.urlopen(f"{srv.url}/collections/{name}") as r:
                    return _json.load(r)["result"]["quiver_storage"]

            client.create_collection("ondisk", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE, on_disk=True))
            vectors, _ = dataset()
            client.upsert("ondisk", points=[models.PointStruct(id=i, vector=vectors[i].tolist()) for i in range(500)], wait=True)
            st = storage("ondisk")
            assert st["vectors_on_disk"] is True and st["components"]["vectors"]["disk_bytes"] >= 500 * DIM * 4, st
            info = client.get_collection("ondisk")
            assert info.config.params.vectors.on_disk is True, info.config.params.vectors
            q = vectors[3].tolist()
            before = [(p.id, round(p.score, 5)) for p in client.query_points("ondisk", query=q, limit=5).points]
            client.update_collection("ondisk", vectors_config={"": models.VectorParamsDiff(on_disk=False)})
            st = storage("ondisk")
            assert st["vectors_on_disk"] is False and st["components"]["vectors"]["disk_bytes"] == 0, st
            after = [(p.id, round(p.score, 5)) for p in client.query_points("ondisk", query=q, limit=5).points]
            assert before == after and before[0][0] == 3, (before, after)
            client.delete_collection("ondisk")

        def test_delete_collection():
            assert client.delete_collection("docs")
            assert not client.collection_exists("docs")

        for t in [test_create, test_upsert_thousands, test_upsert_batch_form, test_query_matches_exact, test_filtered_query_matches_exact,
                  test_scroll_everything, test_count_with_filter, test_retrieve, test_set_payload_and_delete_by_filter, test_payload_index,
                  test_batch_queries, test_recommend_and_query_by_id_match_exact, test_mmr_first_hit_is_the_nearest,
                  test_facet_and_order_by_from_indexes, test_aliases_switch_readers, test_discover_groups_and_order_by_query,
                  test_strict_mode_limits_queries, test_snapshots_create_recover_upload, test_unsupported_is_a_clear_400,
                  test_vectors_on_disk_and_back, test_delete_collection]:
            run(t, results)
    finally:
        srv.stop()


def check_keys(results):
    srv = Server("--api-key", "full-secret", "--read-only-api-key", "ro-secret")
    try:
        full = QdrantClient(url=srv.url, api_key="full-secret", prefer_grpc=False, https=False, check_compatibility=False)
        ro = QdrantClient(url=srv.url, api_key="ro-secret", prefer_grpc=False, https=False, check_compatibility=False)
        none = QdrantClient(url=srv.url, prefer_grpc=False, check_compatibility=False)
        wrong = QdrantClient(url=srv.url, api_key="nope", prefer_grpc=False, https=False, check_compatibility=False)

        def expect_status(fn, status):
            try:
                fn()
            except UnexpectedResponse as e:
                assert e.status_code == status, (e.status_code, str(e))
            else:
                raise AssertionError(f"expected HTTP {status}")

        def test_full_key_writes():
            full.create_collection("k", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT))
            full.upsert("k", points=[models.PointStruct(id=1, vector=[1.0, 0.0])], wait=True)

        def test_no_key_and_wrong_key_refused():
            expect_status(lambda: none.get_collections(), 401)
            expect_status(lambda: wrong.query_points("k", query=[1.0, 0.0], limit=1), 401)

        def test_read_only_key_reads_but_cannot_write():
            assert ids_of(ro.query_points("k", query=[1.0, 0.0], limit=1).points) == [1]
            assert ro.count("k").count == 1
            expect_status(lambda: ro.upsert("k", points=[models.PointStruct(id=2, vector=[0.0, 1.0])], wait=True), 403)
            expect_status(lambda: ro.delete_collection("k"), 403)
            assert full.count("k").count == 1

        for t in [test_full_key_writes, test_no_key_and_wrong_key_refused, test_read_only_key_reads_but_cannot_write]:
            run(t, results)
    finally:
        srv.stop()


def check_documents(results):
    """Text through the API: Qdrant's Document form, embedded by the server (all-MiniLM-L6-v2)."""
    import httpx

    srv = Server()
    try:
        client = QdrantClient(url=srv.url, prefer_grpc=False, cloud_inference=True, check_compatibility=False)
        model = "sentence-transformers/all-MiniLM-L6-v2"
        texts = ["A write-ahead log makes database writes durable across crashes.", "Cats love to sleep in the afternoon sun.",
                 "Kyoto has more than a thousand temples.", "The stock market fell after the rate announcement."]

        def test_documents_in_and_text_out():
            r = httpx.put(f"{srv.url}/collections/notes", json={"vectors": {"size": 384, "distance": "Cosine"}, "embedder": "all-minilm-l6-v2"})
            assert r.status_code == 200, r.text
            client.upsert("notes", points=[models.PointStruct(id=i, vector=models.Document(text=t, model=model), payload={"n": i})
                                           for i, t in enumerate(texts)], wait=True)
            hits = client.query_points("notes", query=models.Document(text="how do databases survive a power failure?", model=model),
                                       limit=2, with_payload=True).points
            assert hits[0].id == 0 and hits[0].payload["document"] == texts[0], hits
            assert client.query_points("notes", query=models.Document(text="old temples in Japan", model=model), limit=1).points[0].id == 2

        def test_documents_need_an_embedder():
            client.create_collection("plain", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
            try:
                client.upsert("plain", points=[models.PointStruct(id=1, vector=models.Document(text="hi", model=model))], wait=True)
            except UnexpectedResponse as e:
                assert e.status_code == 400 and "embedder" in str(e), str(e)
            else:
                raise AssertionError("a collection without an embedder must refuse documents")

        def test_hybrid_prefetch_and_rrf_with_client_objects():
            # A note only its exact term finds: dense similarity alone ranks it low for this
            # query, BM25 ranks it first, and the fused answer must hold it.
            code_note = "Runbook for ERR_QUOTA_7731: raise the tenant limit, then retry the import."
            client.upsert("notes", points=[models.PointStruct(id=10, vector=models.Document(text=code_note, model=model))], wait=True)
            question = "what to do about ERR_QUOTA_7731"
            prefetch = [models.Prefetch(query=models.Document(text=question, model=model), limit=10),
                        models.Prefetch(query=models.Document(text=question, model="Qdrant/bm25"), using="bm25", limit=10)]
            fused = client.query_points("notes", prefetch=prefetch, query=models.FusionQuery(fusion=models.Fusion.RRF), limit=3,
                                        with_payload=True).points
            assert 10 in [p.id for p in fused], fused
            keyword_only = client.query_points("notes", query=models.Document(text=question, model="Qdrant/bm25"), using="bm25",
                                               limit=1).points
            assert [p.id for p in keyword_only] == [10], keyword_only
            # Fused scores are reciprocal-rank sums: positive, descending.
            scores = [p.score for p in fused]
            assert all(s > 0 for s in scores) and scores == sorted(scores, reverse=True), scores

        for t in [test_documents_in_and_text_out, test_hybrid_prefetch_and_rrf_with_client_objects, test_documents_need_an_embedder]:
            run(t, results)
    finally:
        srv.stop()


def run(test, results):
    try:
        test()
        results.append(True)
        print(f"test {test.__name__} ... ok", flush=True)
    except Exception:  # noqa: BLE001 - report and keep going
        results.append(False)
        print(f"test {test.__name__} ... FAILED", flush=True)
        traceback.print_exc()


def main():
    results = []
    check_main(results)
    check_keys(results)
    check_documents(results)
    passed = sum(results)
    print(f"e2e: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
