@testable import Cluster
import ClusterProtocol
import Storage
import TestSupport
import Testing

/// A partition carried by a split search's TASK is read from the store in pieces at once:
/// the bytes are those of the vectors in key order, and a set that changed is reported
/// whichever piece sees it.
@Suite struct SetPartitionReadTests {
    static func partitions(_ store: CodebookStore, keys: [String]) -> SetPartitions {
        SetPartitions(store: store, set: "S", generation: 0, dimension: SplitSearchTests.dimension, keys: keys)
    }

    @Test func piecesReadTogetherAreTheVectorsInKeyOrder() throws {
        let scratch = try TemporaryDirectory()
        let store = try SplitSearchTests.store(at: scratch.file("db"))
        let keys = try StoredSetBackend.keys(of: "S", store: store)
        let d = SplitSearchTests.dimension
        // One piece, two, three (rows 1 … 12,289), and the whole set of 13,522 rows in three.
        for items in [0..<100, 4096..<12288, 1..<12290, 0..<keys.count] {
            let bytes = try Self.partitions(store, keys: keys).rows(items)
            var expected: [UInt8] = []
            for key in keys[items] {
                let value = try #require(try store.vectorValue(set: "S", key: key))
                try expected += SetVectors.floatBytes(of: value.bytes, set: "S", key: key, dimension: d)
            }
            #expect(bytes == expected, "rows \(items)")
        }
    }

    @Test func aSetThatChangedIsReportedByAnyPiece() throws {
        let scratch = try TemporaryDirectory()
        let store = try SplitSearchTests.store(at: scratch.file("db"))
        let keys = try StoredSetBackend.keys(of: "S", store: store)
        // A key the plan has that the store does not (in the last of three pieces).
        var renamed = keys
        renamed[10_000] = keys[10_000] + "x"
        #expect {
            try Self.partitions(store, keys: renamed).rows(0..<keys.count)
        } throws: { error in
            (error as? ClusterError)?.code == .conflict
                && "\(error)".contains("changed while it was searched (row 10000 is \"\(keys[10_000])\", not \"\(renamed[10_000])\")")
        }
        // Rows past the set's end.
        #expect {
            try Self.partitions(store, keys: keys + ["zzz"]).rows(0..<keys.count + 1)
        } throws: { error in
            (error as? ClusterError)?.code == .conflict && "\(error)".contains("it ends at row \(keys.count), before \(keys.count + 1)")
        }
    }
}
