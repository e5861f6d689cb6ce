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

    /// Starts a stored extraction job again, after the checks of a submission, with the
    /// images its journal does not hold (`ExtractionJournal`: what the shards done before the
    /// restart made), and removes the temporary output files a coordinator that died while
    /// writing them left behind. Its pass is numbered after `passesBefore`.
    func resumeExtraction(_ id: UInt64, record: JobRecord, passesBefore: UInt32) throws {
        guard let stored = record.extraction, let total = record.imagesTotal else {
            throw StoreError(.corrupt, "job \(id) was stored without its list of images (by an older coordinator); submit it again")
        }
        guard stored.images.count == total else {
            throw StoreError(.corrupt, "job \(id) holds \(stored.images.count) images of the \(total) it was submitted with")
        }
        let job: ExtractionJob, imagesPerShard: Int
        do {
            (job, imagesPerShard) = try checked(stored)
        } catch {
            // The job ends here: its journal (at a path the corpus roots allow) goes too.
            if let allowed = try? allowed(stored) { ExtractionJournal.remove(job: id, descriptors: allowed.descriptors) }
            throw error
        }
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

    /// Hands the extraction of the images of job `id` its journal does not hold (all, unless
    /// `passesBefore` > 0: a resumed job) to the workers, as pass `passesBefore` + 1.
    private func startExtraction(_ id: UInt64, job: ExtractionJob, imagesPerShard: Int, passesBefore: UInt32) throws {
        let resultBytes = settings.extractionResultBytes(job, imagesPerShard: imagesPerShard)
        jobs.progress(id, imagesDone: 0, total: job.images.count)
        let sink = try ExtractionSink(job: id, extraction: job, imagesPerShard: imagesPerShard, resuming: passesBefore > 0, coordinator: self)
        guard !sink.pending.isEmpty else {
            sink.finishSoon()
            return
        }
        let spec = RoundSpec(key: RoundKey(job: id, round: passesBefore + 1), corpus: ExtractionSink.noCorpus, plan: sink.plan,
                             computation: try ExtractPass(parameters: job.extraction, maximumResultBytes: resultBytes).description,
                             model: [], layout: ImageFiles(images: sink.pending.map { job.images[$0] }))
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

/// Collects an extraction's shards as they arrive, in any order, in the job's journal next
/// to the output (`ExtractionJournal`; a resumed job's sink starts with what it holds and
/// extracts only the other images), and once every image is in writes the descriptor file
/// and the index in image order, each under a temporary name renamed into place, exactly as
/// `Extraction` writes them. `check` and `deliver` run on the coordinator's merge thread;
/// the final copy runs on a thread of its own. The journal is deleted when the job ends,
/// and kept when a coordinator that keeps its jobs stops.
final class ExtractionSink: RoundSink, @unchecked Sendable {
    // @unchecked Sendable: the merge thread touches the state until the last shard is in;
    // only then does `finish` take it over.
    /// TASK `corpus` of an extract pass: it names no file, and workers do not read it.
    static let noCorpus = CorpusReference(path: "", rows: 0, dimension: FeatureExtractor.dimension, fileSize: 0)

    let job: UInt64
    let extraction: ExtractionJob
    /// The images this pass extracts (positions in the job's list): those not in the journal.
    let pending: [Int]
    let plan: ShardPlan
    private weak var coordinator: Coordinator?
    private let journal: ExtractionJournal
    private var collected: Images
    private var shardsLeft: Int
    /// What `check` accepted, until `deliver` takes it (each RESULT is decoded once).
    private var checked: [Int: ExtractedDescriptors] = [:]

    /// Opens the job's journal (`resuming`: keeping what it holds, reported as progress) and
    /// plans the other images in shards of `imagesPerShard`.
    init(job: UInt64, extraction: ExtractionJob, imagesPerShard: Int, resuming: Bool, coordinator: Coordinator) throws {
        self.job = job
        self.extraction = extraction
        self.coordinator = coordinator
        journal = try ExtractionJournal(job: job, extraction: extraction, resuming: resuming)
        var collected = Images(placed: Array(repeating: nil, count: extraction.images.count))
        for (piece, values) in journal.recovered { collected.place(piece, values: values, of: extraction) }
        pending = collected.placed.indices.filter { collected.placed[$0] == nil }
        self.collected = collected
        plan = ShardPlan(totalRows: pending.count, shardRows: imagesPerShard)
        shardsLeft = plan.count
        collected.report(job, to: coordinator)
    }

    /// The job's images that are in, and their counts.
    private struct Images {
        /// By image: where its descriptors are in the journal and their count (−1: skipped), once in.
        var placed: [(offset: Int, count: Int)?]
        var done = 0
        var descriptors = 0
        /// Skipped images by their position in the job's list.
        var skipped: [Int: SkippedImageReport] = [:]

        /// Records where a piece's images are, and counts them.
        mutating func place(_ piece: ExtractionJournal.Piece, values: Int, of extraction: ExtractionJob) {
            var position = values, reasons = piece.reasons.makeIterator()
            for (image, count) in zip(piece.images, piece.counts) {
                placed[image] = (position, count)
                if count < 0 {
                    let entry = extraction.images[image]
                    skipped[image] = SkippedImageReport(key: entry.key, path: entry.path, message: reasons.next() ?? "")
                }
                position += max(0, count) * FeatureExtractor.dimension * 4
                descriptors += max(0, count)
                done += 1
            }
        }

        func report(_ job: UInt64, to coordinator: Coordinator) {
            coordinator.jobs.progress(job, imagesDone: done, descriptors: descriptors, skipped: skipped.keys.sorted().map { skipped[$0]! })
        }
    }

    private func images(of shard: Int) -> [ImageSource.Entry] { pending[plan.rows(of: shard)].map { extraction.images[$0] } }

    func check(shard: Int, _ message: WireMessage) throws {
        checked[shard] = nil
        guard shard < plan.count else { throw ClusterError.malformed("shard \(shard) is not one of the pass's \(plan.count)") }
        let result = try ExtractedDescriptors(shape: try message.decode(StatisticsShape.self), message: message)
        try result.check(against: images(of: shard))
        checked[shard] = result
    }

    func deliver(shard: Int, message: WireMessage) {
        guard let coordinator else { return }
        guard let result = checked.removeValue(forKey: shard) else { preconditionFailure("shard \(shard) delivered without a check that passed") }
        let piece = ExtractionJournal.Piece(images: Array(pending[plan.rows(of: shard)]), counts: result.counts, reasons: result.errors)
        if extraction.strict, let index = result.counts.firstIndex(where: { $0 < 0 }) {
            let image = extraction.images[piece.images[index]]
            return fail("image \(image.path) (key \(image.key)) cannot be read: \(result.errors.first ?? "")")
        }
        do {
            collected.place(piece, values: try journal.append(piece, values: result.values), of: extraction)
        } catch {
            return fail("shard \(shard): \(error)")
        }
        shardsLeft -= 1
        collected.report(job, to: coordinator)
        if shardsLeft == 0 { finishSoon() }
    }

    /// Runs `finish` on a thread of its own (it copies every descriptor).
    func finishSoon() {
        guard let coordinator else { return }
        let done = coordinator.trackJobTask()
        DispatchQueue.global().async { [self] in
            finish()
            done.signal()
        }
    }

    /// Writes the descriptor file and the index from the journal, in image order, and ends
    /// the job (succeeded, or failed naming what went wrong).
    private func finish() {
        guard let coordinator else { return }
        do {
            if !extraction.replace, let existing = [extraction.descriptors, extraction.index].first(where: { FileManager.default.fileExists(atPath: $0) }) {
                throw ClusterError(.exists, "\(existing) appeared while the job ran; it is not replaced")
            }
            let writer = try DescriptorWriter(path: extraction.descriptors, dimension: FeatureExtractor.dimension)
            defer { writer.cancel() }
            var index = "", values: [Float] = []
            for (image, place) in zip(extraction.images, collected.placed) {
                guard let (offset, count) = place else { preconditionFailure("image \(image.key) of a finished pass is missing") }
                guard count >= 0 else { continue }
                index += "\(image.key)\t\(writer.rows)\t\(count)\n"
                values = [Float](repeating: 0, count: count * FeatureExtractor.dimension)
                try values.withUnsafeMutableBytes { try journal.read($0, at: offset) }
                try writer.append(values)
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
            journal.end(removing: true)
            try coordinator.jobs.finishExtraction(job)
            coordinator.logger.info("extraction job \(job) finished", metadata: ["descriptors": "\(collected.descriptors)",
                                                                                "skipped": "\(collected.skipped.count)"])
        } catch {
            fail("\(error)")
        }
    }

    func fail(_ message: String) {
        // A coordinator stopping that keeps its jobs resumes this one: its journal stays.
        journal.end(removing: coordinator.map { !$0.jobs.keepsStoredJobsForNextStart } ?? false)
        guard let coordinator, coordinator.jobs[job]?.record.state == .running else { return }
        coordinator.jobs.fail(job, message: message)
        coordinator.logJobEnd("extraction job \(job)", message)
        coordinator.cancelPasses(of: job)
    }

    func addDispatchTime(_ duration: Duration) {}
}
