@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Testing
import ZeroMQ

/// A coordinator process takes a stream of mutated valid messages on both of its endpoints,
/// as a hostile or broken peer would send them, and then trains a real job to the model the
/// local engine computes, bit for bit.
///
/// `CODEBOOK_FUZZ_MESSAGES` sets the messages per endpoint (20,000 by default, what CI runs)
/// and `CODEBOOK_FUZZ_SEED` the seed, for longer runs by hand.
@Suite struct EndpointFuzzTests {
    static let messagesPerEndpoint = ProcessInfo.processInfo.environment["CODEBOOK_FUZZ_MESSAGES"].flatMap { Int($0) } ?? 20_000
    static let seed = ProcessInfo.processInfo.environment["CODEBOOK_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0xF0_22_E9
    /// Requests sent before the fuzzer waits for their replies.
    static let window = 32
    static let rows = 2_000, dimension = 8, k = 4, shardRows = 500

    /// Valid worker messages aimed at the passes a coordinator is likely to be running
    /// (small job, pass and shard numbers), to be mutated.
    static func workerMessages(_ rng: inout SeededGenerator) -> WireMessage {
        let (k, d) = (k, dimension)
        let aimed = { (type: MessageType, rng: inout SeededGenerator) in
            WireHeader(type, job: UInt64.random(in: 1...6, using: &rng), round: UInt32.random(in: 1...4, using: &rng),
                       shard: UInt32.random(in: 0...3, using: &rng))
        }
        func result(_ statistics: some WireStatistics, _ rng: inout SeededGenerator) -> WireMessage {
            WireMessage(header: aimed(.result, &rng), metadata: statistics.shape, arrays: statistics.arrays)
        }
        switch Int.random(in: 0..<8, using: &rng) {
        case 0:
            // Partitions it may not hold: some of a split search's job numbers, any shard, made-up tickets.
            let holds = (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                HeldPartition(job: SplitSets.firstJob + UInt64.random(in: 0...2, using: &rng), shard: UInt32.random(in: 0...3, using: &rng),
                              ticket: PartitionTicket.make())
            }
            return WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "fuzzer", threads: 2, holds: holds))
        case 1: return WireMessage(header: WireHeader(.workerHeartbeat))
        case 2:
            var kmeans = KMeansStatistics(k: k, dimension: d, withSquares: Bool.random(using: &rng))
            kmeans.rows = shardRows
            kmeans.counts = [200, 100, 100, 100]
            kmeans.sums = (0..<(k * d)).map { Double($0) }
            return result(kmeans, &rng)
        case 3:
            var gmm = GaussianMixtureStatistics(k: k, dimension: d)
            gmm.rows = shardRows
            gmm.mass = [125, 125, 125, 125]
            return result(gmm, &rng)
        case 4:
            var moments = MomentStatistics(dimension: d)
            moments.rows = shardRows
            return result(moments, &rng)
        case 5:
            var sample = RowSample(dimension: d)
            sample.rowIndices = [3, 17]
            sample.values = [Float](repeating: 0.5, count: 2 * d)
            return result(sample, &rng)
        case 6:
            return WireMessage(header: aimed(.failure, &rng), metadata: FailureReport(message: "no", retry: Bool.random(using: &rng)))
        default: return WireMessage(header: WireHeader(.goodbye))
        }
    }

    /// Valid client requests of every type, naming the test's corpus, model and set.
    static func clientMessages(corpus: String, index: String, _ rng: inout SeededGenerator) -> WireMessage {
        let (k, d) = (k, dimension)
        let job = UInt64.random(in: 1...6, using: &rng)
        let centres = Frame.encode((0..<(k * d)).map { Float($0 % 7) })
        switch Int.random(in: 0..<13, using: &rng) {
        case 0:
            return WireMessage(header: WireHeader(.submit),
                               metadata: TrainingJob(kind: .kmeans, corpus: corpus, k: k, iterations: 2, seed: 1, tolerance: 0,
                                                     shardRows: shardRows, initialization: .given),
                               arrays: [centres])
        case 1:
            return WireMessage(header: WireHeader(.submit),
                               metadata: TrainingJob(kind: .gmm, corpus: corpus, k: k, iterations: 2, seed: 1, tolerance: 0,
                                                     shardRows: shardRows, initialization: .kmeans, kmeansIterations: 1,
                                                     varianceFloorRatio: 1e-3, name: "fuzz-gmm", replace: true))
        case 2:
            return WireMessage(header: WireHeader(.submitEncoding),
                               metadata: EncodingJob(encoding: .vlad, model: "fuzz-model", descriptors: corpus, index: index,
                                                     set: "fuzz", flags: 0, replace: Bool.random(using: &rng), imagesPerShard: 8))
        case 3:
            return WireMessage(header: WireHeader(.importModel),
                               metadata: ImportRequest(name: "fuzz-model", kind: .kmeans, k: k, dimension: d, replace: true),
                               arrays: [centres])
        case 4: return WireMessage(header: WireHeader(.progress, job: job), metadata: ProgressRequest(since: 0))
        case 5: return WireMessage(header: WireHeader(.fetchResult, job: job))
        case 6: return WireMessage(header: WireHeader(.status))
        case 7: return WireMessage(header: WireHeader(.get), metadata: GetRequest(keys: ["fuzz/image-3", "fuzz/image-4"]))
        case 8: return WireMessage(header: WireHeader(.list), metadata: ListRequest(prefix: "fuzz/", limit: 10))
        case 9: return WireMessage(header: WireHeader(.describe), metadata: DescribeRequest(model: "fuzz-model", values: true))
        case 10: return WireMessage(header: WireHeader(.catalog))
        case 11: return WireMessage(header: WireHeader(.status), metadata: StatusRequest(jobsLimit: 5, jobsBefore: job))
        default: return WireMessage(header: WireHeader(.cancel, job: job))
        }
    }

    /// The centres the local engine trains from `initial` (the reference).
    static func reference(corpus: String, initial: [Float], iterations: Int) async throws -> [Float] {
        let backend = LocalBackend(corpus: try DescriptorMatrix.open(path: corpus), shardRows: shardRows, threads: 1)
        var parameters = KMeansParameters(k: k)
        parameters.iterations = iterations
        parameters.tolerance = 0
        parameters.initialization = .given(try Codebook(k: k, dimension: dimension, centres: initial))
        return try await KMeans.train(on: backend, parameters: parameters).codebook.centres
    }

    /// A hang fails sooner: every reply is awaited at most 20 s.
    @Test(.timeLimit(.minutes(10 + messagesPerEndpoint / 20_000)))
    func bothEndpointsTakeMutatedMessagesAndTheCoordinatorStillTrainsTheReferenceModel() async throws {
        try await ProcessCluster().run { cluster in
            let coordinator = try await cluster.startCoordinator()
            let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension, clusters: Self.k)
            let index = cluster.scratch.file("images.tsv")
            try (0..<(Self.rows / 10)).map { "image-\($0)\t\($0 * 10)\t10\n" }.joined()
                .write(toFile: index, atomically: true, encoding: .utf8)
            let context = try ZeroMQContext()
            defer { try? context.shutdown() }
            let worker = try Socket(.dealer, context: context)
            try worker.setLinger(.zero)
            try worker.connect(cluster.workersEndpoint)
            let client = try Socket(.dealer, context: context)
            try client.setLinger(.zero)
            try client.connect(cluster.clientsEndpoint)

            var rng = SeededGenerator(seed: Self.seed)
            var outstanding = 0, replies = 0, errorReplies = 0, accepted = 0
            /// Reads the replies there are, waiting (at most 20 s for the next one) while more
            /// than `keep` are outstanding: a coordinator that stops answering fails the test.
            func collect(keeping keep: Int) async throws {
                let deadline = Date().addingTimeInterval(20)
                while outstanding > 0 {
                    if let frames = try client.receive(dontWait: true) {
                        try cluster.require(frames.first?.isEmpty == true && frames.count >= 2, "a reply without its envelope")
                        let reply = try WireMessage(frames: Array(frames.dropFirst()))
                        if reply.header.type == .errorReply { errorReplies += 1 }
                        if reply.header.type == .accepted { accepted += 1 }
                        outstanding -= 1
                        replies += 1
                        continue
                    }
                    if outstanding <= keep { return }
                    try cluster.require(coordinator.isRunning, "seed \(Self.seed): the coordinator died after \(replies) replies")
                    try cluster.require(Date() < deadline, "seed \(Self.seed): the coordinator stopped answering after \(replies) replies")
                    try await Task.sleep(for: .milliseconds(2))
                }
            }
            for message in 0..<Self.messagesPerEndpoint {
                // The workers' endpoint: whatever it sends back (TASKs, WELCOMEs, heartbeats) is read and dropped.
                var frames = WireFuzzTests.mutate(Self.workerMessages(&rng), &rng)
                if frames.isEmpty { frames = [[]] }
                _ = try worker.send(frames: frames, dontWait: true)
                while try worker.receive(dontWait: true) != nil {}
                // The clients' endpoint: every enveloped request is answered.
                var request = WireFuzzTests.mutate(Self.clientMessages(corpus: corpus, index: index, &rng), &rng)
                if request.isEmpty { request = [[]] }
                try cluster.require(try client.send(frames: [[]] + request), "send to the clients' endpoint")
                outstanding += 1
                try await collect(keeping: Self.window)
                if message % 1000 == 0 {
                    try cluster.require(coordinator.isRunning, "seed \(Self.seed): the coordinator died after \(message) messages")
                }
            }
            try await collect(keeping: 0)
            try cluster.require(coordinator.isRunning, "seed \(Self.seed): the coordinator died")
            try cluster.require(replies == Self.messagesPerEndpoint,
                                "seed \(Self.seed): \(replies) replies to \(Self.messagesPerEndpoint) requests")

            // The fuzzer leaves; whatever jobs it started are cancelled.
            try worker.disconnect(cluster.workersEndpoint)
            let requests = try ClusterClient(context: context, endpoint: cluster.clientsEndpoint, timeout: .seconds(20))
            for job in try requests.status().jobs where job.state == .running {
                _ = try? requests.cancel(job.job)
            }
            // A real worker, a real job: the model is the local engine's.
            try cluster.startWorker("worker")
            let initial = (0..<(Self.k * Self.dimension)).map { Float(($0 * 37) % 11) / 11 }
            let job = TrainingJob(kind: .kmeans, corpus: corpus, k: Self.k, iterations: 4, seed: 0, tolerance: 0,
                                  shardRows: Self.shardRows, initialization: .given)
            let id = try requests.submit(job, arrays: [Frame.encode(initial)])
            _ = try await requests.wait(for: id, every: .milliseconds(50))
            let (_, reply) = try requests.result(of: id)
            let centres = try reply.array(0, as: Float.self)
            let expected = try await Self.reference(corpus: corpus, initial: initial, iterations: 4)
            cluster.check(centres.map(\.bitPattern) == expected.map(\.bitPattern),
                          "seed \(Self.seed): the model after fuzzing differs from the local engine's")
            print("endpoint fuzz, seed \(Self.seed): \(Self.messagesPerEndpoint) mutated messages per endpoint, "
                  + "\(replies) replies (\(errorReplies) ERROR-REPLY, \(accepted) jobs accepted); "
                  + "the coordinator stayed up and trained the reference model")
        }
    }
}
