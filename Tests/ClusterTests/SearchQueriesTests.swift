@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import TestSupport
import Testing
import ZeroMQ

/// SEARCH answered from a store directly: the set's vectors as stored, the cache and its
/// invalidation, and the errors.
@Suite struct SearchQueriesTests {
    static let dimension = 4

    /// A store with set `S` holding `vectors` under `keys`.
    static func store(at path: String, keys: [String], vectors: [Float]) throws -> CodebookStore {
        let store = try CodebookStore(path: path)
        let record = SetRecord(encoding: .vlad, model: "M", flags: 0, options: [], dimension: dimension, created: "now")
        try store.putSet(named: "S", try StoredValue(kind: .set, metadata: record))
        try put(keys: keys, vectors: vectors, in: store)
        return store
    }

    static func put(keys: [String], vectors: [Float], in store: CodebookStore) throws {
        let metadata = try StoredValue(kind: .vector, metadata: VectorRecord(encoding: .vlad, model: "M", flags: 0)).metadata
        try vectors.withUnsafeBytes {
            try store.putVectors(set: "S", keys: keys, metadata: metadata, dimension: dimension, floatBytes: $0, durability: .logged)
        }
    }

    static func search(_ queries: StoreQueries, _ request: SearchRequest, _ vectors: [Float] = []) throws
        -> [(query: String?, keys: [String], scores: [Float])] {
        try queries.search(request, vectors: vectors)
    }

    @Test func neighboursInOrderTiesByKeyBytesAndTheCacheDroppedOnInvalidation() throws {
        let scratch = try TemporaryDirectory()
        // "b" and "a/x" score the same; "a/x" sorts first. "é" sorts after "z" by its bytes.
        let store = try Self.store(at: scratch.file("db"), keys: ["a/x", "b", "c", "é"],
                                   vectors: [1, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 3, 0, 0, 0])
        let queries = StoreQueries(store: store)
        let found = try Self.search(queries, SearchRequest(set: "S", top: 3, queries: 1), [1, 1, 0, 0])
        #expect(found.count == 1 && found[0].query == nil)
        #expect(found[0].keys == ["é", "c", "a/x"] && found[0].scores == [3, 2, 1])
        let byKey = try Self.search(queries, SearchRequest(set: "S", top: 10, key: "b"))
        #expect(byKey[0].query == "b" && byKey[0].keys == ["é", "a/x", "b", "c"] && byKey[0].scores == [3, 1, 1, 0])
        let everyVector = try Self.search(queries, SearchRequest(set: "S", top: 1, querySet: "S"))
        #expect(everyVector.map(\.query) == ["a/x", "b", "c", "é"] && everyVector.map(\.keys) == [["é"], ["é"], ["c"], ["é"]])

        // A vector written behind the cache's back is not seen until the set is invalidated.
        try Self.put(keys: ["d"], vectors: [9, 0, 0, 0], in: store)
        #expect(try Self.search(queries, SearchRequest(set: "S", top: 1, key: "b"))[0].keys == ["é"])
        queries.invalidateSearch(of: "S")
        #expect(try Self.search(queries, SearchRequest(set: "S", top: 1, key: "b"))[0].keys == ["d"])
    }

    @Test func aSetLargerThanTheCacheIsReadForEveryRequest() throws {
        let scratch = try TemporaryDirectory()
        let store = try Self.store(at: scratch.file("db"), keys: ["a"], vectors: [1, 2, 3, 4])
        let queries = StoreQueries(store: store, searchCacheBytes: 8)
        #expect(try Self.search(queries, SearchRequest(set: "S", top: 5, key: "a"))[0].keys == ["a"])
        try Self.put(keys: ["b"], vectors: [1, 1, 1, 1], in: store)
        #expect(try Self.search(queries, SearchRequest(set: "S", top: 5, key: "a"))[0].keys == ["a", "b"])
    }

    @Test func theCoordinatorsCacheHasItsSetting() throws {
        let scratch = try TemporaryDirectory(), tag = UUID().uuidString
        var settings = CoordinatorSettings()
        #expect(settings.searchCacheBytes == 1 << 30)
        settings.searchCacheBytes = 12_345
        let coordinator = Coordinator(context: try ZeroMQContext(), workersEndpoint: "inproc://workers-\(tag)",
                                      clientsEndpoint: "inproc://clients-\(tag)", settings: settings,
                                      store: try CodebookStore(path: scratch.file("db")), logger: quietLogger())
        #expect(coordinator.queries?.searchCache.capacity == 12_345)
    }

    @Test func badRequestsAreRefusedWithMessagesThatNameTheProblem() throws {
        let scratch = try TemporaryDirectory()
        let queries = StoreQueries(store: try Self.store(at: scratch.file("db"), keys: ["a"], vectors: [1, 2, 3, 4]))
        func message(_ request: SearchRequest, _ vectors: [Float] = []) -> String {
            do {
                _ = try Self.search(queries, request, vectors)
                return "no error"
            } catch let error as ClusterError {
                return (error.code == .notFound ? "not found: " : "") + error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(message(SearchRequest(set: "T", top: 1, key: "a")) == "not found: no set named \"T\"")
        #expect(message(SearchRequest(set: "S", top: 1, key: "z")) == "not found: no vector S/z")
        #expect(message(SearchRequest(set: "S", top: 0, key: "a")) == "top must be 1…10000 (got 0)")
        #expect(message(SearchRequest(set: "S", top: 10_001, key: "a")) == "top must be 1…10000 (got 10001)")
        #expect(message(SearchRequest(set: "S", top: 1)) == "SEARCH needs exactly one of key, querySet and queries")
        #expect(message(SearchRequest(set: "S", top: 1, queries: 1), [1, 2, 3])
            == "the queries have 3 values each, but set \"S\" has dimension 4")
        #expect(message(SearchRequest(set: "S", top: 1, queries: 2), [1, 2, 3])
            == "the query array has 3 values; 2 queries of 4 values are 8")
        #expect(message(SearchRequest(set: "S", top: 1, queries: 0), []) == "queries must be 1…10000 (got 0)")
        #expect(message(SearchRequest(set: "S", top: 1, queries: 2), [0, 0, 0, 0, 1, .nan, 0, 0])
            == "query 1 has a non-finite value (nan) at position 1")
        #expect(message(SearchRequest(set: "S", top: 1, queries: 1), [.infinity, 0, 0, 0])
            == "query 0 has a non-finite value (inf) at position 0")
        #expect(message(SearchRequest(set: "S", top: 200, queries: 5001), [Float](repeating: 0, count: 4 * 5001))
            .hasPrefix("5001 queries × top 200 is above 1000000 results"))
    }
}
