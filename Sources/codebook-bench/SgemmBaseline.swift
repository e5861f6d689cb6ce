import CBLAS
import Clustering
import Descriptors

/// The bare arithmetic floor of an assignment pass: the N×K dot products x·c of every row
/// with every centre, computed by sgemm with nothing else (no minimum, no sums).
///
/// Two ways, the faster is the baseline:
/// - `engineBlocks`: what the engine does, per shard on `threads` threads of ours with
///   OpenBLAS single-threaded, `kernelBlockRows(k:)` rows per call;
/// - `openBLASThreads`: one multithreaded OpenBLAS call per chunk of `chunkRows` rows.
struct SgemmBaseline {
    let corpus: DescriptorMatrix
    let codebook: Codebook
    let threads: Int

    /// Rows per multithreaded call: bounds the product buffer (64 Ki rows × K floats).
    static let chunkRows = 65_536

    func engineBlocks() async throws {
        let plan = ShardPlan(totalRows: corpus.rows)
        let corpus = self.corpus, codebook = self.codebook
        let k = codebook.k, block = kernelBlockRows(k: k)
        openblas_set_num_threads(1)
        try await ParallelWork.run(count: plan.count, threads: threads) { shard, _ in
            let rows = try corpus.slice(plan.rows(of: shard))
            var products = [Float](repeating: 0, count: block * k)
            var scratch: [Float] = []
            var start = 0
            while start < rows.rows {
                let range = start ..< min(rows.rows, start + RowScan.blockRows)
                try rows.withFloatRows(range, scratch: &scratch) { floats in
                    Self.products(floats, codebook, blockRows: block, into: &products)
                }
                start = range.upperBound
            }
        }
    }

    func openBLASThreads() throws {
        let k = codebook.k
        var products = [Float](repeating: 0, count: Self.chunkRows * k)
        var scratch: [Float] = []
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        var start = 0
        while start < corpus.rows {
            let range = start ..< min(corpus.rows, start + Self.chunkRows)
            try corpus.withFloatRows(range, scratch: &scratch) { floats in
                Self.products(floats, codebook, blockRows: Self.chunkRows, into: &products)
            }
            start = range.upperBound
        }
    }

    /// −2·x·cᵀ for `rows`, `blockRows` rows per sgemm call, as `NearestCentreSearch` calls it.
    private static func products(_ rows: FloatRows, _ codebook: Codebook, blockRows: Int, into products: inout [Float]) {
        let k = codebook.k, d = codebook.dimension
        codebook.centres.withUnsafeBufferPointer { centres in
            products.withUnsafeMutableBufferPointer { out in
                var start = 0
                while start < rows.rows {
                    let count = min(blockRows, rows.rows - start)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(count), blasint(k), blasint(d),
                                -2, rows.row(start), blasint(rows.stride), centres.baseAddress!, blasint(d),
                                0, out.baseAddress!, blasint(k))
                    start += count
                }
            }
        }
    }
}
