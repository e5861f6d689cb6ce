"""Prometheus metrics (`--metrics-endpoint`) of a running coordinator and worker, scraped
during a training job and parsed with prometheus_client's text parser.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_metrics.py
"""

import signal
import subprocess
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from codebook_client import (BINARY, GET, LIST, Cluster, free_port, run_cli)

SCRAPE_TIMEOUT_S = 5
JOB_TIMEOUT_S = 120


def scrape(port):
    """The samples of one scrape: {(name, frozenset(labels)): value}, and the families' types."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_S) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, types


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def test_metrics_move_during_a_training_job(tmp_path):
    cluster = Cluster(tmp_path, worker_name="metrics-worker")
    coordinator_port, worker_port = free_port(), free_port()
    cluster.coordinator_options += ["--metrics-endpoint", f"127.0.0.1:{coordinator_port}"]
    cluster.worker_options += ["--metrics-endpoint", f"127.0.0.1:{worker_port}"]
    corpus = tmp_path / "corpus.fvecs"
    run_cli("generate", "--n", "120000", "--dim", "16", "--clusters", "16", "--seed", "2", "--out", str(corpus))
    rows, shard_rows, iterations = 120000, 2000, 12
    shards = rows // shard_rows
    failed = True
    try:
        cluster.start()
        cluster.wait_for_worker()
        before, types = scrape(coordinator_port)
        assert value(before, "codebook_workers_alive") == 1
        assert value(before, "codebook_tasks_dispatched_total") == 0
        assert types["codebook_tasks_dispatched"] == "counter"  # the parser names a counter family without _total
        assert types["codebook_request_duration_seconds"] == "histogram"

        train = subprocess.Popen([BINARY, "train", "kmeans", "--corpus", str(corpus), "--k", "64",
                                  "--iterations", str(iterations), "--tolerance", "0", "--shard-rows", str(shard_rows),
                                  "--init", "random", "--name", "metrics-model", "--json",
                                  "--coordinator", cluster.clients_endpoint],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # Scrape while the job runs until the counters have moved mid-job.
        during = None
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while train.poll() is None and time.monotonic() < deadline:
            samples, _ = scrape(coordinator_port)
            if value(samples, "codebook_jobs", state="running") == 1 and value(samples, "codebook_tasks_completed_total") > 0:
                during = samples
                break
            time.sleep(0.02)
        out, err = train.communicate(timeout=JOB_TIMEOUT_S)
        assert train.returncode == 0, err.decode(errors="replace")
        assert during is not None, "never scraped the coordinator while the job ran with shards done"
        assert 0 < value(during, "codebook_tasks_dispatched_total")
        assert value(during, "codebook_tasks_completed_total") < shards * (iterations + 1)

        after, types = scrape(coordinator_port)
        assert types["codebook_pass_duration_seconds"] == "histogram"  # made by the first pass
        completed = value(after, "codebook_tasks_completed_total")
        passes = sum(v for (name, _), v in after.items() if name == "codebook_pass_duration_seconds_count")
        assert passes > iterations  # one per iteration, and the seeding sample
        assert completed == shards * passes
        assert value(after, "codebook_tasks_dispatched_total") >= completed
        assert value(after, "codebook_tasks_completed_total") > value(during, "codebook_tasks_completed_total")
        assert value(after, "codebook_iterations_total") == iterations
        assert value(after, "codebook_jobs", state="succeeded") == 1
        assert value(after, "codebook_jobs", state="running") == 0
        assert value(after, "codebook_result_bytes_total") > completed * 64 * 16 * 4  # the sums alone
        assert value(after, "codebook_pass_duration_seconds_count", kind="kmeans-assignment") == iterations
        assert value(after, "codebook_results_dropped_total") == 0
        assert value(after, "codebook_results_rejected_total") == 0
        assert value(after, "codebook_tasks_failed_total") == 0
        assert value(after, "codebook_store_size_bytes") > 0
        assert value(after, "codebook_malformed_messages_total", endpoint="workers") == 0

        worker, _ = scrape(worker_port)
        assert value(worker, "codebook_worker_shards_computed_total") >= completed
        assert value(worker, "codebook_worker_rows_total") >= rows * passes
        assert value(worker, "codebook_worker_rows_per_second") > 0
        assert value(worker, "codebook_worker_shard_duration_seconds_count") >= completed

        # GET and LIST are counted and timed; a malformed client message is counted.
        client = cluster.client()
        try:
            client.request(LIST, {"prefix": "nothing/", "limit": 5})
            client.request(LIST, {"prefix": "", "limit": 5})
            client.request(GET, {"keys": ["S/none"]})
            client.raw([b"not a header"])
        finally:
            client.close()
        requests, _ = scrape(coordinator_port)
        assert value(requests, "codebook_requests_total", type="list") == 2
        assert value(requests, "codebook_requests_total", type="get") == 1
        assert value(requests, "codebook_request_duration_seconds_count", type="list") == 2
        assert value(requests, "codebook_request_duration_seconds_bucket", type="get", le="+Inf") == 1
        assert value(requests, "codebook_malformed_messages_total", endpoint="clients") == 1

        # status --watch off a terminal: a snapshot a second, separated by a blank line; SIGINT ends it with 0.
        watch = subprocess.Popen([BINARY, "status", "--watch", "--coordinator", cluster.clients_endpoint],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.5)
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
        assert watch.returncode == 0, err.decode(errors="replace")
        snapshots = out.decode().split("\n\n")
        assert len(snapshots) >= 2, out
        assert all(snapshot.startswith("workers: 1\n  metrics-worker") for snapshot in snapshots), out

        # Only /metrics is served.
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{coordinator_port}/other", timeout=SCRAPE_TIMEOUT_S)
            raise AssertionError("/other answered")
        except urllib.error.HTTPError as error:
            assert error.code == 404
        failed = False
    finally:
        cluster.stop()
        if failed:
            cluster.dump_logs()
