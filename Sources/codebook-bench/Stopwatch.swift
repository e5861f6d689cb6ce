import Foundation

/// Wall-clock timing with a monotonic clock, and the median of repeated runs.
enum Stopwatch {
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// Runs `body` once and returns its result and the seconds it took.
    static func time<R>(_ body: () async throws -> R) async rethrows -> (R, Double) {
        let started = now()
        let result = try await body()
        return (result, now() - started)
    }

    /// Runs `body` `repeats` times; returns the median seconds and the last result.
    static func median<R>(_ repeats: Int, _ body: () async throws -> R) async rethrows -> (R, Double) {
        var times: [Double] = []
        var last: R?
        for _ in 0..<max(1, repeats) {
            let (result, elapsed) = try await time(body)
            times.append(elapsed)
            last = result
        }
        return (last!, Self.median(times))
    }

    /// Runs every body once per round, `repeats` rounds, and returns each body's median
    /// seconds. Interleaving spreads any load from other processes over all measurements
    /// alike, so their ratios stay meaningful on a shared machine.
    static func interleaved(_ repeats: Int, _ bodies: [() async throws -> Void]) async throws -> [Double] {
        var times = [[Double]](repeating: [], count: bodies.count)
        for _ in 0..<max(1, repeats) {
            for (index, body) in bodies.enumerated() {
                let started = now()
                try await body()
                times[index].append(now() - started)
            }
        }
        return times.map(median)
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return .nan }
        let mid = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
    }
}
