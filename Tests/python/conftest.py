"""Fixtures shared by the store tests: a coordinator with a store and a worker, per module."""
import pytest

from store_cluster import StoreCluster


@pytest.fixture(scope="module", params=["plain", "curve"])
def cluster(tmp_path_factory, request):
    c = StoreCluster(tmp_path_factory.mktemp(f"codebook-{request.module.__name__}"), curve=request.param == "curve")
    with c.running():
        yield c


@pytest.fixture
def client(cluster):
    cl = cluster.client()
    try:
        yield cl
    finally:
        cl.close()
