#!/usr/bin/env python3
"""Baselines for codebook-bench: scikit-learn and faiss k-means, scikit-learn diagonal GMM.

Run by `codebook-bench` as a subprocess on the same .npy files it uses itself, with the
same thread count. Prints one JSON object on stdout; a missing package is reported as
{"skipped": "..."} for that library, never as a failure.

    baselines.py kmeans --data X.npy --init C.npy --iterations 5 --threads 2 --out-dir DIR
    baselines.py gmm --data X.npy --rows 200000 --means M.npy --variances V.npy
                     --priors P.npy --threads 2 --repeat 3

Timing rules (so that fixed costs are not charged to an iteration):
- sklearn KMeans: time per iteration = median time of its Lloyd kernel (lloyd_iter_chunked_dense,
  private) called as KMeans.fit calls it; if that is unavailable,
  (fit(max_iter=M) - fit(max_iter=1)) / (n_iter_ - 1). Final centres come from KMeans.fit.
- faiss Kmeans: time per iteration = train time / M (faiss has no extra pass).
- sklearn GaussianMixture: time per iteration = fit(max_iter=2) - fit(max_iter=1); fit also
  initialises responsibilities (one M-step worth of work) and runs a final E-step.
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np


def load_rows(path, rows=None):
    data = np.load(path, mmap_mode="r")
    if rows is not None:
        data = data[:rows]
    return np.ascontiguousarray(data, dtype=np.float32)


def sklearn_kmeans(x, init, iterations, threads, repeat, out_dir):
    try:
        from sklearn.cluster import KMeans
        from threadpoolctl import threadpool_limits
        import sklearn
    except ImportError as error:
        return {"skipped": f"scikit-learn or threadpoolctl not installed ({error})"}

    def fit(max_iter):
        model = KMeans(n_clusters=init.shape[0], init=init, n_init=1, max_iter=max_iter, tol=0,
                       algorithm="lloyd", copy_x=True)
        with threadpool_limits(limits=threads):
            started = time.perf_counter()
            model.fit(x)
            return time.perf_counter() - started, model

    _, last = fit(iterations)
    per_iteration = lloyd_kernel_seconds(x, init, iterations, threads, repeat)
    method = "median of its Lloyd kernel calls (lloyd_iter_chunked_dense, as KMeans.fit runs it)"
    if per_iteration is None:
        # fit stops early once labels stop changing (and then skips its final relabelling), so
        # the difference is only meaningful when both runs did every iteration.
        samples = []
        for _ in range(repeat):
            t1, _ = fit(1)
            tm, model = fit(iterations)
            samples.append((tm - t1) / max(model.n_iter_ - 1, 1))
        per_iteration = statistics.median(samples)
        method = f"(fit(max_iter={iterations}) - fit(max_iter=1)) / (n_iter_ - 1)"
    np.save(f"{out_dir}/sklearn-centres.npy", last.cluster_centers_.astype(np.float32))
    return {"version": sklearn.__version__, "seconds_per_iteration": per_iteration, "timing": method,
            "iterations_run": int(last.n_iter_), "inertia": float(last.inertia_),
            "centres": f"{out_dir}/sklearn-centres.npy"}


def lloyd_kernel_seconds(x, init, iterations, threads, repeat):
    """Median seconds of one call of scikit-learn's Lloyd iteration (assignment + centre update),
    called the way KMeans.fit calls it (BLAS single-threaded, OpenMP over chunks); None if
    this scikit-learn does not have that private function."""
    try:
        from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    n, k = x.shape[0], init.shape[0]
    weights = np.ones(n, dtype=x.dtype)
    times = []
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(repeat):
            centres = init.copy()
            centres_new = np.zeros_like(centres)
            weight_in_clusters = np.zeros(k, dtype=x.dtype)
            labels = np.full(n, -1, dtype=np.int32)
            shift = np.zeros(k, dtype=x.dtype)
            for _ in range(iterations):
                started = time.perf_counter()
                lloyd_iter_chunked_dense(x, weights, centres, centres_new, weight_in_clusters, labels, shift, threads)
                times.append(time.perf_counter() - started)
                centres, centres_new = centres_new, centres
    return statistics.median(times)


def faiss_kmeans(x, init, iterations, threads, repeat, out_dir):
    try:
        import faiss
    except ImportError as error:
        return {"skipped": f"faiss not installed ({error})"}
    faiss.omp_set_num_threads(threads)
    times, last = [], None
    for _ in range(repeat):
        model = faiss.Kmeans(x.shape[1], init.shape[0], niter=iterations, nredo=1, verbose=False,
                             max_points_per_centroid=x.shape[0], min_points_per_centroid=1, seed=1234)
        started = time.perf_counter()
        model.train(x, init_centroids=init)
        times.append((time.perf_counter() - started) / iterations)
        last = model
    np.save(f"{out_dir}/faiss-centres.npy", last.centroids.astype(np.float32))
    return {"version": faiss.__version__, "seconds_per_iteration": statistics.median(times),
            "iterations_run": iterations, "objective_last_iteration": float(last.obj[-1]),
            "centres": f"{out_dir}/faiss-centres.npy"}


def reference_log_likelihood(x, means, variances, priors):
    """Mean log p(x) in float64 (exact reference for the check)."""
    x = x.astype(np.float64)
    means, variances, priors = (a.astype(np.float64) for a in (means, variances, priors))
    precisions = 1.0 / variances
    d = x.shape[1]
    constant = (np.log(np.where(priors > 0, priors, 1e-300)) - 0.5 * d * np.log(2 * np.pi)
                - 0.5 * np.log(variances).sum(axis=1) - 0.5 * (means * means * precisions).sum(axis=1))
    total = 0.0
    for start in range(0, x.shape[0], 20000):
        block = x[start:start + 20000]
        log_density = (block @ (means * precisions).T) - 0.5 * ((block * block) @ precisions.T) + constant
        best = log_density.max(axis=1, keepdims=True)
        total += float((best[:, 0] + np.log(np.exp(log_density - best).sum(axis=1))).sum())
    return total / x.shape[0]


def sklearn_gmm(x, means, variances, priors, threads, repeat):
    try:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits
        import sklearn
    except ImportError as error:
        return {"skipped": f"scikit-learn or threadpoolctl not installed ({error})"}

    def fit(max_iter):
        model = GaussianMixture(n_components=means.shape[0], covariance_type="diag", max_iter=max_iter, n_init=1,
                                tol=0, init_params="random_from_data", weights_init=priors / priors.sum(),
                                means_init=means, precisions_init=1.0 / variances)
        with threadpool_limits(limits=threads):
            started = time.perf_counter()
            model.fit(x)
            return time.perf_counter() - started, model

    per_iteration, first_bound = [], None
    for _ in range(repeat):
        t1, model1 = fit(1)
        t2, _ = fit(2)
        per_iteration.append(t2 - t1)
        first_bound = float(model1.lower_bound_)
    return {"version": sklearn.__version__, "seconds_per_iteration": statistics.median(per_iteration),
            "rows": int(x.shape[0]), "lower_bound_after_1_iteration": first_bound,
            "reference_mean_log_likelihood": reference_log_likelihood(x, means, variances, priors)}


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    k = sub.add_parser("kmeans")
    k.add_argument("--data", required=True)
    k.add_argument("--init", required=True)
    k.add_argument("--iterations", type=int, default=5)
    k.add_argument("--threads", type=int, default=2)
    k.add_argument("--repeat", type=int, default=1)
    k.add_argument("--out-dir", required=True)
    k.add_argument("--rows", type=int, default=None)
    k.add_argument("--libraries", default="faiss,sklearn", help="comma-separated: faiss, sklearn")
    g = sub.add_parser("gmm")
    g.add_argument("--data", required=True)
    g.add_argument("--rows", type=int, default=None)
    g.add_argument("--means", required=True)
    g.add_argument("--variances", required=True)
    g.add_argument("--priors", required=True)
    g.add_argument("--threads", type=int, default=2)
    g.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    if args.command == "kmeans":
        x = load_rows(args.data, args.rows)
        init = np.ascontiguousarray(np.load(args.init), dtype=np.float32)
        libraries = args.libraries.split(",")
        result = {"rows": int(x.shape[0])}
        if "faiss" in libraries:
            result["faiss"] = faiss_kmeans(x, init, args.iterations, args.threads, args.repeat, args.out_dir)
        if "sklearn" in libraries:
            result["sklearn"] = sklearn_kmeans(x, init, args.iterations, args.threads, args.repeat, args.out_dir)
    else:
        x = load_rows(args.data, args.rows)
        means = np.load(args.means).astype(np.float64)
        variances = np.load(args.variances).astype(np.float64)
        priors = np.load(args.priors).astype(np.float64).reshape(-1)
        result = {"sklearn": sklearn_gmm(x, means, variances, priors, args.threads, args.repeat)}
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
