"""End to end: the RAG frameworks' own Qdrant integrations, unchanged, against `quiver serve`.

LangChain (`langchain-qdrant`), LlamaIndex (`llama-index-vector-stores-qdrant`) and Haystack
(`qdrant-haystack`) address the collection's unnamed vector by the name "" and send
`sparse_vectors: {}`; LangChain's MMR search sends `nearest` + `mmr`. Each framework gets a
deterministic embedding (a hashed bag of words, no model), writes a small corpus with
metadata, and searches; every answer is compared with an exact cosine search computed here
with NumPy.

The sparse and hybrid modes use a deterministic sparse embedding too (a weighted bag of
words); sparse answers are compared with exact sparse dot products, hybrid answers with
reciprocal rank fusion computed here as Qdrant defines it.

Usage: python tests/e2e/test_frameworks.py path/to/quiver
Prints one line per test and a closing 'e2e: N passed, M failed'.
"""
import hashlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_qdrant_client import Server, run  # noqa: E402

DIM = 32
CORPUS = [
    ("the cat sleeps on the warm windowsill", {"topic": "pets", "n": 1}),
    ("dogs need a long walk every day", {"topic": "pets", "n": 2}),
    ("a write-ahead log keeps acknowledged writes after a crash", {"topic": "databases", "n": 3}),
    ("compaction rewrites files to reclaim deleted rows", {"topic": "databases", "n": 4}),
    ("an index trades storage for faster lookups", {"topic": "databases", "n": 5}),
    ("kyoto has more than a thousand temples", {"topic": "travel", "n": 6}),
    ("the ring road circles the whole island", {"topic": "travel", "n": 7}),
    ("parrots can learn to repeat words", {"topic": "pets", "n": 8}),
    ("a crash may lose writes that were never logged", {"topic": "databases", "n": 9}),
    ("old temples and quiet gardens in kyoto", {"topic": "travel", "n": 10}),
]
TEXTS = [t for t, _ in CORPUS]


def embed(text):
    """A hashed bag of words: each word adds a fixed pseudo-random vector; normalised."""
    v = np.zeros(DIM, dtype=np.float64)
    for word in text.lower().split():
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v += np.random.default_rng(seed).standard_normal(DIM)
    n = np.linalg.norm(v)
    return (v / n if n else v).astype(np.float32).tolist()


def sparse(text):
    """A weighted bag of words: index from a hash of the word, weight = count plus a small
    per-word offset (so that two documents rarely tie). Returns (indices, values), sorted."""
    bag = {}
    for word in text.lower().split():
        h = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        i = h % (1 << 20)
        bag[i] = bag.get(i, 1.0 + (h >> 20) % 997 / 10_000.0) + (1.0 if i in bag else 0.0)
    indices = sorted(bag)
    return indices, [bag[i] for i in indices]


def exact_sparse(query, k=3):
    """Indices of CORPUS by sparse dot product with `query` (only documents sharing a word)."""
    qi, qv = sparse(query)
    q = dict(zip(qi, qv))
    scores = []
    for t in TEXTS:
        di, dv = sparse(t)
        shared = [q[i] * v for i, v in zip(di, dv) if i in q]
        scores.append(sum(shared) if shared else None)
    order = sorted((i for i, s in enumerate(scores) if s is not None), key=lambda i: -scores[i])
    return order[:k], scores


def rrf(*rankings, k=2):
    """Qdrant's reciprocal rank fusion of rankings (lists of CORPUS indices): id -> score."""
    fused = {}
    for ranking in rankings:
        for pos, i in enumerate(ranking):
            fused[i] = fused.get(i, 0.0) + 1.0 / (pos + k)
    return fused


def exact(query, allowed=None, k=3):
    """Indices of CORPUS by cosine to `query`, best first, among `allowed`."""
    m = np.array([embed(t) for t in TEXTS], dtype=np.float64)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    q = np.array(embed(query), dtype=np.float64)
    scores = m @ (q / np.linalg.norm(q))
    order = [i for i in np.argsort(-scores, kind="stable") if allowed is None or i in allowed]
    return order[:k], scores


def check_langchain(results):
    from langchain_core.embeddings import Embeddings
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import models

    class Hashed(Embeddings):
        def embed_documents(self, texts):
            return [embed(t) for t in texts]

        def embed_query(self, text):
            return embed(text)

    srv = Server()
    try:
        store = QdrantVectorStore.from_texts(
            TEXTS[:6], Hashed(), metadatas=[m for _, m in CORPUS[:6]], ids=list(range(1, 7)),
            url=srv.url, collection_name="lc", prefer_grpc=False,
        )

        def test_langchain_add_texts_and_search():
            added = store.add_texts(TEXTS[6:], metadatas=[m for _, m in CORPUS[6:]], ids=list(range(7, 11)))
            assert len(added) == 4, added
            q = "crash writes log"
            want, _ = exact(q)
            got = store.similarity_search(q, k=3)
            assert [d.metadata["n"] for d in got] == [i + 1 for i in want], (got, want)
            assert got[0].page_content == TEXTS[want[0]]

        def test_langchain_scores_and_metadata_filter():
            q = "temples in kyoto"
            allowed = {i for i, (_, m) in enumerate(CORPUS) if m["topic"] == "travel"}
            want, scores = exact(q, allowed)
            flt = models.Filter(must=[models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="travel"))])
            got = store.similarity_search_with_score(q, k=3, filter=flt)
            assert [d.metadata["n"] for d, _ in got] == [i + 1 for i in want], (got, want)
            for (_, s), i in zip(got, want):
                assert abs(s - scores[i]) < 1e-4, (s, scores[i])

        def test_langchain_mmr():
            q = "crash writes log"
            plain = [d.metadata["n"] for d in store.similarity_search(q, k=3)]
            diverse = store.max_marginal_relevance_search(q, k=3, fetch_k=10, lambda_mult=0.9)
            assert len(diverse) == 3
            assert diverse[0].metadata["n"] == plain[0], (diverse, plain)
            assert len({d.metadata["n"] for d in diverse}) == 3

        def test_langchain_retriever_get_and_delete():
            docs = store.as_retriever(search_kwargs={"k": 2}).invoke("dogs walk")
            assert docs[0].metadata["n"] == exact("dogs walk")[0][0] + 1
            got = store.get_by_ids([2, 3])
            assert sorted(d.metadata["n"] for d in got) == [2, 3]
            assert store.delete(ids=[2])
            assert [d.metadata["n"] for d in store.get_by_ids([2, 3])] == [3]

        def test_langchain_reopens_the_collection():
            again = QdrantVectorStore.from_existing_collection(
                collection_name="lc", embedding=Hashed(), url=srv.url, prefer_grpc=False
            )
            assert again.similarity_search("kyoto temples", k=1)[0].metadata["topic"] == "travel"

        from langchain_qdrant import RetrievalMode, SparseEmbeddings, SparseVector

        class BagOfWords(SparseEmbeddings):
            def embed_documents(self, texts):
                return [SparseVector(indices=sparse(t)[0], values=sparse(t)[1]) for t in texts]

            def embed_query(self, text):
                i, v = sparse(text)
                return SparseVector(indices=i, values=v)

        def test_langchain_sparse_and_hybrid_modes():
            hybrid = QdrantVectorStore.from_texts(
                TEXTS, Hashed(), sparse_embedding=BagOfWords(), retrieval_mode=RetrievalMode.HYBRID,
                metadatas=[m for _, m in CORPUS], ids=list(range(1, 11)), url=srv.url, collection_name="lch",
                prefer_grpc=False,
            )
            q = "a crash may lose writes in kyoto"
            want, scores = exact_sparse(q)
            only_sparse = QdrantVectorStore.from_existing_collection(
                collection_name="lch", embedding=Hashed(), sparse_embedding=BagOfWords(),
                retrieval_mode=RetrievalMode.SPARSE, url=srv.url, prefer_grpc=False,
            )
            got = only_sparse.similarity_search_with_score(q, k=3)
            assert [d.metadata["n"] for d, _ in got] == [i + 1 for i in want], (got, want)
            for (_, s), i in zip(got, want):
                assert abs(s - scores[i]) < 1e-4, (s, scores[i])
            dense_rank, _ = exact(q, k=3)
            sparse_rank, _ = exact_sparse(q, k=3)
            fused = rrf(dense_rank, sparse_rank)
            got = hybrid.similarity_search_with_score(q, k=3)
            assert len(got) == 3
            for d, s in got:
                assert abs(s - fused[d.metadata["n"] - 1]) < 1e-6, (d.metadata, s, fused)
            best = sorted(fused.values(), reverse=True)[:3]
            assert all(abs(s - b) < 1e-6 for (_, s), b in zip(got, best)), (got, fused)

        for t in [test_langchain_add_texts_and_search, test_langchain_scores_and_metadata_filter, test_langchain_mmr,
                  test_langchain_retriever_get_and_delete, test_langchain_reopens_the_collection,
                  test_langchain_sparse_and_hybrid_modes]:
            run(t, results)
    finally:
        srv.stop()


def check_llamaindex(results):
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import (
        FilterOperator, MetadataFilter, MetadataFilters, VectorStoreQuery,
    )
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    srv = Server()
    try:
        client = QdrantClient(url=srv.url, prefer_grpc=False, check_compatibility=False)
        store = QdrantVectorStore(client=client, collection_name="li")
        nodes = []
        for i, (text, meta) in enumerate(CORPUS):
            node = TextNode(text=text, metadata=dict(meta), embedding=embed(text), id_=f"00000000-0000-0000-0000-{i + 1:012d}")
            node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{meta['topic']}")
            nodes.append(node)

        def test_llamaindex_add_and_query():
            ids = store.add(nodes)
            assert len(ids) == len(CORPUS)
            q = "crash writes log"
            want, _ = exact(q)
            r = store.query(VectorStoreQuery(query_embedding=embed(q), similarity_top_k=3))
            assert [n.metadata["n"] for n in r.nodes] == [i + 1 for i in want], (r.nodes, want)

        def test_llamaindex_metadata_filters():
            q = "temples in kyoto"
            allowed = {i for i, (_, m) in enumerate(CORPUS) if m["topic"] == "pets"}
            want, _ = exact(q, allowed)
            filters = MetadataFilters(filters=[MetadataFilter(key="topic", value="pets", operator=FilterOperator.EQ)])
            r = store.query(VectorStoreQuery(query_embedding=embed(q), similarity_top_k=3, filters=filters))
            assert [n.metadata["n"] for n in r.nodes] == [i + 1 for i in want]

        def test_llamaindex_delete_ref_doc():
            store.delete("doc-travel")
            r = store.query(VectorStoreQuery(query_embedding=embed("kyoto temples island"), similarity_top_k=10))
            assert all(n.metadata["topic"] != "travel" for n in r.nodes)
            assert len(r.nodes) == len(CORPUS) - 3

        def bag(texts):
            pairs = [sparse(t) for t in texts]
            return [p[0] for p in pairs], [p[1] for p in pairs]

        def test_llamaindex_sparse_and_hybrid():
            from llama_index.core.vector_stores.types import VectorStoreQueryMode

            hybrid = QdrantVectorStore(client=client, collection_name="lih", enable_hybrid=True,
                                       sparse_doc_fn=bag, sparse_query_fn=bag)
            fresh = []
            for i, (text, meta) in enumerate(CORPUS):
                fresh.append(TextNode(text=text, metadata=dict(meta), embedding=embed(text),
                                      id_=f"00000000-0000-0000-0001-{i + 1:012d}"))
            assert len(hybrid.add(fresh)) == len(CORPUS)
            q = "a crash may lose writes in kyoto"
            want, _ = exact_sparse(q)
            r = hybrid.query(VectorStoreQuery(query_embedding=embed(q), query_str=q, similarity_top_k=3,
                                              mode=VectorStoreQueryMode.SPARSE))
            assert [n.metadata["n"] for n in r.nodes] == [i + 1 for i in want], (r.nodes, want)
            r = hybrid.query(VectorStoreQuery(query_embedding=embed(q), query_str=q, similarity_top_k=3,
                                              mode=VectorStoreQueryMode.HYBRID))
            dense_rank, _ = exact(q, k=3)
            assert len(r.nodes) == 3
            assert {n.metadata["n"] - 1 for n in r.nodes} <= set(dense_rank) | set(want), r.nodes

        for t in [test_llamaindex_add_and_query, test_llamaindex_metadata_filters, test_llamaindex_delete_ref_doc,
                  test_llamaindex_sparse_and_hybrid]:
            run(t, results)
    finally:
        srv.stop()


def check_haystack(results):
    from haystack import Document
    from haystack_integrations.components.retrievers.qdrant import QdrantEmbeddingRetriever
    from haystack_integrations.document_stores.qdrant import QdrantDocumentStore

    srv = Server()
    try:
        store = QdrantDocumentStore(url=srv.url, index="hs", embedding_dim=DIM, recreate_index=True, similarity="cosine",
                                    prefer_grpc=False)
        docs = [Document(id=f"d{i + 1}", content=t, meta=dict(m), embedding=embed(t)) for i, (t, m) in enumerate(CORPUS)]

        def test_haystack_write_filter_count():
            assert store.write_documents(docs) == len(CORPUS)
            assert store.count_documents() == len(CORPUS)
            pets = store.filter_documents(filters={"field": "meta.topic", "operator": "==", "value": "pets"})
            assert sorted(d.meta["n"] for d in pets) == [1, 2, 8]

        def test_haystack_embedding_retriever():
            q = "crash writes log"
            want, _ = exact(q)
            got = QdrantEmbeddingRetriever(document_store=store, top_k=3).run(query_embedding=embed(q))["documents"]
            assert [d.meta["n"] for d in got] == [i + 1 for i in want], (got, want)
            allowed = {i for i, (_, m) in enumerate(CORPUS) if m["topic"] == "travel"}
            want, _ = exact(q, allowed)
            got = QdrantEmbeddingRetriever(document_store=store, top_k=3).run(
                query_embedding=embed(q), filters={"field": "meta.topic", "operator": "==", "value": "travel"})["documents"]
            assert [d.meta["n"] for d in got] == [i + 1 for i in want]

        def test_haystack_delete():
            store.delete_documents(["d1", "d2"])
            assert store.count_documents() == len(CORPUS) - 2

        def test_haystack_sparse_and_hybrid_retrievers():
            from haystack.dataclasses import SparseEmbedding
            from haystack_integrations.components.retrievers.qdrant import (
                QdrantHybridRetriever, QdrantSparseEmbeddingRetriever,
            )

            hybrid_store = QdrantDocumentStore(url=srv.url, index="hsh", embedding_dim=DIM, recreate_index=True,
                                               similarity="cosine", use_sparse_embeddings=True, prefer_grpc=False)
            sdocs = [Document(id=f"s{i + 1}", content=t, meta=dict(m), embedding=embed(t),
                              sparse_embedding=SparseEmbedding(*sparse(t))) for i, (t, m) in enumerate(CORPUS)]
            assert hybrid_store.write_documents(sdocs) == len(CORPUS)
            q = "a crash may lose writes in kyoto"
            want, scores = exact_sparse(q)
            got = QdrantSparseEmbeddingRetriever(document_store=hybrid_store, top_k=3).run(
                query_sparse_embedding=SparseEmbedding(*sparse(q)))["documents"]
            assert [d.meta["n"] for d in got] == [i + 1 for i in want], (got, want)
            dense_rank, _ = exact(q, k=10)
            sparse_rank, _ = exact_sparse(q, k=10)
            fused = rrf(sparse_rank, dense_rank)
            got = QdrantHybridRetriever(document_store=hybrid_store, top_k=3).run(
                query_embedding=embed(q), query_sparse_embedding=SparseEmbedding(*sparse(q)))["documents"]
            assert [round(d.score, 6) for d in got] == [round(s, 6) for s in sorted(fused.values(), reverse=True)[:3]], (got, fused)

        for t in [test_haystack_write_filter_count, test_haystack_embedding_retriever, test_haystack_delete,
                  test_haystack_sparse_and_hybrid_retrievers]:
            run(t, results)
    finally:
        srv.stop()


def main():
    results = []
    check_langchain(results)
    check_llamaindex(results)
    check_haystack(results)
    passed = sum(results)
    print(f"e2e: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
