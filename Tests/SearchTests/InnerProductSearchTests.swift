import Descriptors
import Testing
@testable import Search

/// Brute force in float64: every row's score, sorted by score descending, then row.
private func reference(queries: [Float], vectors: [Float], dimension: Int, top: Int) -> [[Neighbour]] {
    let rows = vectors.count / dimension
    return stride(from: 0, to: queries.count, by: dimension).map { start in
        let scored = (0..<rows).map { row in
            (row, (0..<dimension).reduce(0.0) { $0 + Double(queries[start + $1]) * Double(vectors[row * dimension + $1]) })
        }
        return scored.sorted { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }.prefix(top)
            .map { Neighbour(row: $0.0, score: Float($0.1)) }
    }
}

private func search(_ queries: [Float], _ vectors: [Float], dimension: Int, top: Int) throws -> [[Neighbour]] {
    try queries.withUnsafeBufferPointer { q in
        try vectors.withUnsafeBufferPointer { v in
            try InnerProductSearch.search(queries: q, queryCount: queries.count / dimension, vectors: v,
                                      rows: vectors.count / dimension, dimension: dimension, top: top)
        }
    }
}

@Suite struct InnerProductSearchTests {
    /// Small integers: every inner product is exact in float32 and float64, and many are equal,
    /// so the order of ties is tested too; 9,000 rows span three blocks.
    @Test func equalsTheFloat64ReferenceWithTiesByRow() throws {
        var generator = SeededGenerator(seed: 12)
        let dimension = 8, rows = 9000, queryCount = 7
        let vectors = (0..<rows * dimension).map { _ in Float(Int.random(in: -3...3, using: &generator)) }
        let queries = (0..<queryCount * dimension).map { _ in Float(Int.random(in: -3...3, using: &generator)) }
        for top in [1, 25, 4097] {
            let found = try search(queries, vectors, dimension: dimension, top: top)
            #expect(found == reference(queries: queries, vectors: vectors, dimension: dimension, top: top))
            #expect(found.allSatisfy { $0.count == top })
        }
    }

    @Test func randomRealValuesMatchTheReferenceWithinRounding() throws {
        var generator = SeededGenerator(seed: 3)
        let dimension = 32, rows = 5000
        let vectors = (0..<rows * dimension).map { _ in Float.random(in: -1...1, using: &generator) }
        let queries = Array(vectors[(17 * dimension)..<(19 * dimension)])
        let found = try search(queries, vectors, dimension: dimension, top: 10)
        let expected = reference(queries: queries, vectors: vectors, dimension: dimension, top: 10)
        for (got, want) in zip(found, expected) {
            #expect(got.map(\.row) == want.map(\.row))
            for (a, b) in zip(got, want) { #expect(abs(a.score - b.score) <= 1e-4 * max(1, abs(b.score))) }
        }
        // A stored vector as the query finds itself first, at its squared norm.
        #expect(found[0][0].row == 17 && found[1][0].row == 18)
    }

    @Test func fewerRowsThanTopAndNaNRows() throws {
        let vectors: [Float] = [1, 0, .nan, 0, 0, 1]
        let found = try search([2, 1], vectors, dimension: 2, top: 5)
        #expect(found == [[Neighbour(row: 0, score: 2), Neighbour(row: 2, score: 1)]])
        #expect(try search([1, 1], [], dimension: 2, top: 3) == [[]])
    }
}
