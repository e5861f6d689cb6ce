import Descriptors
import Features
import Foundation
import TestSupport
import Testing
@testable import codebook_bench

/// The retrieval benchmark of codebook-bench: its Holidays layout and a small run end to end.
@Suite struct RetrievalBenchmarkTests {
    private func writeImage(_ scratch: TemporaryDirectory, _ name: String, seed: UInt64, size: Int = 64) throws {
        try TestImages.file(name, in: scratch, width: size, height: size, seed: seed, format: name.hasSuffix(".png") ? .png : .jpeg(quality: 90))
    }

    /// A tiny fake Holidays layout: groups by number / 100, the multiple of 100 as query.
    @Test func readsAHolidaysLayout() throws {
        let scratch = try TemporaryDirectory()
        try FileManager.default.createDirectory(atPath: scratch.file("jpg"), withIntermediateDirectories: true)
        for (seed, name) in ["100000", "100001", "100002", "100100", "100101", "123400", "123403"].enumerated() {
            try writeImage(scratch, "jpg/\(name).jpg", seed: UInt64(seed))
        }
        var dataset = try RetrievalDataset.holidays(directory: scratch.path)
        #expect(dataset.database.map(\.key) == ["100000", "100001", "100002", "100100", "100101", "123400", "123403"])
        #expect(dataset.queries == [RetrievalDataset.Query(index: 0, relevant: [1, 2]), RetrievalDataset.Query(index: 3, relevant: [4]),
                                    RetrievalDataset.Query(index: 5, relevant: [6])])
        #expect(dataset.trainedOnDatabase && dataset.training == dataset.database && dataset.distractors == 0)

        // Distractors join the database, relevant to no query; train/ becomes the training set.
        try FileManager.default.createDirectory(atPath: scratch.file("distractors"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: scratch.file("train"), withIntermediateDirectories: true)
        try writeImage(scratch, "distractors/other.png", seed: 20)
        try writeImage(scratch, "train/t.jpg", seed: 21)
        dataset = try RetrievalDataset.holidays(directory: scratch.path)
        #expect(dataset.database.last?.key == "other" && dataset.distractors == 1 && dataset.queries.count == 3)
        #expect(!dataset.trainedOnDatabase && dataset.training.map(\.key) == ["t"])

        // A group without its query, a lone query and a foreign name are errors naming them.
        try writeImage(scratch, "jpg/200001.jpg", seed: 22)
        #expect(throws: CheckFailure.self) { try RetrievalDataset.holidays(directory: scratch.path) }
        try FileManager.default.removeItem(atPath: scratch.file("jpg/200001.jpg"))
        try writeImage(scratch, "jpg/200000.jpg", seed: 22)
        #expect(throws: CheckFailure.self) { try RetrievalDataset.holidays(directory: scratch.path) }
        try FileManager.default.removeItem(atPath: scratch.file("jpg/200000.jpg"))
        try writeImage(scratch, "jpg/photo.jpg", seed: 23)
        #expect(throws: CheckFailure.self) { try RetrievalDataset.holidays(directory: scratch.path) }
    }

    /// Six generated photographs → two groups, two training and two distractor photographs;
    /// every pipeline runs, Codebook and VLFeat agree, and mAPs are in [0, 1].
    @Test(.timeLimit(.minutes(5))) func smallRunEndToEnd() async throws {
        let photographs = try TemporaryDirectory(), layout = try TemporaryDirectory()
        for i in 0..<6 { try writeImage(photographs, "p\(i).png", seed: UInt64(100 + i), size: 160) }
        let written = try HolidaysLayoutWriter(photographs: try ImageSource(directory: photographs.path).entries, seed: 5,
                                               distractorCrops: 2, trainingCrops: 2).write(to: layout.path)
        // Two groups of 7, two training photographs of 1 + 6 copies + 2 crops, 2 × 2 distractors.
        #expect(written.count == 36)
        // The same seed writes the same files.
        let again = try TemporaryDirectory()
        _ = try HolidaysLayoutWriter(photographs: try ImageSource(directory: photographs.path).entries, seed: 5,
                                     distractorCrops: 2, trainingCrops: 2).write(to: again.path)
        for image in written {
            #expect(FileManager.default.contents(atPath: layout.file(image.path)) == FileManager.default.contents(atPath: again.file(image.path)))
        }

        let dataset = try RetrievalDataset.holidays(directory: layout.path)
        #expect(dataset.queries.map(\.index) == [0, 7] && dataset.distractors == 4 && dataset.training.count == 18)
        let options = try RetrievalOptions.parse(["--max-side", "160", "--descriptor-dimensions", "16", "--whiten-dimensions", "8",
                                                  "--ks", "4", "--seed", "5"]).validated()
        let result = try await RetrievalSection.evaluate(dataset, options: options, threads: 2) { _ in }
        #expect(result.failures.isEmpty, "\(result.failures)")
        #expect(result.whitenedDimensions.values.allSatisfy { $0 == 8 })
        for variant in RetrievalSection.Variant.allCases {
            for encoder in result.encoders {
                let cell = try #require(result.cells[variant]?[encoder])
                #expect((0...1).contains(cell.ours) && (0...1).contains(cell.vlfeat), "\(variant) \(encoder): \(cell)")
            }
        }
    }

    /// Identical vectors rank the database identically (ties by index), and mAP is 1 when
    /// each query's relevant images are its nearest.
    @Test func identicalVectorsRankIdentically() throws {
        let vectors: [[Float]] = [[1, 0], [0.9, 0.1], [0, 1], [1, 0], [0.1, 0.9]]
        let rankings = try RetrievalSection.rankings(vectors, queries: [0, 3, 2])
        #expect(rankings[0] == rankings[1])
        #expect(rankings[0] == [0, 3, 1, 4, 2])
        let dataset = RetrievalDataset(database: [], queries: [.init(index: 0, relevant: [1, 3]), .init(index: 2, relevant: [4])],
                                       distractors: 0, training: [], trainedOnDatabase: true)
        #expect(try RetrievalSection.meanAveragePrecision(vectors, dataset) == 1)
    }
}
