"""Is Protocols/storage.md enough to read a vector? Checked three ways:

* the value decoder below (`decode_value`, written from storage.md §3/§8) is checked on the
  document's own hex example, on bytes built per the document, and on its error cases;
* vectors served by a running coordinator (GET, cluster.md) are checked against
  `codebook get S/KEY --format json --store PATH` (a RocksDB secondary instance, storage.md
  §6) and against the metadata the document says a vector value carries;
* the store's own files, read while the coordinator runs by another program: the rocksdict
  binding (RocksDB from PyPI, not Codebook's code) opens them as a secondary instance, and
  `decode_value` must decode every model, set, vector and job value to what the coordinator
  serves.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_store_format.py
"""

import json
import os
import struct
import time

import numpy as np
import pytest
from rocksdict import AccessType, Options, Rdict

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


# --- the store's files, through a RocksDB binding ----------------------------------------

FAMILIES = ["models", "sets", "vectors", "jobs"]


def wal_files(path):
    return {name for name in os.listdir(path) if name.endswith(".log") and name[:-4].isdigit()}


def catch_up(db, path, attempts=8):
    """Catches up until the coordinator's WAL files did not change during one catch-up (§6)."""
    for attempt in range(1, attempts + 1):
        before = wal_files(path)
        db.try_catch_up_with_primary()
        if wal_files(path) == before:
            return
        time.sleep(0.01 * attempt)
    raise RuntimeError(f"{path}: the coordinator kept switching its WAL files; try again")


def open_store_files(path, secondary_path):
    """The store's column families, opened by the rocksdict binding (not Codebook's code) as a
    secondary instance (storage.md §6), caught up with the running coordinator: the calls of
    storage.md §9's example."""
    options = Options(raw_mode=True)
    options.set_max_open_files(-1)
    db = Rdict(str(path), options, column_families={name: Options(raw_mode=True) for name in FAMILIES},
               access_type=AccessType.secondary(str(secondary_path)))
    catch_up(db, str(path))
    return db, {name: db.get_column_family(name) for name in FAMILIES}


def test_vector_values_in_the_store_files_decode_per_the_document(cluster, client, tmp_path):
    assert Rdict.list_cf(str(cluster.store), Options(raw_mode=True)) == ["default"] + FAMILIES
    config = os.path.join(str(cluster.store), "rocksdict-config.json")
    assert not os.path.exists(config)
    db, families = open_store_files(cluster.store, tmp_path / "secondary")
    assert os.path.exists(config), "rocksdict writes its config into the store directory (storage.md §9)"
    try:
        found = {name: dict(family.items()) for name, family in families.items()}
        in_set = [key for key, _ in families["vectors"].items(from_key=b"S/") if key.startswith(b"S/")]
        assert in_set == sorted(found["vectors"])
    finally:
        db.close()
    # Every value of the vectors family is a vector of set S, keyed "S/<image key>".
    keys = sorted(key.decode() for key in found["vectors"])
    assert keys == all_keys(client, "S/") and len(keys) == cluster.IMAGES
    reply = client.request(GET, {"keys": keys})
    for index, key in enumerate(keys):
        kind, meta, values = decode_value(found["vectors"][key.encode()], VECTOR)
        entry = reply.metadata["entries"][index]
        assert meta == {"encoding": entry["encoding"], "model": entry["model"], "flags": entry["flags"]}
        np.testing.assert_array_equal(values, reply.f32(index, entry["dimension"]))
    # The model and the set, keyed by their names.
    assert list(found["models"]) == [b"M"] and list(found["sets"]) == [b"S"]
    _, model, centres = decode_value(found["models"][b"M"], MODEL)
    assert model["kind"] == "kmeans" and centres.size == model["k"] * model["dimension"]
    described = client.request(DESCRIBE, {"model": "M", "values": True})
    np.testing.assert_array_equal(centres, described.f32(0, centres.size))
    _, set_record, none = decode_value(found["sets"][b"S"], SET)
    assert set_record == client.request(DESCRIBE, {"set": "S"}).metadata["set"]
    assert set_record["dimension"] == cluster.K * cluster.D and none.size == 0
    # Jobs: 8-byte big-endian ids; the last value of job 1 is its final record (succeeded,
    # checkpoint values = the model's centres).
    _, job1, job_values = decode_value(found["jobs"][(1).to_bytes(8, "big")], JOB)
    assert job1["state"] == "succeeded" and job1["job"]["name"] == "M"
    np.testing.assert_array_equal(job_values[job1["initialValues"]:], centres)
    _, job2, _ = decode_value(found["jobs"][(2).to_bytes(8, "big")], JOB)
    assert job2["encoding"]["set"] == "S" and job2["state"] == "succeeded"
    assert job2["imagesDone"] == job2["imagesTotal"] == cluster.IMAGES
