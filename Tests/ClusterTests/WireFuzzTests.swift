@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Features
import Foundation
import Logging
import Search
import Testing
import ZeroMQ

/// Malformed input never crashes a decoder, the state machine or a running coordinator:
/// decoding fails with a malformed `ClusterError`, and the message is dropped.
@Suite struct WireFuzzTests {
    static let iterations = 3000
    static let seed: UInt64 = 0xC0DE_B00C

    static let corpus = CorpusReference(path: "/data/corpus.fvecs", rows: 1000, dimension: 4, fileSize: 1000 * 20)

    /// Valid messages of every kind the decoders take, to be mutated.
    static let validMessages: [WireMessage] = {
        let k = 3, d = 4
        func task(_ description: PassDescription, _ arrays: [[UInt8]]) -> WireMessage {
            WireMessage(header: WireHeader(.task, job: 1, round: 1, shard: 0),
                        metadata: TaskAssignment(corpus: corpus, firstRow: 0, rowCount: 100, computation: description,
                                                 includesModel: !arrays.isEmpty),
                        arrays: arrays)
        }
        var kmeans = KMeansStatistics(k: k, dimension: d, withSquares: true)
        kmeans.rows = 100
        kmeans.counts = [50, 30, 20]
        var gmm = GaussianMixtureStatistics(k: k, dimension: d)
        gmm.rows = 100
        var moments = MomentStatistics(dimension: d)
        moments.rows = 100
        var sample = RowSample(dimension: d)
        sample.rowIndices = [1, 5]
        sample.values = [Float](repeating: 2, count: 2 * d)
        var extracted = ExtractedDescriptors()
        extracted.keys = ["a", "b"]
        extracted.counts = [1, -1]
        extracted.errors = ["cannot decode"]
        extracted.values = [Float](repeating: 3, count: 128)
        func result(_ statistics: some WireStatistics) -> WireMessage {
            WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0), metadata: statistics.shape,
                        arrays: statistics.arrays)
        }
        let centres = Frame.encode([Float](repeating: 1, count: k * d))
        // A k-means‖ round extending `heldRound`'s 2 candidates with a third.
        var extending = PassDescription(kind: .kmeansParallelRound, dimension: d, k: k, seed: 5, round: 2, oversampling: 2, measured: 2)
        extending.extendsPass = 1
        return [
            task(extending, [Frame.encode([Float](repeating: 3, count: d))]),
            WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "fuzz", threads: 2, extendsCandidates: true)),
            task(PassDescription(kind: .kmeansAssignment, dimension: d, k: k, withSquares: true), [centres]),
            task(PassDescription(kind: .gaussianExpectation, dimension: d, k: k),
                 [centres, Frame.encode([Float](repeating: 1, count: k * d)), Frame.encode([Float](repeating: 1, count: k))]),
            task(PassDescription(kind: .moments, dimension: d), []),
            task(PassDescription(kind: .sample, dimension: d, sampleSize: 10, totalRows: 1000, seed: 3), []),
            task(PassDescription(kind: .extract, dimension: 128, extraction: ExtractionParameters(method: .dsift, maxSide: 64),
                                 resultBytes: 1 << 20), []),
            task(PassDescription(kind: .search, dimension: d, top: 2, queries: 3), [centres]),
            result(kmeans), result(gmm), result(moments), result(sample), result(extracted),
            result(NearestRows(top: 2, dimension: d, rows: 100,
                               neighbours: [[Neighbour(row: 3, score: 1), Neighbour(row: 1, score: 0.5)], [], [Neighbour(row: 0, score: 2)]])),
            WireMessage(header: WireHeader(.submitExtraction),
                        metadata: ExtractionJob(images: extractionImages, extraction: ExtractionParameters(method: .sift),
                                                descriptors: "/d.npy", index: "/d.tsv")),
            WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "fuzz", threads: 2)),
            WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "fuzz", threads: 2, holds: [
                HeldPartition(job: 1, shard: 0, ticket: PartitionTicket.make()),
                HeldPartition(job: .max, shard: .max, ticket: String(repeating: "f", count: 33)),
            ])),
            WireMessage(header: WireHeader(.task, job: 1, round: 1, shard: 0),
                        metadata: TaskAssignment(corpus: CorpusReference(path: "S", rows: 100, dimension: d, fileSize: 0), firstRow: 0,
                                                 rowCount: 100, computation: PassDescription(kind: .search, dimension: d, top: 2, queries: 3),
                                                 includesModel: true,
                                                 partition: SetPartition(set: "S", generation: 1, includesVectors: true,
                                                                         ticket: PartitionTicket.make())),
                        arrays: [centres, Frame.encode([Float](repeating: 1, count: 100 * d))]),
            WireMessage(header: WireHeader(.failure, job: 1, round: 1, shard: 0), metadata: FailureReport(message: "x", retry: true)),
            WireMessage(header: WireHeader(.workerHeartbeat)),
            WireMessage(header: WireHeader(.goodbye)),
            WireMessage(header: WireHeader(.submit), metadata: TrainingJob(kind: .kmeans, corpus: "/x", k: 2, iterations: 1, seed: 0,
                                                                           tolerance: 0, shardRows: 10, initialization: .given),
                        arrays: [centres]),
        ]
    }()

    /// The model a worker holds for the extension above: pass 1, 2 candidates of D = 4.
    static let heldRound: (round: UInt32, computation: any WireComputation) = (1, try! KMeansParallelRoundPass(
        candidates: try! Codebook(k: 2, dimension: 4, centres: [Float](repeating: 2, count: 8)), oversampling: 2, seed: 5, round: 1))

    static let extractionImages = [ImageSource.Entry(key: "a", path: "/a.png"), ImageSource.Entry(key: "b", path: "/b.png")]

    /// Numbers that break careless arithmetic.
    static let extremes: [Int] = [0, 1, 2, 3, 4, -1, -4, Int.max, Int.min, Int.max / 2, 1 << 31, 1 << 32, 1 << 40, 1 << 62]

    static func randomBytes(_ count: Int, _ rng: inout SeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// One random mutation of `message`'s frames.
    static func mutate(_ message: WireMessage, _ rng: inout SeededGenerator) -> [[UInt8]] {
        var frames = message.frames
        switch Int.random(in: 0..<13, using: &rng) {
        case 0: // flip bytes
            let f = Int.random(in: 0..<frames.count, using: &rng)
            if !frames[f].isEmpty {
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    frames[f][Int.random(in: 0..<frames[f].count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
            }
        case 1: // truncate a frame
            let f = Int.random(in: 0..<frames.count, using: &rng)
            frames[f] = Array(frames[f].prefix(Int.random(in: 0...frames[f].count, using: &rng)))
        case 2: // drop a frame
            frames.remove(at: Int.random(in: 0..<frames.count, using: &rng))
        case 3: // add a frame
            frames.insert(randomBytes(Int.random(in: 0..<64, using: &rng), &rng), at: Int.random(in: 0...frames.count, using: &rng))
        case 4: // wrong version
            frames[0].replaceSubrange(4..<6, with: [UInt8.random(in: 0...255, using: &rng), UInt8.random(in: 0...255, using: &rng)])
        case 5: // unknown type, or another valid type
            let type = Bool.random(using: &rng) ? UInt16.random(in: 0...UInt16.max, using: &rng)
                : MessageType.allCases.randomElement(using: &rng)!.rawValue
            withUnsafeBytes(of: type.littleEndian) { frames[0].replaceSubrange(6..<8, with: $0) }
        case 6: // random job/round/shard
            frames[0].replaceSubrange(8..<24, with: randomBytes(16, &rng))
        case 7: // extreme numbers in the JSON
            if var object = (try? JSONSerialization.jsonObject(with: Data(frames[1]))) as? [String: Any] {
                object = extremeNumbers(in: object, &rng)
                frames[1] = Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
            }
        case 8: // array frames resized
            if frames.count > 2 {
                let f = Int.random(in: 2..<frames.count, using: &rng)
                frames[f] = randomBytes([0, 1, 4, 7, 8, 12, 16, 1000].randomElement(using: &rng)!, &rng)
            }
        case 9: // duplicate a frame
            let f = Int.random(in: 0..<frames.count, using: &rng)
            frames.insert(frames[f], at: Int.random(in: 0...frames.count, using: &rng))
        case 10: // another valid message's header on this body
            frames[0] = validMessages.randomElement(using: &rng)!.header.bytes
        case 11: // two JSON fields swap their values
            if var object = (try? JSONSerialization.jsonObject(with: Data(frames[1]))) as? [String: Any], object.count >= 2 {
                let keys = object.keys.sorted().shuffled(using: &rng)
                (object[keys[0]], object[keys[1]]) = (object[keys[1]], object[keys[0]])
                frames[1] = Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data())
            }
        default: // garbage JSON
            frames[1] = randomBytes(Int.random(in: 0..<40, using: &rng), &rng)
        }
        return frames
    }

    static func extremeNumbers(in object: [String: Any], _ rng: inout SeededGenerator) -> [String: Any] {
        var object = object
        for (key, value) in object {
            if value is NSNumber, !(value is Bool), Int.random(in: 0..<2, using: &rng) == 0 {
                object[key] = extremes.randomElement(using: &rng)!
            } else if let nested = value as? [String: Any] {
                object[key] = extremeNumbers(in: nested, &rng)
            }
        }
        return object
    }

    /// Whether `error` is what decoding hostile bytes may throw: a malformed message or another version.
    static func isDecodingError(_ error: any Error) -> Bool {
        (error as? ClusterError).map { [.malformed, .unsupportedVersion].contains($0.code) } ?? false
    }

    /// Whether `body` throws a decoding error.
    static func isDecodingError<T>(catching body: () throws -> T) -> Bool {
        do { _ = try body() } catch { return isDecodingError(error) }
        return false
    }

    /// Every decoder a message can reach; returns the errors that were not decoding errors.
    static func decodeEverything(_ message: WireMessage) -> [String] {
        var unexpected: [String] = []
        func attempt(_ what: String, _ body: () throws -> Void) {
            do { try body() } catch let error as ClusterError where Self.isDecodingError(error) {} catch { unexpected.append("\(what): \(type(of: error)) \(error)") }
        }
        attempt("TaskAssignment") {
            let assignment = try message.decode(TaskAssignment.self)
            _ = try PassDecoder.computation(assignment.computation, arrays: message)
        }
        attempt("ModelExtension") {
            do {
                let (whole, computation) = try ModelExtension.joined(message, try message.decode(TaskAssignment.self).computation,
                                                                     held: heldRound)
                _ = try PassDecoder.computation(computation, arrays: whole)
            } catch is ModelExtension.Missing {}
        }
        attempt("StatisticsShape") {
            let shape = try message.decode(StatisticsShape.self)
            attempt("KMeansStatistics") { _ = try KMeansStatistics(shape: shape, message: message) }
            attempt("GaussianMixtureStatistics") { _ = try GaussianMixtureStatistics(shape: shape, message: message) }
            attempt("MomentStatistics") { _ = try MomentStatistics(shape: shape, message: message) }
            attempt("RowSample") { _ = try RowSample(shape: shape, message: message) }
            attempt("ExtractedDescriptors") { try ExtractedDescriptors(shape: shape, message: message).check(against: extractionImages) }
            attempt("NearestRows") { _ = try NearestRows(shape: shape, message: message) }
        }
        for type in [WorkerIntroduction.self, FailureReport.self, TrainingJob.self, ExtractionJob.self] as [any Decodable.Type] {
            attempt("\(type)") { _ = try message.decode(type) }
        }
        for index in 0..<3 {
            attempt("array \(index)") { _ = try message.array(index, as: Float.self, count: 12) }
            attempt("array \(index) f64") { _ = try message.array(index, as: Double.self) }
        }
        return unexpected
    }

    /// A state machine with two workers and a pass in progress, to feed fuzzed messages to.
    static func busyState() -> CoordinatorState {
        var state = CoordinatorState()
        _ = state.receive(WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "a", threads: 1)),
                          from: [1], now: at(0))
        _ = state.receive(WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "b", threads: 2)),
                          from: [2], now: at(0))
        _ = state.start(RoundSpec(key: RoundKey(job: 1, round: 1), corpus: corpus, plan: ShardPlan(totalRows: 1000, shardRows: 10),
                                  computation: PassDescription(kind: .kmeansAssignment, dimension: 4, k: 3, withSquares: true),
                                  model: [Frame.encode([Float](repeating: 1, count: 12))]), now: at(0))
        return state
    }

    @Test func randomFramesNeverCrashTheDecoder() {
        var rng = SeededGenerator(seed: Self.seed)
        var decoded = 0
        for iteration in 0..<Self.iterations {
            var frames: [[UInt8]] = (0..<Int.random(in: 0..<6, using: &rng)).map { _ in
                Self.randomBytes([0, 1, 23, 24, 25, Int.random(in: 0..<100, using: &rng)].randomElement(using: &rng)!, &rng)
            }
            // Half the time, a valid magic and version, so decoding goes past the header.
            if !frames.isEmpty, frames[0].count == 24, Bool.random(using: &rng) {
                frames[0].replaceSubrange(0..<6, with: WireHeader.magic + [1, 0])
                withUnsafeBytes(of: MessageType.allCases.randomElement(using: &rng)!.rawValue.littleEndian) {
                    frames[0].replaceSubrange(6..<8, with: $0)
                }
            }
            do {
                let message = try WireMessage(frames: frames)
                decoded += 1
                let unexpected = Self.decodeEverything(message)
                #expect(unexpected.isEmpty, "seed \(Self.seed) iteration \(iteration): \(unexpected)")
            } catch let error as ClusterError where Self.isDecodingError(error) {
            } catch {
                Issue.record("seed \(Self.seed) iteration \(iteration): \(type(of: error)) \(error)")
            }
        }
        #expect(decoded > 0)
    }

    @Test func versionsOtherThanOneAreRejected() throws {
        var header = WireHeader(.workerHeartbeat).bytes
        header[4] = 2
        #expect(throws: ClusterError(.unsupportedVersion, "unsupported protocol version 2 (this build speaks 1)")) {
            try WireMessage(frames: [header, []])
        }
        #expect(Self.isDecodingError(catching: { try WireMessage(frames: [Array(header.prefix(23)), []]) }))
        #expect(Self.isDecodingError(catching: { try WireMessage(frames: [WireHeader(.ready).bytes]) }))
        #expect(Self.isDecodingError(catching: { try WireMessage(frames: []) }))
        let valid = try WireMessage(frames: WireMessage(header: WireHeader(.result, job: 7, round: 2, shard: 5)).frames)
        #expect(valid.header == WireHeader(.result, job: 7, round: 2, shard: 5))
    }

    @Test func mutatedMessagesNeverCrashTheDecodersOrTheStateMachine() {
        var rng = SeededGenerator(seed: Self.seed &+ 1)
        var state = Self.busyState()
        var accepted = 0
        for iteration in 0..<Self.iterations {
            let original = Self.validMessages.randomElement(using: &rng)!
            var frames = Self.mutate(original, &rng)
            if Bool.random(using: &rng), let once = try? WireMessage(frames: frames) { frames = Self.mutate(once, &rng) }
            let message: WireMessage
            do {
                message = try WireMessage(frames: frames)
            } catch let error as ClusterError where Self.isDecodingError(error) {
                continue
            } catch {
                Issue.record("seed \(Self.seed &+ 1) iteration \(iteration): \(type(of: error)) \(error)")
                continue
            }
            accepted += 1
            let unexpected = Self.decodeEverything(message)
            #expect(unexpected.isEmpty, "seed \(Self.seed &+ 1) iteration \(iteration) (\(original.header.type)): \(unexpected)")
            let worker: WorkerID = [UInt8.random(in: 0...3, using: &rng)]
            _ = state.receive(message, from: worker, now: at(Double(iteration) * 0.01))
            if iteration % 50 == 0 { _ = state.tick(now: at(Double(iteration) * 0.01)) }
            if state.status(now: at(0)).passes.isEmpty { state = Self.busyState() }
        }
        #expect(accepted > Self.iterations / 4)
    }

    /// Shapes with extreme sizes: decoding fails cleanly before allocating anything.
    @Test func extremeShapesAreRejectedBeforeAllocating() {
        let arrays = [Frame.encode([Int64](repeating: 1, count: 3)), Frame.encode([Double](repeating: 0, count: 12)),
                      Frame.encode([Double](repeating: 0, count: 3)), Frame.encode([Double](repeating: 0, count: 12))]
        for k in Self.extremes {
            for d in Self.extremes {
                for samples in [nil, -1, 2, Int.max] as [Int?] {
                    let shape = StatisticsShape(rows: 100, dimension: d, k: k, withSquares: true, samples: samples)
                    let message = WireMessage(header: WireHeader(.result, job: 1, round: 1, shard: 0), metadata: shape, arrays: arrays)
                    let unexpected = Self.decodeEverything(message)
                    #expect(unexpected.isEmpty, "k=\(k) D=\(d) samples=\(String(describing: samples)): \(unexpected)")
                }
                for kind in [PassDescription.Kind.kmeansAssignment, .gaussianExpectation, .moments, .sample] {
                    let description = PassDescription(kind: kind, dimension: d, k: k, withSquares: false, sampleSize: k,
                                                      totalRows: d, seed: 1)
                    let message = WireMessage(header: WireHeader(.task), metadata: TaskAssignment(corpus: Self.corpus, firstRow: 0,
                                              rowCount: 1, computation: description, includesModel: true),
                                              arrays: [Frame.encode([Float](repeating: 1, count: 12)),
                                                       Frame.encode([Float](repeating: 1, count: 12)),
                                                       Frame.encode([Float](repeating: 1, count: 3))])
                    let unexpected = Self.decodeEverything(message)
                    #expect(unexpected.isEmpty, "\(kind) k=\(k) D=\(d): \(unexpected)")
                }
            }
        }
    }

    /// A READY with an absurd thread count must not overflow the dispatcher.
    @Test func absurdThreadCountsDoNotCrashTheDispatcher() {
        for threads in Self.extremes {
            var state = Self.busyState()
            let ready = WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "greedy", threads: threads))
            _ = state.receive(ready, from: [9], now: at(1))
            _ = state.tick(now: at(1.5))
            #expect(state.status(now: at(1.5)).workers.count == 3, "threads \(threads)")
        }
    }

    // MARK: A running coordinator

    @Test func aRunningCoordinatorSurvivesGarbageAndKeepsServing() async throws {
        var logger = Logger(label: "fuzz")
        logger.logLevel = .critical
        let context = try ZeroMQContext()
        let tag = UUID().uuidString
        let coordinator = Coordinator(context: context, workersEndpoint: "inproc://fuzz-workers-\(tag)",
                                      clientsEndpoint: "inproc://fuzz-clients-\(tag)", logger: logger)
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let seed = Self.seed &+ 2
        var rng = SeededGenerator(seed: seed)
        var expectedMalformed = 0

        func garbage() -> [[UInt8]] {
            if Bool.random(using: &rng) {
                return Self.mutate(Self.validMessages.randomElement(using: &rng)!, &rng)
            }
            return (0..<Int.random(in: 1..<5, using: &rng)).map { _ in Self.randomBytes(Int.random(in: 0..<40, using: &rng), &rng) }
        }

        // Workers' socket: every message that does not decode is counted.
        let worker = try Socket(.dealer, context: context)
        try worker.setLinger(.zero)
        try worker.connect(endpoints.workers)
        for _ in 0..<300 {
            var frames = garbage()
            if frames.isEmpty { frames = [[]] }
            // Never a well-formed READY: this fuzzer is no worker.
            if let message = try? WireMessage(frames: frames), message.header.type == .ready { continue }
            if (try? WireMessage(frames: frames)) == nil { expectedMalformed += 1 }
            #expect(try worker.send(frames: frames))
        }
        // Clients' socket, with and without the REQ envelope's empty delimiter.
        let client = try Socket(.dealer, context: context)
        try client.setLinger(.zero)
        try client.connect(endpoints.clients)
        // At most 16 requests outstanding, as the protocol allows (cluster.md §1): read replies as we go.
        var replies = 0, received = 0
        func collect(keeping window: Int) async {
            _ = await waitUntil(timeout: 10) {
                while let frames = try? client.receive(dontWait: true) {
                    #expect(frames.first?.isEmpty == true)
                    received += 1
                }
                return replies - received <= window
            }
        }
        for index in 0..<300 {
            var frames = garbage()
            if frames.isEmpty { frames = [[]] }
            // Never a well-formed SUBMIT or SUBMIT-EXTRACTION: the fuzzer would start jobs.
            if let message = try? WireMessage(frames: frames), [.submit, .submitExtraction].contains(message.header.type) { continue }
            let withDelimiter = index % 2 == 0
            if withDelimiter {
                frames = [[]] + frames
                if (try? WireMessage(frames: Array(frames.dropFirst()))) == nil { expectedMalformed += 1 }
                replies += 1
            } else if !(frames.first?.isEmpty ?? false) {
                expectedMalformed += 1
            } else {
                if (try? WireMessage(frames: Array(frames.dropFirst()))) == nil { expectedMalformed += 1 }
                replies += 1
            }
            #expect(try client.send(frames: frames))
            await collect(keeping: 16)
        }
        #expect(await waitUntil(timeout: 10) { coordinator.malformedMessages >= expectedMalformed },
                "seed \(seed): \(coordinator.malformedMessages) malformed counted, \(expectedMalformed) sent")
        #expect(coordinator.malformedMessages == expectedMalformed, "seed \(seed)")
        // Every enveloped request got an answer in its envelope.
        await collect(keeping: 0)
        #expect(received == replies, "seed \(seed)")
        // And it still serves.
        let status = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(10)).status()
        #expect(status.workers.isEmpty)
        #expect(status.jobs.isEmpty)
    }
}
