import CBLAS
import Clustering
import Descriptors
import Search

/// Section `search`: exact inner-product search over `--rows` (1,000,000 by default)
/// normalised vectors of 256 values, against the arithmetic floor (one OpenBLAS sgemm of the same size) and the
/// memory bandwidth (one OpenBLAS sdot reading the same vectors), on `threads` OpenBLAS
/// threads. The neighbours of a sample query must equal a float64 scan's.
struct SearchSection {
    let sizes: BenchSizes

    static let dimension = 256, batch = 100, top = 10

    func run() async throws {
        let rows = sizes.quick ? 20_000 : sizes.rows, d = Self.dimension
        var generator = SeededGenerator(seed: BenchSizes.seed)
        let vectors = Self.normalisedRows(rows, d, using: &generator)
        let queries = Self.normalisedRows(Self.batch, d, using: &generator)
        openblas_set_num_threads(Int32(sizes.threads))
        defer { openblas_set_num_threads(1) }

        var products = [Float](repeating: 0, count: Self.batch * rows)
        var batchFound: [[Neighbour]] = [], single: [[Neighbour]] = []
        var dot: Float = 0
        let times = try await Stopwatch.interleaved(sizes.repeats, [
            { batchFound = try Self.search(queries, count: Self.batch, vectors, rows: rows) },
            {
                vectors.withUnsafeBufferPointer { v in
                    queries.withUnsafeBufferPointer { q in
                        products.withUnsafeMutableBufferPointer { c in
                            BLAS.gemmTransposedB(m: Self.batch, n: rows, k: d, alpha: 1, a: q.baseAddress!, lda: d,
                                                 b: v.baseAddress!, ldb: d, beta: 0, c: c.baseAddress!, ldc: rows)
                        }
                    }
                }
            },
            { single = try Self.search(Array(queries.prefix(d)), count: 1, vectors, rows: rows) },
            { dot = cblas_sdot(blasint(rows * d), vectors, 1, vectors, 1) },
        ])
        let (searchTime, sgemmTime, singleTime, readTime) = (times[0], times[1], times[2], times[3])

        // Checks: query 0's neighbours are the float64 scan's, the single query's are the
        // batch's first, and the products hold what was timed.
        let reference = Self.float64Top(queries, vectors, rows: rows)
        guard batchFound[0].map(\.row) == reference, single[0] == batchFound[0] else {
            throw CheckFailure("search of query 0 found rows \(batchFound[0].map(\.row)) (single query: \(single[0].map(\.row))); "
                               + "a float64 scan finds \(reference)")
        }
        guard abs(products[reference[0]] - batchFound[0][0].score) <= 1e-5, abs(Double(dot) - Double(rows)) < 1e-2 * Double(rows) else {
            throw CheckFailure("sgemm product \(products[reference[0]]) vs search score \(batchFound[0][0].score); sdot \(dot)")
        }

        let (storedTime, firstSplitTime, splitTime) = try await SplitSearchBench(sizes: sizes).run(vectors: vectors, rows: rows, dimension: d,
                                                                                   queries: queries, top: Self.top)

        let bytes = Double(rows * d * 4)
        var table = MarkdownTable("Search: exact top-\(Self.top) by inner product, \(rows) vectors × \(d) float32 "
                                  + "(synthetic, normalised; \(format(bytes / 1e9, "%.2f")) GB), \(sizes.threads) OpenBLAS threads",
                                  columns: ["measurement", "time", "vs baseline", "target"])
        table.add("batch of \(Self.batch) queries: InnerProductSearch", seconds(searchTime),
                  ratio(searchTime / sgemmTime), verdict(searchTime <= 1.5 * sgemmTime, "≤ 1.5× sgemm"))
        table.add("one sgemm \(Self.batch)×\(rows)×\(d) (products only)", seconds(sgemmTime), "1.00×", "")
        let bandwidth = bytes / singleTime, readBandwidth = bytes / readTime
        table.add("single query: effective bandwidth", seconds(singleTime) + ", " + format(bandwidth / 1e9, "%.1f GB/s"),
                  format(100 * bandwidth / readBandwidth, "%.0f %%"), verdict(bandwidth >= 0.5 * readBandwidth, "≥ 50 % of read bandwidth"))
        table.add("read bandwidth: sdot over the vectors", seconds(readTime) + ", " + format(readBandwidth / 1e9, "%.1f GB/s"), "", "")
        table.add("SEARCH of \(Self.batch) queries, coordinator alone (set cached)", seconds(storedTime), "1.00×", "")
        table.add("SEARCH of \(Self.batch) queries, split on 2 embedded workers, first (sends the partitions)",
                  seconds(firstSplitTime), ratio(firstSplitTime / storedTime), "")
        table.add("SEARCH of \(Self.batch) queries, split on 2 embedded workers (partitions held)", seconds(splitTime),
                  ratio(splitTime / storedTime), "")
        table.note("Median of \(sizes.repeats) interleaved rounds. Search: one sgemm per \(InnerProductSearch.blockRows) rows "
                   + "and a bounded heap per query (heaps on the calling thread). The read bandwidth is that of one "
                   + "OpenBLAS sdot of the vectors with themselves on the same threads. SEARCH rows: the same vectors "
                   + "in a store, through a client (inproc), the coordinator's search on \(sizes.threads) OpenBLAS threads "
                   + "vs partitions of 65,536 vectors on 2 workers of 1 thread each (1 OpenBLAS thread), which hold "
                   + "their partitions after a first search; the replies are equal bit for bit.")
        table.print()
    }

    private static func search(_ queries: [Float], count: Int, _ vectors: [Float], rows: Int) throws -> [[Neighbour]] {
        try queries.withUnsafeBufferPointer { q in
            try vectors.withUnsafeBufferPointer { v in
                try InnerProductSearch.search(queries: q, queryCount: count, vectors: v, rows: rows, dimension: dimension, top: top)
            }
        }
    }

    /// Rows of Gaussian values scaled to unit L2 norm.
    private static func normalisedRows(_ rows: Int, _ d: Int, using generator: inout SeededGenerator) -> [Float] {
        var values = [Float](repeating: 0, count: rows * d)
        for row in 0..<rows {
            var norm: Float = 0
            for j in 0..<d {
                let value = Float.random(in: -1...1, using: &generator)
                values[row * d + j] = value
                norm += value * value
            }
            let scale = 1 / norm.squareRoot()
            for j in 0..<d { values[row * d + j] *= scale }
        }
        return values
    }

    /// Query 0's top rows by float64 inner products (ties by row).
    private static func float64Top(_ queries: [Float], _ vectors: [Float], rows: Int) -> [Int] {
        let d = dimension
        let scores = (0..<rows).map { row in
            (0..<d).reduce(0.0) { $0 + Double(queries[$1]) * Double(vectors[row * d + $1]) }
        }
        return (0..<rows).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(top).map { $0 }
    }
}
