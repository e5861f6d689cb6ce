"""PCA models through the protocol of Protocols/cluster.md and storage.md, written from the
documents: a `pca` SUBMIT job (one covariance pass), its RESULT-REPLY and stored model read
back with DESCRIBE (values), checked against numpy's eigen-decomposition of the covariance;
IMPORT of a PCA; a k-means job through it (`pca`) and the encoding refused without it.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_pca_protocol.py
"""

import numpy as np

from codebook_client import (ACCEPTED, DESCRIBE, DESCRIBE_REPLY, ERROR_REPLY, FETCH_RESULT, IMPORT, RESULT_REPLY,
                             SUBMIT, SUBMIT_ENCODING, follow)

KEPT = 3


def pca_job(cluster, name, whiten=False, kept=KEPT):
    return {"kind": "pca", "corpus": str(cluster.descriptors), "k": kept, "iterations": 1, "seed": 0, "tolerance": 0,
            "shardRows": 512, "initialization": "none", "name": name, "replace": True, "whiten": whiten}


def reference(cluster):
    rows = np.load(cluster.descriptors).astype(np.float64)
    mean = rows.mean(axis=0)
    covariance = np.cov(rows, rowvar=False)
    values, vectors = np.linalg.eigh(covariance)
    return rows, mean, covariance, values[::-1], vectors[:, ::-1].T


def check_pca(arrays, cluster):
    """mean f32[D], components f32[D'·D], eigenvalues f32[D'] against numpy (float64)."""
    D = cluster.D
    mean, components, eigenvalues = (np.frombuffer(arrays[0], "<f4"), np.frombuffer(arrays[1], "<f4").reshape(KEPT, D),
                                     np.frombuffer(arrays[2], "<f4"))
    _, ref_mean, covariance, ref_values, ref_vectors = reference(cluster)
    assert np.allclose(mean, ref_mean, rtol=1e-5, atol=1e-4)
    assert np.allclose(eigenvalues, ref_values[:KEPT], rtol=1e-4)
    for r in range(KEPT):
        v = components[r].astype(np.float64)
        assert abs(np.dot(v, v) - 1) < 1e-5
        # Same direction as numpy's, signed so that the entry of largest magnitude is positive.
        assert abs(abs(np.dot(v, ref_vectors[r])) - 1) < 1e-4
        assert v[np.argmax(np.abs(v))] > 0
        assert np.allclose(covariance @ v, eigenvalues[r] * v, atol=1e-3 * ref_values[0])


def test_a_pca_job_reads_back_through_fetch_result_and_describe(cluster, client):
    reply = client.request(SUBMIT, pca_job(cluster, "P", whiten=True))
    assert reply.type == ACCEPTED, reply
    job = reply.metadata["job"]
    state, records, _ = follow(client, job)
    assert state == "succeeded"
    assert [r["phase"] for r in records] == ["pca"]
    result = client.request(FETCH_RESULT, {}, job=job)
    assert result.type == RESULT_REPLY
    assert result.metadata["kind"] == "pca" and result.metadata["k"] == KEPT and result.metadata["dimension"] == cluster.D
    check_pca(result.arrays, cluster)

    described = client.request(DESCRIBE, {"model": "P", "values": True})
    assert described.type == DESCRIBE_REPLY
    model = described.metadata["model"]
    assert model["kind"] == "pca" and model["k"] == KEPT and model["dimension"] == cluster.D
    assert model["whiten"] is True and model["source"] == "trained"
    assert [bytes(a) for a in described.arrays] == [bytes(a) for a in result.arrays]
    check_pca(described.arrays, cluster)


def test_import_a_pca_and_train_and_encode_through_it(cluster, client):
    _, mean, _, values, vectors = reference(cluster)
    arrays = [mean.astype("<f4").tobytes(), vectors[:2].astype("<f4").tobytes(), values[:2].astype("<f4").tobytes()]
    reply = client.request(IMPORT, {"name": "Q", "kind": "pca", "k": 2, "dimension": cluster.D, "replace": True},
                           arrays=arrays)
    assert reply.type == DESCRIBE_REPLY, reply
    assert reply.metadata["model"]["kind"] == "pca" and reply.metadata["model"]["source"] == "imported"
    back = client.request(DESCRIBE, {"model": "Q", "values": True})
    assert [bytes(a) for a in back.arrays] == arrays

    # Components that are not unit vectors are refused.
    bad = client.request(IMPORT, {"name": "bad", "kind": "pca", "k": 2, "dimension": cluster.D, "replace": True},
                         arrays=[arrays[0], (2 * vectors[:2]).astype("<f4").tobytes(), arrays[2]])
    assert bad.type == ERROR_REPLY

    kmeans = {"kind": "kmeans", "corpus": str(cluster.descriptors), "k": 3, "iterations": 3, "seed": 1, "tolerance": 0,
              "shardRows": 512, "initialization": "kmeans++", "name": "KQ", "replace": True, "pca": "Q"}
    reply = client.request(SUBMIT, kmeans)
    assert reply.type == ACCEPTED, reply
    state, _, _ = follow(client, reply.metadata["job"])
    assert state == "succeeded"
    record = client.request(DESCRIBE, {"model": "KQ"}).metadata["model"]
    assert record["dimension"] == 2 and record["pca"]["name"] == "Q"
    # storage.md: FNV-1a 64 over the PCA's values' bytes, then the whitening byte.
    digest = 0xcbf29ce484222325
    for byte in b"".join(arrays) + b"\x00":
        digest = ((digest ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    assert record["pca"]["checksum"] == f"fnv1a64:{digest:016x}"

    encoding = {"encoding": "vlad", "model": "KQ", "descriptors": str(cluster.descriptors), "index": str(cluster.index),
                "set": "SQ", "flags": 0, "replace": True, "imagesPerShard": 8}
    refused = client.request(SUBMIT_ENCODING, encoding)
    assert refused.type == ERROR_REPLY and "PCA model \"Q\"" in refused.metadata["message"]
    accepted = client.request(SUBMIT_ENCODING, dict(encoding, pca="Q"))
    assert accepted.type == ACCEPTED, accepted
    state, _, _ = follow(client, accepted.metadata["job"])
    assert state == "succeeded"


def test_a_pca_of_more_components_than_dimensions_is_refused(cluster, client):
    reply = client.request(SUBMIT, pca_job(cluster, "R", kept=cluster.D + 1))
    assert reply.type == ERROR_REPLY and "a PCA keeps 1…D components" in reply.metadata["message"]
