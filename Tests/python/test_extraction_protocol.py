"""SUBMIT-EXTRACTION (Protocols/cluster.md), written from the document, against a real
coordinator and worker: the files the coordinator writes are byte for byte those of a local
`codebook extract` with the same options; an unreadable image is skipped and listed in
PROGRESS-REPLY `skipped`; bad requests get ERROR-REPLYs.

    CODEBOOK_BIN=.build/debug/codebook python3 -m pytest Tests/python/test_extraction_protocol.py
"""

import struct
import zlib

import numpy as np
import pytest

from codebook_client import ACCEPTED, ERROR_REPLY, FETCH_RESULT, Cluster, follow, run_cli

SUBMIT_EXTRACTION = 44


def png(pixels):
    """A grey 8-bit PNG of `pixels` (height × width, uint8), written by hand."""
    height, width = pixels.shape

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def picture(width, height, seed):
    """Rectangles of random grey levels on a gradient: corners for SIFT to find."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = ((x + y) * 100 // (width + height)).astype(np.uint8)
    for _ in range(25):
        x0, y0 = rng.integers(0, width - 8), rng.integers(0, height - 8)
        pixels[y0:y0 + rng.integers(8, 40), x0:x0 + rng.integers(8, 40)] = rng.integers(0, 256)
    return pixels


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A coordinator and a worker, and a folder of images (conftest.py's `client` talks to them)."""
    c = Cluster(tmp_path_factory.mktemp("codebook-extraction"), worker_name="extract-worker")
    images = c.workdir / "images"
    images.mkdir()
    for i, (w, h) in enumerate([(160, 120), (120, 160), (200, 150), (96, 128)]):
        (images / f"photo-{i}.png").write_bytes(png(picture(w, h, i)))
    (images / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    c.images = images
    with c.running(wait_for_worker=True):
        yield c


def image_list(cluster):
    """A directory's images as `codebook extract --images` takes them: sorted by key in byte order."""
    files = sorted(cluster.images.iterdir(), key=lambda p: p.stem.encode("utf-8"))
    return [{"key": p.stem, "path": str(p.resolve())} for p in files]


def job(cluster, name, extraction, **changes):
    metadata = {"images": image_list(cluster), "extraction": extraction,
                "descriptors": str(cluster.workdir / f"{name}.{changes.pop('format', 'npy')}"),
                "index": str(cluster.workdir / f"{name}.tsv"), "replace": False, "strict": False, "imagesPerShard": 2}
    metadata.update(changes)
    return metadata


def local_run(cluster, name, options, fmt):
    out, index = cluster.workdir / f"{name}.{fmt}", cluster.workdir / f"{name}.tsv"
    run_cli("extract", "--images", str(cluster.images), "--out", str(out), "--index", str(index), *options)
    return out.read_bytes(), index.read_bytes()


@pytest.mark.parametrize("extraction, options, fmt", [
    ({"method": "sift"}, [], "npy"),
    ({"method": "dsift", "step": 6, "binSize": 4, "maxSide": 128, "rootSIFT": True},
     ["--method", "dsift", "--step", "6", "--bin-size", "4", "--max-side", "128", "--root-sift"], "fvecs"),
])
def test_the_coordinators_files_equal_a_local_run(cluster, client, extraction, options, fmt):
    name = f"cluster-{extraction['method']}"
    submitted = job(cluster, name, extraction, format=fmt)
    reply = client.request(SUBMIT_EXTRACTION, submitted)
    assert reply.type == ACCEPTED, reply
    state, records, last = follow(client, reply.metadata["job"])
    assert state == "succeeded", last
    assert records == []
    progress = last.metadata
    assert progress["imagesDone"] == progress["imagesTotal"] == 5
    bad = str((cluster.images / "bad.png").resolve())
    assert [(s["key"], s["path"]) for s in progress["skipped"]] == [("bad", bad)]
    assert "bad.png" in progress["skipped"][0]["message"]

    descriptors = (cluster.workdir / f"{name}.{fmt}").read_bytes()
    index = (cluster.workdir / f"{name}.tsv").read_bytes()
    assert (descriptors, index) == local_run(cluster, f"local-{extraction['method']}", options, fmt)

    # The index, as SUBMIT-EXTRACTION `index` says: key, first row, row count, in image order.
    lines = [line.split("\t") for line in index.decode("utf-8").splitlines()]
    assert [key for key, _, _ in lines] == [f"photo-{i}" for i in range(4)]
    first = 0
    for _, row, count in lines:
        assert int(row) == first
        first += int(count)
    assert first == progress["descriptors"] > 0
    if fmt == "npy":
        values = np.load(cluster.workdir / f"{name}.npy")
        assert values.shape == (first, 128) and values.dtype == np.float32
        assert values.min() >= 0 and values.max() <= 255

    # No model to fetch: the files are the result.
    fetched = client.request(FETCH_RESULT, job=reply.metadata["job"])
    assert fetched.type == ERROR_REPLY and "extraction job" in fetched.metadata["message"]


def test_strict_fails_naming_the_image(cluster, client):
    reply = client.request(SUBMIT_EXTRACTION, job(cluster, "strict", {"method": "sift", "maxSide": 64}, strict=True))
    assert reply.type == ACCEPTED, reply
    state, _, last = follow(client, reply.metadata["job"])
    assert state == "failed" and "bad.png (key bad) cannot be read" in last.metadata["message"], last
    assert not (cluster.workdir / "strict.npy").exists() and not (cluster.workdir / "strict.tsv").exists()


def test_bad_requests_get_error_replies(cluster, client):
    cases = [
        ({"descriptors": "relative.npy"}, "is not an absolute path", None),
        ({"extraction": {"method": "dsift", "step": 0}}, "step 0", None),
        ({"descriptors": str(cluster.workdir / "x.bvecs")}, ".bvecs", None),
        ({"imagesPerShard": -1}, "images per shard", None),
    ]
    existing = cluster.workdir / "existing.tsv"
    existing.write_text("keep")
    cases.append(({"index": str(existing)}, "exists", "exists"))
    for change, words, code in cases:
        metadata = job(cluster, "refused", {"method": "sift"})
        metadata.update(change)
        reply = client.request(SUBMIT_EXTRACTION, metadata)
        assert reply.type == ERROR_REPLY, (change, reply)
        assert words in reply.metadata["message"], (change, reply.metadata)
        assert reply.metadata.get("code") == code, (change, reply.metadata)
    assert existing.read_text() == "keep"


def test_the_command_line_through_the_coordinator(cluster):
    out, index = cluster.workdir / "cli.npy", cluster.workdir / "cli.tsv"
    args = ["extract", "--images", str(cluster.images), "--max-side", "100", "--out", str(out), "--index", str(index),
            "--coordinator", cluster.clients_endpoint]
    done = run_cli(*args)
    assert b"warning: skipped" in done.stderr and b"bad.png" in done.stderr
    assert b"skipped 1 of 5 images" in done.stdout
    expected = local_run(cluster, "cli-local", ["--max-side", "100"], "npy")
    assert (out.read_bytes(), index.read_bytes()) == expected
    # A second run does not overwrite the files without --replace.
    again = run_cli(*args, check=False)
    assert again.returncode != 0 and b"exists" in again.stderr
    assert run_cli(*args, "--replace").returncode == 0
