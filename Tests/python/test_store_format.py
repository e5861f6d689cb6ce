"""Is Protocols/storage.md enough to read a vector? No RocksDB binding is installed, so:

* the value decoder below (`decode_value`, written from storage.md §3/§8) is checked on the
  document's own hex example, on bytes built per the document, and on its error cases;
* vectors served by a running coordinator (GET, cluster.md) are checked against
  `codebook get S/KEY --format json --store PATH` (a RocksDB secondary instance, storage.md
  §6) and against the metadata the document says a vector value carries;
* the store's own files: RocksDB's write-ahead log of the running coordinator holds the
  raw values it wrote (uncompressed); a minimal WAL reader pulls them out and
  `decode_value` must decode every vector value to exactly what GET returns. (The WAL
  format is RocksDB's, not Codebook's; it is read here only because no binding exists.)

    CODEBOOK_BIN=.build-protocol/debug/codebook python3 -m pytest Tests/python/test_store_format.py
"""

import json
import struct

import numpy as np
import pytest

from codebook_client import DESCRIBE, DESCRIBE_REPLY, GET, GET_REPLY, LIST, LIST_REPLY, run_cli
from store_cluster import JOB, MODEL, SET, VECTOR, decode_value, encode_value

DOC_EXAMPLE = bytes.fromhex(
    "43 42 4B 53 01 00 03 00 29 00 00 00 04 00 00 00"
    "7B 22 65 6E 63 6F 64 69 6E 67 22 3A 22 76 6C 61"
    "64 22 2C 22 66 6C 61 67 73 22 3A 30 2C 22 6D 6F"
    "64 65 6C 22 3A 22 4D 22 7D 00 00 00 3F 00 00 80"
    "BE 00 00 80 3F 00 00 00 00".replace(" ", ""))


def all_keys(client, prefix):
    keys, after = [], None
    while True:
        meta = {"prefix": prefix, "limit": 8}
        if after is not None:
            meta["after"] = after
        reply = client.request(LIST, meta)
        assert reply.type == LIST_REPLY, reply
        keys += reply.metadata["keys"]
        if not reply.metadata["more"]:
            return keys
        after = reply.metadata["keys"][-1]


# --- the decoder on bytes built from the document -----------------------------------------

def test_document_hex_example_decodes():
    assert len(DOC_EXAMPLE) == 73
    kind, meta, values = decode_value(DOC_EXAMPLE, VECTOR)
    assert kind == VECTOR and meta == {"encoding": "vlad", "flags": 0, "model": "M"}
    assert values.dtype == np.float32 and values.tolist() == [0.5, -0.25, 1.0, 0.0]
    # And the document's writer rule (sorted keys, no spaces) rebuilds the same bytes.
    assert encode_value(VECTOR, meta, values) == DOC_EXAMPLE


def test_constructed_values_of_every_type_round_trip():
    k, d = 3, 2
    centres = np.arange(k * d, dtype=np.float32)
    model = {"kind": "kmeans", "k": k, "dimension": d, "source": "imported", "created": "2026-01-01T00:00:00Z"}
    gmm_values = np.concatenate([np.ones(k * d), 2 * np.ones(k * d), np.full(k, 1 / 3)]).astype(np.float32)
    cases = [
        (MODEL, model, centres),
        (MODEL, dict(model, kind="gmm"), gmm_values),
        (SET, {"encoding": "fisher", "model": "G", "flags": 3, "options": ["squareRoot", "normalized"],
               "dimension": 2 * k * d, "created": "2026-01-01T00:00:00Z"}, []),
        (VECTOR, {"encoding": "fisher", "model": "G", "flags": 3, "aFutureField": [1]}, np.linspace(-1, 1, 12)),
        (JOB, {"state": "running", "iterations": [], "initialValues": k * d, "job": {"kind": "kmeans"},
               "checkpoint": {"phase": "kmeans", "modelValues": k * d, "converged": False}},
         np.concatenate([centres, centres + 10])),
    ]
    for record_type, meta, values in cases:
        raw = encode_value(record_type, meta, values)
        m, f = struct.unpack_from("<II", raw, 8)
        assert len(raw) == 16 + m + 4 * f
        kind, decoded_meta, decoded = decode_value(raw, record_type)
        assert kind == record_type and decoded_meta == meta
        np.testing.assert_array_equal(decoded, np.asarray(values, dtype=np.float32))
    # Job values: the initial model first, then the checkpoint's (storage.md §4.4).
    _, meta, values = decode_value(encode_value(*cases[-1]), JOB)
    initial, checkpoint = values[:meta["initialValues"]], values[meta["initialValues"]:]
    assert checkpoint.size == meta["checkpoint"]["modelValues"]
    np.testing.assert_array_equal(checkpoint - initial, 10)
    # GMM model values: means | variances | priors.
    _, meta, values = decode_value(encode_value(*cases[1]), MODEL)
    kd = meta["k"] * meta["dimension"]
    assert values.size == 2 * kd + meta["k"] and values[kd:2 * kd].tolist() == [2.0] * kd


def test_decoder_rejects_what_the_document_calls_corrupt():
    good = DOC_EXAMPLE
    bad = {
        "short": good[:10],
        "magic": b"XBKS" + good[4:],
        "version": good[:4] + struct.pack("<H", 2) + good[6:],
        "type": good[:6] + struct.pack("<H", 9) + good[8:],
        "too long": good + b"\x00",
        "too short": good[:-1],
    }
    for name, raw in bad.items():
        with pytest.raises(ValueError):
            decode_value(raw)
    with pytest.raises(ValueError):
        decode_value(good, MODEL)  # a vector where a model was expected


# --- against the running coordinator and the CLI ------------------------------------------

def test_get_matches_cli_get_from_the_store_files(cluster, client):
    keys = all_keys(client, "S/")
    assert keys == [f"S/{k}" for k in sorted(cluster.image_keys)]
    set_reply = client.request(DESCRIBE, {"set": "S"})
    assert set_reply.type == DESCRIBE_REPLY
    dimension = set_reply.metadata["set"]["dimension"]
    assert dimension == cluster.K * cluster.D  # VLAD: K·D (storage.md §4.2)
    reply = client.request(GET, {"keys": keys})
    assert reply.type == GET_REPLY and len(reply.arrays) == len(keys)
    for index in (0, 13, len(keys) - 1):  # the CLI opens a secondary instance each time
        entry = reply.metadata["entries"][index]
        served = reply.f32(index, entry["dimension"])
        done = run_cli("get", keys[index], "--format", "json", "--store", str(cluster.store), timeout=30)
        printed = json.loads(done.stdout)
        assert printed["key"] == keys[index]
        assert (printed["encoding"], printed["model"], printed["flags"]) == ("vlad", "M", 0)
        np.testing.assert_array_equal(np.asarray(printed["values"], dtype=np.float32), served)
    missing = run_cli("get", "S/no-such-image", "--format", "json", "--store", str(cluster.store),
                      timeout=30, check=False)
    assert missing.returncode == 1 and b"not found" in missing.stderr


def test_get_metadata_is_the_vector_record_of_the_document(cluster, client):
    keys = all_keys(client, "S/")
    reply = client.request(GET, {"keys": keys})
    for index, entry in enumerate(reply.metadata["entries"]):
        assert entry["found"] is True
        values = reply.f32(index, entry["dimension"])
        # The value the store holds, per storage.md §4.3: VectorRecord metadata, F = dimension.
        record = {"encoding": entry["encoding"], "model": entry["model"], "flags": entry["flags"]}
        raw = encode_value(VECTOR, record, values)
        kind, meta, decoded = decode_value(raw, VECTOR)
        assert kind == VECTOR and meta == record and decoded.size == entry["dimension"] == cluster.K * cluster.D
        assert raw[16 + struct.unpack_from("<I", raw, 8)[0]:] == values.astype("<f4").tobytes()
        assert np.isfinite(decoded).all()
        # No unnormalised flag: VLAD is globally L2-normalised.
        assert float(np.linalg.norm(decoded)) == pytest.approx(1.0, rel=1e-5)


# --- the store's files: RocksDB's write-ahead log ------------------------------------------

def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _wal_records(data, block=32768):
    """Logical records of a RocksDB log file (legacy and recyclable record headers)."""
    pos, pending = 0, b""
    while pos < len(data):
        left_in_block = block - pos % block
        if left_in_block < 7:
            pos += left_in_block
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        header = 11 if kind in (5, 6, 7, 8) else 7
        if kind == 0 and length == 0:
            pos += left_in_block
            continue
        payload = data[pos + header:pos + header + length]
        pos += header + length
        base = kind - 4 if kind >= 5 and kind <= 8 else kind
        if base == 1:
            yield payload
        elif base == 2:
            pending = payload
        elif base == 3:
            pending += payload
        elif base == 4:
            yield pending + payload
            pending = b""


def _batch_puts(record):
    """(key, value) of the puts of one WriteBatch, in order."""
    pos, puts = 12, []
    count = struct.unpack_from("<I", record, 8)[0]
    for _ in range(count):
        tag = record[pos]
        pos += 1
        if tag in (0x4, 0x5, 0x6, 0x8, 0xE):  # column-family variants carry a varint32 id
            _, pos = _varint(record, pos)
        if tag in (0x1, 0x5, 0x2, 0x6):  # put / merge: key, value
            klen, pos = _varint(record, pos)
            key = record[pos:pos + klen]
            pos += klen
            vlen, pos = _varint(record, pos)
            value = record[pos:pos + vlen]
            pos += vlen
            if tag in (0x1, 0x5):
                puts.append((key, value))
        elif tag in (0x0, 0x4, 0x7, 0x8):  # deletions: key
            klen, pos = _varint(record, pos)
            pos += klen
        else:
            break  # anything else: stop reading this batch
    return puts


def test_vector_values_in_the_store_files_decode_per_the_document(cluster, client):
    logs = sorted(cluster.store.glob("*.log"))
    assert logs, "no write-ahead log in the store directory"
    found = {}
    for log in logs:
        for record in _wal_records(log.read_bytes()):
            if len(record) >= 12:
                for key, value in _batch_puts(record):
                    found[key] = value
    vectors = {k.decode(): v for k, v in found.items() if v[:4] == b"CBKS" and v[6:8] == b"\x03\x00"}
    if not vectors:
        pytest.skip("the coordinator's writes are no longer in its write-ahead log (flushed to tables)")
    keys = sorted(k for k in vectors if k.startswith("S/"))
    assert keys == all_keys(client, "S/")
    reply = client.request(GET, {"keys": keys})
    for index, key in enumerate(keys):
        kind, meta, values = decode_value(vectors[key], VECTOR)
        entry = reply.metadata["entries"][index]
        assert meta == {"encoding": entry["encoding"], "model": entry["model"], "flags": entry["flags"]}
        np.testing.assert_array_equal(values, reply.f32(index, entry["dimension"]))
    # The model and set values are there too, keyed by their names.
    _, model, centres = decode_value(found[b"M"], MODEL)
    assert model["kind"] == "kmeans" and centres.size == model["k"] * model["dimension"]
    described = client.request(DESCRIBE, {"model": "M", "values": True})
    np.testing.assert_array_equal(centres, described.f32(0, centres.size))
    _, set_record, none = decode_value(found[b"S"], SET)
    assert set_record == client.request(DESCRIBE, {"set": "S"}).metadata["set"]
    assert set_record["dimension"] == cluster.K * cluster.D and none.size == 0
    # Jobs: 8-byte big-endian ids; the last value of job 1 is its final record (succeeded,
    # checkpoint values = the model's centres).
    _, job1, job_values = decode_value(found[(1).to_bytes(8, "big")], JOB)
    assert job1["state"] == "succeeded" and job1["job"]["name"] == "M"
    np.testing.assert_array_equal(job_values[job1["initialValues"]:], centres)
    _, job2, _ = decode_value(found[(2).to_bytes(8, "big")], JOB)
    assert job2["encoding"]["set"] == "S" and job2["state"] == "succeeded"
    assert job2["imagesDone"] == job2["imagesTotal"] == cluster.IMAGES
