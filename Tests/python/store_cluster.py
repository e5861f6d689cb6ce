"""Shared by the store tests: the value envelope (Protocols/storage.md) and a coordinator +
worker with a store in a temporary directory, a model trained and a set encoded through the
command line. The wire protocol (Protocols/cluster.md) is codebook_client.py's."""

import json
import struct
from pathlib import Path

import numpy as np

from codebook_client import BINARY, Cluster, run_cli

# --- storage.md ---------------------------------------------------------------------------

STORE_MAGIC, STORE_VERSION = b"CBKS", 1
MODEL, SET, VECTOR, JOB = 1, 2, 3, 4
ENVELOPE = struct.Struct("<4sHHII")


def decode_value(raw, expected_type=None):
    """(record type, metadata, float32 values) of one store value, per storage.md §3."""
    if len(raw) < ENVELOPE.size:
        raise ValueError(f"value of {len(raw)} bytes is shorter than the 16-byte header")
    magic, version, record_type, m, f = ENVELOPE.unpack_from(raw, 0)
    if magic != STORE_MAGIC:
        raise ValueError("not a Codebook value (no CBKS magic)")
    if version != STORE_VERSION:
        raise ValueError(f"value format version {version}; this reader reads {STORE_VERSION}")
    if record_type not in (MODEL, SET, VECTOR, JOB):
        raise ValueError(f"unknown record type {record_type}")
    if expected_type is not None and record_type != expected_type:
        raise ValueError(f"record type {record_type}, expected {expected_type}")
    if len(raw) != ENVELOPE.size + m + 4 * f:
        raise ValueError(f"value has {len(raw)} bytes, header says {ENVELOPE.size + m + 4 * f}")
    metadata = json.loads(raw[ENVELOPE.size:ENVELOPE.size + m].decode("utf-8"))
    values = np.frombuffer(raw, dtype="<f4", count=f, offset=ENVELOPE.size + m).copy()
    return record_type, metadata, values


def encode_value(record_type, metadata, values=()):
    """A value as storage.md §3 lays it out, with the Swift writer's JSON (sorted keys)."""
    md = json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode("utf-8")
    vals = np.asarray(values, dtype="<f4").tobytes()
    return ENVELOPE.pack(STORE_MAGIC, STORE_VERSION, record_type, len(md), len(vals) // 4) + md + vals


# --- processes ----------------------------------------------------------------------------

class StoreCluster(Cluster):
    """A coordinator with a store and one worker; model M (k-means 4×8) and set S (VLAD of
    30 images of 100 rows), both made through the command line."""

    K, D, IMAGES, IMAGE_ROWS = 4, 8, 30, 100

    def __init__(self, workdir, curve=False):
        super().__init__(workdir, worker_name="store-worker", curve=curve)
        self.descriptors = self.workdir / "desc.npy"
        self.index = self.workdir / "index.tsv"

    def start(self):
        if not Path(BINARY).exists():
            raise FileNotFoundError(f"codebook binary not found at {BINARY} (set CODEBOOK_BIN)")
        run_cli("generate", "--n", str(self.IMAGES * self.IMAGE_ROWS), "--dim", str(self.D), "--clusters", "4",
                "--seed", "1", "--out", str(self.descriptors), "--index", str(self.index),
                "--image-rows", str(self.IMAGE_ROWS))
        super().start()
        self.wait_for_worker()
        run_cli("train", "kmeans", "--corpus", str(self.descriptors), "--k", str(self.K), "--iterations", "10",
                "--seed", "3", "--name", "M", "--coordinator", self.clients_endpoint, env=self.cli_env)
        run_cli("encode", "vlad", "--model", "M", "--set", "S", "--descriptors", str(self.descriptors),
                "--index", str(self.index), "--images-per-shard", "7", "--coordinator", self.clients_endpoint,
                env=self.cli_env)
        self.image_keys = [line.split("\t")[0] for line in self.index.read_text().splitlines() if line.strip()]
