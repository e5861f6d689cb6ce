"""Shared by the store tests: the wire protocol (Protocols/cluster.md), the value envelope
(Protocols/storage.md), and a coordinator + worker with a store in a temporary directory,
a model trained and a set encoded through the command line."""

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("CODEBOOK_BIN", str(ROOT / ".build" / "debug" / "codebook"))
TIMEOUT_MS = 10_000
CLI_TIMEOUT_S = 120

# --- cluster.md ---------------------------------------------------------------------------

HEADER = struct.Struct("<4sHHQII")
NO_SHARD = 0xFFFFFFFF
SUBMIT, PROGRESS, FETCH_RESULT, STATUS = 32, 33, 34, 35
GET, LIST, DESCRIBE, CATALOG, SUBMIT_ENCODING, IMPORT = 36, 37, 38, 39, 40, 41
ACCEPTED, PROGRESS_REPLY, RESULT_REPLY, STATUS_REPLY = 48, 49, 50, 51
GET_REPLY, LIST_REPLY, DESCRIBE_REPLY, CATALOG_REPLY, ERROR_REPLY = 52, 53, 54, 55, 63


class Reply:
    def __init__(self, frames):
        magic, version, self.type, self.job, self.round, self.shard = HEADER.unpack(frames[0])
        assert magic == b"CDBK" and version == 1
        self.metadata = json.loads(frames[1].decode("utf-8"))
        self.arrays = frames[2:]

    def f32(self, index, count):
        values = np.frombuffer(self.arrays[index], dtype="<f4")
        assert values.size == count, f"array {index}: {values.size} values, expected {count}"
        return values

    def __repr__(self):
        return f"Reply(type={self.type}, job={self.job}, metadata={self.metadata}, arrays={len(self.arrays)})"


class Client:
    """DEALER client; sends the empty delimiter itself."""

    def __init__(self, endpoint):
        self.socket = zmq.Context.instance().socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def request(self, msg_type, metadata=None, arrays=(), job=0):
        frames = [b"", HEADER.pack(b"CDBK", 1, msg_type, job, 0, NO_SHARD),
                  json.dumps(metadata if metadata is not None else {}).encode("utf-8")]
        self.socket.send_multipart(frames + [bytes(a) for a in arrays])
        if not self.socket.poll(TIMEOUT_MS, zmq.POLLIN):
            raise TimeoutError("no reply within the timeout")
        reply = self.socket.recv_multipart()
        assert reply[0] == b""
        return Reply(reply[1:])

    def close(self):
        self.socket.close()


# --- storage.md ---------------------------------------------------------------------------

MAGIC, VERSION = b"CBKS", 1
MODEL, SET, VECTOR, JOB = 1, 2, 3, 4
ENVELOPE = struct.Struct("<4sHHII")


def decode_value(raw, expected_type=None):
    """(record type, metadata, float32 values) of one store value, per storage.md §3."""
    if len(raw) < ENVELOPE.size:
        raise ValueError(f"value of {len(raw)} bytes is shorter than the 16-byte header")
    magic, version, record_type, m, f = ENVELOPE.unpack_from(raw, 0)
    if magic != MAGIC:
        raise ValueError("not a Codebook value (no CBKS magic)")
    if version != VERSION:
        raise ValueError(f"value format version {version}; this reader reads {VERSION}")
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
    return ENVELOPE.pack(MAGIC, VERSION, record_type, len(md), len(vals) // 4) + md + vals


# --- processes ----------------------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, timeout=CLI_TIMEOUT_S, check=True):
    done = subprocess.run([BINARY, *args], capture_output=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"codebook {' '.join(args)}: {done.stderr.decode(errors='replace')}"
    return done


class StoreCluster:
    """A coordinator with a store and one worker; model M (k-means 4×8) and set S (VLAD of
    30 images of 100 rows), both made through the command line."""

    K, D, IMAGES, IMAGE_ROWS = 4, 8, 30, 100

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.store = self.workdir / "store"
        self.descriptors = self.workdir / "desc.npy"
        self.index = self.workdir / "index.tsv"
        self.workers_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.clients_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.processes, self.logs = {}, {}

    def spawn(self, name, *args):
        log = open(self.workdir / f"{name}.log", "wb")
        self.logs[name] = log
        self.processes[name] = subprocess.Popen([BINARY, *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self):
        if not Path(BINARY).exists():
            raise FileNotFoundError(f"codebook binary not found at {BINARY} (set CODEBOOK_BIN)")
        run_cli("generate", "--n", str(self.IMAGES * self.IMAGE_ROWS), "--dim", str(self.D), "--clusters", "4",
                "--seed", "1", "--out", str(self.descriptors), "--index", str(self.index),
                "--image-rows", str(self.IMAGE_ROWS))
        self.spawn("coordinator", "coordinator", "--workers-endpoint", self.workers_endpoint,
                   "--clients-endpoint", self.clients_endpoint, "--store", str(self.store))
        self.spawn("worker", "worker", "--connect", self.workers_endpoint, "--threads", "2", "--name", "store-worker")
        self.wait_for_worker()
        run_cli("train", "kmeans", "--corpus", str(self.descriptors), "--k", str(self.K), "--iterations", "10",
                "--seed", "3", "--name", "M", "--coordinator", self.clients_endpoint)
        run_cli("encode", "vlad", "--model", "M", "--set", "S", "--descriptors", str(self.descriptors),
                "--index", str(self.index), "--images-per-shard", "7", "--coordinator", self.clients_endpoint)
        self.image_keys = [line.split("\t")[0] for line in self.index.read_text().splitlines() if line.strip()]

    def wait_for_worker(self, deadline_s=20):
        client = Client(self.clients_endpoint)
        try:
            deadline = time.monotonic() + deadline_s
            while time.monotonic() < deadline:
                if any(w["name"] == "store-worker" for w in client.request(STATUS).metadata["workers"]):
                    return
                time.sleep(0.1)
            raise AssertionError("the worker never registered")
        finally:
            client.close()

    def stop(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self.logs.values():
            log.close()

    def dump_logs(self):
        for name in self.logs:
            path = self.workdir / f"{name}.log"
            sys.stderr.write(f"\n===== {name} log =====\n{path.read_text(errors='replace')[-20000:]}\n")


def follow(client, job, deadline_s=120):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        reply = client.request(PROGRESS, {"since": 0}, job=job)
        assert reply.type == PROGRESS_REPLY, reply
        if reply.metadata["state"] != "running":
            return reply
        time.sleep(0.05)
    raise AssertionError(f"job {job} still running after {deadline_s} s")
