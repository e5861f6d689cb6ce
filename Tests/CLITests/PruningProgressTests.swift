@testable import Cluster
@testable import codebook
import ClusterProtocol
import Foundation
import Testing

@Suite struct PruningProgressTests {
    @Test func theKMeansLineShowsTheShareOfRowsAndDistancesSkipped() throws {
        let record = IterationRecord(phase: .kmeans, iteration: 7, valuePerRow: 2.5, total: 10, rows: 4, seconds: 0.5, repaired: 0,
                                     smallest: 1, largest: 3, skippedRows: 3, skippedDistances: 0.875)
        #expect(ProgressText.iteration(record)
                    == "k-means   7  objective/row 2.5  0.500 s  clusters 1..3  empty repaired 0  skipped 75% (distances 88%)")
        // A record from a coordinator that does not report it: nothing skipped.
        let old = try JSONDecoder().decode(IterationRecord.self, from: Data("""
            {"phase": "kmeans", "iteration": 0, "valuePerRow": 1, "total": 2, "rows": 2, "seconds": 1, "repaired": 0,
             "smallest": 1, "largest": 1}
            """.utf8))
        #expect(old.skippedRows == nil && ProgressText.iteration(old).hasSuffix("skipped 0% (distances 0%)"))
    }
}
