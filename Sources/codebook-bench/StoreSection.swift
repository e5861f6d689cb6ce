import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Encoding
import Foundation
import Storage
import Synchronization
import ZeroMQ

/// Section 6: encoding a collection into the store through an embedded cluster against
/// the engine's in-memory batch encode to `.npy`, then single-key lookups from concurrent
/// clients over tcp. Stored vectors must equal the `.npy` rows bit for bit.
struct StoreSection {
    let sizes: BenchSizes
    let cluster: ClusterSizes

    static let throughputTarget = 0.8
    static let getsTarget = 20_000.0
    static let p99Target = 0.005
    static let modelName = "bench-vlad"
    /// Stored vectors compared with the `.npy` rows after encoding.
    static let sampleSize = 64
    /// Every this many GETs, a client compares the reply's values with the `.npy` row.
    static let valueCheckEvery = 32

    func run() async throws {
        var storeSizes = sizes
        storeSizes.k = cluster.storeK
        let images = cluster.storeImages, imageRows = sizes.imageRows, d = sizes.dimension
        let rows = images * imageRows, vectorLength = cluster.storeK * d
        let workload = Workload(sizes: storeSizes)

        let corpusName = "corpus-\(rows)x\(d)-c\(storeSizes.corpusClusters)-s\(BenchSizes.seed)-img\(imageRows).npy"
        let corpusBytes = rows * d * 4, vectorBytes = images * vectorLength * 4
        let corpusExists = FileManager.default.fileExists(atPath: sizes.path(corpusName))
        let needed = (corpusExists ? 0 : corpusBytes) + 3 * vectorBytes + 1_000_000_000
        let free = Machine.freeBytes(at: sizes.workDirectory)
        guard free >= needed else {
            print("### Store\n\nskipped: \(format(Double(free) / 1e9, "%.1f")) GB free in \(sizes.workDirectory), need "
                  + "\(format(Double(needed) / 1e9, "%.1f")) GB (corpus \(format(Double(corpusBytes) / 1e9, "%.1f")) GB, vectors "
                  + "\(format(Double(vectorBytes) / 1e9, "%.1f")) GB as .npy and in the store); use --store-images to scale down.\n")
            return
        }
        let path = URL(fileURLWithPath: try workload.corpus(rows: rows, index: true, imagesOf: imageRows)).standardizedFileURL.path
        let corpus = try DescriptorMatrix.open(path: path)
        let collection = try ImageCollection(index: path + ".tsv", descriptors: corpus)
        let keys = collection.map(\.key)

        // The codebook: 2 Lloyd iterations from K distinct true clusters' first rows.
        let (_, initial) = try workload.initialCentres(corpus: path)
        var parameters = KMeansParameters(k: cluster.storeK)
        parameters.iterations = 2
        parameters.tolerance = 0
        parameters.initialization = .given(initial)
        let codebook = try await KMeans.train(on: LocalBackend(corpus: corpus, threads: sizes.threads), parameters: parameters).codebook
        let encoder = VLADEncoder(codebook: codebook, options: [])
        let npyPath = sizes.path("store-vlad-k\(cluster.storeK)-\(images)x\(imageRows).npy")

        // A fresh store; the embedded cluster's coordinator owns it, then the tcp coordinator.
        let storePath = sizes.path("store-bench")
        try? FileManager.default.removeItem(atPath: storePath)
        let store = try CodebookStore(path: storePath)
        var failures: [String] = []

        // 4: encoding.
        let embedded = try EmbeddedCluster(workers: cluster.workers, threadsPerWorker: 1, store: store, logger: quietLogger)
        var embeddedRunning = true
        defer { if embeddedRunning { embedded.shutdown() } }
        let client = try ClusterClient(context: embedded.context, endpoint: embedded.clientsEndpoint, timeout: .seconds(120))
        _ = try client.importModel(ImportRequest(name: Self.modelName, kind: .kmeans, k: cluster.storeK, dimension: d, replace: true),
                                   arrays: [Frame.encode(codebook.centres)])
        noteLoadBeforeTiming("timing the encodings")
        var engineTimes: [Double] = [], clusterTimes: [Double] = []
        var lastSet = ""
        var imagesStored = 0
        for round in 0..<sizes.repeats {
            let (_, engineTime) = try await Stopwatch.time {
                let writer = try DescriptorWriter(path: npyPath, dimension: vectorLength)
                try await encoder.encodeInOrder(collection, threads: sizes.threads) { _, vector in try writer.append(vector) }
                try writer.finish()
            }
            engineTimes.append(engineTime)
            let set = "bench-r\(round)"
            let job = EncodingJob(encoding: .vlad, model: Self.modelName, descriptors: path, index: path + ".tsv", set: set,
                                  flags: 0, replace: true)
            let (progress, clusterTime) = try await Stopwatch.time {
                try await client.wait(for: try client.submit(job), every: .milliseconds(5))
            }
            clusterTimes.append(clusterTime)
            imagesStored = progress.imagesDone ?? -1
            if !lastSet.isEmpty { try store.deleteSet(named: lastSet) } // outside the timing
            lastSet = set
        }
        if imagesStored != images { failures.append("encoding job stored \(imagesStored) of \(images) images") }

        // The check: a sample of stored vectors against the .npy rows, bit for bit.
        let reference = try DescriptorMatrix.open(path: npyPath)
        guard reference.rows == images, reference.dimension == vectorLength else {
            throw CheckFailure("\(npyPath) is \(reference.rows)×\(reference.dimension), expected \(images)×\(vectorLength)")
        }
        var sample = Set([0, 1, images / 2, images - 1].filter { $0 < images })
        var generator = SystemRandomNumberGenerator()
        while sample.count < min(Self.sampleSize, images) { sample.insert(Int.random(in: 0..<images, using: &generator)) }
        var matching = 0
        for index in sample.sorted() {
            let reply = try client.get([lastSet + "/" + keys[index]])
            if let values = reply.first?.values, bitIdentical(values, try reference.row(index)) {
                matching += 1
            } else if failures.count < 8 {
                failures.append("stored vector \(lastSet)/\(keys[index]) differs from row \(index) of \(npyPath)")
            }
        }
        embedded.shutdown()
        embeddedRunning = false

        let engine = Stopwatch.median(engineTimes), clustered = Stopwatch.median(clusterTimes)
        let throughput = engine / clustered
        var encoding = MarkdownTable("Store: VLAD-encoding \(images) images × \(imageRows) descriptors (D=\(d), K=\(cluster.storeK), "
                                     + "\(vectorLength * 4 / 1024) KiB vectors)",
                                     columns: ["pipeline", "time (median)", "images/s", "descriptors/s", "vector MB/s written",
                                               "throughput ratio", "target"])
        encoding.add("(a) engine: VLADEncoder.encodeInOrder (\(sizes.threads) threads) → DescriptorWriter .npy", seconds(engine),
                     format(Double(images) / engine, "%.0f"), format(Double(rows) / engine, "%.0f"),
                     format(Double(vectorBytes) / engine / 1e6, "%.0f"), "baseline", "")
        encoding.add("(b) EmbeddedCluster (\(cluster.workers) workers × 1 thread) → CodebookStore, EncodingJob submit → wait",
                     seconds(clustered), format(Double(images) / clustered, "%.0f"), format(Double(rows) / clustered, "%.0f"),
                     format(Double(vectorBytes) / clustered / 1e6, "%.0f"), "**" + ratio(throughput) + "**",
                     verdict(throughput >= Self.throughputTarget, "≥ \(Self.throughputTarget)×"))
        encoding.add("stored vectors vs .npy rows (sample)", "\(matching) of \(sample.count) bit-identical", "", "", "", "",
                     verdict(matching == sample.count, "all"))
        encoding.note("Medians of \(sizes.repeats) interleaved rounds, (a) then (b). (a) includes writing and fsync-ing the "
                      + "\(format(Double(vectorBytes) / 1e9, "%.2f")) GB .npy (AtomicFileSink); (b) runs from SUBMIT-ENCODING to the "
                      + "job's SUCCEEDED (polled every 5 ms): planning (index + a hasVector per image), tasks of 64 images, "
                      + "RocksDB batch writes without the write-ahead log on the coordinator's I/O thread, flushed (fsynced) "
                      + "in groups at most 0.1 s apart and after the last shard; the job succeeds after that flush. Each round of (b) writes a new set (replace: true); "
                      + "the previous set is deleted outside the timing.")
        encoding.note("Codebook: 2 Lloyd iterations (LocalBackend) from K distinct true clusters' first rows; imported with "
                      + "IMPORT through the client. Store: \(storePath) (\(format(Double(Self.directoryBytes(storePath)) / 1e9, "%.2f")) GB on disk after the rounds).")
        encoding.print()

        // 5: key lookups over tcp.
        let context = try ZeroMQContext()
        let coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*",
                                      clientsEndpoint: "tcp://127.0.0.1:*", store: store, logger: quietLogger)
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let set = lastSet
        let inProcess = try Self.inProcessLookups(store: store, set: set, keys: keys, seconds: min(1, cluster.lookupSeconds))
        noteLoadBeforeTiming("timing the key lookups")
        let lookups = try Self.lookups(endpoint: endpoints.clients, clients: cluster.lookupClients, seconds: cluster.lookupSeconds,
                                   set: set, keys: keys, vectorLength: vectorLength, reference: reference)
        failures += lookups.errors.prefix(8)
        var table = MarkdownTable("Store: single-key GETs of random keys (\(images) vectors of \(vectorLength * 4 / 1024) KiB)",
                                  columns: ["reader", "GETs", "gets/s", "p50", "p99", "max", "ratio", "target"])
        table.add("baseline: StoreQueries.get in this process (no ZeroMQ), 1 thread", String(inProcess.count),
                  format(inProcess.rate, "%.0f"), Self.micro(inProcess.p50), Self.micro(inProcess.p99), Self.micro(inProcess.max),
                  "baseline", "")
        table.add("\(cluster.lookupClients) ClusterClients (own thread each, one ZeroMQ context with 2 I/O threads) → Coordinator, tcp 127.0.0.1",
                  String(lookups.count), "**" + format(lookups.rate, "%.0f") + "**", Self.micro(lookups.p50),
                  "**" + Self.micro(lookups.p99) + "**", Self.micro(lookups.max), ratio(lookups.rate / inProcess.rate),
                  verdict(lookups.rate >= Self.getsTarget, "≥ \(Int(Self.getsTarget)) gets/s") + ", "
                  + verdict(lookups.p99 < Self.p99Target, "p99 < \(Int(Self.p99Target * 1000)) ms"))
        table.note("Each client: ClusterClient.get([key]) of a uniformly random key, back to back for \(format(cluster.lookupSeconds, "%.1f")) s "
                   + "(bounded: 5 s request timeout); latency = the call's wall time. Every reply checked for found + dimension "
                   + "\(vectorLength); \(lookups.valueChecks) replies (1 in \(Self.valueCheckEvery)) compared with the .npy row bit for bit"
                   + (lookups.errors.isEmpty ? " — all equal." : " — **\(lookups.errors.count) errors**."))
        table.note("The coordinator answers GETs on its single I/O thread (RocksDB read, StoredValue header check, hand-written "
                   + "JSON reply; the vector copied once, from where RocksDB pins it, into the reply); the baseline is that work alone.")
        table.print()
        if !failures.isEmpty { throw CheckFailure(failures.joined(separator: "; ")) }
    }

    struct LookupResult {
        var count = 0
        var rate = 0.0
        var p50 = Double.nan, p99 = Double.nan, max = Double.nan
        var valueChecks = 0
        var errors: [String] = []

        init(latencies: [Double], wall: Double, valueChecks: Int = 0, errors: [String] = []) {
            let sorted = latencies.sorted()
            count = sorted.count
            rate = Double(sorted.count) / Swift.max(wall, 1e-9)
            if !sorted.isEmpty {
                p50 = sorted[sorted.count / 2]
                p99 = sorted[Int((Double(sorted.count - 1) * 0.99).rounded(.up))]
                max = sorted.last!
            }
            self.valueChecks = valueChecks
            self.errors = errors
        }
    }

    static func micro(_ value: Double) -> String { value.isFinite ? format(value * 1e6, "%.0f µs") : "–" }

    /// The GET answered in this process from the store, one thread, for `seconds`.
    static func inProcessLookups(store: CodebookStore, set: String, keys: [String], seconds: Double) throws -> LookupResult {
        let queries = StoreQueries(store: store)
        var latencies: [Double] = []
        var generator = SystemRandomNumberGenerator()
        let started = Stopwatch.now()
        while Stopwatch.now() - started < seconds {
            let key = set + "/" + keys[Int.random(in: 0..<keys.count, using: &generator)]
            let t0 = Stopwatch.now()
            let reply = try queries.get([key])
            latencies.append(Stopwatch.now() - t0)
            guard reply.first?.values != nil else { throw CheckFailure("in-process GET \(key): not found") }
        }
        return LookupResult(latencies: latencies, wall: Stopwatch.now() - started)
    }

    /// `clients` threads, each with its own ClusterClient in one shared ZeroMQ context (one
    /// per process, as ZeroMQ recommends) with 2 I/O threads (its rule of thumb is one per
    /// GB/s; the replies come at ~0.6 GB/s), doing GETs of random keys until `seconds` after
    /// a common start.
    static func lookups(endpoint: String, clients: Int, seconds: Double, set: String, keys: [String], vectorLength: Int,
                        reference: DescriptorMatrix) throws -> LookupResult {
        struct Outcome { var latencies: [Double] = []; var checks = 0; var errors: [String] = []; var ended = 0.0 }
        let outcomes = Mutex<[Outcome]>([])
        let ready = DispatchSemaphore(value: 0), go = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let start = Mutex(0.0)
        let context = try ZeroMQContext(ioThreads: 2)
        for index in 0..<clients {
            let thread = Thread {
                var outcome = Outcome()
                var readied = false
                do {
                    let client = try ClusterClient(context: context, endpoint: endpoint, timeout: .seconds(5))
                    _ = try client.get([set + "/" + keys[index % keys.count]]) // connected and answered once
                    ready.signal(); readied = true
                    go.wait()
                    let deadline = start.withLock { $0 } + seconds
                    var state = UInt64(0x9E37_79B9_7F4A_7C15) &* UInt64(index + 1) | 1
                    outcome.latencies.reserveCapacity(Int(seconds * 20_000))
                    var n = 0
                    while Stopwatch.now() < deadline {
                        state ^= state << 13; state ^= state >> 7; state ^= state << 17 // xorshift64
                        let i = Int(state % UInt64(keys.count))
                        let key = set + "/" + keys[i]
                        let t0 = Stopwatch.now()
                        let reply = try client.get([key])
                        outcome.latencies.append(Stopwatch.now() - t0)
                        n += 1
                        guard reply.count == 1, reply[0].entry.found, reply[0].entry.dimension == vectorLength,
                              let values = reply[0].values, values.count == vectorLength else {
                            outcome.errors.append("GET \(key): \(reply.count) entries, found \(reply.first?.entry.found ?? false), "
                                                  + "dimension \(reply.first?.entry.dimension ?? -1) (expected \(vectorLength))")
                            break
                        }
                        if n % valueCheckEvery == 1 {
                            outcome.checks += 1
                            if !bitIdentical(values, try reference.row(i)) {
                                outcome.errors.append("GET \(key): values differ from row \(i) of the .npy")
                                break
                            }
                        }
                    }
                } catch {
                    outcome.errors.append("client \(index): \(error)")
                }
                outcome.ended = Stopwatch.now()
                if !readied { ready.signal() }
                outcomes.withLock { $0.append(outcome) }
                done.signal()
            }
            thread.name = "codebook-bench-lookup-\(index)"
            thread.start()
        }
        for _ in 0..<clients { ready.wait() }
        let started = Stopwatch.now()
        start.withLock { $0 = started }
        for _ in 0..<clients { go.signal() }
        for _ in 0..<clients { done.wait() }
        let all = outcomes.withLock { $0 }
        let wall = (all.map(\.ended).max() ?? started) - started
        return LookupResult(latencies: all.flatMap(\.latencies), wall: wall, valueChecks: all.map(\.checks).reduce(0, +),
                            errors: all.flatMap(\.errors))
    }

    static func directoryBytes(_ path: String) -> Int {
        guard let files = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        for case let file as String in files {
            total += ((try? FileManager.default.attributesOfItem(atPath: path + "/" + file))?[.size] as? Int) ?? 0
        }
        return total
    }
}
