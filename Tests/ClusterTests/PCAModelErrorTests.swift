@testable import Cluster
import ClusterProtocol
import Clustering
import Storage
import TestSupport
import Testing

/// A stored model that does not fit a request is the request's error, a `ClusterError`
/// (not the store's), and its ERROR-REPLY says the documented text with no store prefix.
@Suite struct PCAModelErrorTests {
    @Test func aStoredModelThatDoesNotFitARequestIsAClusterError() throws {
        let scratch = try TemporaryDirectory()
        let store = try CodebookStore(path: scratch.file("store"))
        let record = ModelRecord(kind: .kmeans, k: 2, dimension: 3, source: "imported")
        try store.putModel(named: "km", try StoredValue(kind: .model, metadata: record, values: [Float](repeating: 0, count: 6)),
                           replace: false)

        let notPCA = ClusterError(.invalidRequest, "model \"km\" is not a PCA model")
        #expect(throws: notPCA) { try store.principalComponents(named: "km") }
        #expect(FailureReport(replyingTo: notPCA).message == "model \"km\" is not a PCA model")
        #expect(throws: ClusterError(.invalidRequest, "model \"km\" was trained on descriptors without a PCA; encode without PCA model \"p\"")) {
            try store.projection(encodingWith: "km", record: record, requested: "p")
        }

        let projection = try PCAProjection(PrincipalComponents(dimension: 2, mean: [0, 0], components: [1, 0], eigenvalues: [1]),
                                           whiten: false)
        let changed = #expect(throws: ClusterError.self) { try PCAReference.require("not-its-checksum", of: projection, named: "p") }
        #expect(changed?.code == .conflict)
        #expect(changed?.message.hasPrefix("PCA model \"p\" has changed since the job started") == true)
    }
}
