import Descriptors
import Features
import Foundation
import TestSupport
import Testing

@Suite struct ExtractCommandTests {
    @Test(.timeLimit(.minutes(3)))
    func extractTrainAndEncodeEndToEnd() throws {
        let scratch = try TemporaryDirectory()
        let folder = try TestImages.folder(in: scratch)
        let descriptors = scratch.file("d.npy"), index = scratch.file("d.tsv"), store = scratch.file("store")
        var outcome = try CommandRunner.run(["extract", "--images", folder, "--max-side", "200", "--out", descriptors,
                                             "--index", index, "--threads", "2"])
        #expect(outcome.status == 0, "\(outcome.error)")
        #expect(outcome.error.contains("warning: skipped \(folder)/bad.jpg: ") && outcome.error.contains("cannot decode"), "\(outcome.error)")
        #expect(outcome.output.contains("from 5 images") && outcome.output.contains("skipped 1 of 6 images"), "\(outcome.output)")
        let images = try ImageCollection(index: index, descriptors: descriptors)
        #expect(images.map(\.key) == (0..<5).map { "photo-\($0)" } && images.allSatisfy { $0.rows > 10 })

        // --strict: the bad image is an error naming it, and no output is left behind.
        outcome = try CommandRunner.run(["extract", "--images", folder, "--strict", "--out", scratch.file("s.npy"),
                                         "--index", scratch.file("s.tsv")])
        #expect(outcome.status != 0 && outcome.error.contains("bad.jpg"), "\(outcome.error)")
        #expect(!FileManager.default.fileExists(atPath: scratch.file("s.npy")) && !FileManager.default.fileExists(atPath: scratch.file("s.tsv")))

        // Train on RootSIFT of the plain SIFT descriptors (embedded cluster), then encode in this
        // process and on the cluster: the same vectors.
        outcome = try CommandRunner.run(["train", "kmeans", "--corpus", descriptors, "--k", "8", "--iterations", "5", "--root-sift",
                                         "--store", store, "--name", "M", "--out", scratch.file("c.npy")])
        #expect(outcome.status == 0, "\(outcome.error)")
        let centres = try NpyFile.readFloat32(path: scratch.file("c.npy"))
        // RootSIFT rows have unit L2 norm, so their means have at most 1.
        #expect(centres.rows == 8 && (0..<8).allSatisfy { c in centres.values[c * 128 ..< (c + 1) * 128].reduce(0) { $0 + $1 * $1 } <= 1.0001 })
        outcome = try CommandRunner.run(["encode", "vlad", "--centres", scratch.file("c.npy"), "--descriptors", descriptors,
                                         "--index", index, "--root-sift", "--square-root", "--out", scratch.file("v.npy")])
        #expect(outcome.status == 0, "\(outcome.error)")
        let local = try NpyFile.readFloat32(path: scratch.file("v.npy"))
        #expect(local.rows == 5 && local.columns == 8 * 128)
        outcome = try CommandRunner.run(["encode", "vlad", "--model", "M", "--set", "V", "--descriptors", descriptors, "--index", index,
                                         "--root-sift", "--square-root", "--store", store])
        #expect(outcome.status == 0, "\(outcome.error)")
        outcome = try CommandRunner.run(["export", "set", "V", "--out", scratch.file("e.npy"), "--store", store])
        #expect(outcome.status == 0, "\(outcome.error)")
        let stored = try NpyFile.readFloat32(path: scratch.file("e.npy"))
        #expect(stored.values.map(\.bitPattern) == local.values.map(\.bitPattern))
        // The plain descriptors encode differently: the transform was applied.
        outcome = try CommandRunner.run(["encode", "vlad", "--centres", scratch.file("c.npy"), "--descriptors", descriptors,
                                         "--index", index, "--square-root", "--out", scratch.file("p.npy")])
        #expect(try NpyFile.readFloat32(path: scratch.file("p.npy")).values != local.values)
        // A set of RootSIFT vectors takes no plain ones.
        outcome = try CommandRunner.run(["encode", "vlad", "--model", "M", "--set", "V", "--descriptors", descriptors, "--index", index,
                                         "--square-root", "--store", store])
        #expect(outcome.status != 0 && outcome.error.contains("root-sift descriptors"), "\(outcome.error)")
    }

    @Test func dsiftAndRootSIFTOnExtract() throws {
        let scratch = try TemporaryDirectory()
        let folder = try TestImages.folder(in: scratch)
        let list = scratch.file("list.tsv")
        try "a\timages/photo-0.png\nb\t\(folder)/photo-1.jpg\n".write(toFile: list, atomically: true, encoding: .utf8)
        let outcome = try CommandRunner.run(["extract", "--image-list", list, "--method", "dsift", "--step", "8", "--bin-size", "6",
                                             "--root-sift", "--out", scratch.file("d.fvecs"), "--index", scratch.file("d.tsv")])
        #expect(outcome.status == 0, "\(outcome.error)")
        let images = try ImageCollection(index: scratch.file("d.tsv"), descriptors: scratch.file("d.fvecs"))
        // 160×120 and 120×160 with 4 bins of 6 pixels every 8 pixels: ⌊(159−18)/8⌋+1 by ⌊(119−18)/8⌋+1.
        #expect(images.map(\.key) == ["a", "b"] && images.map(\.rows) == [18 * 13, 13 * 18])
        let rows = try images[0].descriptors().toArray()
        for start in stride(from: 0, to: rows.count, by: 128) {
            let norm = rows[start ..< start + 128].reduce(0) { $0 + $1 * $1 }
            #expect(norm == 0 || abs(norm - 1) < 1e-4)
        }
    }
}
