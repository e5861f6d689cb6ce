import Cluster
import ClusterProtocol
import Foundation
import TestSupport
import Testing
@testable import codebook

@Suite struct ProgressOutputTests {
    // MARK: The bar, as a pure function

    private func pass(kind: String = "kmeans-assignment", shards: Int = 40, done: Int, rows: Int = 400_000, rowsDone: Int,
                      seconds: Double) -> PassProgress {
        PassProgress(pass: 3, kind: kind, shards: shards, shardsDone: done, rows: rows, rowsDone: rowsDone, seconds: seconds)
    }

    @Test func barFitsTheWidthAndShowsShardsRateAndETA() {
        let line = ProgressText.bar(pass(done: 10, rowsDone: 100_000, seconds: 2), width: 80)
        #expect(line.count == 80)
        #expect(line.hasPrefix("k-means ["))
        // 10 of 40 shards: a quarter of the bar filled.
        let bar = line.split(separator: "[")[1].split(separator: "]")[0]
        #expect(bar.count(where: { $0 == "#" }) == bar.count / 4)
        #expect(line.hasSuffix(" 10/40 shards  50.0k rows/s  ETA 6s"))
    }

    @Test func barOnANarrowTerminalIsCutAndOnAWideOneGrows() {
        let progress = pass(done: 40, rowsDone: 400_000, seconds: 4)
        #expect(ProgressText.bar(progress, width: 20).count == 20)
        #expect(ProgressText.bar(progress, width: 0) == "")
        let wide = ProgressText.bar(progress, width: 200)
        #expect(wide.count == 200 && wide.contains("[" + String(repeating: "#", count: 200 - "k-means ".count - " 40/40 shards  100.0k rows/s  ETA 0s".count - 2) + "]"))
    }

    @Test func barBeforeAnyShardHasNoETAAndSeedingShowsItsPhase() throws {
        let line = ProgressText.bar(pass(kind: "sample", done: 0, rowsDone: 0, seconds: 0.5), width: 100)
        #expect(line.hasPrefix("seeding (k-means++ sample) ["))
        #expect(line.hasSuffix(" 0/40 shards  0 rows/s  ETA --"))
        #expect(ProgressText.bar(pass(kind: "encode-vlad", done: 1, rowsDone: 64, seconds: 1), width: 100).contains("64 images/s"))
        #expect(ProgressText.phase("moments") == "seeding (moments)")
        #expect(ProgressText.phase("kmeans-parallel-round") == "seeding (k-means‖ round)")
        let round = try JSONDecoder().decode(IterationRecord.self, from: Data("""
            {"phase": "seeding", "iteration": 2, "valuePerRow": 1.5, "total": 3, "rows": 2, "seconds": 0.25, "repaired": 0,
             "smallest": 0, "largest": 517}
            """.utf8))
        #expect(ProgressText.iteration(round) == "seeding  2  cost/row 1.5  0.250 s  candidates 517")
        #expect(ProgressText.phase("gmm-expectation") == "EM")
        let pca = try JSONDecoder().decode(IterationRecord.self, from: Data("""
            {"phase": "pca", "iteration": 0, "valuePerRow": 0.65, "total": 0.65, "rows": 1000, "seconds": 2.5, "repaired": 0,
             "smallest": 0.00092, "largest": 0.0467}
            """.utf8))
        #expect(ProgressText.iteration(pca) == "PCA of 1000 rows  eigenvalue sum 0.65  2.500 s  eigenvalues 0.00092..0.0467")
    }

    @Test func durationsAreFormattedBySize() {
        #expect(ProgressText.duration(nil) == "--")
        #expect(ProgressText.duration(.infinity) == "--")
        #expect(ProgressText.duration(0) == "0s")
        #expect(ProgressText.duration(41.2) == "42s")
        #expect(ProgressText.duration(185) == "3m05s")
        #expect(ProgressText.duration(7_620) == "2h07m")
        #expect(ProgressText.count(950) == "950" && ProgressText.count(12_345) == "12.3k" && ProgressText.count(4_560_000) == "4.56M")
    }

    // MARK: --json and --quiet through the command line

    /// Without `--init`, k-means is seeded by k-means‖ from K = 4096 (its rounds and the
    /// weighting pass reported as `seeding` iterations), by k-means++ below.
    @Test(.timeLimit(.minutes(3)))
    func withoutInitLargeKIsSeededByKMeansParallelWithItsRoundsReported() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy")
        var outcome = try CommandRunner.run(["generate", "--n", "5000", "--dim", "4", "--clusters", "8", "--seed", "2", "--out", corpus])
        #expect(outcome.status == 0, "\(outcome.error)")
        for k in [4095, 4096] {
            outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", String(k), "--iterations", "1",
                                             "--out", scratch.file("c\(k).npy"), "--json", "--local-workers", "1"], timeout: 150)
            #expect(outcome.status == 0, "\(outcome.error)")
            let seeding = try Self.objects(outcome.output).filter { $0["event"] as? String == "iteration" && $0["phase"] as? String == "seeding" }
            // Rounds 1… (fewer if every row became a candidate), then the weighting pass, round 6.
            #expect(k == 4096 ? seeding.first?["iteration"] as? Int == 1 && seeding.last?["iteration"] as? Int == 6 : seeding.isEmpty,
                    "k \(k): \(seeding)")
            #expect(seeding.allSatisfy { ($0["rows"] as? Int ?? 0) > 0 && ($0["largest"] as? Double ?? 0) >= 1 })
        }
    }

    @Test func trainAndEncodeWithJSONPrintOneObjectPerLine() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy"), index = scratch.file("images.tsv"), store = scratch.file("store")
        var outcome = try CommandRunner.run(["generate", "--n", "3000", "--dim", "8", "--clusters", "4", "--seed", "1",
                                             "--out", corpus, "--index", index, "--image-rows", "100"])
        #expect(outcome.status == 0, "\(outcome.error)")
        outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "4", "--iterations", "4", "--tolerance", "0",
                                         "--shard-rows", "256", "--store", store, "--name", "M", "--json", "--local-workers", "1"])
        #expect(outcome.status == 0, "\(outcome.error)")
        let events = try Self.objects(outcome.output)
        #expect(events.first?["event"] as? String == "note")
        #expect(events.last?["event"] as? String == "done")
        #expect((events.last?["message"] as? String)?.contains("model \"M\" in the store") == true)
        let iterations = events.filter { $0["event"] as? String == "iteration" }
        #expect(iterations.map { $0["iteration"] as? Int } == [0, 1, 2, 3])
        #expect(iterations.allSatisfy { $0["phase"] as? String == "kmeans" && $0["valuePerRow"] is Double && $0["rows"] as? Int == 3000 })
        for pass in events where pass["event"] as? String == "pass" {
            #expect(pass["shards"] as? Int == 12 && (pass["shardsDone"] as? Int).map { (0...12).contains($0) } == true)
        }

        outcome = try CommandRunner.run(["encode", "vlad", "--model", "M", "--set", "S", "--descriptors", corpus, "--index", index,
                                         "--store", store, "--json", "--local-workers", "1"])
        #expect(outcome.status == 0, "\(outcome.error)")
        let encoding = try Self.objects(outcome.output)
        #expect((encoding.last?["message"] as? String)?.hasPrefix("stored 30 images in set S") == true)
    }

    @Test func quietPrintsOnlyTheFinalLine() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy")
        var outcome = try CommandRunner.run(["generate", "--n", "2000", "--dim", "8", "--clusters", "4", "--out", corpus])
        #expect(outcome.status == 0, "\(outcome.error)")
        outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "4", "--iterations", "3", "--quiet",
                                         "--store", scratch.file("store"), "--out", scratch.file("c.npy"), "--local-workers", "1"])
        #expect(outcome.status == 0, "\(outcome.error)")
        let lines = outcome.output.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains("after 3 iterations; wrote 4×8 centres"), "\(outcome.output)")
        outcome = try CommandRunner.run(["train", "kmeans", "--corpus", corpus, "--k", "4", "--quiet", "--json",
                                         "--store", scratch.file("store"), "--out", scratch.file("c.npy")])
        #expect(outcome.status != 0 && outcome.error.contains("--json and --quiet"))
    }

    /// Every line of `output` as a JSON object.
    private static func objects(_ output: String) throws -> [[String: Any]] {
        try output.split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            return try #require(object, "not a JSON object: \(line)")
        }
    }
}
