@testable import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// `extract` on the cluster: the coordinator's files are byte for byte those of a local
/// run, whatever the number of workers; bad images, roots and output files.
@Suite(.serialized) struct ExtractionClusterTests {
    /// The images of `TestImages.folder`, in the order a local run takes them.
    static func source(_ scratch: TemporaryDirectory) throws -> ImageSource {
        try ImageSource(directory: try TestImages.folder(in: scratch))
    }

    static func bytes(_ path: String) -> Data? { FileManager.default.contents(atPath: path) }

    static let parameters = [ExtractionParameters(method: .sift, maxSide: 200),
                             ExtractionParameters(method: .dsift, step: 6, binSize: 4, maxSide: 128, rootSIFT: true)]

    /// Runs `job` on a coordinator with `workers` workers to its end; returns its last progress.
    static func run(_ job: ExtractionJob, workers: Int, settings: CoordinatorSettings = CoordinatorSettings()) async throws -> JobProgress {
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        for _ in 0..<workers { cluster.startWorker() }
        let client = try cluster.client()
        let id = try client.submit(job)
        _ = try await waitUntil(timeout: 60) { try client.progress(of: id, since: 0).state != .running }
        return try client.progress(of: id, since: 0)
    }

    @Test(.timeLimit(.minutes(3)), arguments: [1, 3])
    func clusterExtractionEqualsALocalRunByteForByte(workers: Int) async throws {
        let scratch = try TemporaryDirectory()
        let source = try Self.source(scratch)
        for (number, parameters) in Self.parameters.enumerated() {
            for format in ["npy", "fvecs"] {
                let local = (scratch.file("local-\(number).\(format)"), scratch.file("local-\(number)-\(format).tsv"))
                let summary = try Extraction(extractor: try parameters.extractor(), threads: 2)
                    .run(source, descriptors: local.0, index: local.1)
                let out = (scratch.file("cluster-\(number)-\(workers).\(format)"), scratch.file("cluster-\(number)-\(workers)-\(format).tsv"))
                let progress = try await Self.run(ExtractionJob(images: source.entries, extraction: parameters, descriptors: out.0,
                                                                index: out.1, imagesPerShard: 2), workers: workers)
                #expect(progress.state == .succeeded, "\(progress)")
                // Compared as Bools: a failed #expect on two large arrays computes their difference for ever.
                let sameDescriptors = Self.bytes(out.0) == Self.bytes(local.0), sameIndex = Self.bytes(out.1) == Self.bytes(local.1)
                #expect(sameDescriptors && sameIndex, "\(parameters) \(format): the files differ from a local run's")
                #expect(summary.descriptors > 0 && progress.descriptors == summary.descriptors)
                #expect(progress.imagesDone == source.entries.count && progress.imagesTotal == source.entries.count)
                #expect(progress.skipped?.map(\.path) == summary.skipped.map(\.path) && progress.skipped?.map(\.key) == ["bad"])
                #expect(progress.skipped?.first?.message.contains("cannot decode") == true, "\(String(describing: progress.skipped))")
            }
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func strictFailsNamingTheBadImageAndWritesNothing() async throws {
        let scratch = try TemporaryDirectory()
        let source = try Self.source(scratch)
        let out = (scratch.file("d.npy"), scratch.file("d.tsv"))
        let progress = try await Self.run(ExtractionJob(images: source.entries, extraction: Self.parameters[0], descriptors: out.0,
                                                        index: out.1, strict: true, imagesPerShard: 1), workers: 2)
        #expect(progress.state == .failed)
        #expect(progress.message?.contains("\(source.entries[0].path) (key bad) cannot be read") == true, "\(String(describing: progress.message))")
        #expect(!FileManager.default.fileExists(atPath: out.0) && !FileManager.default.fileExists(atPath: out.1))
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted() == ["images"], "no scratch file is left")
    }

    /// Images and outputs outside the corpus roots, relative paths, existing outputs, bad
    /// parameters: refused at submission with an error naming the problem.
    @Test(.timeLimit(.minutes(1)))
    func refusalsNameTheProblem() async throws {
        let scratch = try TemporaryDirectory(), outside = try TemporaryDirectory()
        let source = try Self.source(scratch)
        let root = scratch.file("images")
        var settings = CoordinatorSettings()
        settings.corpusRoots = try CorpusRoots([root])
        let cluster = try LocalCoordinator(settings: settings)
        defer { cluster.stop() }
        let client = try cluster.client()
        let good = ExtractionJob(images: source.entries, extraction: Self.parameters[0], descriptors: root + "/d.npy", index: root + "/d.tsv")
        func refusal(_ change: (inout ExtractionJob) -> Void) -> ClusterError? {
            var job = good
            change(&job)
            do {
                _ = try client.submit(job)
                return nil
            } catch {
                return error as? ClusterError
            }
        }
        outside.write("x.png", try ImageEncoder.encode(TestImages.picture(width: 32, height: 32, seed: 1), width: 32, height: 32,
                                                       channels: 1, as: .png))
        var error = refusal { $0.images.append(ImageSource.Entry(key: "x", path: outside.file("x.png"))) }
        #expect(error?.replyCode == .forbidden && error?.message.contains("image \(outside.file("x.png"))") == true, "\(String(describing: error))")
        error = refusal { $0.images.append(ImageSource.Entry(key: "x", path: root + "/../../\(URL(fileURLWithPath: outside.path).lastPathComponent)/x.png")) }
        #expect(error?.replyCode == .forbidden, "\(String(describing: error))")
        error = refusal { $0.descriptors = outside.file("d.npy") }
        #expect(error?.replyCode == .forbidden && error?.message.contains("descriptor file's directory") == true, "\(String(describing: error))")
        error = refusal { $0.index = outside.file("d.tsv") }
        #expect(error?.replyCode == .forbidden && error?.message.contains("index's directory") == true, "\(String(describing: error))")
        error = refusal { $0.descriptors = "d.npy" }
        #expect(error?.message.contains("d.npy is not an absolute path") == true, "\(String(describing: error))")
        error = refusal { $0.images.append(ImageSource.Entry(key: "photo-0", path: root + "/photo-1.jpg")) }
        #expect(error?.message.contains("key 'photo-0'") == true, "\(String(describing: error))")
        for key in ["a\tb", "a\r\nb", ""] {
            error = refusal { $0.images[1] = ImageSource.Entry(key: key, path: $0.images[1].path) }
            #expect(error?.message.contains("is empty or holds a tab, line break or NUL") == true, "\(String(describing: error))")
        }
        error = refusal { $0.extraction = ExtractionParameters(method: .dsift, step: 0) }
        #expect(error?.message.contains("step 0") == true, "\(String(describing: error))")
        error = refusal { $0.descriptors = root + "/d.bvecs" }
        #expect(error?.message.contains(".bvecs") == true, "\(String(describing: error))")
        error = refusal { $0.imagesPerShard = -1 }
        #expect(error?.message.contains("images per shard") == true, "\(String(describing: error))")
        // Dense SIFT at full size: a shard of 16 images of up to 1024² pixels cannot fit a RESULT.
        error = refusal { $0.extraction = ExtractionParameters(method: .dsift, step: 2, maxSide: 1024); $0.imagesPerShard = 16 }
        #expect(error?.replyCode == .limit && error?.message.contains("use fewer images per shard") == true, "\(String(describing: error))")

        // A file in the way is not overwritten, unless the job says so; a missing image inside
        // the roots is skipped, as a local run skips it.
        scratch.write("images/d.tsv", text: "keep me")
        error = refusal { _ in }
        #expect(error?.replyCode == .exists && error?.message.contains("d.tsv exists") == true, "\(String(describing: error))")
        cluster.startWorker()
        var job = good
        job.replace = true
        job.images.append(ImageSource.Entry(key: "missing", path: root + "/missing.png"))
        let id = try client.submit(job)
        _ = try await waitUntil(timeout: 30) { try client.progress(of: id, since: 0).state != .running }
        let progress = try client.progress(of: id, since: 0)
        #expect(progress.state == .succeeded && progress.skipped?.map(\.key) == ["bad", "missing"], "\(progress)")
        #expect(scratch.read("images/d.tsv") != Array("keep me".utf8))
        #expect(throws: ClusterError.self) { _ = try client.result(of: id) }
    }

    /// A worker that registered first sends a NaN in every shard's descriptors: each such
    /// RESULT is rejected (and counted), the honest worker computes the shard again, and the
    /// files are still a local run's.
    @Test(.timeLimit(.minutes(2)))
    func aLyingWorkersResultsAreRejected() async throws {
        let scratch = try TemporaryDirectory()
        let source = try Self.source(scratch)
        let local = (scratch.file("local.npy"), scratch.file("local.tsv"))
        _ = try Extraction(extractor: try Self.parameters[0].extractor()).run(source, descriptors: local.0, index: local.1)
        let context = try ZeroMQContext()
        let (coordinator, workers, client) = try UntrustedWorkerTests.coordinator(context)
        defer { coordinator.stop() }
        let liar = ScriptedWorker(context: context, endpoint: workers, name: "liar", threads: 1) { honest, pass in
            guard pass.kind == .extract, let shape = try? honest.decode(StatisticsShape.self),
                  var result = try? ExtractedDescriptors(shape: shape, message: honest), !result.values.isEmpty else { return honest }
            result.values[result.values.count / 2] = .nan
            return WireMessage(header: honest.header, metadata: result.shape, arrays: result.arrays)
        }
        defer { liar.stop() }
        let honest = try await UntrustedWorkerTests.honestWorker(after: "liar", context, workers, client)
        defer { honest.stop() }
        let id = try client.submit(ExtractionJob(images: source.entries, extraction: Self.parameters[0], descriptors: scratch.file("d.npy"),
                                                 index: scratch.file("d.tsv"), imagesPerShard: 1))
        _ = try await waitUntil(timeout: 60) { try client.progress(of: id, since: 0).state != .running }
        #expect(try client.progress(of: id, since: 0).state == .succeeded)
        let same = scratch.read("d.npy") == scratch.read("local.npy") && scratch.read("d.tsv") == scratch.read("local.tsv")
        #expect(same, "the files differ from a local run's")
        #expect(try client.status().rejectedResults > 0 && liar.tasks.load(ordering: .relaxed) > 0)
    }

    /// An empty list makes empty files, as locally; the job is listed as an extraction.
    @Test(.timeLimit(.minutes(1)))
    func anEmptyListWritesEmptyFiles() async throws {
        let scratch = try TemporaryDirectory()
        let progress = try await Self.run(ExtractionJob(images: [], extraction: Self.parameters[0], descriptors: scratch.file("d.npy"),
                                                        index: scratch.file("d.tsv")), workers: 0)
        #expect(progress.state == .succeeded && progress.descriptors == 0 && progress.skipped == [])
        #expect(try DescriptorMatrix.open(path: scratch.file("d.npy")).rows == 0 && scratch.read("d.tsv").isEmpty)
    }
}

/// `codebook extract --coordinator` against real processes: a worker killed with shards in
/// flight is replaced, its shards are sent again, and the files are still a local run's.
@Suite(.serialized, .timeLimit(.minutes(3))) struct ExtractionProcessTests {
    @Test func aWorkerKilledWithShardsInFlightChangesNothing() async throws {
        try await ProcessCluster().run { cluster in
            let source = try ExtractionClusterTests.source(cluster.scratch)
            let local = (cluster.scratch.file("local.npy"), cluster.scratch.file("local.tsv"))
            _ = try Extraction(extractor: try FeatureExtractor(maximumSide: 200)).run(source, descriptors: local.0, index: local.1)
            try await cluster.startCoordinator()
            let victim = try cluster.startWorker("victim")
            try cluster.require(await waitUntil(timeout: 20) { (try? MultiProcessTests.status(cluster).workers.map(\.name)) == ["victim"] },
                                "the victim never registered")
            // Held still: it keeps the shards it is given until it is declared dead.
            victim.kill(SIGSTOP)
            let extract = try cluster.start("extract", ["extract", "--images", cluster.scratch.file("images"), "--max-side", "200",
                                                        "--out", cluster.scratch.file("d.npy"), "--index", cluster.scratch.file("d.tsv"),
                                                        "--images-per-shard", "1", "--coordinator", cluster.clientsEndpoint])
            try cluster.require(await waitUntil(timeout: 20) {
                (try? MultiProcessTests.status(cluster).workers.first?.tasksInFlight ?? 0) ?? 0 > 0
            }, "the victim was given no shard")
            victim.kill(SIGKILL)
            try cluster.startWorker("survivor")
            guard let status = await extract.waitForExit(timeout: 60) else {
                try cluster.require(false, "the extraction did not finish within 60 s of the kill")
                return
            }
            try cluster.require(status == 0, "extract exited with \(status)")
            cluster.check(cluster.scratch.read("d.npy") == cluster.scratch.read("local.npy"), "the descriptors differ from a local run's")
            cluster.check(cluster.scratch.read("d.tsv") == cluster.scratch.read("local.tsv"), "the index differs from a local run's")
            cluster.check(extract.log.contains("skipped 1 of 6 images"), "the summary does not list the bad image")
            let coordinatorLog = cluster.children[0].log
            cluster.check(coordinatorLog.contains("victim") && coordinatorLog.contains("dead"), "the coordinator did not declare the victim dead")
        }
    }
}
