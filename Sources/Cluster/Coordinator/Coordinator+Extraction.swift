import ClusterProtocol
import Descriptors
import Features
import Foundation
import Storage

extension Coordinator {
    /// Validates an extraction job (images, parameters, output paths, limits) and starts it.
    func accept(_ job: ExtractionJob) throws -> UInt64 {
        let (job, imagesPerShard) = try checked(job)
        let id = try jobs.add(nil, extraction: job)
        logger.info("extraction job \(id) accepted", metadata: ["images": "\(job.images.count)",
                                                               "descriptors": "\(PeerText.escaped(job.descriptors))"])
        try startExtraction(id, job: job, imagesPerShard: imagesPerShard, passesBefore: 0)
        return id
    }

    /// Starts a stored extraction job again from its first image (what its shards made went
    /// with the coordinator that stopped; its output files are written only at the end), after
    /// the checks of a submission, and removes the temporary output files a coordinator that
    /// died while writing them left behind. Its pass is numbered after `passesBefore`.
    func resumeExtraction(_ id: UInt64, record: JobRecord, passesBefore: UInt32) throws {
        guard let stored = record.extraction, let total = record.imagesTotal else {
            throw StoreError(.corrupt, "job \(id) was stored without its list of images (by an older coordinator); submit it again")
        }
        guard stored.images.count == total else {
            throw StoreError(.corrupt, "job \(id) holds \(stored.images.count) images of the \(total) it was submitted with")
        }
        let (job, imagesPerShard) = try checked(stored)
        for path in [job.descriptors, job.index] { AtomicFileSink.removeAbandonedTemporaries(of: path) }
        logger.info("extraction job \(id) started again", metadata: ["images": "\(job.images.count)"])
        try startExtraction(id, job: job, imagesPerShard: imagesPerShard, passesBefore: passesBefore)
    }

    /// The job with its paths resolved, and its images per shard, if it passes every check.
    private func checked(_ job: ExtractionJob) throws -> (job: ExtractionJob, imagesPerShard: Int) {
        // The limits first: resolving paths is work in proportion to the images.
        let imagesPerShard = try settings.checkExtraction(job, extractor: try job.extraction.extractor())
        let job = try allowed(job)
        try Self.checkFiles(of: job)
        return (job, imagesPerShard)
    }

    /// Hands the extraction of every image of job `id` to the workers, as pass `passesBefore` + 1.
    private func startExtraction(_ id: UInt64, job: ExtractionJob, imagesPerShard: Int, passesBefore: UInt32) throws {
        let resultBytes = settings.extractionResultBytes(job, imagesPerShard: imagesPerShard)
        jobs.progress(id, imagesDone: 0, total: job.images.count)
        jobs.progress(id, imagesDone: 0, descriptors: 0, skipped: [])
        let sink = try ExtractionSink(job: id, extraction: job, plan: ShardPlan(totalRows: job.images.count, shardRows: imagesPerShard),
                                      coordinator: self)
        guard !job.images.isEmpty else {
            sink.finish()
            return
        }
        let spec = RoundSpec(key: RoundKey(job: id, round: passesBefore + 1), corpus: ExtractionSink.noCorpus, plan: sink.plan,
                             computation: try ExtractPass(parameters: job.extraction, maximumResultBytes: resultBytes).description,
                             model: [], layout: ImageFiles(images: job.images))
        submit(spec, to: sink)
    }

    /// Refuses an image list whose keys the index cannot hold, and output files that exist
    /// unless the job replaces them.
    private static func checkFiles(of job: ExtractionJob) throws {
        _ = try ImageSource(entries: job.images)
        for image in job.images {
            guard !image.key.isEmpty, !image.key.unicodeScalars.contains(where: { [0, 9, 10, 13].contains($0.value) }) else {
                throw ClusterError(.invalidArgument, "image key \(PeerText.escaped(image.key)) of \(PeerText.escaped(image.path)) "
                                   + "is empty or holds a tab, line break or NUL, which the index cannot hold")
            }
        }
        let format = try DescriptorFormat(path: job.descriptors)
        guard format == .npy || format == .fvecs else {
            throw DescriptorError(.unsupportedFormat, "can write only .fvecs and .npy, not .\(format.rawValue)", path: job.descriptors)
        }
        guard job.descriptors != job.index else {
            throw ClusterError(.invalidArgument, "the descriptor file and the index are the same file \(job.descriptors)")
        }
        if !job.replace, let existing = [job.descriptors, job.index].first(where: { FileManager.default.fileExists(atPath: $0) }) {
            throw ClusterError(.exists, "\(existing) exists; choose another path")
        }
    }
}

/// An extract pass's shards are ranges of its list of image files; it reads no corpus.
struct ImageFiles: ShardLayout {
    let images: [ImageSource.Entry]

    func place(_ assignment: inout TaskAssignment, items: Range<Int>) {
        assignment.imageFiles = Array(images[items])
        assignment.firstRow = items.lowerBound
        assignment.rowCount = items.count
    }
}

/// Collects an extraction's shards as they arrive, in any order, in a scratch file next
/// to the output (unlinked at once, so nothing is left behind), and once every shard is
/// in writes the descriptor file and the index in image order, each under a temporary
/// name renamed into place, exactly as `Extraction` writes them. `check` and `deliver`
/// run on the coordinator's merge thread; the final copy runs on a thread of its own.
final class ExtractionSink: RoundSink, @unchecked Sendable {
    // @unchecked Sendable: the merge thread touches the state until the last shard is in;
    // only then does `finish` take it over.
    /// TASK `corpus` of an extract pass: it names no file, and workers do not read it.
    static let noCorpus = CorpusReference(path: "", rows: 0, dimension: FeatureExtractor.dimension, fileSize: 0)

    let job: UInt64
    let extraction: ExtractionJob
    let plan: ShardPlan
    private weak var coordinator: Coordinator?
    /// The scratch file's descriptor (−1 once closed).
    private var scratch: Int32
    private var scratchBytes = 0
    /// By shard: where its descriptors start in the scratch file, and each image's count (−1: skipped).
    private var shards: [(offset: Int, counts: [Int])?]
    private var shardsLeft: Int
    private var imagesDone = 0
    private var descriptors = 0
    /// Skipped images by their position in the job's list.
    private var skipped: [Int: SkippedImageReport] = [:]
    /// What `check` accepted, until `deliver` takes it (each RESULT is decoded once).
    private var checked: [Int: ExtractedDescriptors] = [:]

    init(job: UInt64, extraction: ExtractionJob, plan: ShardPlan, coordinator: Coordinator) throws {
        self.job = job
        self.extraction = extraction
        self.plan = plan
        self.coordinator = coordinator
        let directory = extraction.descriptors.lastIndex(of: "/").map { String(extraction.descriptors[...$0]) } ?? ""
        let path = "\(directory).codebook-extract-\(getpid())-\(job)-\(UInt32.random(in: 0...UInt32.max))"
        scratch = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard scratch >= 0 else {
            throw DescriptorError(.ioFailure, "cannot create a scratch file next to it", path: extraction.descriptors,
                                  underlying: SystemCallError(errno: errno))
        }
        unlink(path)
        shards = Array(repeating: nil, count: plan.count)
        shardsLeft = plan.count
    }

    deinit { closeScratch() }

    private func closeScratch() {
        if scratch >= 0 { close(scratch) }
        scratch = -1
    }

    private func images(of shard: Int) -> ArraySlice<ImageSource.Entry> { extraction.images[plan.rows(of: shard)] }

    func check(shard: Int, _ message: WireMessage) throws {
        checked[shard] = nil
        guard shard < plan.count else { throw ClusterError.malformed("shard \(shard) is not one of the pass's \(plan.count)") }
        let result = try ExtractedDescriptors(shape: try message.decode(StatisticsShape.self), message: message)
        try result.check(against: Array(images(of: shard)))
        checked[shard] = result
    }

    func deliver(shard: Int, message: WireMessage) {
        guard let coordinator else { return }
        guard let result = checked.removeValue(forKey: shard) else { preconditionFailure("shard \(shard) delivered without a check that passed") }
        let first = plan.rows(of: shard).lowerBound
        var reasons = result.errors.makeIterator()
        for (index, count) in result.counts.enumerated() where count < 0 {
            let image = extraction.images[first + index]
            let report = SkippedImageReport(key: image.key, path: image.path, message: reasons.next() ?? "")
            if extraction.strict {
                return fail("image \(image.path) (key \(image.key)) cannot be read: \(report.message)")
            }
            skipped[first + index] = report
        }
        do {
            try result.values.withUnsafeBytes { bytes in try Self.writeAll(scratch, bytes, at: scratchBytes) }
        } catch {
            return fail("shard \(shard): \(error)")
        }
        shards[shard] = (scratchBytes, result.counts)
        scratchBytes += result.values.count * 4
        descriptors += result.rows
        imagesDone += result.keys.count
        shardsLeft -= 1
        coordinator.jobs.progress(job, imagesDone: imagesDone, descriptors: descriptors, skipped: skippedInOrder)
        if shardsLeft == 0 {
            let done = coordinator.trackJobTask()
            DispatchQueue.global().async { [self] in
                finish()
                done.signal()
            }
        }
    }

    private var skippedInOrder: [SkippedImageReport] { skipped.keys.sorted().map { skipped[$0]! } }

    /// Writes the descriptor file and the index from the scratch file, in image order, and
    /// ends the job (succeeded, or failed naming what went wrong).
    func finish() {
        guard let coordinator else { return }
        do {
            if !extraction.replace, let existing = [extraction.descriptors, extraction.index].first(where: { FileManager.default.fileExists(atPath: $0) }) {
                throw ClusterError(.exists, "\(existing) appeared while the job ran; it is not replaced")
            }
            let writer = try DescriptorWriter(path: extraction.descriptors, dimension: FeatureExtractor.dimension)
            defer { writer.cancel() }
            var index = "", values: [Float] = []
            for shard in 0..<plan.count {
                guard let (offset, counts) = shards[shard] else { preconditionFailure("shard \(shard) of a finished pass is missing") }
                var position = offset
                for (image, count) in zip(images(of: shard), counts) where count >= 0 {
                    index += "\(image.key)\t\(writer.rows)\t\(count)\n"
                    values = [Float](repeating: 0, count: count * FeatureExtractor.dimension)
                    try values.withUnsafeMutableBytes { try Self.readAll(scratch, $0, at: position) }
                    try writer.append(values)
                    position += values.count * 4
                }
            }
            let sink = try AtomicFileSink(path: extraction.index)
            do {
                guard coordinator.jobs[job]?.record.state == .running else {
                    throw ClusterError(.conflict, "job \(job) ended before its files were put in place")
                }
                try sink.write(Array(index.utf8))
                try writer.finish()
                try sink.commit()
            } catch {
                sink.abort()
                throw error
            }
            closeScratch()
            try coordinator.jobs.finishExtraction(job)
            coordinator.logger.info("extraction job \(job) finished", metadata: ["descriptors": "\(descriptors)",
                                                                                "skipped": "\(skipped.count)"])
        } catch {
            fail("\(error)")
        }
    }

    func fail(_ message: String) {
        closeScratch()
        guard let coordinator, coordinator.jobs[job]?.record.state == .running else { return }
        coordinator.jobs.fail(job, message: message)
        coordinator.logJobEnd("extraction job \(job)", message)
        coordinator.cancelPasses(of: job)
    }

    func addDispatchTime(_ duration: Duration) {}

    private static func writeAll(_ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        try untilDone(bytes.count, "write") { done in pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
    }

    private static func readAll(_ descriptor: Int32, _ bytes: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        try untilDone(bytes.count, "read") { done in pread(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done)) }
    }

    /// Repeats `call` (given the bytes done so far) until `count` bytes are done; a system
    /// call interrupted is repeated, one that fails or does nothing is an error.
    private static func untilDone(_ count: Int, _ what: String, _ call: (Int) -> Int) throws {
        var done = 0
        while done < count {
            let result = call(done)
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                throw DescriptorError(.ioFailure, "cannot \(what) the extraction's scratch file", underlying: SystemCallError(errno: errno))
            }
            done += result
        }
    }
}
