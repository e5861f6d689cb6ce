import Clustering
import Descriptors

/// One neighbour of a query: a row of the searched vectors and its inner product with the query.
public struct Neighbour: Sendable, Equatable {
    public var row: Int
    public var score: Float

    public init(row: Int, score: Float) {
        self.row = row
        self.score = score
    }

    /// Whether `self` ranks before `other`: a higher score, or an equal score and a lower row.
    @inline(__always)
    public func ranksBefore(_ other: Neighbour) -> Bool {
        score > other.score || (score == other.score && row < other.row)
    }
}

/// Exact nearest neighbours by inner product (cosine on L2-normalised vectors).
///
/// The scores of a block of rows against every query are one sgemm (float32, OpenBLAS);
/// each query keeps its best `top` rows in a bounded heap while the blocks go by. Rows whose
/// score is NaN are never returned.
public enum InnerProductSearch {
    /// Rows scored by one sgemm: 4096 rows × 100 queries of scores is 1.6 MB, in cache.
    public static let blockRows = 4096

    /// For each of the `queryCount` queries (row-major, `dimension` values each), the `top`
    /// rows of `vectors` (`rows × dimension`, row-major) with the highest inner products,
    /// best first; equal scores in row order. Fewer than `top` when there are fewer rows.
    /// Throws `.invalidArgument` if `top` or `dimension` is below 1 or an array is not of its
    /// stated shape.
    public static func search(queries: UnsafeBufferPointer<Float>, queryCount: Int,
                              vectors: UnsafeBufferPointer<Float>, rows: Int, dimension: Int, top: Int) throws -> [[Neighbour]] {
        let queryValues = queryCount.multipliedReportingOverflow(by: dimension)
        let vectorValues = rows.multipliedReportingOverflow(by: dimension)
        guard top >= 1, dimension >= 1, queryCount >= 0, rows >= 0, !queryValues.overflow, !vectorValues.overflow,
              queries.count == queryValues.partialValue, vectors.count == vectorValues.partialValue else {
            throw DescriptorError(.invalidArgument, "top \(top) of \(queries.count) query values (\(queryCount) × \(dimension)) "
                                  + "against \(vectors.count) vector values (\(rows) × \(dimension)); top and dimension are at least 1")
        }
        var heaps = (0..<queryCount).map { _ in TopHeap(capacity: top) }
        guard queryCount > 0, rows > 0 else { return heaps.map { $0.sorted() } }
        let blockRows = min(Self.blockRows, rows)
        var scores = [Float](repeating: 0, count: queryCount * blockRows)
        scores.withUnsafeMutableBufferPointer { scores in
            var first = 0
            while first < rows {
                let count = min(blockRows, rows - first)
                BLAS.gemmTransposedB(m: queryCount, n: count, k: dimension, alpha: 1,
                                     a: queries.baseAddress!, lda: dimension,
                                     b: vectors.baseAddress! + first * dimension, ldb: dimension,
                                     beta: 0, c: scores.baseAddress!, ldc: count)
                for query in 0..<queryCount {
                    heaps[query].add(UnsafeBufferPointer(rebasing: scores[query * count ..< (query + 1) * count]), firstRow: first)
                }
                first += count
            }
        }
        return heaps.map { $0.sorted() }
    }
}

/// The best `capacity` neighbours seen so far: a binary heap whose root ranks last.
struct TopHeap {
    private var items: [Neighbour] = []
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        items.reserveCapacity(min(capacity, 1 << 16))
    }

    /// Offers rows `firstRow ..< firstRow + scores.count` with their scores.
    mutating func add(_ scores: UnsafeBufferPointer<Float>, firstRow: Int) {
        // Most rows lose to the root: one comparison with its score (false for NaN too)
        // rejects them.
        var threshold = items.count == capacity ? items[0].score : -.infinity
        for (offset, score) in scores.enumerated() where score >= threshold {
            offer(Neighbour(row: firstRow + offset, score: score))
            if items.count == capacity { threshold = items[0].score }
        }
    }

    mutating func offer(_ candidate: Neighbour) {
        if items.count < capacity {
            items.append(candidate)
            siftUp(items.count - 1)
        } else if candidate.ranksBefore(items[0]) {
            items[0] = candidate
            siftDown(0)
        }
    }

    /// The neighbours, best first.
    func sorted() -> [Neighbour] { items.sorted { $0.ranksBefore($1) } }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[parent].ranksBefore(items[child]) else { return }
            items.swapAt(parent, child)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1, right = left + 1
            var last = parent
            if left < items.count && items[last].ranksBefore(items[left]) { last = left }
            if right < items.count && items[last].ranksBefore(items[right]) { last = right }
            guard last != parent else { return }
            items.swapAt(parent, last)
            parent = last
        }
    }
}
