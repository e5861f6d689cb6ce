@testable import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation
import Storage
import TestSupport
import Testing

/// Extraction jobs across a coordinator restart: one left running starts again and writes
/// the files of an uninterrupted run; stored records that cannot be run again (an older
/// coordinator's, truncated or hostile) fail with a reason while the coordinator serves on.
@Suite(.serialized) struct ExtractionResumeTests {
    /// Runs a coordinator on the store at `path` (with `workers` workers) until `body` returns,
    /// then stops it keeping its jobs, as a coordinator process stops on SIGTERM, and closes
    /// the store so that the next one can open it.
    static func withCoordinator<Result>(store path: String, workers: Int,
                                        _ body: (LocalCoordinator) async throws -> Result) async throws -> Result {
        var store: CodebookStore? = try CodebookStore(path: path)
        let result: Result
        do {
            let cluster = try LocalCoordinator(store: store)
            defer { cluster.stop(keepingJobs: true) }
            for _ in 0..<workers { cluster.startWorker() }
            result = try await body(cluster)
        }
        try #require(CodebookStore.close(&store, waitingUpTo: .seconds(30)), "the store is still in use after the stop")
        return result
    }

    /// Waits until job `id` has ended; returns its last progress.
    static func ended(_ id: UInt64, _ cluster: LocalCoordinator) async throws -> JobProgress {
        let client = try cluster.client()
        _ = try await waitUntil(timeout: 60) { try client.progress(of: id, since: 0).state != .running }
        return try client.progress(of: id, since: 0)
    }

    /// Submitted to a coordinator without workers, then stopped (SIGTERM): the next
    /// coordinator on the store extracts every image and writes the files a local run
    /// writes. It first removes the outputs' temporary files left by a process that is gone
    /// (a coordinator killed while writing them), and keeps those of a live one. The old
    /// code failed the job ("an extraction job does not resume").
    @Test(.timeLimit(.minutes(3)))
    func aRunningExtractionStartsAgainAfterARestartAndWritesWhatALocalRunWrites() async throws {
        let scratch = try TemporaryDirectory()
        let source = try ImageSource(directory: try TestImages.folder(in: scratch))
        let parameters = ExtractionParameters(method: .sift, maxSide: 200)
        let local = (scratch.file("local.npy"), scratch.file("local.tsv"))
        _ = try Extraction(extractor: try parameters.extractor(), threads: 2).run(source, descriptors: local.0, index: local.1)
        let out = (scratch.file("d.npy"), scratch.file("d.tsv"))
        let job = ExtractionJob(images: source.entries, extraction: parameters, descriptors: out.0, index: out.1, imagesPerShard: 2)
        let path = scratch.file("store")

        let id = try await Self.withCoordinator(store: path, workers: 0) { cluster in
            let id = try cluster.client().submit(job)
            #expect(try cluster.client().progress(of: id, since: 0).state == .running)
            return id
        }
        // Pid 2^31 − 1 is above any pid_max: no process has it.
        let abandoned = scratch.file(".d.npy.tmp-\(Int32.max)-7"), live = scratch.file(".d.tsv.tmp-\(getpid())-8")
        let unrelated = scratch.file(".d.npy.tmp-notapid-9")
        for file in [abandoned, live, unrelated] { #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8))) }

        let progress = try await Self.withCoordinator(store: path, workers: 2) { try await Self.ended(id, $0) }
        #expect(progress.state == .succeeded, "\(progress)")
        let same = FileManager.default.contents(atPath: out.0) == FileManager.default.contents(atPath: local.0)
            && FileManager.default.contents(atPath: out.1) == FileManager.default.contents(atPath: local.1)
        #expect(same, "the files differ from a local run's")
        #expect(progress.imagesDone == source.entries.count && progress.imagesTotal == source.entries.count)
        #expect(!FileManager.default.fileExists(atPath: abandoned))
        #expect(FileManager.default.fileExists(atPath: live) && FileManager.default.fileExists(atPath: unrelated))

        // Ended, it is stored without its images, and not started again.
        let store = try CodebookStore(path: path)
        let record = try #require(try store.job(id)).decode(JobRecord.self, key: "job \(id)")
        #expect(record.state == .succeeded && record.extraction?.images == [] && record.imagesTotal == source.entries.count)
    }

    /// Running extraction records a coordinator cannot start again: without images (as an
    /// older coordinator stored them), with fewer images than it says, with a relative
    /// image path, with a negative shard size, with an output that appeared meanwhile. The
    /// restarted coordinator fails each naming why, and runs the good one beside them.
    @Test(.timeLimit(.minutes(3)))
    func storedExtractionsThatCannotStartAgainFailWithAReason() async throws {
        let scratch = try TemporaryDirectory()
        let source = try ImageSource(directory: try TestImages.folder(in: scratch))
        let good = ExtractionJob(images: source.entries, extraction: ExtractionParameters(method: .sift, maxSide: 200),
                                 descriptors: scratch.file("good.npy"), index: scratch.file("good.tsv"), imagesPerShard: 3)
        func variant(_ name: String, _ change: (inout ExtractionJob) -> Void) -> ExtractionJob {
            var job = good
            job.descriptors = scratch.file("\(name).npy")
            job.index = scratch.file("\(name).tsv")
            change(&job)
            return job
        }
        let path = scratch.file("store")
        do {
            let store = try CodebookStore(path: path)
            func put(_ id: UInt64, _ job: ExtractionJob, imagesTotal: Int?) throws {
                var record = JobRecord(extraction: job, state: .running, iterations: [], initialValues: 0)
                record.imagesTotal = imagesTotal
                try store.putJob(id, try StoredValue(kind: .job, metadata: record))
            }
            try put(1, variant("old") { $0.images = [] }, imagesTotal: nil)
            try put(2, variant("short") { $0.images.removeLast() }, imagesTotal: source.entries.count)
            try put(3, variant("relative") { $0.images[1] = ImageSource.Entry(key: $0.images[1].key, path: "photo.png") }, imagesTotal: source.entries.count)
            try put(4, variant("shards") { $0.imagesPerShard = -3 }, imagesTotal: source.entries.count)
            try put(5, variant("exists") { _ in }, imagesTotal: source.entries.count)
            try put(6, good, imagesTotal: source.entries.count)
        }
        FileManager.default.createFile(atPath: scratch.file("exists.tsv"), contents: Data())
        // What job 5's shards brought in before the restart: it goes with the job.
        try ExtractionJournal(job: 5, extraction: variant("exists") { _ in }, resuming: false).end(removing: false)
        #expect(FileManager.default.fileExists(atPath: ExtractionJournal.path(job: 5, descriptors: scratch.file("exists.npy"))))

        let progress = try await Self.withCoordinator(store: path, workers: 1) { cluster in
            var progress: [JobProgress] = []
            for id in UInt64(1)...6 { progress.append(try await Self.ended(id, cluster)) }
            return progress
        }
        #expect(progress.map(\.state) == [.failed, .failed, .failed, .failed, .failed, .succeeded], "\(progress)")
        let reasons = progress.map { $0.message ?? "" }
        #expect(reasons[..<5].allSatisfy { $0.hasPrefix("cannot resume after a restart: ") }, "\(reasons)")
        #expect(reasons[0].contains("job 1 was stored without its list of images"), "\(reasons[0])")
        #expect(reasons[1].contains("job 2 holds \(source.entries.count - 1) images of the \(source.entries.count)"), "\(reasons[1])")
        #expect(reasons[2].contains("photo.png is not an absolute path"), "\(reasons[2])")
        #expect(reasons[3].contains("images per shard"), "\(reasons[3])")
        #expect(reasons[4].contains("\(scratch.file("exists.tsv")) exists"), "\(reasons[4])")
        #expect(!FileManager.default.fileExists(atPath: ExtractionJournal.path(job: 5, descriptors: scratch.file("exists.npy"))))
        #expect(FileManager.default.fileExists(atPath: good.descriptors) && FileManager.default.fileExists(atPath: good.index))
    }

    /// Stored job values that cannot be read at all: a record cut short, metadata that is not
    /// a job record, a value of another kind. The coordinator used to refuse to start ("corrupt
    /// value"); it now stores each as failed saying why, lists it, and runs the good job.
    @Test(.timeLimit(.minutes(2)))
    func unreadableStoredJobsAreStoredAsFailedAndTheCoordinatorServesOn() async throws {
        let scratch = try TemporaryDirectory()
        let source = try ImageSource(directory: try TestImages.folder(in: scratch))
        let job = ExtractionJob(images: source.entries, extraction: ExtractionParameters(method: .sift, maxSide: 200),
                                descriptors: scratch.file("d.npy"), index: scratch.file("d.tsv"))
        let path = scratch.file("store")
        do {
            var record = JobRecord(extraction: job, state: .running, iterations: [], initialValues: 0)
            record.imagesTotal = job.images.count
            let good = try StoredValue(kind: .job, metadata: record).bytes
            let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
            let jobs = try #require(database.columnFamily(named: "jobs"))
            let values = [Array(good.prefix(good.count / 2)),
                          try StoredValue(kind: .job, metadata: ["state": 7]).bytes,
                          try StoredValue(kind: .set, metadata: ["state": "running"]).bytes,
                          good]
            for (id, value) in zip(UInt64(1)..., values) { try database.put(withUnsafeBytes(of: id.bigEndian) { Array($0) }, value, in: jobs) }
        }
        let progress = try await Self.withCoordinator(store: path, workers: 1) { cluster in
            let client = try cluster.client()
            #expect(try client.status().jobs.map(\.job).sorted() == [1, 2, 3, 4])
            var progress: [JobProgress] = []
            for id in UInt64(1)...4 { progress.append(try await Self.ended(id, cluster)) }
            return progress
        }
        #expect(progress.map(\.state) == [.failed, .failed, .failed, .succeeded], "\(progress)")
        for failed in progress.prefix(3) {
            #expect(failed.message?.hasPrefix("its stored record cannot be read: corrupt value: job \(failed.job)") == true,
                    "\(String(describing: failed.message))")
        }
        let store = try CodebookStore(path: path)
        #expect(try store.allJobs().map { try $0.value.decode(JobRecord.self, key: "").state } == [.failed, .failed, .failed, .succeeded])
    }

    /// A job of 60 images (the test folder ten times over, a bad file among them), one image a
    /// shard, stopped (SIGTERM) after a few shards are in, with `damage` done to its journal
    /// meanwhile (given the images the journal holds, it returns those that should be read
    /// back). The restarted coordinator reports those before any worker is there, then
    /// finishes, writing the files of an uninterrupted local run, and removes its journal.
    /// The progress before the stop, and the images held before the damage.
    @discardableResult
    static func resume(damage: (String, Int) throws -> Int) async throws -> (before: JobProgress, held: Int) {
        let scratch = try TemporaryDirectory()
        let folder = try ImageSource(directory: try TestImages.folder(in: scratch))
        let images = (0..<10).flatMap { round in folder.entries.map { ImageSource.Entry(key: "\(round)-\($0.key)", path: $0.path) } }
        let parameters = ExtractionParameters(method: .sift, maxSide: 200)
        let local = (scratch.file("local.npy"), scratch.file("local.tsv"))
        _ = try Extraction(extractor: try parameters.extractor(), threads: 2).run(try ImageSource(entries: images), descriptors: local.0, index: local.1)
        let out = (scratch.file("d.npy"), scratch.file("d.tsv"))
        let job = ExtractionJob(images: images, extraction: parameters, descriptors: out.0, index: out.1, imagesPerShard: 1)
        let path = scratch.file("store")

        let (id, before) = try await withCoordinator(store: path, workers: 1) { cluster in
            let client = try cluster.client()
            let id = try client.submit(job)
            try #require(await waitUntil(timeout: 60) { try client.progress(of: id, since: 0).imagesDone ?? 0 >= 3 })
            return (id, try client.progress(of: id, since: 0))
        }
        try #require(before.state == .running, "the job ended before the stop: \(before)")
        let journal = ExtractionJournal.path(job: id, descriptors: out.0)
        let held = try ExtractionJournal(job: id, extraction: job, resuming: true).recovered.reduce(0) { $0 + $1.piece.images.count }
        let kept = try damage(journal, held)

        let (resumed, final) = try await withCoordinator(store: path, workers: 0) { cluster in
            let resumed = try cluster.client().progress(of: id, since: 0)
            cluster.startWorker()
            return (resumed, try await ended(id, cluster))
        }
        #expect(final.state == .succeeded, "\(final)")
        let same = FileManager.default.contents(atPath: out.0) == FileManager.default.contents(atPath: local.0)
            && FileManager.default.contents(atPath: out.1) == FileManager.default.contents(atPath: local.1)
        #expect(same, "the files differ from a local run's")
        #expect(final.imagesDone == images.count && final.skipped?.count == 10)
        #expect(!FileManager.default.fileExists(atPath: journal))
        #expect(resumed.imagesDone == kept, "\(resumed)")
        return (before, held)
    }

    /// The restarted job starts with every image its shards had brought in before the stop
    /// (at least those reported), and extracts only the others. The old code started again
    /// from the first image: it reported none.
    @Test(.timeLimit(.minutes(4)))
    func aRestartedExtractionResumesWithTheImagesItHadAndWritesWhatALocalRunWrites() async throws {
        let (before, held) = try await Self.resume { _, held in held }
        #expect(held >= before.imagesDone ?? 0 && held >= 3, "\(before), \(held) held")
    }

    /// A journal cut inside its last piece, with bytes appended: the pieces before the cut are
    /// kept, the rest is extracted again, and the files are still a local run's.
    @Test(.timeLimit(.minutes(4)))
    func aTornJournalKeepsThePiecesBeforeTheTear() async throws {
        try await Self.resume { journal, held in
            let handle = try #require(FileHandle(forUpdatingAtPath: journal))
            let size = try handle.seekToEnd()
            try handle.truncate(atOffset: size - 1)
            try handle.write(contentsOf: Data((0..<300).map { UInt8($0 % 251) }))
            try handle.close()
            return held - 1
        }
    }

    /// A journal of another job at the path (another fingerprint): ignored, every image is
    /// extracted again.
    @Test(.timeLimit(.minutes(4)))
    func aJournalOfAnotherJobIsNotReadBack() async throws {
        try await Self.resume { journal, _ in
            let handle = try #require(FileHandle(forUpdatingAtPath: journal))
            try handle.seek(toOffset: 8)
            try handle.write(contentsOf: Data(repeating: 0x5a, count: 8))
            try handle.close()
            return 0
        }
    }
}
