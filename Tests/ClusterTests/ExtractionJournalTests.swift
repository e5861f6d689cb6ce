@testable import Cluster
import ClusterProtocol
import Descriptors
import Features
import Foundation
import TestSupport
import Testing

/// An extraction journal read back as hostile: pieces are kept up to the first that fails a
/// check, and the file is cut there.
@Suite struct ExtractionJournalTests {
    static let dimension = FeatureExtractor.dimension

    static func job(in scratch: TemporaryDirectory, images: Int = 6, strict: Bool = false) -> ExtractionJob {
        ExtractionJob(images: (0..<images).map { ImageSource.Entry(key: "k\($0)", path: "/images/\($0).png") },
                      extraction: ExtractionParameters(method: .sift, maxSide: 200), descriptors: scratch.file("d.npy"),
                      index: scratch.file("d.tsv"), strict: strict)
    }

    /// Writes `pieces` (each with one descriptor of value `image` per count, up to 4) to a new journal, then
    /// reopens it to resume: the images of the pieces read back, in order.
    static func readBack(_ pieces: [ExtractionJournal.Piece], extra values: Int = 0, strict: Bool = false) throws -> [[Int]] {
        let scratch = try TemporaryDirectory()
        let job = job(in: scratch, strict: strict)
        let journal = try ExtractionJournal(job: 3, extraction: job, resuming: false)
        for piece in pieces {
            let values = zip(piece.images, piece.counts).flatMap { image, count in
                // At most 4 descriptors: a piece claiming more has fewer values.
                [Float](repeating: Float(image), count: min(max(0, count), 4) * dimension)
            } + [Float](repeating: 0, count: values)
            _ = try journal.append(piece, values: values)
        }
        journal.end(removing: false)
        let reopened = try ExtractionJournal(job: 3, extraction: job, resuming: true)
        defer { reopened.end(removing: true) }
        // What is read back is where the pieces' values are.
        for (piece, offset) in reopened.recovered {
            var first = [Float](repeating: -1, count: dimension)
            if let index = piece.counts.firstIndex(where: { $0 > 0 }) {
                try first.withUnsafeMutableBytes { try reopened.read($0, at: offset) }
                #expect(first == [Float](repeating: Float(piece.images[index]), count: dimension))
            }
        }
        return reopened.recovered.map(\.piece.images)
    }

    /// Every piece is synced to disk before `append` returns, and a new journal's directory
    /// once: a piece counted as done survives a crash of the operating system. A failed sync
    /// fails the append, naming the journal. The old journal was never synced.
    @Test func piecesAreSyncedBeforeTheyCount() throws {
        let scratch = try TemporaryDirectory()
        let job = Self.job(in: scratch)
        final class Syncs: @unchecked Sendable { var descriptors: [Int32] = []; var failing = false }
        let syncs = Syncs()
        let sync: ExtractionJournal.Sync = { descriptor in
            syncs.descriptors.append(descriptor)
            guard !syncs.failing else {
                errno = EIO
                return -1
            }
            return fdatasync(descriptor)
        }
        let journal = try ExtractionJournal(job: 3, extraction: job, resuming: false, sync: sync)
        #expect(syncs.descriptors.count == 2 && syncs.descriptors[0] != syncs.descriptors[1], "\(syncs.descriptors)")
        let file = syncs.descriptors[0]
        for image in 0..<3 {
            _ = try journal.append(ExtractionJournal.Piece(images: [image], counts: [1], reasons: []),
                                   values: [Float](repeating: 1, count: Self.dimension))
            #expect(syncs.descriptors.count == 3 + image && syncs.descriptors.last == file, "\(syncs.descriptors)")
        }
        syncs.failing = true
        let error = #expect(throws: DescriptorError.self) {
            try journal.append(ExtractionJournal.Piece(images: [3], counts: [0], reasons: []), values: [])
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("cannot sync the extraction's journal to disk"), "\(String(describing: error))")
        journal.end(removing: false)
        // Reopened to resume: the file exists, so only the file is synced, not its directory.
        syncs.failing = false
        syncs.descriptors = []
        let reopened = try ExtractionJournal(job: 3, extraction: job, resuming: true, sync: sync)
        defer { reopened.end(removing: true) }
        // (The piece whose sync failed was written: it may be read back, as any unsynced bytes.)
        #expect(Array(reopened.recovered.map(\.piece.images).prefix(3)) == [[0], [1], [2]] && syncs.descriptors.count == 1,
                "\(reopened.recovered.map(\.piece.images)), \(syncs.descriptors)")
    }

    /// A FIFO or a link planted where the journal goes is refused: reading a FIFO back to
    /// resume would wait for ever, and a link would write elsewhere.
    @Test(.timeLimit(.minutes(1))) func aJournalPathThatIsNotARegularFileIsRefused() throws {
        let scratch = try TemporaryDirectory()
        let job = Self.job(in: scratch)
        let path = ExtractionJournal.path(job: 3, descriptors: job.descriptors)
        #expect(mkfifo(path, 0o600) == 0)
        for resuming in [true, false] {
            #expect(throws: DescriptorError.self, "a FIFO, resuming: \(resuming)") {
                try ExtractionJournal(job: 3, extraction: job, resuming: resuming)
            }
        }
        #expect(unlink(path) == 0)
        #expect(symlink(scratch.file("elsewhere"), path) == 0)
        #expect(throws: DescriptorError.self) { try ExtractionJournal(job: 3, extraction: job, resuming: true) }
        #expect(!FileManager.default.fileExists(atPath: scratch.file("elsewhere")))
    }

    /// A journal another user made (they could read and change it while the job runs) is
    /// refused, resuming or not; it needs a process that may give a file away (root).
    @Test(.enabled(if: geteuid() == 0)) func aJournalOfAnotherUserIsRefused() throws {
        let scratch = try TemporaryDirectory()
        let job = Self.job(in: scratch)
        let path = ExtractionJournal.path(job: 3, descriptors: job.descriptors)
        try ExtractionJournal(job: 3, extraction: job, resuming: false).end(removing: false)
        #expect(chown(path, 65534, 65534) == 0)
        for resuming in [true, false] {
            #expect(throws: DescriptorError.self, "resuming: \(resuming)") {
                try ExtractionJournal(job: 3, extraction: job, resuming: resuming)
            }
        }
    }

    /// Pieces that pass every check, but written for another job (copied to this job's
    /// path) or for another submission under the same id (other images, other options): none
    /// is taken, and the journal starts afresh.
    @Test func aJournalOfAnotherJobOrSubmissionIsStartedAfresh() throws {
        let scratch = try TemporaryDirectory()
        let job = Self.job(in: scratch)
        let journal = try ExtractionJournal(job: 3, extraction: job, resuming: false)
        _ = try journal.append(ExtractionJournal.Piece(images: [0], counts: [1], reasons: []),
                               values: [Float](repeating: 1, count: Self.dimension))
        journal.end(removing: false)
        let written = try Data(contentsOf: URL(fileURLWithPath: ExtractionJournal.path(job: 3, descriptors: job.descriptors)))
        var otherImages = job, otherOptions = job
        otherImages.images[0] = ImageSource.Entry(key: "k0", path: "/images/elsewhere.png")
        otherOptions.extraction.maxSide = 201
        // Its own job and submission take the piece back; the others none.
        for (id, submission, kept) in [(UInt64(3), job, 1), (4, job, 0), (3, otherImages, 0), (3, otherOptions, 0)] {
            try written.write(to: URL(fileURLWithPath: ExtractionJournal.path(job: id, descriptors: job.descriptors)))
            let reopened = try ExtractionJournal(job: id, extraction: submission, resuming: true)
            #expect(reopened.recovered.count == kept, "job \(id)")
            reopened.end(removing: true)
        }
    }

    @Test func piecesThatPassEveryCheckAreReadBack() throws {
        let pieces = [ExtractionJournal.Piece(images: [2, 3], counts: [1, 0], reasons: []),
                      ExtractionJournal.Piece(images: [0], counts: [-1], reasons: ["unreadable"]),
                      ExtractionJournal.Piece(images: [4, 5], counts: [2, 3], reasons: [])]
        #expect(try Self.readBack(pieces) == [[2, 3], [0], [4, 5]])
    }

    /// Each bad piece ends what is read back (the good piece after it is not kept either).
    @Test(arguments: [
        ExtractionJournal.Piece(images: [2], counts: [1], reasons: []),            // an image held already
        ExtractionJournal.Piece(images: [6], counts: [1], reasons: []),            // beyond the job's images
        ExtractionJournal.Piece(images: [-1], counts: [1], reasons: []),           // negative
        ExtractionJournal.Piece(images: [4, 3], counts: [1, 1], reasons: []),      // not increasing
        ExtractionJournal.Piece(images: [], counts: [], reasons: []),              // empty
        ExtractionJournal.Piece(images: [4], counts: [1, 1], reasons: []),         // counts do not match
        ExtractionJournal.Piece(images: [4], counts: [-2], reasons: []),           // count below −1
        ExtractionJournal.Piece(images: [4], counts: [-1], reasons: []),           // a skip without a reason
        ExtractionJournal.Piece(images: [4], counts: [1], reasons: ["why"]),       // a reason without a skip
        ExtractionJournal.Piece(images: [4], counts: [-1], reasons: [String(repeating: "x", count: 1025)]),
        ExtractionJournal.Piece(images: [4], counts: [Int.max], reasons: []),      // more descriptors than values
    ])
    func aBadPieceEndsWhatIsReadBack(_ bad: ExtractionJournal.Piece) throws {
        let good = ExtractionJournal.Piece(images: [2], counts: [1], reasons: [])
        let after = ExtractionJournal.Piece(images: [5], counts: [1], reasons: [])
        #expect(try Self.readBack([good, bad, after]) == [[2]])
    }

    @Test func valuesBeyondTheDescriptorsCountedEndWhatIsReadBack() throws {
        #expect(try Self.readBack([ExtractionJournal.Piece(images: [1], counts: [1], reasons: [])], extra: 128) == [])
    }

    @Test func aSkippedImageInAStrictJobEndsWhatIsReadBack() throws {
        let pieces = [ExtractionJournal.Piece(images: [1], counts: [2], reasons: []),
                      ExtractionJournal.Piece(images: [2], counts: [-1], reasons: ["unreadable"])]
        #expect(try Self.readBack(pieces, strict: true) == [[1]])
    }

    /// Bytes changed on disk: a value (checksum), a byte count beyond the file or the limit.
    @Test func changedBytesEndWhatIsReadBackAndTheFileIsCutThere() throws {
        let scratch = try TemporaryDirectory()
        let job = Self.job(in: scratch)
        let journal = try ExtractionJournal(job: 3, extraction: job, resuming: false)
        var ends: [Int] = []
        for image in 0..<3 {
            let offset = try journal.append(ExtractionJournal.Piece(images: [image], counts: [1], reasons: []),
                                            values: [Float](repeating: 1, count: Self.dimension))
            ends.append(offset + Self.dimension * 4)
        }
        journal.end(removing: false)
        let original = try Data(contentsOf: URL(fileURLWithPath: journal.path))
        func reopen(_ change: (inout Data) -> Void) throws -> (images: Int, size: Int) {
            var bytes = original
            change(&bytes)
            try bytes.write(to: URL(fileURLWithPath: journal.path))
            let reopened = try ExtractionJournal(job: 3, extraction: job, resuming: true)
            reopened.end(removing: false)
            let size = try FileManager.default.attributesOfItem(atPath: journal.path)[.size] as! Int
            return (reopened.recovered.count, size)
        }
        #expect(try reopen { _ in } == (3, ends[2]))
        #expect(try reopen { $0[ends[1] - 5] ^= 1 } == (1, ends[0]))                             // a value of piece 2
        #expect(try reopen { $0[ends[0]] = 0xff; $0[ends[0] + 7] = 0x7f } == (1, ends[0]))       // metadata bytes: 2^63 − 1
        #expect(try reopen { $0[ends[0] + 8] = 0xff; $0[ends[0] + 12] = 0x01 } == (1, ends[0]))  // value bytes beyond the file
        #expect(try reopen { $0.count = ends[2] - 1 } == (2, ends[1]))                           // the last piece torn
        #expect(try reopen { $0.replaceSubrange(0..<8, with: Data("CBXJRNL2".utf8)) } == (0, 16)) // another format
    }
}
