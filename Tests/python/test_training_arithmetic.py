"""Protocols/training.md, checked bit for bit: k-means and EM written from that document
alone (plain Python floats, which are IEEE binary64, and C's fma() through ctypes), run
for two iterations from given initial models that leave a cluster empty and a component
with prior 0 (so the re-seeding rules run too), against `codebook train` (an embedded
cluster: the Swift workers and coordinator)."""

import ctypes
import ctypes.util
import json
import math

import numpy as np

from codebook_client import run_cli

MASK = (1 << 64) - 1
_libm = ctypes.CDLL(ctypes.util.find_library("m"))
_libm.fma.restype = ctypes.c_double
_libm.fma.argtypes = [ctypes.c_double] * 3
fma = _libm.fma


def f32(value):
    """A float64 rounded to the nearest float32, as a Python float."""
    return float(np.float32(value))


class SeededGenerator:
    """training.md's conventions (the generator of cluster.md §4)."""

    def __init__(self, seed, stream):
        mix = ((seed ^ ((stream * 0xD1B54A32D192ED03) & MASK)) + 0x2545F4914F6CDD1D) & MASK
        self.state = []
        for _ in range(4):
            mix = (mix + 0x9E3779B97F4A7C15) & MASK
            z = mix
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            self.state.append(z ^ (z >> 31))

    def next(self):
        s = self.state

        def rotl(x, k):
            return ((x << k) | (x >> (64 - k))) & MASK

        result = (rotl((s[1] * 5) & MASK, 7) * 9) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def unit(self):
        return float(self.next() >> 11) * 2.0**-53

    def gaussian(self):
        u1 = max(self.unit(), 2.0**-60)
        u2 = self.unit()
        return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def eight_lane_sum(terms, add=lambda acc, term: acc + term):
    """The 8-lane sum of training.md; `add` folds one term into a lane (or the tail)."""
    full = 8 * (len(terms) // 8)
    lanes = [0.0] * 8
    for j in range(full):
        lanes[j % 8] = add(lanes[j % 8], terms[j])
    total = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
    for j in range(full, len(terms)):
        total = add(total, terms[j])
    return total


def in_order(values):
    total = 0.0
    for value in values:
        total += value
    return total


def first_argmax(values):
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
    return best


def kmeans_iteration(rows, centres, shard_rows, seed, iteration):
    """§1.1 per shard, merged in shard order, then §1.2. Returns the centres, the objective
    (of the centres the iteration started with) and the number of clusters re-seeded."""
    k, d = len(centres), len(centres[0])
    counts, sums, objective = [0] * k, [[0.0] * d for _ in range(k)], [0.0] * k
    for start in range(0, len(rows), shard_rows):
        n, s, norms = [0] * k, [[0.0] * d for _ in range(k)], [0.0] * k
        for x in rows[start:start + shard_rows]:
            distances = [eight_lane_sum([(x[j] - c[j]) * (x[j] - c[j]) for j in range(d)]) for c in centres]
            c = distances.index(min(distances))
            n[c] += 1
            for j in range(d):
                s[c][j] += x[j]
            norms[c] += eight_lane_sum([x[j] * x[j] for j in range(d)])
        for c in range(k):
            if n[c] > 0:
                cross = in_order([centres[c][j] * s[c][j] for j in range(d)])
                norm = in_order([centres[c][j] * centres[c][j] for j in range(d)])
                objective[c] += max(0.0, (norms[c] - 2 * cross) + float(n[c]) * norm)
            counts[c] += n[c]
            for j in range(d):
                sums[c][j] += s[c][j]
    updated = [row[:] for row in centres]
    for c in range(k):
        if counts[c] > 0:
            updated[c] = [f32(sums[c][j] / float(counts[c])) for j in range(d)]
    weight = [float(n) for n in counts]
    repaired = 0
    for c in range(k):
        if counts[c] != 0:
            continue
        big = first_argmax(weight)
        radius = math.sqrt(objective[big] / float(max(counts[big], 1)))
        generator = SeededGenerator(seed, (iteration << 32) | c)
        direction = [generator.gaussian() for _ in range(d)]
        scale = (0.1 * radius) / math.sqrt(in_order([g * g for g in direction])) if radius > 0 else 0.0
        base = updated[big]
        updated[c] = [f32(base[j] + (direction[j] * scale if scale > 0 else 4 * abs(float(np.spacing(np.float32(base[j]))))))
                      for j in range(d)]
        weight[big] /= 2
        weight[c] = weight[big]
        repaired += 1
    return updated, in_order(objective), repaired


# §2.3 step 3: ln 10⁶, the float64 nearest.
LOG_POSTERIOR_CUTOFF = 13.815510557964274
assert LOG_POSTERIOR_CUTOFF == math.log(1e6)


def em_iteration(rows, means, variances, priors, floor, shard_rows, seed, iteration):
    """§2.3 per shard, merged in shard order, then §2.4. Returns the model, the
    log-likelihood and the number of components re-seeded."""
    k, d = len(means), len(means[0])
    precisions = [[1 / v for v in row] for row in variances]
    constants = [(math.log(priors[c]) - (0.5 * float(d)) * math.log(2 * math.pi)) - 0.5 * in_order([math.log(v) for v in variances[c]])
                 if priors[c] > 0 else None for c in range(k)]
    mass, first, second, log_likelihood = [0.0] * k, [[0.0] * d for _ in range(k)], [[0.0] * d for _ in range(k)], 0.0
    for start in range(0, len(rows), shard_rows):
        m, f, s, shard_ll = [0.0] * k, [[0.0] * d for _ in range(k)], [[0.0] * d for _ in range(k)], 0.0
        for x in rows[start:start + shard_rows]:
            ell = []
            for c in range(k):
                if constants[c] is None:
                    ell.append(-math.inf)
                    continue
                residuals = [x[j] - means[c][j] for j in range(d)]
                terms = [(r * p, r) for r, p in zip(residuals, precisions[c])]
                ell.append(constants[c] - 0.5 * eight_lane_sum(terms, lambda acc, tr: fma(tr[0], tr[1], acc)))
            best = max(ell)
            kept = [c for c in range(k) if ell[c] >= best - LOG_POSTERIOR_CUTOFF]
            weights = {c: math.exp(ell[c] - best) for c in kept}
            total = in_order([weights[c] for c in kept])
            reciprocal = 1 / total
            shard_ll += best + math.log(total)
            for c in kept:
                q = weights[c] * reciprocal
                m[c] += q
                for j in range(d):
                    f[c][j] = fma(q, x[j], f[c][j])
                    s[c][j] = fma(q, x[j] * x[j], s[c][j])
        log_likelihood += shard_ll
        for c in range(k):
            mass[c] += m[c]
            for j in range(d):
                first[c][j] += f[c][j]
                second[c][j] += s[c][j]
    means, variances, updated_priors = [row[:] for row in means], [row[:] for row in variances], [0.0] * k
    total_mass = in_order(mass)
    for c in range(k):
        if mass[c] > 0:
            updated_priors[c] = f32(mass[c] / total_mass)
            for j in range(d):
                mean = first[c][j] / mass[c]
                means[c][j] = f32(mean)
                variances[c][j] = f32(max(second[c][j] / mass[c] - mean * mean, floor))
    repaired = 0
    for c in range(k):
        if updated_priors[c] != 0:
            continue
        heavy = first_argmax(updated_priors)
        generator = SeededGenerator(seed, 0x474D4D00 ^ ((iteration << 32) | c))
        for j in range(d):
            means[c][j] = f32(means[heavy][j] + (0.5 * math.sqrt(variances[heavy][j])) * generator.gaussian())
            variances[c][j] = variances[heavy][j]
        updated_priors[heavy] = float(np.float32(updated_priors[heavy]) / np.float32(2))
        updated_priors[c] = updated_priors[heavy]
        repaired += 1
    return means, variances, updated_priors, log_likelihood, repaired


def iteration_totals(done, phase=None):
    """The float64 totals (objective, log-likelihood) of the iterations `codebook train --json` reports."""
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    return [event["total"] for event in events
            if event.get("event") == "iteration" and (phase is None or event.get("phase") == phase)]


def same_bits(swift, mine):
    return np.array_equal(np.asarray(swift, dtype="<f4").view("<u4"), np.asarray(mine, dtype="<f4").view("<u4"))


def test_kmeans_follows_the_document_bit_for_bit(tmp_path):
    rng = np.random.default_rng(5)
    rows, d, k, shard_rows, seed = 1500, 20, 6, 400, 9
    x = (rng.normal(size=(rows, d)) * 3).astype("<f4")
    centres = x[rng.choice(rows, k, replace=False)].copy()
    centres[k - 1] = 1000  # nearest to no row: re-seeded in the first iteration
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "c.npy", centres)
    mine, objectives, repairs = [[float(v) for v in row] for row in centres], [], []
    for iteration in range(2):
        mine, objective, repaired = kmeans_iteration(x.astype(float).tolist(), mine, shard_rows, seed, iteration)
        objectives.append(objective)
        repairs.append(repaired)
    assert repairs[0] == 1
    done = run_cli("train", "kmeans", "--corpus", str(tmp_path / "x.npy"), "--k", str(k), "--iterations", "2",
            "--tolerance", "0", "--init", str(tmp_path / "c.npy"), "--seed", str(seed), "--shard-rows", str(shard_rows),
            "--store", str(tmp_path / "store"), "--out", str(tmp_path / "out.npy"), "--json")
    assert same_bits(np.load(tmp_path / "out.npy"), mine)
    assert iteration_totals(done) == objectives


def test_em_follows_the_document_bit_for_bit(tmp_path):
    rng = np.random.default_rng(7)
    rows, d, k, shard_rows, seed, ratio = 1200, 19, 5, 300, 3, 1e-4
    x = (rng.normal(size=(rows, d)) * rng.uniform(0.5, 3, size=d)).astype("<f4")
    means = x[rng.choice(rows, k, replace=False)].copy()
    variances = np.full((k, d), 2.0, dtype="<f4")
    priors = np.array([0.3, 0.3, 0.2, 0.2, 0.0], dtype="<f4")  # the last one is re-seeded
    for name, array in (("x", x), ("m", means), ("v", variances), ("p", priors)):
        np.save(tmp_path / f"{name}.npy", array)
    values = x.astype(float).tolist()
    # §2.1: the moments and the floor.
    sums = [in_order([row[j] for row in values]) for j in range(d)]
    squares = [in_order([row[j] * row[j] for row in values]) for j in range(d)]
    data_variances = [max(0.0, squares[j] / float(rows) - (sums[j] / float(rows)) ** 2) for j in range(d)]
    floor = max(ratio * max(data_variances), 1e-10)
    model = ([[float(v) for v in row] for row in means], [[float(v) for v in row] for row in variances],
             [float(v) for v in priors])
    log_likelihoods, repairs = [], []
    for iteration in range(2):
        *model, log_likelihood, repaired = em_iteration(values, *model, floor, shard_rows, seed, iteration)
        log_likelihoods.append(log_likelihood)
        repairs.append(repaired)
    assert repairs[0] == 1
    done = run_cli("train", "gmm", "--corpus", str(tmp_path / "x.npy"), "--k", str(k), "--iterations", "2",
                   "--tolerance", "0", "--init-means", str(tmp_path / "m.npy"), "--init-variances", str(tmp_path / "v.npy"),
                   "--init-priors", str(tmp_path / "p.npy"), "--seed", str(seed), "--shard-rows", str(shard_rows),
                   "--variance-floor", str(ratio), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "g"), "--json")
    for name, mine in zip(("means", "variances", "priors"), model):
        assert same_bits(np.load(tmp_path / f"g_{name}.npy"), mine), name
    assert iteration_totals(done, phase="em") == log_likelihoods
