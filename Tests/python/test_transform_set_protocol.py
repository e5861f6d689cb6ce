"""TRANSFORM-SET (Protocols/cluster.md), written from the documents: a set's vectors projected
by the vector whitening learnt from the set (SUBMIT `pca` with `set`) into a new set equal,
bit for bit, what SUBMIT-ENCODING with `whitening` stores, and numpy's projection of section 4;
its refusals.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_transform_set_protocol.py
"""

import numpy as np

from codebook_client import (ACCEPTED, DESCRIBE, DESCRIBE_REPLY, ERROR_REPLY, GET, GET_REPLY, IMPORT, SUBMIT,
                             SUBMIT_ENCODING, follow)

TRANSFORM_SET = 45
KEPT = 6


def succeeded(client, msg_type, metadata):
    reply = client.request(msg_type, metadata)
    assert reply.type == ACCEPTED, reply
    assert follow(client, reply.metadata["job"])[0] == "succeeded"


def vectors(client, set_name, keys):
    """The GET entries (without their keys) and values of `keys` in `set_name`."""
    reply = client.request(GET, {"keys": [f"{set_name}/{key}" for key in keys]})
    assert reply.type == GET_REPLY, reply
    entries = reply.metadata["entries"]
    assert all(entry["found"] for entry in entries)
    values = [np.frombuffer(reply.arrays[i], "<f4") for i in range(len(entries))]
    return [{k: v for k, v in entry.items() if k != "key"} for entry in entries], np.array(values)


def test_transform_set_stores_what_an_encoding_through_the_whitening_stores(cluster, client):
    succeeded(client, SUBMIT, {"kind": "pca", "corpus": "", "k": KEPT, "iterations": 1, "seed": 0, "tolerance": 0,
                               "shardRows": 7, "initialization": "none", "name": "TW", "replace": True, "whiten": True,
                               "set": "S", "power": 0.5})
    succeeded(client, SUBMIT_ENCODING, {"encoding": "vlad", "model": "M", "descriptors": str(cluster.descriptors),
                                        "index": str(cluster.index), "set": "S-encoded", "flags": 0, "replace": True,
                                        "imagesPerShard": 7, "whitening": "TW"})

    reply = client.request(TRANSFORM_SET, {"set": "S", "pca": "TW", "into": "S-transformed"})
    assert reply.type == DESCRIBE_REPLY and reply.arrays == [], reply
    record = reply.metadata["set"]
    assert record["dimension"] == KEPT and record["whitening"]["name"] == "TW"
    encoded = client.request(DESCRIBE, {"set": "S-encoded"}).metadata["set"]
    assert {k: v for k, v in record.items() if k != "created"} == {k: v for k, v in encoded.items() if k != "created"}
    assert client.request(DESCRIBE, {"set": "S-transformed"}).metadata["set"] == record

    keys = cluster.image_keys
    transformed_entries, transformed = vectors(client, "S-transformed", keys)
    encoded_entries, encoded_values = vectors(client, "S-encoded", keys)
    assert transformed_entries == encoded_entries
    assert transformed.tobytes() == encoded_values.tobytes()

    # Section 4, projection with power p: sign(x)·|x|^p, L2, W·(x − μ) with row r of W divided by
    # √(λ_r + ε), ε = 10⁻⁶·λ₁, then L2.
    model = client.request(DESCRIBE, {"model": "TW", "values": True})
    d = model.metadata["model"]["dimension"]
    mean = np.frombuffer(model.arrays[0], "<f4").astype(np.float64)
    components = np.frombuffer(model.arrays[1], "<f4").reshape(KEPT, d).astype(np.float64)
    eigenvalues = np.frombuffer(model.arrays[2], "<f4").astype(np.float64)
    weights = components / np.sqrt(eigenvalues + 1e-6 * eigenvalues[0])[:, None]
    _, plain = vectors(client, "S", keys)
    x = np.sign(plain) * np.abs(plain.astype(np.float64)) ** 0.5
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = (x - mean) @ weights.T
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    assert np.allclose(transformed, y, atol=1e-4)


def test_transform_set_refusals(cluster, client):
    def error(metadata):
        reply = client.request(TRANSFORM_SET, metadata)
        assert reply.type == ERROR_REPLY and reply.arrays == [], reply
        return reply.metadata

    succeeded(client, SUBMIT, {"kind": "pca", "corpus": "", "k": 3, "iterations": 1, "seed": 0, "tolerance": 0,
                               "shardRows": 7, "initialization": "none", "name": "TR", "replace": True, "whiten": True,
                               "set": "S"})
    first = client.request(TRANSFORM_SET, {"set": "S", "pca": "TR", "into": "S-refusals"})
    assert first.type == DESCRIBE_REPLY, first
    again = error({"set": "S", "pca": "TR", "into": "S-refusals"})
    assert again["code"] == "exists" and "S-refusals" in again["message"]
    missing_set = error({"set": "nope", "pca": "TR", "into": "X"})
    assert missing_set["code"] == "not-found" and "nope" in missing_set["message"]
    missing_pca = error({"set": "S", "pca": "nope", "into": "X"})
    assert missing_pca["code"] == "not-found" and "nope" in missing_pca["message"]
    assert "already" in error({"set": "S-refusals", "pca": "TR", "into": "X"})["message"]
    s = np.float32(np.sqrt(0.5))
    imported = client.request(IMPORT, {"name": "P2", "kind": "pca", "k": 1, "dimension": 2, "replace": True},
                              arrays=[np.zeros(2, "<f4").tobytes(), np.array([s, s], "<f4").tobytes(),
                                      np.ones(1, "<f4").tobytes()])
    assert imported.type == DESCRIBE_REPLY, imported
    assert "takes vectors of 2 values" in error({"set": "S", "pca": "P2", "into": "X"})["message"]
    assert "code" not in error({"set": "S", "pca": "TR"})  # no `into`: the metadata does not decode
    assert client.request(DESCRIBE, {"set": "X"}).type == ERROR_REPLY
