"""A client of the Codebook cluster protocol written from Protocols/cluster.md alone.

The client is codebook_client.py (shared with the store tests). This starts a real
`codebook coordinator` and one `codebook worker`, talks to them with pyzmq + numpy only, and
checks that what the document says is what happens on the wire.

    CODEBOOK_BIN=.build/debug/codebook python -m pytest Tests/python/test_protocol_client.py
"""

import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from codebook_client import (ACCEPTED, BINARY, CANCEL, COORDINATOR_HEARTBEAT, ERROR_REPLY, FETCH_RESULT, FORBIDDEN, GOODBYE, Keys,
                             NO_SHARD, PROGRESS, PROGRESS_REPLY, READY, RESULT_REPLY, RESYNC, STATUS,
                             STATUS_REPLY, SUBMIT, TASK, TIMEOUT_MS, WELCOME, WORKER_HEARTBEAT, Client, Cluster,
                             Reply, connect, follow, header, message, run_cli, wait_for_worker)


@pytest.fixture(scope="module", params=["plain", "curve"])
def cluster(tmp_path_factory, request):
    workdir = tmp_path_factory.mktemp(f"codebook-protocol-{request.param}")
    if not Path(BINARY).exists():
        pytest.fail(f"codebook binary not found at {BINARY} (set CODEBOOK_BIN)")
    corpus = workdir / "corpus.npy"
    run_cli("generate", "--n", "5000", "--dim", "16", "--clusters", "4", "--seed", "1", "--out", str(corpus),
            timeout=60)
    c = Cluster(workdir, curve=request.param == "curve")
    c.corpus = corpus
    c.failed = False
    c.start()
    try:
        yield c
    finally:
        c.stop()
        if c.failed:
            c.dump_logs()


@pytest.fixture
def client(cluster, request):
    context = zmq.Context.instance()
    cl = cluster.client(context)
    failed_before = request.session.testsfailed
    try:
        yield cl
    finally:
        cl.close()
        if request.session.testsfailed > failed_before:
            cluster.failed = True


def load_corpus(path):
    return np.load(path).astype(np.float64)


def nearest(x, centres):
    d2 = (x * x).sum(1)[:, None] - 2 * x @ centres.T + (centres * centres).sum(1)[None, :]
    return np.argmin(d2, axis=1)


def diag_gmm_loglik(x, means, variances, priors):
    d = x.shape[1]
    ll = (np.log(priors)[None, :] - 0.5 * d * np.log(2 * np.pi) - 0.5 * np.log(variances).sum(1)[None, :]
          - 0.5 * (((x[:, None, :] - means[None, :, :]) ** 2) / variances[None, :, :]).sum(2))
    top = ll.max(1, keepdims=True)
    return float((top[:, 0] + np.log(np.exp(ll - top).sum(1))).sum())


# --- tests --------------------------------------------------------------------------------

def test_status_lists_the_worker(cluster, client):
    status = wait_for_worker(client)
    assert status.job == 0 and status.round == 0 and status.shard == NO_SHARD
    meta = status.metadata
    for key in ("workers", "passes", "droppedResults", "jobs"):
        assert key in meta
    worker = next(w for w in meta["workers"] if w["name"] == "pytest-worker")
    assert worker["threads"] == 2
    assert worker["secondsSinceHeard"] < 3.5
    for key in ("tasksInFlight", "shardsDone"):
        assert isinstance(worker[key], int)
    assert status.arrays == []


def test_status_over_req_socket(cluster, client):
    # A REQ socket adds the empty delimiter itself.
    req = cluster.connect_client(zmq.REQ)
    try:
        req.send_multipart(message(STATUS))
        assert req.poll(TIMEOUT_MS, zmq.POLLIN)
        reply = Reply(req.recv_multipart())
        assert reply.type == STATUS_REPLY
        assert isinstance(reply.metadata["workers"], list)
    finally:
        req.close()


def test_kmeans_job(cluster, client):
    wait_for_worker(client)
    k, d = 4, 16
    job_spec = {"kind": "kmeans", "corpus": str(cluster.corpus), "k": k, "iterations": 50, "seed": 7,
                "tolerance": 1e-6, "shardRows": 1000, "initialization": "kmeans++"}
    accepted = client.request(SUBMIT, job_spec)
    assert accepted.type == ACCEPTED, accepted
    job = accepted.metadata["job"]
    assert job >= 1 and accepted.job == job and accepted.arrays == []

    state, records, _ = follow(client, job)
    assert state == "succeeded", records
    assert records, "no iteration records"
    assert [r["iteration"] for r in records] == list(range(len(records)))
    x = load_corpus(cluster.corpus)
    assert x.shape == (5000, d)
    for r in records:
        assert r["phase"] == "kmeans" and r["rows"] == 5000
        assert r["valuePerRow"] == pytest.approx(r["total"] / r["rows"], rel=1e-9)
        assert r["smallest"] <= r["largest"]
    totals = [r["total"] for r in records]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(totals, totals[1:])), "the objective rose"

    result = client.request(FETCH_RESULT, job=job)
    assert result.type == RESULT_REPLY, result
    meta = result.metadata
    assert result.job == job and meta["job"] == job
    assert meta["kind"] == "kmeans" and meta["k"] == k and meta["dimension"] == d
    assert meta["iterations"] == len(records)
    assert isinstance(meta["converged"], bool) and meta["converged"]
    assert "varianceFloor" not in meta
    assert len(result.arrays) == 1 and len(result.arrays[0]) == k * d * 4
    centres = result.array(0, "<f4", k * d).reshape(k, d).astype(np.float64)

    # The returned centres are the update of the last iteration: the means of the rows
    # assigned to them. At convergence the assignment no longer changes, so assigning the
    # rows to the returned centres gives the same clusters.
    labels = nearest(x, centres)
    counts = np.bincount(labels, minlength=k)
    assert (counts > 0).all()
    assert int(counts.min()) == int(records[-1]["smallest"]) and int(counts.max()) == int(records[-1]["largest"])
    for c in range(k):
        mean = x[labels == c].mean(0)
        np.testing.assert_allclose(centres[c], mean, rtol=1e-4, atol=1e-4 * np.abs(mean).max())
    # The last record is the objective of the centres that made the last pass: at
    # convergence, these very centres (up to float32 rounding).
    objective = float(((x - centres[labels]) ** 2).sum())
    assert objective == pytest.approx(records[-1]["total"], rel=1e-4)

    # The job is listed by STATUS, and a PROGRESS past the end returns no records.
    status = client.request(STATUS)
    summary = next(j for j in status.metadata["jobs"] if j["job"] == job)
    assert summary["state"] == "succeeded" and summary["kind"] == "kmeans"
    assert summary["iterations"] == len(records)
    assert summary["lastValuePerRow"] == pytest.approx(records[-1]["valuePerRow"])
    assert summary["corpus"] == str(cluster.corpus)
    again = client.request(PROGRESS, {"since": len(records)}, job=job)
    assert again.type == PROGRESS_REPLY and again.metadata["iterations"] == []
    assert again.metadata["state"] == "succeeded" and "message" not in again.metadata


def test_gmm_job(cluster, client):
    wait_for_worker(client)
    k, d = 4, 16
    job_spec = {"kind": "gmm", "corpus": str(cluster.corpus), "k": k, "iterations": 30, "seed": 3,
                "tolerance": 1e-7, "shardRows": 700, "initialization": "kmeans", "kmeansIterations": 5}
    accepted = client.request(SUBMIT, job_spec)
    assert accepted.type == ACCEPTED, accepted
    job = accepted.metadata["job"]

    state, records, _ = follow(client, job)
    assert state == "succeeded", records
    phases = [r["phase"] for r in records]
    assert set(phases) <= {"kmeans", "em"} and "em" in phases
    kmeans = [r for r in records if r["phase"] == "kmeans"]
    em = [r for r in records if r["phase"] == "em"]
    assert phases == ["kmeans"] * len(kmeans) + ["em"] * len(em), "kmeans records come first"
    assert 1 <= len(kmeans) <= 5
    assert [r["iteration"] for r in em] == list(range(len(em)))

    result = client.request(FETCH_RESULT, job=job)
    assert result.type == RESULT_REPLY, result
    meta = result.metadata
    assert meta["kind"] == "gmm" and meta["k"] == k and meta["dimension"] == d
    assert meta["iterations"] == len(em)
    assert isinstance(meta["varianceFloor"], (int, float)) and meta["varianceFloor"] > 0
    assert len(result.arrays) == 3
    means = result.array(0, "<f4", k * d).reshape(k, d).astype(np.float64)
    variances = result.array(1, "<f4", k * d).reshape(k, d).astype(np.float64)
    priors = result.array(2, "<f4", k).astype(np.float64)
    assert (variances >= np.float32(meta["varianceFloor"]) * (1 - 1e-6)).all()
    assert (priors > 0).all() and priors.sum() == pytest.approx(1, abs=1e-5)
    assert em[-1]["smallest"] == pytest.approx(priors.min(), rel=1e-6)
    assert em[-1]["largest"] == pytest.approx(priors.max(), rel=1e-6)

    # The last EM record is the log-likelihood of the model before the last update; EM does
    # not lower it, and near convergence the returned model's is within the tolerance.
    x = load_corpus(cluster.corpus)
    ll = diag_gmm_loglik(x, means, variances, priors)
    last = em[-1]["total"]
    assert em[-1]["valuePerRow"] == pytest.approx(last / 5000, rel=1e-9)
    assert ll >= last - 1e-4 * abs(last)
    if meta["converged"]:
        assert ll == pytest.approx(last, rel=1e-4)


def test_error_reply_for_missing_corpus(cluster, client):
    job_spec = {"kind": "kmeans", "corpus": str(cluster.workdir / "no-such-corpus.npy"), "k": 4,
                "iterations": 5, "seed": 1, "tolerance": 0, "shardRows": 1000, "initialization": "kmeans++"}
    reply = client.request(SUBMIT, job_spec)
    assert reply.type == ERROR_REPLY, reply
    assert reply.job == 0
    assert isinstance(reply.metadata["message"], str) and reply.metadata["message"]
    assert reply.arrays == []


def test_error_replies_for_bad_requests(cluster, client):
    # Unknown job.
    for msg_type in (PROGRESS, FETCH_RESULT):
        reply = client.request(msg_type, {"since": 0} if msg_type == PROGRESS else {}, job=987654)
        assert reply.type == ERROR_REPLY and reply.job == 987654
        assert "987654" in reply.metadata["message"]
    # SUBMIT without required fields; with an unknown kind.
    assert client.request(SUBMIT, {"kind": "kmeans"}).type == ERROR_REPLY
    bad_kind = {"kind": "spectral", "corpus": str(cluster.corpus), "k": 4, "iterations": 5, "seed": 1,
                "tolerance": 0, "shardRows": 1000, "initialization": "random"}
    assert client.request(SUBMIT, bad_kind).type == ERROR_REPLY
    # "given" with centres of the wrong length.
    given = dict(bad_kind, kind="kmeans", initialization="given")
    reply = client.request(SUBMIT, given, arrays=[np.zeros(3 * 16, dtype="<f4").tobytes()])
    assert reply.type == ERROR_REPLY
    # A worker's message type on the clients socket.
    reply = client.request(READY, {"name": "x", "threads": 1})
    assert reply.type == ERROR_REPLY


def test_given_initialization_and_unknown_fields(cluster, client):
    wait_for_worker(client)
    x = load_corpus(cluster.corpus)
    k, d = 4, 16
    start = x[[0, 1, 2, 3]].astype("<f4")
    job_spec = {"kind": "kmeans", "corpus": str(cluster.corpus), "k": k, "iterations": 2, "seed": 1,
                "tolerance": 0, "shardRows": 2500, "initialization": "given",
                "aFieldFromTheFuture": {"readers": "ignore it"}}
    accepted = client.request(SUBMIT, job_spec, arrays=[start.tobytes()])
    assert accepted.type == ACCEPTED, accepted
    job = accepted.job
    state, records, _ = follow(client, job)
    assert state == "succeeded" and len(records) == 2
    # Record 0 is the objective of the given centres.
    labels = nearest(x, start.astype(np.float64))
    objective0 = float(((x - start.astype(np.float64)[labels]) ** 2).sum())
    assert records[0]["total"] == pytest.approx(objective0, rel=1e-5)
    # And with tolerance 0 both iterations ran.
    result = client.request(FETCH_RESULT, job=job)
    assert result.metadata["iterations"] == 2 and result.metadata["converged"] is False


def test_cancel_stops_a_running_job(cluster, client):
    wait_for_worker(client)
    # A job that would run for a very long time: a million iterations, tolerance 0.
    job_spec = {"kind": "kmeans", "corpus": str(cluster.corpus), "k": 4, "iterations": 1_000_000, "seed": 1,
                "tolerance": 0, "shardRows": 1000, "initialization": "kmeans++"}
    accepted = client.request(SUBMIT, job_spec)
    assert accepted.type == ACCEPTED, accepted
    job = accepted.job
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        progress = client.request(PROGRESS, {"since": 0}, job=job)
        assert progress.metadata["state"] == "running", progress
        if progress.metadata["iterations"]:
            break
        time.sleep(0.05)
    # While a pass runs, PROGRESS-REPLY carries it as `pass` (absent between passes).
    running = None
    while running is None and time.monotonic() < deadline:
        running = client.request(PROGRESS, {"since": 0}, job=job).metadata.get("pass")
    assert running is not None, "no PROGRESS-REPLY with a pass while the job ran"
    assert set(running) == {"pass", "kind", "shards", "shardsDone", "rows", "rowsDone", "seconds"}
    assert running["kind"] in ("kmeans-assignment", "sample")
    assert running["shards"] == -(-running["rows"] // 1000) and 0 <= running["shardsDone"] <= running["shards"]
    assert 0 <= running["rowsDone"] <= running["rows"] and running["seconds"] >= 0
    # CANCEL (42): header job = the job, metadata {}; the reply is the job's PROGRESS-REPLY.
    reply = client.request(CANCEL, job=job)
    assert reply.type == PROGRESS_REPLY, reply
    assert reply.job == job and reply.metadata["job"] == job
    assert reply.metadata["state"] == "cancelled" and "pass" not in reply.metadata
    assert reply.metadata["iterations"] == []
    assert reply.arrays == []
    state, records, _ = follow(client, job, deadline_s=10)
    assert state == "cancelled" and records
    # No more iterations after the cancel, and its passes leave STATUS.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = client.request(STATUS)
        if not any(p["job"] == job for p in status.metadata["passes"]):
            break
        time.sleep(0.05)
    assert not any(p["job"] == job for p in status.metadata["passes"]), status
    assert [j["state"] for j in status.metadata["jobs"] if j["job"] == job] == ["cancelled"]
    time.sleep(0.5)
    assert len(client.request(PROGRESS, {"since": 0}, job=job).metadata["iterations"]) == len(records)
    # A job that has ended cannot be cancelled; an unknown one is not found.
    again = client.request(CANCEL, job=job)
    assert again.type == ERROR_REPLY and again.job == job
    assert "already been cancelled" in again.metadata["message"] and "code" not in again.metadata
    unknown = client.request(CANCEL, job=987654)
    assert unknown.type == ERROR_REPLY and unknown.metadata.get("code") == "not-found"
    assert unknown.metadata["message"] == "no job 987654"
    fetched = client.request(FETCH_RESULT, job=job)
    assert fetched.type == ERROR_REPLY and fetched.metadata["message"] == f"job {job} was cancelled"
    # The worker is free for the next job.
    short = dict(job_spec, iterations=2)
    state, records, _ = follow(client, client.request(SUBMIT, short).job)
    assert state == "succeeded" and len(records) == 2


def test_status_pages_finished_jobs(cluster, client):
    ended = []
    for _ in range(3):
        job_spec = {"kind": "kmeans", "corpus": str(cluster.corpus), "k": 4, "iterations": 1_000_000, "seed": 1,
                    "tolerance": 0, "shardRows": 1000, "initialization": "random"}
        job = client.request(SUBMIT, job_spec).job
        assert client.request(CANCEL, job=job).metadata["state"] == "cancelled"
        ended.append(job)
    listed, before = [], None
    while True:
        paging = {"jobsLimit": 2} if before is None else {"jobsLimit": 2, "jobsBefore": before}
        status = client.request(STATUS, paging)
        assert status.type == STATUS_REPLY
        finished = [j for j in status.metadata["jobs"] if j["state"] != "running"]
        assert len(finished) <= 2
        ids = [j["job"] for j in finished]
        assert ids == sorted(ids, reverse=True), "finished jobs come newest first"
        listed += ids
        before = status.metadata.get("jobsBefore")
        if before is None:
            break
        assert before == ids[-1]
    assert listed[:3] == ended[::-1]
    assert listed == sorted(set(listed), reverse=True)


def test_malformed_messages_do_not_stop_the_coordinator(cluster, client):
    # Envelope intact, message malformed: an ERROR-REPLY.
    malformed = [
        [b"garbage"],  # a single frame
        [b"garbage-header", b"{}"],  # header of the wrong size
        [header(STATUS, magic=b"XXXX"), b"{}"],  # wrong magic
        [header(STATUS, version=2), b"{}"],  # another version
        [header(STATUS)[:6] + struct.pack("<H", 999) + header(STATUS)[8:], b"{}"],  # unknown type
    ]
    for frames in malformed:
        reply = client.raw(frames)
        assert reply.type == ERROR_REPLY, (frames, reply)
        assert reply.job == 0 and reply.metadata["message"]

    # No envelope (a DEALER without the delimiter): dropped, no answer.
    bare = cluster.connect_client()
    bare.send_multipart(message(STATUS))
    assert not bare.poll(1000, zmq.POLLIN), "a request without an envelope was answered"
    bare.close()

    # Garbage on the workers socket.
    rogue = cluster.connect_worker()
    rogue.send_multipart([b"\x00" * 7])
    rogue.send_multipart([header(WORKER_HEARTBEAT, version=9), b"{}"])
    time.sleep(0.3)
    rogue.close()

    # The coordinator still answers, and the real worker is still there.
    assert cluster.alive("coordinator") and cluster.alive("worker")
    status = wait_for_worker(client)
    assert status.type == STATUS_REPLY


def test_worker_handshake(cluster, client):
    """A minimal worker: READY → WELCOME, heartbeats, RESYNC for a stranger, GOODBYE."""
    fake = cluster.connect_worker()
    stranger = cluster.connect_worker()
    try:
        # A heartbeat from an identity that never said READY: RESYNC.
        stranger.send_multipart(message(WORKER_HEARTBEAT))
        assert stranger.poll(TIMEOUT_MS, zmq.POLLIN)
        resync = Reply(stranger.recv_multipart())
        assert resync.type == RESYNC

        fake.send_multipart(message(READY, {"name": "pytest-fake", "threads": 1, "pid": os.getpid()}))
        assert fake.poll(TIMEOUT_MS, zmq.POLLIN)
        welcome = Reply(fake.recv_multipart())
        assert welcome.type == WELCOME
        assert welcome.metadata == {"intervalMilliseconds": 1000, "liveness": 3}
        assert any(w["name"] == "pytest-fake" for w in client.request(STATUS).metadata["workers"])

        # Silent on our side for ~1.5 s: the coordinator heartbeats us (no jobs are running,
        # so nothing else can arrive; a TASK would be acceptable too).
        deadline = time.monotonic() + 3
        heard = None
        while time.monotonic() < deadline and heard is None:
            if fake.poll(100, zmq.POLLIN):
                heard = Reply(fake.recv_multipart())
        assert heard is not None and heard.type in (COORDINATOR_HEARTBEAT, TASK)
        fake.send_multipart(message(WORKER_HEARTBEAT))

        fake.send_multipart(message(GOODBYE))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            names = [w["name"] for w in client.request(STATUS).metadata["workers"]]
            if "pytest-fake" not in names:
                break
            time.sleep(0.05)
        assert "pytest-fake" not in names
        assert "pytest-worker" in names
    finally:
        fake.close()
        stranger.close()


def test_curve_keys_and_roles(cluster, client):
    """Section 1.1: only listed keys are answered; a read key reads, and what would change
    something gets ERROR-REPLY `forbidden` and changes nothing."""
    if not cluster.curve:
        pytest.skip("this cluster runs without keys")
    wait_for_worker(client)
    public, secret = zmq.curve_keypair()
    unlisted = connect(cluster.clients_endpoint, keys=Keys(public, secret, cluster.client_keys.server))
    keyless = connect(cluster.clients_endpoint)
    wrong_server = connect(cluster.clients_endpoint, keys=Keys(cluster.client_keys.public, cluster.client_keys.secret,
                                                               cluster.worker_keys.public))
    try:
        for sock in (unlisted, keyless, wrong_server):
            sock.send_multipart([b""] + message(STATUS))
        time.sleep(2)
        assert not any(sock.poll(0, zmq.POLLIN) for sock in (unlisted, keyless, wrong_server)), "a refused client was answered"
    finally:
        for sock in (unlisted, keyless, wrong_server):
            sock.close()

    reader = cluster.client(keys=cluster.reader_keys)
    try:
        jobs = client.request(STATUS).metadata["jobs"]
        assert reader.request(STATUS).type == STATUS_REPLY
        job_spec = {"kind": "kmeans", "corpus": str(cluster.corpus), "k": 4, "iterations": 2, "seed": 7,
                    "tolerance": 0, "shardRows": 1000}
        refused = reader.request(SUBMIT, job_spec)
        assert refused.type == ERROR_REPLY and refused.metadata["code"] == FORBIDDEN, refused
        assert "read role" in refused.metadata["message"]
        assert client.request(STATUS).metadata["jobs"] == jobs
    finally:
        reader.close()
