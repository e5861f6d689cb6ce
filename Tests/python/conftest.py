"""Fixtures shared by the store tests: a coordinator with a store and a worker, per module."""
import pytest

from codebook_client import Client
from store_cluster import StoreCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    c = StoreCluster(tmp_path_factory.mktemp(f"codebook-{request.module.__name__}"))
    failed = True
    try:
        c.start()
        failed = False
        yield c
    finally:
        c.stop()
        if failed:
            c.dump_logs()


@pytest.fixture
def client(cluster):
    cl = Client(cluster.clients_endpoint)
    try:
        yield cl
    finally:
        cl.close()
