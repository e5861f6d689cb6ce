import Descriptors
import Search
import Testing

/// Search is built with `-Ounchecked` in release (no preconditions): shapes that do not match
/// the buffers are a thrown error, never a read past their ends.
@Suite struct SearchBoundaryCheckTests {
    @Test(arguments: [
        (queryCount: 2, rows: 3, dimension: 2, top: 1),   // one query value short
        (queryCount: 1, rows: 4, dimension: 2, top: 1),   // one vector short
        (queryCount: 1, rows: 3, dimension: 2, top: 0),
        (queryCount: 0, rows: 0, dimension: 0, top: 1),
        (queryCount: Int.max, rows: 3, dimension: 2, top: 1),
    ])
    func shapesThatDoNotMatchTheBuffersAreRefused(shape: (queryCount: Int, rows: Int, dimension: Int, top: Int)) {
        let queries = [Float](repeating: 1, count: 3), vectors = [Float](repeating: 1, count: 6)
        let error = #expect(throws: DescriptorError.self) {
            try queries.withUnsafeBufferPointer { q in
                try vectors.withUnsafeBufferPointer { v in
                    _ = try InnerProductSearch.search(queries: q, queryCount: shape.queryCount, vectors: v, rows: shape.rows,
                                                      dimension: shape.dimension, top: shape.top)
                }
            }
        }
        #expect(error?.code == .invalidArgument)
    }
}
