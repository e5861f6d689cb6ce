"""A client of the Codebook cluster protocol written from Protocols/cluster.md alone, and
the processes it talks to: a `codebook coordinator` and one `codebook worker`, with pyzmq +
numpy only. Shared by test_protocol_client.py and the store tests (store_cluster.py)."""

import contextlib
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

# --- the protocol, from Protocols/cluster.md ---------------------------------------------

MAGIC = b"CDBK"
VERSION = 1
NO_SHARD = 0xFFFFFFFF
HEADER = struct.Struct("<4sHHQII")  # magic, version, type, job, round, shard: 24 bytes
assert HEADER.size == 24

READY, WORKER_HEARTBEAT, RESULT, FAILURE, GOODBYE = 1, 2, 3, 4, 5
WELCOME, COORDINATOR_HEARTBEAT, TASK, RESYNC = 16, 17, 18, 19
SUBMIT, PROGRESS, FETCH_RESULT, STATUS = 32, 33, 34, 35
GET, LIST, DESCRIBE, CATALOG, SUBMIT_ENCODING, IMPORT, CANCEL, SEARCH = 36, 37, 38, 39, 40, 41, 42, 43
ACCEPTED, PROGRESS_REPLY, RESULT_REPLY, STATUS_REPLY = 48, 49, 50, 51
GET_REPLY, LIST_REPLY, DESCRIBE_REPLY, CATALOG_REPLY, SEARCH_REPLY, ERROR_REPLY = 52, 53, 54, 55, 56, 63
FORBIDDEN = "forbidden"  # ERROR-REPLY code: the key's role is read, or a path is outside the corpus roots

TIMEOUT_MS = 10_000  # per request
JOB_DEADLINE_S = 120  # per job
CLI_TIMEOUT_S = 120  # per command-line run


def header(msg_type, job=0, round_=0, shard=NO_SHARD, version=VERSION, magic=MAGIC):
    return HEADER.pack(magic, version, msg_type, job, round_, shard)


def parse_header(frame):
    assert len(frame) == 24, f"header frame of {len(frame)} bytes"
    magic, version, msg_type, job, round_, shard = HEADER.unpack(frame)
    assert magic == MAGIC and version == VERSION
    return msg_type, job, round_, shard


def message(msg_type, metadata=None, arrays=(), job=0):
    return [header(msg_type, job=job), json.dumps(metadata or {}).encode("utf-8")] + [
        bytes(a) for a in arrays
    ]


class Reply:
    def __init__(self, frames):
        self.frames = frames
        self.type, self.job, self.round, self.shard = parse_header(frames[0])
        self.metadata = json.loads(frames[1].decode("utf-8"))
        self.arrays = frames[2:]

    def array(self, index, dtype, count):
        frame = self.arrays[index]
        values = np.frombuffer(frame, dtype=dtype)
        assert values.size == count, f"array {index}: {values.size} values, expected {count}"
        return values

    def f32(self, index, count):
        return self.array(index, "<f4", count)

    def __repr__(self):
        return f"Reply(type={self.type}, job={self.job}, metadata={self.metadata}, arrays={len(self.arrays)})"


# --- CURVE (section 1.1) -------------------------------------------------------------------

class Keys:
    """A CURVE client's keys: its own pair (z85 bytes) and the coordinator's public key."""

    def __init__(self, public, secret, server):
        self.public, self.secret, self.server = public, secret, server

    def apply(self, sock):
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret
        sock.curve_serverkey = self.server


def write_key_pair(name):
    """A new pair as NAME.secret (mode 0600: "public-key KEY" and "secret-key KEY" lines) and
    NAME.public (the public key alone); returns (public, secret) as z85 bytes."""
    public, secret = zmq.curve_keypair()
    fd = os.open(f"{name}.secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# written by the Python tests\npublic-key {public.decode()}\nsecret-key {secret.decode()}\n")
    Path(f"{name}.public").write_text(public.decode() + "\n")
    return public, secret


def read_key_file(path, label=None):
    """The key on the line "label KEY" of a secret file, or the one key of a public file."""
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if not words or (words[0].startswith("#") and len(words[0]) != 40):
            continue
        if label is None:
            return words[0].encode()
        if words[0] == label:
            return words[1].encode()
    raise ValueError(f"{path}: no {label or 'key'}")


def connect(endpoint, kind=zmq.DEALER, context=None, keys=None):
    """A bare socket (no LINGER) connected to `endpoint`, a CURVE client with `keys`: frames
    go out exactly as given."""
    sock = (context or zmq.Context.instance()).socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if keys is not None:
        keys.apply(sock)
    sock.connect(endpoint)
    return sock


class Client:
    """A DEALER client that sends the empty delimiter itself (Lazy Pirate on timeout)."""

    def __init__(self, endpoint, context=None, keys=None):
        self.context, self.endpoint, self.keys = context or zmq.Context.instance(), endpoint, keys
        self._connect()

    def _connect(self):
        self.socket = connect(self.endpoint, zmq.DEALER, self.context, self.keys)

    def raw(self, frames, expect_reply=True):
        self.socket.send_multipart([b""] + list(frames))
        if not expect_reply:
            return None
        if not self.socket.poll(TIMEOUT_MS, zmq.POLLIN):
            self.socket.close()
            self._connect()
            raise TimeoutError(f"no reply from {self.endpoint} within {TIMEOUT_MS} ms")
        frames = self.socket.recv_multipart()
        assert frames[0] == b"", "reply without the empty delimiter"
        return Reply(frames[1:])

    def request(self, msg_type, metadata=None, arrays=(), job=0):
        return self.raw(message(msg_type, metadata, arrays, job))

    def close(self):
        self.socket.close()


def wait_for_worker(client, name="pytest-worker", deadline_s=20):
    deadline = time.monotonic() + deadline_s
    status = None
    while time.monotonic() < deadline:
        status = client.request(STATUS)
        assert status.type == STATUS_REPLY
        if any(w["name"] == name for w in status.metadata["workers"]):
            return status
        time.sleep(0.1)
    raise AssertionError(f"worker {name} never registered; last status {status}")


def follow(client, job, deadline_s=JOB_DEADLINE_S):
    """Polls PROGRESS with `since` until the job ends; returns (state, records, last reply)."""
    records = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        reply = client.request(PROGRESS, {"since": len(records)}, job=job)
        assert reply.type == PROGRESS_REPLY, reply
        assert reply.job == job and reply.metadata["job"] == job
        records += reply.metadata["iterations"]
        state = reply.metadata["state"]
        assert state in ("running", "succeeded", "failed", "cancelled")
        if state != "running":
            return state, records, reply
        time.sleep(0.05)
    raise AssertionError(f"job {job} still running after {deadline_s} s; {len(records)} record(s)")


# --- processes ----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
BINARY = os.environ.get("CODEBOOK_BIN", str(ROOT / ".build" / "debug" / "codebook"))


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, timeout=CLI_TIMEOUT_S, check=True, env=None):
    done = subprocess.run([BINARY, *args], capture_output=True, timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, f"codebook {' '.join(args)}: {done.stderr.decode(errors='replace')}"
    return done


class Cluster:
    """A coordinator with its own store in `workdir` and one worker of two threads, each
    process logging to `workdir/<name>.log`. With `curve`, the coordinator requires CURVE:
    its key from `codebook keys generate`, the others written here; clients get a write key
    (`client_keys`, and the CODEBOOK_* variables in `cli_env` for the command line) or a
    read key (`reader_keys`)."""

    def __init__(self, workdir, worker_name="pytest-worker", curve=False):
        self.workdir = Path(workdir)
        self.store = self.workdir / "store"
        self.worker_name = worker_name
        self.processes = {}
        self.logs = {}
        self.workers_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.clients_endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.curve = curve
        self.coordinator_options, self.worker_options = [], []
        self.client_keys = self.worker_keys = self.reader_keys = None
        self.cli_env = None
        if curve:
            self._make_keys()

    def _make_keys(self):
        keys = self.workdir / "keys"
        keys.mkdir()
        run_cli("keys", "generate", "--out", str(keys / "coordinator"))
        server = read_key_file(keys / "coordinator.public")
        pairs = {name: write_key_pair(keys / name) for name in ("worker", "writer", "reader")}
        self.worker_keys, self.client_keys, self.reader_keys = (Keys(*pairs[name], server)
                                                                for name in ("worker", "writer", "reader"))
        (keys / "workers.txt").write_text(f"# the worker\n{pairs['worker'][0].decode()}\n")
        (keys / "clients.txt").write_text(f"{pairs['writer'][0].decode()} write\n{pairs['reader'][0].decode()} read\n")
        self.coordinator_options = ["--secret-key", str(keys / "coordinator.secret"),
                                    "--worker-keys", str(keys / "workers.txt"), "--client-keys", str(keys / "clients.txt")]
        self.worker_options = ["--secret-key", str(keys / "worker.secret"), "--coordinator-key", str(keys / "coordinator.public")]
        self.cli_env = dict(os.environ, CODEBOOK_SECRET_KEY=str(keys / "writer.secret"),
                            CODEBOOK_COORDINATOR_KEY=str(keys / "coordinator.public"))

    def client(self, context=None, keys=None):
        """A Client of the clients endpoint, with the write key if the cluster has keys."""
        return Client(self.clients_endpoint, context, keys or self.client_keys)

    def connect_client(self, kind=zmq.DEALER):
        return connect(self.clients_endpoint, kind, keys=self.client_keys)

    def connect_worker(self):
        return connect(self.workers_endpoint, keys=self.worker_keys)

    def spawn(self, name, *args):
        log = open(self.workdir / f"{name}.log", "wb")
        self.logs[name] = log
        self.processes[name] = subprocess.Popen([BINARY, *args], stdout=log, stderr=subprocess.STDOUT)

    def start(self):
        self.spawn("coordinator", "coordinator", "--workers-endpoint", self.workers_endpoint,
                   "--clients-endpoint", self.clients_endpoint,
                   # Its own store: the default (codebook.db in the working directory) would
                   # litter it and bring back jobs of earlier runs.
                   "--store", str(self.store), *self.coordinator_options)
        self.spawn("worker", "worker", "--connect", self.workers_endpoint, "--threads", "2",
                   "--name", self.worker_name, *self.worker_options)

    def wait_for_worker(self, deadline_s=20):
        client = self.client()
        try:
            return wait_for_worker(client, self.worker_name, deadline_s)
        finally:
            client.close()

    @contextlib.contextmanager
    def running(self, wait_for_worker=False):
        """Starts the processes and stops them after the block; if starting failed, their logs
        go to stderr."""
        failed = True
        try:
            self.start()
            if wait_for_worker:
                self.wait_for_worker()
            failed = False
            yield self
        finally:
            self.stop()
            if failed:
                self.dump_logs()

    def alive(self, name):
        return self.processes[name].poll() is None

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
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            sys.stderr.write(f"\n===== {name} log ({path}) =====\n{text[-20000:]}\n")
