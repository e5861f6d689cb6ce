#!/usr/bin/env python3
"""Real SIFT descriptors for codebook-bench: dense SIFT (VLFeat's vl_dsift) over photographs.

    extract_sift.py --images DIR --out real-sift.npy [--rows 1000000]

DIR holds photographs (scikit-image's wheel ships some: `pip download --no-deps scikit-image`,
then unzip skimage/data/*.png and *.jpg: astronaut, camera, chelsea, coffee, motorcycle_left,
motorcycle_right, rocket, hubble_deep_field, retina, grass, gravel, brick, coins, moon).
Drawings and tiny test images (chessboard, phantom, text, logo, ...) are skipped by name.

Each image is decoded to grey levels in [0, 1] (Pillow), and so are its copies rotated by
90° and scaled by 0.75 and 0.5. On each, vl_dsift runs at bin sizes 4, 6, 8 and 10 (step 4)
after a Gaussian smoothing of σ = bin size / 6, as VLFeat's vl_phow does; descriptors of
flat patches (norm below 0.005, vl_phow's contrast threshold) are dropped. Values are
scaled as SIFT stores them: round(min(512·v, 255)), saved as float32 rows of 128.
Rows come out image by image, patch by patch, so consecutive rows belong to one photograph
(the bench cuts them into images of --image-rows rows); at most --rows are written,
taken evenly from every image's list.

Needs numpy, Pillow and libvl (Debian's libvlfeat-dev), loaded with ctypes.
"""
import argparse
import ctypes
import ctypes.util
import os
import sys

import numpy as np
from PIL import Image, ImageFilter

SKIPPED = {"chessboard_GRAY", "chessboard_RGB", "phantom", "text", "logo", "horse", "page", "cell",
           "microaneurysms", "clock_motion", "color", "ihc", "no_time_for_that_tiny", "multipage",
           "multipage_rgb"}


class Geometry(ctypes.Structure):
    _fields_ = [("numBinT", ctypes.c_int), ("numBinX", ctypes.c_int), ("numBinY", ctypes.c_int),
                ("binSizeX", ctypes.c_int), ("binSizeY", ctypes.c_int)]


class Keypoint(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_double), ("s", ctypes.c_double),
                ("norm", ctypes.c_double)]


class DsiftFilter(ctypes.Structure):
    """VlDsiftFilter of VLFeat 0.9.21 (vl/dsift.h); its accessors are inline, so not in libvl."""
    _fields_ = [("imWidth", ctypes.c_int), ("imHeight", ctypes.c_int),
                ("stepX", ctypes.c_int), ("stepY", ctypes.c_int),
                ("boundMinX", ctypes.c_int), ("boundMinY", ctypes.c_int),
                ("boundMaxX", ctypes.c_int), ("boundMaxY", ctypes.c_int),
                ("geom", Geometry), ("useFlatWindow", ctypes.c_int), ("windowSize", ctypes.c_double),
                ("numFrames", ctypes.c_int), ("descrSize", ctypes.c_int),
                ("frames", ctypes.POINTER(Keypoint)), ("descrs", ctypes.POINTER(ctypes.c_float))]


def load_vlfeat():
    path = ctypes.util.find_library("vl") or "libvl.so"
    vl = ctypes.CDLL(path)
    vl.vl_dsift_new_basic.restype = ctypes.POINTER(DsiftFilter)
    vl.vl_dsift_new_basic.argtypes = [ctypes.c_int] * 4
    vl.vl_dsift_process.argtypes = [ctypes.POINTER(DsiftFilter), ctypes.POINTER(ctypes.c_float)]
    vl.vl_dsift_delete.argtypes = [ctypes.POINTER(DsiftFilter)]
    return vl


def dense_sift(vl, grey, bin_size, step):
    """Descriptors (n × 128, SIFT's 0–255 scale) of a float32 image in [0, 1]."""
    height, width = grey.shape
    if min(height, width) < 4 * bin_size + 2:
        return np.zeros((0, 128), np.float32)
    image = np.ascontiguousarray(grey, dtype=np.float32)
    dsift = vl.vl_dsift_new_basic(width, height, step, bin_size)
    try:
        vl.vl_dsift_process(dsift, image.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        f = dsift.contents
        n, size = f.numFrames, f.descrSize
        descriptors = np.ctypeslib.as_array(f.descrs, shape=(n * size,)).reshape(n, size).copy()
        norms = np.array([f.frames[i].norm for i in range(n)])
    finally:
        vl.vl_dsift_delete(dsift)
    descriptors = descriptors[norms >= 0.005]
    return np.round(np.minimum(512 * descriptors, 255)).astype(np.float32)


def variants(image):
    """The image, rotated by 90°, and scaled by 0.75 and 0.5 (grey, float32 in [0, 1])."""
    grey = image.convert("L")
    width, height = grey.size
    copies = [grey, grey.transpose(Image.Transpose.ROTATE_90)]
    for scale in (0.75, 0.5):
        copies.append(grey.resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                  Image.Resampling.BICUBIC))
    return copies


def extract(vl, path):
    image = Image.open(path)
    parts = []
    for copy in variants(image):
        for bin_size in (4, 6, 8, 10):
            smoothed = copy.filter(ImageFilter.GaussianBlur(bin_size / 6))
            grey = np.asarray(smoothed, dtype=np.float32) / 255
            parts.append(dense_sift(vl, grey, bin_size, step=4))
    return np.concatenate(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", required=True, help="directory of photographs (.png, .jpg)")
    parser.add_argument("--out", required=True, help="output .npy (float32, rows × 128)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="at most this many rows")
    args = parser.parse_args()
    vl = load_vlfeat()
    names = sorted(n for n in os.listdir(args.images)
                   if n.lower().endswith((".png", ".jpg", ".jpeg")) and os.path.splitext(n)[0] not in SKIPPED)
    if not names:
        sys.exit(f"no photographs in {args.images}")
    per_image = []
    for name in names:
        descriptors = extract(vl, os.path.join(args.images, name))
        print(f"{name}: {len(descriptors)} descriptors", file=sys.stderr)
        per_image.append(descriptors)
    total = sum(len(d) for d in per_image)
    keep = min(1.0, args.rows / total)
    # Every image keeps the same share of its rows, evenly spaced, in order.
    rows = [d[np.linspace(0, len(d) - 1, int(len(d) * keep)).astype(int)] if keep < 1 else d for d in per_image]
    out = np.concatenate(rows)[: args.rows]
    np.save(args.out, out)
    print(f"{args.out}: {out.shape[0]} × {out.shape[1]} from {len(names)} photographs ({total} extracted)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
