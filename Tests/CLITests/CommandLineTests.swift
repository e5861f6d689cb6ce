import Descriptors
import Foundation
import TestSupport
import Testing

@Suite struct CommandLineTests {
    @Test func aNegativeSearchCacheIsRefused() throws {
        let outcome = try CommandRunner.run(["coordinator", "--search-cache-bytes=-1"])
        #expect(outcome.status != 0 && outcome.error.contains("--search-cache-bytes must be at least 0"), "\(outcome.error)")
    }

    /// The embedded default on a small synthetic corpus, from descriptors to a ranked list of
    /// similar images: the first image's own vector ranks first, at cosine 1.
    @Test func theDemoEndsWithTheImagesMostLikeTheFirstOne() throws {
        let scratch = try TemporaryDirectory()
        let outcome = try CommandRunner.run(["demo", "--dir", scratch.file("demo"), "--rows", "6000", "--k", "8", "--components", "4"])
        #expect(outcome.status == 0, "\(outcome.error)")
        let lines = outcome.output.split(separator: "\n").map(String.init)
        let heading = try #require(lines.firstIndex { $0.hasPrefix("6. the images most like ") }, "\(outcome.output)")
        let query = String(lines[heading].dropFirst("6. the images most like ".count).prefix { $0 != ":" })
        let ranked = lines[(heading + 1)...].prefix { $0.hasPrefix("  ") }
        #expect(ranked.count == 5, "\(outcome.output)")
        #expect(ranked.first == "  1. \(query)  1.0000  (the query itself)", "\(outcome.output)")
    }

    @Test func generateTrainAndEncodeEndToEnd() throws {
        let scratch = try TemporaryDirectory()
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
        let scratch = try TemporaryDirectory()
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
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("small.fvecs")
        #expect(try CommandRunner.run(["generate", "--n", "20", "--dim", "4", "--out", corpus]).status == 0)
        let outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "300", "--store", scratch.file("store"),
                                             "--out", scratch.file("c.npy")])
        #expect(outcome.status != 0)
        #expect(outcome.error.contains("k=300 but only 20 training rows"), "\(outcome.error)")
    }

    /// Shards of 2^63 − 1 rows used to crash the embedded run; a FIFO as the corpus or model
    /// hung it, and a directory named like a corpus was an "I/O failure".
    @Test func hostileShardSizesAndFilesFailFastOrRun() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy"), fifo = scratch.file("fifo.npy"), directory = scratch.file("dir.npy")
        #expect(try CommandRunner.run(["generate", "--n", "200", "--dim", "4", "--out", corpus]).status == 0)
        #expect(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        let train = ["train", "kmeans", "--k", "2", "--iterations", "2", "--store", scratch.file("store"), "--out", scratch.file("c.npy")]
        let outcome = try CommandRunner.run(train + ["--corpus", corpus, "--shard-rows", "9223372036854775807"], timeout: 60)
        #expect(outcome.status == 0, "\(outcome.error)")
        let cases: [([String], String)] = [
            (train + ["--corpus", fifo], "\(fifo): invalid argument: is a FIFO, not a regular file"),
            (train + ["--corpus", directory], "\(directory): invalid argument: is a directory, not a regular file"),
            (["encode", "vlad", "--centres", fifo, "--descriptors", corpus, "--index", fifo, "--out", scratch.file("v.npy")],
             "\(fifo): invalid argument: is a FIFO, not a regular file"),
        ]
        for (arguments, expected) in cases {
            let outcome = try CommandRunner.run(arguments, timeout: 30)
            #expect(outcome.status != 0 && outcome.error.contains(expected), "\(arguments): status \(outcome.status), \(outcome.error)")
        }
    }
}
