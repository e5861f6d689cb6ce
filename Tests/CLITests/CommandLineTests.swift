import Descriptors
import Foundation
import Testing

@Suite struct CommandLineTests {
    @Test func generateTrainAndEncodeEndToEnd() throws {
        let scratch = try ScratchDirectory()
        let corpus = scratch.file("corpus.npy"), index = scratch.file("images.tsv")
        var outcome = try CommandRunner.run(["generate", "--n", "3000", "--dim", "16", "--clusters", "5", "--seed", "3",
                                             "--out", corpus, "--index", index, "--image-rows", "100"])
        #expect(outcome.status == 0, "\(outcome.error)")
        outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "8", "--iterations", "5",
                                         "--shard-rows", "512", "--store", scratch.file("store"), "--out", scratch.file("centres.npy")])
        #expect(outcome.status == 0, "\(outcome.error)")
        #expect(outcome.output.contains("k-means   4") || outcome.output.contains("converged"))
        let centres = try NpyFile.readFloat32(path: scratch.file("centres.npy"))
        #expect(centres.rows == 8 && centres.columns == 16)

        outcome = try CommandRunner.run(["train", "gmm", "--corpus", corpus, "--k", "4", "--iterations", "3",
                                         "--store", scratch.file("store"), "--out", scratch.file("gmm")])
        #expect(outcome.status == 0, "\(outcome.error)")
        #expect(outcome.output.contains("log-likelihood/row"))

        outcome = try CommandRunner.run(["encode", "vlad", "--centres", scratch.file("centres.npy"), "--descriptors", corpus,
                                         "--index", index, "--square-root", "--out", scratch.file("vlad.npy"), "--threads", "3"])
        #expect(outcome.status == 0, "\(outcome.error)")
        let vlad = try NpyFile.readFloat32(path: scratch.file("vlad.npy"))
        #expect(vlad.rows == 30 && vlad.columns == 8 * 16)

        outcome = try CommandRunner.run(["encode", "fisher", "--means", scratch.file("gmm_means.npy"),
                                         "--variances", scratch.file("gmm_variances.npy"), "--priors", scratch.file("gmm_priors.npy"),
                                         "--descriptors", corpus, "--index", index, "--improved", "--out", scratch.file("fisher.npy")])
        #expect(outcome.status == 0, "\(outcome.error)")
        let fisher = try NpyFile.readFloat32(path: scratch.file("fisher.npy"))
        #expect(fisher.rows == 30 && fisher.columns == 2 * 4 * 16)
        for row in 0..<30 {
            let norm = fisher.values[row * 128 ..< (row + 1) * 128].reduce(0) { $0 + $1 * $1 }
            #expect(abs(norm - 1) < 1e-4, "image \(row) is not L2-normalised")
        }
    }

    @Test func userErrorsGoToStandardErrorWithoutAStackTrace() throws {
        let scratch = try ScratchDirectory()
        let truncated = scratch.file("truncated.fvecs")
        var bytes = [UInt8]()
        withUnsafeBytes(of: Int32(4).littleEndian) { bytes += $0 }
        bytes += [UInt8](repeating: 0, count: 10)
        FileManager.default.createFile(atPath: truncated, contents: Data(bytes))
        let cases: [([String], String)] = [
            (["train", "kmeans", "--corpus", scratch.file("missing.npy"), "--k", "2"], "missing.npy"),
            (["train", "kmeans", "--corpus", truncated, "--k", "2"], "truncated"),
            (["train", "kmeans", "--corpus", scratch.file("x.txt"), "--k", "2"], "x.txt"),
            (["train", "kmeans", "--corpus", truncated, "--k", "0"], "--k"),
        ]
        for (arguments, expected) in cases {
            let outcome = try CommandRunner.run(arguments + ["--store", scratch.file("store"), "--out", scratch.file("c.npy")])
            #expect(outcome.status != 0, "\(arguments)")
            #expect(outcome.error.contains(expected), "\(arguments): \(outcome.error)")
            #expect(!outcome.error.contains("Fatal error") && !outcome.error.contains("Stack dump"))
        }
        #expect(!FileManager.default.fileExists(atPath: scratch.file("c.npy")))
    }

    @Test func kLargerThanTheCorpusNamesBothNumbers() throws {
        let scratch = try ScratchDirectory()
        let corpus = scratch.file("small.fvecs")
        #expect(try CommandRunner.run(["generate", "--n", "20", "--dim", "4", "--out", corpus]).status == 0)
        let outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "300", "--store", scratch.file("store"),
                                             "--out", scratch.file("c.npy")])
        #expect(outcome.status != 0)
        #expect(outcome.error.contains("k=300 but only 20 training rows"), "\(outcome.error)")
    }
}
