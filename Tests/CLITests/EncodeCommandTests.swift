import Descriptors
import Foundation
import TestSupport
import Testing

/// `codebook encode … --out FILE` leaves FILE complete or as it was, and no temporary file,
/// whether it succeeds, meets a bad image half-way, or cannot write.
@Suite struct EncodeCommandTests {
    static let images = 64, rows = 20, d = 32, k = 16

    /// 64 images of 20 rows (D = 32) and K = 16 centres, so VLAD vectors of 2 KiB; with a NaN
    /// in image `nanImage`'s sixth row. The `encode vlad` arguments over them, to `v.npy`.
    static func arguments(in scratch: TemporaryDirectory, nanImage: Int? = nil) throws -> [String] {
        var random = SeededGenerator(seed: 51)
        var values = (0..<images * rows * d).map { _ in Float(random.nextGaussian()) }
        if let nanImage { values[(nanImage * rows + 5) * d] = .nan }
        try NpyFile.write(path: scratch.file("d.npy"), rows: images * rows, columns: d, values: values)
        try NpyFile.write(path: scratch.file("c.npy"), rows: k, columns: d, values: (0..<k * d).map { _ in Float(random.nextGaussian()) })
        let index = (0..<images).map { "image\($0)\t\($0 * rows)\t\(rows)\n" }.joined()
        return ["encode", "vlad", "--centres", scratch.file("c.npy"), "--descriptors", scratch.file("d.npy"),
                "--index", scratch.write("d.tsv", text: index), "--out", scratch.file("v.npy"), "--threads", "2"]
    }

    /// The files in `scratch` besides the inputs.
    static func outputs(_ scratch: TemporaryDirectory) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { !["c.npy", "d.npy", "d.tsv"].contains($0) }.sorted()
    }

    @Test(.timeLimit(.minutes(2)))
    func writesEveryVector() throws {
        let scratch = try TemporaryDirectory()
        let outcome = try CommandRunner.run(try Self.arguments(in: scratch))
        #expect(outcome.status == 0, "\(outcome.error)")
        let vectors = try NpyFile.readFloat32(path: scratch.file("v.npy"))
        #expect(vectors.rows == Self.images && vectors.columns == Self.k * Self.d)
        // Every vector is L2-normalised (none left as the zeros of an unwritten row).
        for row in 0..<vectors.rows {
            let norm = vectors.values[row * vectors.columns ..< (row + 1) * vectors.columns].reduce(0) { $0 + Double($1) * Double($1) }
            #expect(abs(norm - 1) < 1e-5, "image \(row): squared norm \(norm)")
        }
        #expect(try Self.outputs(scratch) == ["v.npy"])
    }

    /// A NaN in image 40 (a later block than the first): the error names its row, and the
    /// existing v.npy is untouched, with no temporary file left.
    @Test(.timeLimit(.minutes(2)))
    func aBadImageLeavesTheOldFile() throws {
        let scratch = try TemporaryDirectory()
        let old = scratch.write("v.npy", text: "old")
        let outcome = try CommandRunner.run(try Self.arguments(in: scratch, nanImage: 40))
        #expect(outcome.status != 0)
        #expect(outcome.error.contains("row \(40 * Self.rows + 5)"), "\(outcome.error)")
        #expect(FileManager.default.contents(atPath: old) == Data("old".utf8))
        #expect(try Self.outputs(scratch) == ["v.npy"])
    }

    /// A file size limit of 32 KiB (RLIMIT_FSIZE, SIGXFSZ ignored) for 128 KiB of vectors: a
    /// write error naming the failed write, the old file untouched, no temporary file.
    @Test(.timeLimit(.minutes(2)))
    func aFullDiskLeavesTheOldFile() throws {
        let scratch = try TemporaryDirectory()
        let old = scratch.write("v.npy", text: "old")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "trap '' XFSZ; ulimit -f 64; exec \"$@\"", "sh", codebookExecutable.path]
            + (try Self.arguments(in: scratch))
        let error = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = error
        try process.run()
        let text = String(decoding: error.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus != 0, "\(text)")
        #expect(text.contains("cannot write"), "\(text)")
        #expect(FileManager.default.contents(atPath: old) == Data("old".utf8))
        #expect(try Self.outputs(scratch) == ["v.npy"])
    }
}
