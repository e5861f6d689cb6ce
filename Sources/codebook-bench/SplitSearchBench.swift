import CBLAS
import Cluster
import ClusterProtocol
import Foundation
import Storage
import ZeroMQ

/// The `search` section's split-search rows: the same vectors in a store, searched by a
/// coordinator alone (its set cached in memory) and in partitions on two embedded workers
/// (after a first search, so that they hold the partitions and only the queries travel),
/// both through a client. The two replies must be equal, keys and scores, bit for bit.
struct SplitSearchBench {
    let sizes: BenchSizes

    /// Median seconds per SEARCH of `queries` on the coordinator alone and split, and the
    /// seconds of the first split search (which sends the partitions).
    func run(vectors: [Float], rows: Int, dimension d: Int, queries: [Float], top: Int) async throws
        -> (single: Double, firstSplit: Double, split: Double) {
        let directory = sizes.path("split-search-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try CodebookStore(path: directory)
        let record = SetRecord(encoding: .vlad, model: "bench", flags: 0, options: [], dimension: d, created: "now")
        try store.putSet(named: "bench", try StoredValue(kind: .set, metadata: record))
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "bench", flags: 0)).metadata
        let batch = 16_384
        try vectors.withUnsafeBytes { bytes in
            for first in stride(from: 0, to: rows, by: batch) {
                let count = min(batch, rows - first)
                try store.putVectors(set: "bench", keys: (first ..< first + count).map { String(format: "v%08d", $0) },
                                     metadata: metadata, dimension: d,
                                     floatBytes: UnsafeRawBufferPointer(rebasing: bytes[first * d * 4 ..< (first + count) * d * 4]),
                                     durability: .unlogged)
            }
        }
        try store.flushVectors()

        let context = try ZeroMQContext(), tag = UUID().uuidString
        var settings = CoordinatorSettings()
        settings.resumesStoredJobs = false
        settings.searchCacheBytes = 2 * rows * (d * 4 + 32)
        let coordinator = Coordinator(context: context, workersEndpoint: "inproc://bench-split-workers-\(tag)",
                                      clientsEndpoint: "inproc://bench-split-clients-\(tag)", settings: settings, store: store,
                                      logger: quietLogger)
        let endpoints = try coordinator.start()
        let workers = (0..<2).map {
            Worker(context: context, endpoint: endpoints.workers, settings: WorkerSettings(name: "bench-\($0)", threads: 1),
                   logger: quietLogger)
        }
        workers.forEach { $0.start() }
        defer {
            workers.forEach { $0.stop() }
            coordinator.stop()
        }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(600))
        while try client.status().workers.count < 2 { try await Task.sleep(for: .milliseconds(10)) }

        let count = queries.count / d
        let single = SearchRequest(set: "bench", top: top, queries: count, split: false)
        var split = single
        split.split = true
        // Warm-up: the coordinator caches the set; the workers get their partitions (timed).
        var singleFound = try client.search(single, vectors: queries)
        openblas_set_num_threads(1)
        let (firstFound, firstSplit) = try await Stopwatch.time { try client.search(split, vectors: queries) }
        var splitFound = firstFound
        let times = try await Stopwatch.interleaved(sizes.repeats, [
            {
                // The coordinator's search on the request thread, on all the threads.
                openblas_set_num_threads(Int32(sizes.threads))
                singleFound = try client.search(single, vectors: queries)
            },
            {
                // Each worker's one compute thread on one OpenBLAS thread: two threads in all.
                openblas_set_num_threads(1)
                splitFound = try client.search(split, vectors: queries)
            },
        ])
        openblas_set_num_threads(Int32(sizes.threads))
        guard singleFound.count == splitFound.count, zip(singleFound, splitFound).allSatisfy({
            $0.keys == $1.keys && $0.scores.map(\.bitPattern) == $1.scores.map(\.bitPattern)
        }) else {
            throw CheckFailure("the split search's neighbours differ from the coordinator's own")
        }
        return (times[0], firstSplit, times[1])
    }
}
