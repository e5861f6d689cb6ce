import Clustering
import Descriptors
import Testing

/// Clustering is built with `-Ounchecked` in release (no preconditions): rows of another
/// dimension than the model's are a thrown error, never a read past the rows.
@Suite struct ClusteringBoundaryCheckTests {
    static let rows = try! DescriptorMatrix(rows: 4, dimension: 3, values: (0..<12).map(Float.init))

    @Test func nearestCentreSearchRefusesRowsOfAnotherDimension() throws {
        let search = NearestCentreSearch(codebook: try Codebook(k: 2, dimension: 2, centres: [0, 0, 1, 1]), screen: .blas)
        var assigned = [Int32](repeating: -1, count: 4)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try Self.rows.withFloatRows(0..<4, scratch: &scratch) { rows in
                try search.assign(rows, firstRow: 0, source: "rows.npy", workspace: KernelWorkspace(), assignments: &assigned)
            }
        }
        #expect(error?.code == .dimensionMismatch)
        #expect(error?.description.contains("rows have dimension 3, the codebook expects 2") == true, "\(String(describing: error))")
        #expect(assigned == [-1, -1, -1, -1])
    }

    @Test func gaussianPosteriorsRefuseRowsOfAnotherDimension() throws {
        let model = try GaussianMixtureModel(k: 1, dimension: 2, means: [0, 0], variances: [1, 1], priors: [1])
        let kernel = try GaussianPosteriors(model: model, logPosteriorCutoff: 30)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try Self.rows.withFloatRows(0..<4, scratch: &scratch) { rows in
                try kernel.forEachBlock(rows, firstRow: 0, source: "rows.npy", workspace: KernelWorkspace()) { _, _ in }
            }
        }
        #expect(error?.code == .dimensionMismatch)
        #expect(error?.description.contains("the model expects 2") == true, "\(String(describing: error))")
    }

    @Test(.enabled(if: NearestCentreSearch.Screen.preferred != .fused, "this CPU runs the fused screen"))
    func theFusedScreenOnACPUWithoutAVX512IsAnError() throws {
        let search = NearestCentreSearch(codebook: try Codebook(k: 1, dimension: 3, centres: [0, 0, 0]), screen: .fused)
        var assigned = [Int32](repeating: -1, count: 4)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try Self.rows.withFloatRows(0..<4, scratch: &scratch) { rows in
                try search.assign(rows, firstRow: 0, source: "rows.npy", workspace: KernelWorkspace(), assignments: &assigned)
            }
        }
        #expect(error?.message.contains("AVX-512") == true)
    }

    @Test(.enabled(if: GaussianPosteriors.Screen.preferred != .fused, "this CPU runs the fused screen"))
    func theFusedGaussianScreenOnACPUWithoutAVX512IsAnError() throws {
        let model = try GaussianMixtureModel(k: 1, dimension: 3, means: [0, 0, 0], variances: [1, 1, 1], priors: [1])
        let kernel = try GaussianPosteriors(model: model, logPosteriorCutoff: 30, screen: .fused)
        var scratch = [Float]()
        let error = #expect(throws: DescriptorError.self) {
            try Self.rows.withFloatRows(0..<4, scratch: &scratch) { rows in
                try kernel.forEachBlock(rows, firstRow: 0, source: "rows.npy", workspace: KernelWorkspace()) { _, _ in }
            }
        }
        #expect(error?.message.contains("AVX-512") == true)
    }
}
