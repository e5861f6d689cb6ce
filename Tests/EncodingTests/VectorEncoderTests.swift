import Clustering
import Descriptors
import Encoding
import Synchronization
import Testing

/// Behaviour shared by both encoders: input validation and `encodeAll`.
@Suite("VectorEncoder")
struct VectorEncoderTests {
    static let problem = Problem(seed: 21, kind: .gaussian, n: 0, k: 3, d: 2)

    static func encoders() throws -> [(name: String, encoder: any VectorEncoder)] {
        let gmm = problem.model
        return [("VLAD", VLADEncoder(codebook: try gmm.codebook, options: .squareRoot)),
                ("Fisher", try FisherEncoder(model: try gmm.model, options: .improved))]
    }

    /// A NaN at row 5 (first block) or row 8500 (second `RowScan` block, a later BLAS block)
    /// is a `.nonFinite` DescriptorError naming that row.
    @Test("NaN in a descriptor is a nonFinite error with the row", arguments: [5, 8500])
    func nanIsRejected(_ row: Int) throws {
        let seed: UInt64 = 22, n = 9000, d = 2
        var random = SeededGenerator(seed: seed)
        var values = (0..<n * d).map { _ in Float(random.nextGaussian()) }
        values[row * d + 1] = .nan
        let descriptors = try DescriptorMatrix(rows: n, dimension: d, values: values)
        for (name, encoder) in try Self.encoders() {
            let error = #expect(throws: DescriptorError.self, "\(name), seed \(seed), NaN at row \(row)") {
                _ = try encoder.encode(descriptors)
            }
            #expect(error?.code == .nonFinite, "\(name): \(String(describing: error))")
            #expect(error?.message.contains("row \(row) ") == true, "\(name): \(String(describing: error))")
        }
    }

    /// Encoders keep sums in the thread's workspace from image to image: after an image
    /// that failed half-way (NaN in its second `RowScan` block), the next image's vector is
    /// still that of a fresh workspace.
    @Test func aFailedImageLeavesTheWorkspaceClean() throws {
        var random = SeededGenerator(seed: 24)
        let n = 9000, d = 2
        var values = (0..<n * d).map { _ in Float(random.nextGaussian()) }
        let image = try DescriptorMatrix(rows: 300, dimension: d, values: Array(values[0..<300 * d]))
        values[8500 * d] = .nan
        let poisoned = try DescriptorMatrix(rows: n, dimension: d, values: values)
        for (name, encoder) in try Self.encoders() {
            let workspace = KernelWorkspace()
            let fresh = try encoder.encode(image)
            #expect(try encoder.encode(image, workspace: workspace) == fresh, "\(name)")
            #expect(throws: DescriptorError.self, "\(name)") { _ = try encoder.encode(poisoned, workspace: workspace) }
            #expect(try encoder.encode(image, workspace: workspace) == fresh, "\(name): after the failed image")
        }
    }

    @Test func wrongDimensionIsRejected() async throws {
        let descriptors = try DescriptorMatrix(rows: 4, dimension: 3, values: [Float](repeating: 1, count: 12))
        for (name, encoder) in try Self.encoders() {
            let error = #expect(throws: ClusteringError.self, "\(name)") { _ = try encoder.encode(descriptors) }
            #expect(error?.code == .dimensionMismatch, "\(name): \(String(describing: error))")
            let good = try DescriptorMatrix(rows: 1, dimension: 2, values: [0, 0])
            await #expect(throws: ClusteringError.self, "\(name), encodeAll") {
                try await encoder.encodeAll([good, descriptors], threads: 2) { _, _ in }
            }
        }
    }

    /// `encodeAll` on 1 and 3 threads gives exactly the vectors of encoding one by one
    /// (an empty image included).
    @Test(arguments: [1, 3])
    func encodeAllMatchesOneByOne(_ threads: Int) async throws {
        let seed: UInt64 = 23
        let images = try [40, 0, 7, 130, 1, 65].enumerated().map { index, rows in
            let problem = Problem(seed: seed + UInt64(index), kind: .gaussian, n: rows, k: 3, d: 2)
            return try DescriptorMatrix(rows: rows, dimension: 2, values: problem.data)
        }
        for (name, encoder) in try Self.encoders() {
            let expected = try images.map { try encoder.encode($0) }
            let results = Mutex<[Int: [Float]]>([:])
            try await encoder.encodeAll(images, threads: threads) { index, vector in
                results.withLock { $0[index] = vector }
            }
            let got = results.withLock { $0 }
            #expect(got.count == images.count, "\(name), \(threads) threads: \(got.count) images")
            for index in images.indices {
                #expect(got[index] == expected[index], "\(name), \(threads) threads, seed \(seed), image \(index)")
            }
        }
    }
}
