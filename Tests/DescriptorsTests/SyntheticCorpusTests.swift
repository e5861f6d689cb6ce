import TestSupport
import Testing
@testable import Descriptors

@Suite struct SyntheticCorpusTests {
    /// 2^63 − 1 rows used to stop on an overflow trap counting the blocks.
    @Test func aCorpusOfMoreBytesThanIntMaxIsRefused() throws {
        let directory = try TemporaryDirectory()
        let error = #expect(throws: DescriptorError.self) {
            try SyntheticCorpus(rows: .max, dimension: 128, clusters: 2, seed: 1).write(to: directory.file("g.npy"))
        }
        #expect(error?.code == .invalidArgument && error?.description.contains("need more than Int.max bytes") == true,
                "\(String(describing: error))")
    }

    @Test func sameSeedSameBytesDifferentSeedDifferentBytes() throws {
        let dir = try TemporaryDirectory()
        let corpus = SyntheticCorpus(rows: 5000, dimension: 17, clusters: 4, seed: 42)
        try corpus.write(to: dir.file("a.fvecs"))
        try corpus.write(to: dir.file("b.fvecs"))
        var other = corpus
        other.seed = 43
        try other.write(to: dir.file("c.fvecs"))
        #expect(dir.read("a.fvecs") == dir.read("b.fvecs"))
        #expect(dir.read("a.fvecs") != dir.read("c.fvecs"))
        #expect(corpus.centres() != other.centres())
    }

    @Test func fvecsAndNpyHoldTheSameRows() throws {
        let dir = try TemporaryDirectory()
        let corpus = SyntheticCorpus(rows: 4100, dimension: 8, clusters: 3, seed: 5)
        try corpus.write(to: dir.file("x.fvecs"))
        try corpus.write(to: dir.file("x.npy"))
        let fvecs = try DescriptorMatrix.open(path: dir.file("x.fvecs"))
        let npy = try DescriptorMatrix.open(path: dir.file("x.npy"))
        #expect(fvecs.rows == 4100 && npy.rows == 4100 && npy.dimension == 8)
        #expect(fvecs.toArray() == npy.toArray())
    }

    @Test func rowsAreNonNegativeAndNearTheirCentres() throws {
        let dir = try TemporaryDirectory()
        var corpus = SyntheticCorpus(rows: 3000, dimension: 16, clusters: 5, seed: 9)
        corpus.spread = 1...2
        try corpus.write(to: dir.file("c.npy"))
        let values = try DescriptorMatrix.open(path: dir.file("c.npy")).toArray()
        #expect(values.allSatisfy { $0 >= 0 && $0.isFinite })
        let centres = corpus.centres()
        #expect(centres.count == 5 * 16 && centres.allSatisfy { $0 >= 0 && $0 < 100 })
        // Every row lies within a few standard deviations of its nearest centre.
        for row in 0..<3000 {
            let nearest = (0..<5).map { c in
                (0..<16).reduce(Float(0)) { sum, j in
                    let d = values[row * 16 + j] - centres[c * 16 + j]
                    return sum + d * d
                }
            }.min()!
            #expect(nearest < 16 * 4 * 4 * 2, "seed 9, row \(row)")
        }
    }

    @Test func imageIndexGroupsConsecutiveRows() throws {
        let dir = try TemporaryDirectory()
        try SyntheticCorpus(rows: 1000, dimension: 4, clusters: 2, seed: 3)
            .write(to: dir.file("d.fvecs"), index: dir.file("d.tsv"), imagesOf: 300)
        let text = String(decoding: dir.read("d.tsv"), as: UTF8.self)
        #expect(text == "image-000000\t0\t300\nimage-000001\t300\t300\nimage-000002\t600\t300\nimage-000003\t900\t100\n")
        let images = try ImageCollection(index: dir.file("d.tsv"), descriptors: dir.file("d.fvecs"))
        #expect(images.map(\.rows) == [300, 300, 300, 100])
    }

    @Test func emptyCorpusAndBadParameters() throws {
        let dir = try TemporaryDirectory()
        try SyntheticCorpus(rows: 0, dimension: 4, clusters: 2, seed: 3).write(to: dir.file("e.npy"), index: dir.file("e.tsv"))
        #expect(try DescriptorMatrix.open(path: dir.file("e.npy")).rows == 0)
        #expect(dir.read("e.tsv").isEmpty)
        expectError(.invalidArgument, "clusters=0") {
            try SyntheticCorpus(rows: 10, dimension: 4, clusters: 0, seed: 1).write(to: dir.file("f.npy"))
        }
        expectError(.invalidArgument, "dimension 0") {
            try SyntheticCorpus(rows: 10, dimension: 0, clusters: 1, seed: 1).write(to: dir.file("f.npy"))
        }
        expectError(.unsupportedFormat) {
            try SyntheticCorpus(rows: 10, dimension: 4, clusters: 1, seed: 1).write(to: dir.file("f.bvecs"))
        }
        #expect(dir.names() == ["e.npy", "e.tsv"])
    }
}
