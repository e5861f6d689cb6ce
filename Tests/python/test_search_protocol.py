"""SEARCH (Protocols/cluster.md), written from the document, against a real coordinator with
a store and a real worker: results equal a float64 brute force over the set's vectors (read
with GET), and bad requests get ERROR-REPLYs.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_search_protocol.py
"""

import json

import numpy as np

from codebook_client import ERROR_REPLY, GET, SEARCH, SEARCH_REPLY, STATUS, SUBMIT_ENCODING, follow


def stored_vectors(cluster, client, set_name="S"):
    """The set's image keys in byte order and its vectors, by GET."""
    keys = sorted(cluster.image_keys, key=lambda k: k.encode("utf-8"))
    reply = client.request(GET, {"keys": [f"{set_name}/{k}" for k in keys]})
    dimension = cluster.K * cluster.D
    found = [e["key"].split("/", 1)[1] for e in reply.metadata["entries"] if e["found"]]
    return found, np.stack([reply.f32(i, dimension) for i in range(len(found))])


def brute_force(keys, vectors, query, top):
    """The top (key, score) by float64 inner product, ties by the key's bytes."""
    scores = vectors.astype(np.float64) @ np.asarray(query, dtype=np.float64)
    order = sorted(range(len(keys)), key=lambda i: (-scores[i], keys[i].encode("utf-8")))[:top]
    return [keys[i] for i in order], scores[order]


def results(reply):
    """Per query: (query key or None, keys, f32 scores), per SEARCH-REPLY."""
    assert reply.type == SEARCH_REPLY, reply
    return [(r.get("query"), r["keys"], reply.f32(i, len(r["keys"])))
            for i, r in enumerate(reply.metadata["results"])]


def test_search_by_vectors_equals_brute_force(cluster, client):
    keys, vectors = stored_vectors(cluster, client)
    rng = np.random.default_rng(5)
    queries = rng.standard_normal((3, vectors.shape[1])).astype("<f4")
    reply = client.request(SEARCH, {"set": "S", "top": 7, "queries": 3}, arrays=[queries.tobytes()])
    found = results(reply)
    assert len(found) == 3
    for query, (name, got_keys, got_scores) in zip(queries, found):
        want_keys, want_scores = brute_force(keys, vectors, query, 7)
        assert name is None and got_keys == want_keys
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)
    # top above the set's size: every vector, in order.
    everything = results(client.request(SEARCH, {"set": "S", "top": 100, "queries": 1}, arrays=[queries[0].tobytes()]))
    assert everything[0][1] == brute_force(keys, vectors, queries[0], 100)[0] and len(everything[0][1]) == len(keys)


def test_search_by_key_and_by_query_set(cluster, client):
    keys, vectors = stored_vectors(cluster, client)
    (name, got_keys, got_scores), = results(client.request(SEARCH, {"set": "S", "top": 5, "key": keys[4]}))
    # The key itself is not excluded: it comes first, at its squared norm.
    assert name == keys[4] and got_keys[0] == keys[4]
    np.testing.assert_allclose(got_scores[0], np.dot(vectors[4].astype(np.float64), vectors[4]), rtol=1e-5)
    assert got_keys == brute_force(keys, vectors, vectors[4], 5)[0]
    # Every vector of a set as the queries, in key order.
    every = results(client.request(SEARCH, {"set": "S", "top": 1, "querySet": "S"}))
    assert [q for q, _, _ in every] == keys and all(found == [q] for q, found, _ in every)


def test_a_split_search_is_the_coordinators_own(cluster, client):
    """`split: true` searches the set in partitions on the workers (their STATUS `shardsDone`
    counts the set's one partition): the same keys, the same f32 scores bit for bit, as
    `split: false` (the coordinator alone), and the brute force's keys."""
    def shards_done():
        return sum(w["shardsDone"] for w in client.request(STATUS).metadata["workers"])

    keys, vectors = stored_vectors(cluster, client)
    queries = np.random.default_rng(9).standard_normal((4, vectors.shape[1])).astype("<f4")
    for request, arrays in (({"set": "S", "top": 9, "queries": 4}, [queries.tobytes()]),
                            ({"set": "S", "top": 100, "key": keys[2]}, [])):
        before = shards_done()
        alone = results(client.request(SEARCH, dict(request, split=False), arrays=arrays))
        assert shards_done() == before
        split = results(client.request(SEARCH, dict(request, split=True), arrays=arrays))
        again = results(client.request(SEARCH, dict(request, split=True), arrays=arrays))
        assert shards_done() == before + 2
        for (q1, k1, s1), (q2, k2, s2), (q3, k3, s3) in zip(alone, split, again):
            assert q1 == q2 == q3 and k1 == k2 == k3
            assert s1.tobytes() == s2.tobytes() == s3.tobytes()
    for query, (_, got_keys, _) in zip(queries, results(client.request(SEARCH, {"set": "S", "top": 9, "queries": 4, "split": True},
                                                                         arrays=[queries.tobytes()]))):
        assert got_keys == brute_force(keys, vectors, query, 9)[0]


def test_search_errors(cluster, client):
    dimension = cluster.K * cluster.D
    one = np.zeros(dimension, dtype="<f4")

    def error(metadata, arrays=()):
        reply = client.request(SEARCH, metadata, arrays=arrays)
        assert reply.type == ERROR_REPLY and reply.arrays == [], reply
        return reply.metadata

    missing = error({"set": "nope", "top": 3, "queries": 1}, [one.tobytes()])
    assert missing["code"] == "not-found" and "nope" in missing["message"]
    assert error({"set": "S", "top": 3, "key": "no-such-image"})["code"] == "not-found"
    for top in (0, -1, 10_001):
        assert "top must be" in error({"set": "S", "top": top, "queries": 1}, [one.tobytes()])["message"]
    assert "dimension" in error({"set": "S", "top": 3, "queries": 1}, [np.zeros(dimension + 1, "<f4").tobytes()])["message"]
    assert "dimension" in error({"set": "S", "top": 3, "queries": 2}, [one.tobytes()])["message"]
    bad = one.copy()
    bad[3] = np.nan
    assert "non-finite" in error({"set": "S", "top": 3, "queries": 1}, [bad.tobytes()])["message"]
    assert "exactly one of" in error({"set": "S", "top": 3})["message"]
    assert "exactly one of" in error({"set": "S", "top": 3, "key": "a", "querySet": "S"})["message"]
    assert error({"set": "S", "top": 3, "queries": 1})["message"]  # no array frame
    assert "code" not in error({"top": 3, "key": "a"})  # no set: the metadata does not decode


def test_search_sees_a_set_replaced(cluster, client):
    """The coordinator keeps a set's vectors after a search; an encoding job into the set drops them."""
    spec = {"encoding": "vlad", "model": "M", "descriptors": str(cluster.descriptors), "index": str(cluster.index),
            "set": "S-replaced", "flags": 0, "replace": True, "imagesPerShard": 8}
    assert follow(client, client.request(SUBMIT_ENCODING, spec).metadata["job"])[2].metadata["state"] == "succeeded"
    query = {"set": "S-replaced", "top": 100, "key": cluster.image_keys[0]}
    assert len(results(client.request(SEARCH, query))[0][1]) == cluster.IMAGES
    few = cluster.workdir / "few.tsv"
    few.write_text("".join(cluster.index.read_text().splitlines(keepends=True)[:5]))
    job = client.request(SUBMIT_ENCODING, dict(spec, index=str(few))).metadata["job"]
    assert follow(client, job)[2].metadata["state"] == "succeeded"
    assert len(results(client.request(SEARCH, query))[0][1]) == 5


def test_a_read_key_may_search(cluster):
    if not cluster.curve:
        return
    reader = cluster.client(keys=cluster.reader_keys)
    try:
        reply = reader.request(SEARCH, {"set": "S", "top": 2, "key": cluster.image_keys[0]})
        assert reply.type == SEARCH_REPLY, json.dumps(reply.metadata)
    finally:
        reader.close()
