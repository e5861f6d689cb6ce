"""The store requests and encoding jobs of Protocols/cluster.md (GET, LIST, DESCRIBE,
CATALOG, IMPORT, SUBMIT-ENCODING), written from the document, against a real coordinator
with a store and a real worker (pyzmq + numpy).

    CODEBOOK_BIN=.build-protocol/debug/codebook python3 -m pytest Tests/python/test_store_protocol.py
"""

import numpy as np
import pytest

from codebook_client import (ACCEPTED, CATALOG, CATALOG_REPLY, DESCRIBE, DESCRIBE_REPLY, ERROR_REPLY, FETCH_RESULT,
                             GET, GET_REPLY, IMPORT, LIST, LIST_REPLY, NO_SHARD, PROGRESS, RESULT_REPLY, STATUS,
                             SUBMIT, SUBMIT_ENCODING, follow)


def test_get_found_missing_and_not_found(cluster, client):
    first = f"S/{cluster.image_keys[0]}"
    reply = client.request(GET, {"keys": [first, "S/no-such-image", "no-slash"]})
    assert reply.type == GET_REPLY and reply.job == 0 and reply.round == 0 and reply.shard == NO_SHARD
    entries = reply.metadata["entries"]
    assert [e["key"] for e in entries] == [first, "S/no-such-image", "no-slash"]
    assert entries[0]["found"] is True and entries[1]["found"] is False and entries[2]["found"] is False
    assert entries[0]["encoding"] == "vlad" and entries[0]["model"] == "M" and entries[0]["flags"] == 0
    assert entries[0]["dimension"] == cluster.K * cluster.D
    assert len(reply.arrays) == 1  # only found entries have a frame
    reply.f32(0, entries[0]["dimension"])
    # A single missing key: ERROR-REPLY with code "not-found".
    missing = client.request(GET, {"keys": ["S/no-such-image"]})
    assert missing.type == ERROR_REPLY and missing.metadata["code"] == "not-found" and missing.arrays == []
    # Too many keys: an error without a code.
    too_many = client.request(GET, {"keys": [first] * 4097})
    assert too_many.type == ERROR_REPLY and "code" not in too_many.metadata


def test_list_pages_with_more(cluster, client):
    expected = [f"S/{k}" for k in sorted(cluster.image_keys)]
    keys, after, pages = [], None, 0
    while True:
        meta = {"prefix": "S/", "limit": 7}
        if after is not None:
            meta["after"] = after
        reply = client.request(LIST, meta)
        assert reply.type == LIST_REPLY
        assert len(reply.metadata["keys"]) <= 7
        keys += reply.metadata["keys"]
        pages += 1
        if not reply.metadata["more"]:
            break
        after = reply.metadata["keys"][-1]
    assert keys == expected and pages == 5  # 30 keys: 7+7+7+7+2
    exact = client.request(LIST, {"prefix": "S/", "limit": 30})
    assert exact.metadata["keys"] == expected and exact.metadata["more"] is False
    assert client.request(LIST, {"prefix": "nothing/", "limit": 5}).metadata == {"keys": [], "more": False}
    assert client.request(LIST, {"prefix": "", "limit": 0}).type == ERROR_REPLY


def test_describe_model_with_values_and_set(cluster, client):
    plain = client.request(DESCRIBE, {"model": "M"})
    assert plain.type == DESCRIBE_REPLY and plain.arrays == [] and "set" not in plain.metadata
    model = plain.metadata["model"]
    k, d = model["k"], model["dimension"]
    assert (model["kind"], k, d, model["source"]) == ("kmeans", cluster.K, cluster.D, "trained")
    assert model["job"]["name"] == "M" and model["corpus"] == str(cluster.descriptors)
    assert model["corpusRows"] == cluster.IMAGES * cluster.IMAGE_ROWS and model["training"]
    assert model["created"].endswith("Z")
    with_values = client.request(DESCRIBE, {"model": "M", "values": True})
    centres = with_values.f32(0, k * d)
    assert len(with_values.arrays) == 1 and np.isfinite(centres).all()
    # The training job (job 1, from the CLI) returns the same centres.
    result = client.request(FETCH_RESULT, job=1)
    assert result.type == RESULT_REPLY
    np.testing.assert_array_equal(result.f32(0, k * d), centres)

    s = client.request(DESCRIBE, {"set": "S"})
    assert s.type == DESCRIBE_REPLY and s.arrays == []
    assert s.metadata["set"]["encoding"] == "vlad" and s.metadata["set"]["model"] == "M"
    assert s.metadata["set"]["flags"] == 0 and s.metadata["set"]["options"] == []
    assert s.metadata["set"]["dimension"] == k * d
    for query in ({"model": "nope"}, {"set": "nope"}):
        reply = client.request(DESCRIBE, query)
        assert reply.type == ERROR_REPLY and reply.metadata["code"] == "not-found"
    neither = client.request(DESCRIBE, {})
    assert neither.type == ERROR_REPLY and "code" not in neither.metadata


def test_import_then_describe_and_catalog(cluster, client):
    rng = np.random.default_rng(5)
    k, d = 3, cluster.D
    centres = rng.normal(size=(k, d)).astype("<f4")
    meta = {"name": "imported-km", "kind": "kmeans", "k": k, "dimension": d, "replace": False}
    reply = client.request(IMPORT, meta, arrays=[centres.tobytes()])
    assert reply.type == DESCRIBE_REPLY, reply
    assert reply.metadata["model"]["source"] == "imported" and reply.metadata["model"]["k"] == k
    assert reply.arrays == [] and "job" not in reply.metadata["model"]
    again = client.request(IMPORT, meta, arrays=[centres.tobytes()])
    assert again.type == ERROR_REPLY and "exists" in again.metadata["message"]
    replaced = client.request(IMPORT, dict(meta, replace=True), arrays=[(centres + 1).tobytes()])
    assert replaced.type == DESCRIBE_REPLY
    back = client.request(DESCRIBE, {"model": "imported-km", "values": True})
    np.testing.assert_array_equal(back.f32(0, k * d).reshape(k, d), centres + 1)

    means = rng.normal(size=(k, d)).astype("<f4")
    variances = rng.uniform(0.5, 2, size=(k, d)).astype("<f4")
    priors = np.array([0.2, 0.3, 0.5], dtype="<f4")
    gmm = {"name": "imported-gmm", "kind": "gmm", "k": k, "dimension": d, "replace": True}
    assert client.request(IMPORT, gmm, arrays=[means.tobytes(), variances.tobytes(), priors.tobytes()]).type \
        == DESCRIBE_REPLY
    back = client.request(DESCRIBE, {"model": "imported-gmm", "values": True})
    assert len(back.arrays) == 3
    np.testing.assert_array_equal(back.f32(0, k * d), means.ravel())
    np.testing.assert_array_equal(back.f32(1, k * d), variances.ravel())
    np.testing.assert_array_equal(back.f32(2, k), priors)
    short = client.request(IMPORT, dict(gmm, name="bad"), arrays=[means.tobytes()])
    assert short.type == ERROR_REPLY
    bad_name = client.request(IMPORT, dict(meta, name="a/b"), arrays=[centres.tobytes()])
    assert bad_name.type == ERROR_REPLY

    catalog = client.request(CATALOG)
    assert catalog.type == CATALOG_REPLY and catalog.arrays == []
    names = [m["name"] for m in catalog.metadata["models"]]
    assert names == sorted(names) and {"M", "imported-km", "imported-gmm"} <= set(names)
    record = next(m["record"] for m in catalog.metadata["models"] if m["name"] == "imported-gmm")
    assert record["kind"] == "gmm" and record["source"] == "imported"
    sets = {s["name"]: s["record"] for s in catalog.metadata["sets"]}
    assert sets["S"]["dimension"] == cluster.K * cluster.D


def test_submit_encoding_progress_and_vectors(cluster, client):
    job_spec = {"encoding": "vlad", "model": "M", "descriptors": str(cluster.descriptors),
                "index": str(cluster.index), "set": "S-protocol", "flags": 0, "replace": False,
                "imagesPerShard": 4}
    accepted = client.request(SUBMIT_ENCODING, job_spec)
    assert accepted.type == ACCEPTED, accepted
    job = accepted.metadata["job"]
    assert accepted.job == job
    _, records, final = follow(client, job)
    meta = final.metadata
    assert meta["state"] == "succeeded", meta
    assert meta["imagesDone"] == meta["imagesTotal"] == cluster.IMAGES and records == meta["iterations"] == []
    # Same model, same flags: the same vectors as the CLI's set S.
    keys = sorted(cluster.image_keys)
    mine = client.request(GET, {"keys": [f"S-protocol/{k}" for k in keys]})
    theirs = client.request(GET, {"keys": [f"S/{k}" for k in keys]})
    for i in range(len(keys)):
        np.testing.assert_array_equal(mine.f32(i, cluster.K * cluster.D), theirs.f32(i, cluster.K * cluster.D))
    # STATUS lists it as kind "vlad"; FETCH-RESULT has no model to give.
    summary = next(j for j in client.request(STATUS).metadata["jobs"] if j["job"] == job)
    assert summary["kind"] == "vlad" and summary["state"] == "succeeded"
    assert summary["corpus"] == str(cluster.descriptors)
    fetched = client.request(FETCH_RESULT, job=job)
    assert fetched.type == ERROR_REPLY and "encoding job" in fetched.metadata["message"]
    # Again without replace: everything is stored already, so it succeeds at once.
    again = client.request(SUBMIT_ENCODING, job_spec)
    _, _, final = follow(client, again.metadata["job"])
    assert final.metadata["state"] == "succeeded" and final.metadata["imagesDone"] == cluster.IMAGES
    # Other flags into the same set without replace: refused. A missing model: not-found.
    assert client.request(SUBMIT_ENCODING, dict(job_spec, flags=2)).type == ERROR_REPLY
    missing = client.request(SUBMIT_ENCODING, dict(job_spec, model="nope", set="S-other"))
    assert missing.type == ERROR_REPLY and missing.metadata["code"] == "not-found"
    # Fisher needs a GMM.
    assert client.request(SUBMIT_ENCODING, dict(job_spec, encoding="fisher", set="S-fisher")).type == ERROR_REPLY


def test_named_training_job_and_not_found_jobs(cluster, client):
    spec = {"kind": "kmeans", "corpus": str(cluster.descriptors), "k": 2, "iterations": 3, "seed": 1,
            "tolerance": 0, "shardRows": 1000, "initialization": "kmeans++", "name": "M"}
    exists = client.request(SUBMIT, spec)
    assert exists.type == ERROR_REPLY and "exists" in exists.metadata["message"]
    accepted = client.request(SUBMIT, dict(spec, name="M2", replace=False))
    assert accepted.type == ACCEPTED
    _, _, final = follow(client, accepted.metadata["job"])
    assert final.metadata["state"] == "succeeded" and "imagesDone" not in final.metadata
    model = client.request(DESCRIBE, {"model": "M2"}).metadata["model"]
    assert model["k"] == 2 and model["job"]["name"] == "M2"
    for msg_type in (PROGRESS, FETCH_RESULT):
        reply = client.request(msg_type, {"since": 0}, job=987654)
        assert reply.type == ERROR_REPLY and reply.job == 987654 and reply.metadata["code"] == "not-found"
