@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Testing
import ZeroMQ

/// Shard RESULTs are decoded, checked and merged off the coordinator's I/O thread.
@Suite(.serialized) struct MergeThreadTests {
    /// A stand-in worker on a raw DEALER socket sends 8 dense k-means RESULTs of 16 MiB at
    /// once (K = 16,384, D = 128), then a client asks for STATUS: it is answered while the
    /// RESULTs are still being merged (the pass is running, not all its shards taken), and
    /// the merged statistics equal the shards' merged in order. When the I/O thread decoded
    /// and merged them, STATUS waited for all 8 (the pass had ended by its reply).
    @Test(.timeLimit(.minutes(2))) func statusIsAnsweredWhileLargeResultsAreMerged() async throws {
        let k = 16_384, d = 128, shards = 8
        let statistics = (0..<shards).map { (shard: Int) -> KMeansStatistics in
            let sums: [Double] = (0..<k * d).map { (index: Int) -> Double in Double((index &* 7 &+ shard) % 977) / 3 }
            return KMeansStatistics(k: k, dimension: d, rows: k, counts: [Int](repeating: 1, count: k), sums: sums,
                                    clusterObjective: [Double](repeating: 0.5 + Double(shard), count: k), sumsOfSquares: nil)
        }
        #expect(!statistics[0].sparseIsSmaller)
        let results = statistics.enumerated().map { shard, statistics in
            WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: UInt32(shard)),
                        metadata: statistics.shape, arrays: statistics.arrays)
        }

        var settings = CoordinatorSettings()
        settings.liveness = 60 // the stand-in does not heartbeat
        let context = try ZeroMQContext()
        let tag = UUID().uuidString
        let coordinator = Coordinator(context: context, workersEndpoint: "inproc://merge-workers-\(tag)",
                                      clientsEndpoint: "inproc://merge-clients-\(tag)", settings: settings, logger: quietLogger())
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(30))
        let worker = try Socket(.dealer, context: context)
        try worker.setLinger(.zero)
        try worker.connect(endpoints.workers)
        _ = try worker.send(frames: WireMessage(header: WireHeader(.ready),
                                                metadata: WorkerIntroduction(name: "stand-in", threads: shards)).frames)

        let corpus = CorpusReference(path: "/nonexistent/merge.npy", rows: shards * k, dimension: d, fileSize: 0)
        let backend = ClusterBackend(coordinator: coordinator, job: 1, corpus: corpus, shardRows: k)
        let pass = KMeansAssignmentPass(codebook: try Codebook(k: k, dimension: d, centres: [Float](repeating: 0, count: k * d)))
        let running = Task { try await backend.run(pass) }

        var tasks = Set<UInt32>()
        let deadline = ContinuousClock.now + .seconds(60)
        while tasks.count < shards, ContinuousClock.now < deadline {
            guard let frames = try worker.receive(dontWait: true) else {
                try await Task.sleep(for: .milliseconds(5))
                continue
            }
            let message = try WireMessage(frames: frames)
            if message.header.type == .task { tasks.insert(message.header.shard) }
        }
        try #require(tasks.count == shards, "the stand-in got \(tasks.count) TASKs")
        for result in results { _ = try worker.send(frames: result.frames) }
        let status = try client.status()

        let merged = try await running.value
        let pass1 = status.passes.first { $0.job == 1 }
        #expect(pass1 != nil && (pass1?.done ?? shards) < shards,
                "STATUS was answered once \(pass1?.done ?? shards) of \(shards) shards were taken")
        var local = OrderedMerger<KMeansStatistics>(shardCount: shards)
        for (shard, statistics) in statistics.enumerated() { local.add(statistics, shard: shard) }
        #expect(merged == local.result, "the merged statistics differ from the shards' merged in order")
    }
}
