import Descriptors
import Foundation
import Storage
import Synchronization
import TestSupport
import Testing

// The store's key schema and value envelope (Protocols/storage.md), tested through
// `CodebookStore` and, independently, through the raw bytes `Database` returns.
//
// The Storage module knows nothing of the cluster's records: the metadata below mimics the
// shapes the coordinator stores (a model, a set, a vector, a job) with test types of its own.

/// A model's metadata, shaped like the coordinator's model record.
private struct ModelMetadata: Codable, Equatable {
    var kind: String
    var k: Int
    var dimension: Int
    var source: String
    var created: String
    var varianceFloor: Double?

    /// The values a model of this shape stores: K·D centres, or means, variances and priors.
    var valueCount: Int { kind == "kmeans" ? k * dimension : 2 * k * dimension + k }
}

private struct SetMetadata: Codable, Equatable {
    var encoding: String
    var model: String
    var flags: Int
    var options: [String]
    var dimension: Int
    var created: String
}

private struct VectorMetadata: Codable, Equatable {
    var encoding: String
    var model: String
    var flags: Int
}

private struct JobMetadata: Codable, Equatable {
    var state: String
    var iterations: [Int]
    var initialValues: Int
}

fileprivate extension SeededGenerator {
    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in Float.random(in: -4...4, using: &self) } }

    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) } }
}

/// Floats that a lossy copy would change: signed zero, subnormals, extremes, infinities and
/// a NaN with a payload. Compared by bit pattern.
private let awkwardFloats: [Float] = [0, -0.0, .leastNonzeroMagnitude, -.leastNormalMagnitude, .greatestFiniteMagnitude,
                                      .infinity, -.infinity, Float(bitPattern: 0x7FC0_1234), 1, -1.5]

private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

private func metadata<M: Decodable>(_ value: StoredValue?, as type: M.Type) throws -> M {
    try #require(value).decode(type, key: "test")
}

/// What a Codebook value holds, decoded from its bytes by the format's documentation alone
/// (Protocols/storage.md section 3), without `StoredValue`.
private struct IndependentlyDecodedValue {
    var version: UInt16
    var recordType: UInt16
    var metadata: [String: Any]
    var values: [Float]

    struct Failure: Error, CustomStringConvertible { let description: String }

    init(_ raw: [UInt8]) throws {
        func u16(_ offset: Int) -> UInt16 { UInt16(raw[offset]) | UInt16(raw[offset + 1]) << 8 }
        func u32(_ offset: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(raw[offset + $1]) << (8 * $1) } }
        guard raw.count >= 16 else { throw Failure(description: "\(raw.count) bytes, shorter than the header") }
        guard raw[0..<4].elementsEqual([0x43, 0x42, 0x4B, 0x53]) else { throw Failure(description: "no CBKS magic") }
        version = u16(4)
        recordType = u16(6)
        let m = Int(u32(8)), f = Int(u32(12))
        guard raw.count == 16 + m + 4 * f else { throw Failure(description: "\(raw.count) bytes, header says \(16 + m + 4 * f)") }
        guard let object = try JSONSerialization.jsonObject(with: Data(raw[16 ..< 16 + m])) as? [String: Any] else {
            throw Failure(description: "the metadata is not a JSON object")
        }
        metadata = object
        values = (0..<f).map { index in Float(bitPattern: u32(16 + m + 4 * index)) }
    }
}

/// Builds raw values by hand: the envelope with any field changed.
private func envelope(magic: [UInt8] = Array("CBKS".utf8), version: UInt16 = 1, type: UInt16, metadata: [UInt8],
                      floatCount: UInt32? = nil, values: [Float]) -> [UInt8] {
    var out = magic
    func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
    append(version)
    append(type)
    append(UInt32(metadata.count))
    append(floatCount ?? UInt32(values.count))
    out += metadata
    for value in values { append(value.bitPattern) }
    return out
}

@Suite struct CodebookStoreTests {
    fileprivate static let vector = VectorMetadata(encoding: "vlad", model: "codebook", flags: 2)

    static func vectorValue(_ values: [Float]) throws -> StoredValue {
        try StoredValue(kind: .vector, metadata: vector, values: values)
    }

    // MARK: Round trips

    @Test func kmeansAndGaussianMixtureModelsRoundTripAndSurviveReopening() throws {
        let seed: UInt64 = 11
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        let kmeans = ModelMetadata(kind: "kmeans", k: 8, dimension: 16, source: "trained", created: "2026-11-27T07:40:04Z")
        let gmm = ModelMetadata(kind: "gmm", k: 4, dimension: 3, source: "imported", created: "2026-11-27T07:40:05Z",
                                varianceFloor: .nan)
        let centres = awkwardFloats + random.floats(kmeans.valueCount - awkwardFloats.count)
        let mixture = random.floats(gmm.valueCount)
        do {
            let store = try CodebookStore(path: path)
            try store.putModel(named: "zebra centres", try StoredValue(kind: .model, metadata: kmeans, values: centres), replace: false)
            try store.putModel(named: "gmm-ü", try StoredValue(kind: .model, metadata: gmm, values: mixture), replace: false)
            #expect(try store.model(named: "missing") == nil)
            #expect(try store.modelNames() == ["gmm-ü", "zebra centres"])
        }
        // Reopened: what was written is read back, bit for bit.
        let store = try CodebookStore(path: path)
        let storedCentres = try #require(try store.model(named: "zebra centres"))
        #expect(storedCentres.kind == .model)
        #expect(bits(storedCentres.values) == bits(centres), "seed \(seed)")
        #expect(try metadata(storedCentres, as: ModelMetadata.self) == kmeans)
        let storedMixture = try #require(try store.model(named: "gmm-ü"))
        #expect(bits(storedMixture.values) == bits(mixture), "seed \(seed)")
        let decoded = try metadata(storedMixture, as: ModelMetadata.self)
        #expect(decoded.kind == "gmm" && decoded.k == 4 && decoded.dimension == 3 && decoded.varianceFloor?.isNaN == true)
        #expect(storedMixture.values.count == decoded.valueCount)
    }

    @Test func setsAndVectorsRoundTrip() throws {
        let seed: UInt64 = 12
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        let record = SetMetadata(encoding: "vlad", model: "codebook", flags: 2, options: ["squareRoot"], dimension: 128,
                                 created: "2026-11-27T07:40:04Z")
        try store.putSet(named: "holidays", try StoredValue(kind: .set, metadata: record))
        #expect(try metadata(try store.set(named: "holidays"), as: SetMetadata.self) == record)
        #expect(try store.set(named: "holidays")?.values == [])
        #expect(try store.set(named: "other") == nil)
        #expect(try store.setNames() == ["holidays"])

        // Image keys may hold '/', spaces and any UTF-8; the set is what precedes the first '/'.
        let keys = ["img-0001", "a/b/c.jpg", "with space", "日本", "", "x"]
        var written: [String: [Float]] = [:]
        for key in keys { written[key] = random.floats(128) }
        try store.putVectors(keys.map { (set: "holidays", key: $0, value: try Self.vectorValue(written[$0]!)) })
        for key in keys {
            let value = try #require(try store.vector(set: "holidays", key: key), "\(key)")
            #expect(bits(value.values) == bits(written[key]!), "\(key), seed \(seed)")
            #expect(try metadata(value, as: VectorMetadata.self) == Self.vector)
            #expect(try store.hasVector(set: "holidays", key: key))
        }
        #expect(try store.vector(set: "holidays", key: "img-0002") == nil)
        #expect(try store.hasVector(set: "holidays", key: "img-0002") == false)
        #expect(try store.vector(set: "holiday", key: "s/img-0001") == nil)
        #expect(try store.vectorKeys(prefix: "holidays/", limit: .max)
                == keys.map { "holidays/\($0)" }.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })

        // Overwriting a vector replaces it whole.
        let replacement = awkwardFloats
        try store.putVectors([(set: "holidays", key: "x", value: try Self.vectorValue(replacement))])
        #expect(bits(try #require(try store.vector(set: "holidays", key: "x")).values) == bits(replacement))
    }

    @Test func jobsRoundTripInIdOrder() throws {
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        // Ids whose little-endian bytes would sort differently: big-endian keys list in numeric order.
        for id: UInt64 in [256, 1, 2, 65_536, 255, .max] {
            try store.putJob(id, try StoredValue(kind: .job, metadata: JobMetadata(state: "running", iterations: [Int(id % 7)],
                                                                                   initialValues: 0),
                                                 values: [Float(id % 1000)]))
        }
        #expect(try store.allJobs().map(\.id) == [1, 2, 255, 256, 65_536, .max])
        let job = try #require(try store.job(256))
        #expect(try metadata(job, as: JobMetadata.self) == JobMetadata(state: "running", iterations: [4], initialValues: 0))
        #expect(job.values == [256])
        #expect(try store.job(3) == nil)
    }

    /// A model written from its arrays (IMPORT, without concatenating them first) is the
    /// value a concatenated `StoredValue` makes, byte for byte; deleted jobs are gone.
    @Test func aModelWrittenFromItsArraysIsTheConcatenatedValueAndJobsAreDeleted() throws {
        var random = SeededGenerator(seed: 13)
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        let gmm = ModelMetadata(kind: "gmm", k: 3, dimension: 5, source: "imported", created: "2026-11-27T07:40:05Z")
        let arrays = [random.floats(15), random.floats(15), awkwardFloats.prefix(3).map { $0 }]
        let value = try StoredValue(kind: .model, metadata: gmm, values: arrays.flatMap { $0 })
        try store.putModel(named: "parts", metadata: value.metadata, arrays: arrays, replace: false)
        #expect(try store.model(named: "parts") == value)
        #expect(throws: StoreError.self) { try store.putModel(named: "parts", metadata: value.metadata, arrays: arrays, replace: false) }
        for id: UInt64 in 1...4 {
            try store.putJob(id, try StoredValue(kind: .job, metadata: JobMetadata(state: "failed", iterations: [], initialValues: 0)))
        }
        try store.deleteJobs([1, 3])
        #expect(try store.allJobs().map(\.id) == [2, 4])
    }

    // MARK: Names and models

    @Test func invalidNamesAreRefusedAndNothingIsWritten() throws {
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        let model = try StoredValue(kind: .model, metadata: ModelMetadata(kind: "kmeans", k: 1, dimension: 1, source: "imported",
                                                                          created: ""), values: [1])
        let set = try StoredValue(kind: .set, metadata: SetMetadata(encoding: "vlad", model: "m", flags: 0, options: [],
                                                                    dimension: 1, created: ""))
        let bad = ["", "a/b", "/", "tab\there", "new\nline", String(repeating: "x", count: 256), String(repeating: "é", count: 128)]
        for name in bad {
            let modelError = #expect(throws: StoreError.self, "model \(name.debugDescription)") {
                try store.putModel(named: name, model, replace: true)
            }
            #expect(modelError?.code == .invalidName)
            #expect(modelError?.message.contains("'/'") == true, "\(String(describing: modelError))")
            let setError = #expect(throws: StoreError.self, "set \(name.debugDescription)") { try store.putSet(named: name, set) }
            #expect(setError?.code == .invalidName)
            #expect(setError?.message.hasPrefix("set name") == true)
        }
        #expect(try store.modelNames() == [])
        #expect(try store.setNames() == [])
        // The limits themselves are fine: 255 bytes, and any UTF-8 without '/' or controls.
        for name in [String(repeating: "x", count: 255), "ü", "a.b-c d"] {
            try store.putModel(named: name, model, replace: false)
            try store.putSet(named: name, set)
        }
        #expect(try store.modelNames().count == 3)
    }

    @Test func putModelRefusesAnExistingNameUnlessReplaceAndWritesTheJobInTheSameBatch() throws {
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        func model(_ value: Float) throws -> StoredValue {
            try StoredValue(kind: .model, metadata: ModelMetadata(kind: "kmeans", k: 1, dimension: 2, source: "trained", created: ""),
                            values: [value, value])
        }
        func job(_ state: String) throws -> StoredValue {
            try StoredValue(kind: .job, metadata: JobMetadata(state: state, iterations: [0, 1], initialValues: 0), values: [7, 7])
        }
        try store.putModel(named: "m", try model(1), replace: false, job: (id: 1, value: try job("succeeded")))
        #expect(try store.model(named: "m")?.values == [1, 1])
        #expect(try metadata(try store.job(1), as: JobMetadata.self).state == "succeeded")

        // Refused: neither the model nor the job changes.
        let error = #expect(throws: StoreError.self) {
            try store.putModel(named: "m", try model(2), replace: false, job: (id: 2, value: try job("succeeded")))
        }
        #expect(error?.code == .exists)
        // The library names no command-line flag; the command line adds "pass --replace".
        #expect(error?.message == "a model named \"m\" exists", "\(String(describing: error))")
        #expect(try store.model(named: "m")?.values == [1, 1])
        #expect(try store.job(2) == nil)

        // Replaced: both written.
        try store.putModel(named: "m", try model(3), replace: true, job: (id: 2, value: try job("succeeded")))
        #expect(try store.model(named: "m")?.values == [3, 3])
        #expect(try metadata(try store.job(2), as: JobMetadata.self).state == "succeeded")
        #expect(try store.allJobs().map(\.id) == [1, 2])
        // A name refused for its form writes no job either.
        #expect(throws: StoreError.self) { try store.putModel(named: "a/b", try model(4), replace: true, job: (id: 3, value: try job("x"))) }
        #expect(try store.job(3) == nil)
    }

    // MARK: Vectors by prefix, deleting a set

    @Test func vectorKeysPageByPrefixAfterAndLimit() throws {
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        let value = try Self.vectorValue([1, 2])
        // Sets "a", "ab" and "b": "ab/…" keys sort between "a/…" keys and "b/…" only bytewise.
        let aKeys = (0..<25).map { String(format: "a/img-%02d", $0) }
        try store.putVectors(aKeys.reversed().map { (set: "a", key: String($0.dropFirst(2)), value: value) })
        try store.putVectors((0..<5).map { (set: "ab", key: "img-\($0)", value: value) })
        try store.putVectors((0..<5).map { (set: "b", key: "img-\($0)", value: value) })

        var pages: [[String]] = [], after: String?
        while true {
            let page = try store.vectorKeys(prefix: "a/", after: after, limit: 10)
            if page.isEmpty { break }
            pages.append(page)
            after = page.last
        }
        #expect(pages.map(\.count) == [10, 10, 5])
        #expect(pages.flatMap { $0 } == aKeys)
        #expect(try store.vectorKeys(prefix: "a/", after: "a/img-24", limit: 10) == [])
        #expect(try store.vectorKeys(prefix: "a/", after: "a/img-055", limit: 2) == ["a/img-06", "a/img-07"])
        #expect(try store.vectorKeys(prefix: "a/", after: "0", limit: 1) == ["a/img-00"])
        #expect(try store.vectorKeys(prefix: "a/", limit: 0) == [])
        #expect(try store.vectorKeys(prefix: "ab/", limit: 100).count == 5)
        #expect(try store.vectorKeys(prefix: "a", limit: 100).count == 30)
        #expect(try store.vectorKeys(prefix: "", limit: 100).count == 35)
        #expect(try store.vectorKeys(prefix: "c/", limit: 100) == [])
    }

    @Test func deleteSetRemovesEveryVectorOfTheSetAndOnlyThatSet() throws {
        let directory = try TemporaryDirectory()
        let store = try CodebookStore(path: directory.file("store"))
        let value = try Self.vectorValue([0.5])
        let set = try StoredValue(kind: .set, metadata: SetMetadata(encoding: "vlad", model: "m", flags: 0, options: [],
                                                                    dimension: 1, created: ""))
        for name in ["s", "s2", "r", "s-"] { try store.putSet(named: name, set) }
        // More than one deletion page (4096 keys) in "s".
        for first in stride(from: 0, to: 9_000, by: 1_000) {
            try store.putVectors((first ..< first + 1_000).map { (set: "s", key: "img-\($0)", value: value) })
        }
        try store.putVectors((0..<10).map { (set: "s2", key: "img-\($0)", value: value) })
        try store.putVectors((0..<10).map { (set: "r", key: "s/img-\($0)", value: value) })
        try store.putVectors((0..<10).map { (set: "s-", key: "\($0)", value: value) })
        #expect(try store.vectorKeys(prefix: "s/", limit: .max).count == 9_000)

        try store.deleteSet(named: "s")
        #expect(try store.vectorKeys(prefix: "s/", limit: .max) == [])
        #expect(try store.set(named: "s") == nil)
        #expect(try store.vector(set: "s", key: "img-0") == nil)
        #expect(try store.setNames() == ["r", "s-", "s2"])
        #expect(try store.vectorKeys(prefix: "s2/", limit: .max).count == 10)
        #expect(try store.vectorKeys(prefix: "r/", limit: .max).count == 10)
        #expect(try store.vectorKeys(prefix: "s-/", limit: .max).count == 10)
        // Deleting a set that is gone (or never was) is not an error.
        try store.deleteSet(named: "s")
        try store.deleteSet(named: "never")
        #expect(try store.vectorKeys(prefix: "", limit: .max).count == 30)
    }

    // MARK: The bytes on disk

    @Test func anIndependentDecoderOfTheDocumentedFormatReadsWhatTheStoreWrote() throws {
        let seed: UInt64 = 13
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        let centres = awkwardFloats + random.floats(6)
        let vector = random.floats(33)
        let model = ModelMetadata(kind: "kmeans", k: 4, dimension: 4, source: "imported", created: "2026-11-27T07:40:04Z")
        let set = SetMetadata(encoding: "vlad", model: "cb/1?", flags: 10, options: ["squareRoot", "normalizeMass"],
                              dimension: 33, created: "now")
        do {
            let store = try CodebookStore(path: path)
            try store.putModel(named: "cb", try StoredValue(kind: .model, metadata: model, values: centres), replace: false)
            try store.putSet(named: "S", try StoredValue(kind: .set, metadata: set))
            try store.putVectors([(set: "S", key: "dir/img 1", value: try StoredValue(kind: .vector, metadata: Self.vector, values: vector))])
            try store.putJob(258, try StoredValue(kind: .job, metadata: JobMetadata(state: "failed", iterations: [], initialValues: 0)))
        }
        // The store is closed; read its column families directly.
        let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies,
                                    options: .init(createIfMissing: false, createMissingColumnFamilies: false))
        #expect(database.columnFamilyNames == ["default", "models", "sets", "vectors", "jobs"])
        func family(_ name: String) throws -> ColumnFamily { try #require(database.columnFamily(named: name)) }
        #expect(try database.keys(withPrefix: [], in: try family("default")) == [])
        #expect(try database.keys(withPrefix: [], in: try family("models")) == [bytes("cb")])
        #expect(try database.keys(withPrefix: [], in: try family("sets")) == [bytes("S")])
        #expect(try database.keys(withPrefix: [], in: try family("vectors")) == [bytes("S/dir/img 1")])
        #expect(try database.keys(withPrefix: [], in: try family("jobs")) == [[0, 0, 0, 0, 0, 0, 1, 2]])

        let rawModel = try #require(try database.get(bytes("cb"), in: try family("models")))
        let decodedModel = try IndependentlyDecodedValue(rawModel)
        #expect(decodedModel.version == 1 && decodedModel.recordType == 1)
        #expect(decodedModel.metadata["kind"] as? String == "kmeans")
        #expect(decodedModel.metadata["k"] as? Int == 4 && decodedModel.metadata["dimension"] as? Int == 4)
        #expect(decodedModel.metadata["source"] as? String == "imported")
        #expect(decodedModel.metadata["created"] as? String == "2026-11-27T07:40:04Z")
        #expect(decodedModel.metadata["varianceFloor"] == nil, "optional fields are omitted")
        #expect(bits(decodedModel.values) == bits(centres), "seed \(seed)")
        // Sorted keys, no spaces: the bytes are exactly what the documentation says.
        #expect(String(decoding: rawModel[16 ..< 16 + Int(rawModel[8])], as: UTF8.self)
                == #"{"created":"2026-11-27T07:40:04Z","dimension":4,"k":4,"kind":"kmeans","source":"imported"}"#)

        let decodedSet = try IndependentlyDecodedValue(try #require(try database.get(bytes("S"), in: try family("sets"))))
        #expect(decodedSet.recordType == 2 && decodedSet.values.isEmpty)
        #expect(decodedSet.metadata["model"] as? String == "cb/1?")
        #expect(decodedSet.metadata["options"] as? [String] == ["squareRoot", "normalizeMass"])
        #expect(decodedSet.metadata["flags"] as? Int == 10 && decodedSet.metadata["dimension"] as? Int == 33)

        let rawVector = try #require(try database.get(bytes("S/dir/img 1"), in: try family("vectors")))
        let decodedVector = try IndependentlyDecodedValue(rawVector)
        #expect(decodedVector.recordType == 3)
        #expect(decodedVector.metadata["encoding"] as? String == "vlad")
        #expect(decodedVector.metadata["model"] as? String == "codebook")
        #expect(decodedVector.metadata["flags"] as? Int == 2)
        #expect(bits(decodedVector.values) == bits(vector), "seed \(seed)")
        #expect(rawVector.count == 16 + Int(rawVector[8]) + 4 * 33)

        let decodedJob = try IndependentlyDecodedValue(try #require(try database.get([0, 0, 0, 0, 0, 0, 1, 2], in: try family("jobs"))))
        #expect(decodedJob.recordType == 4 && decodedJob.metadata["state"] as? String == "failed")
    }

    @Test func theDocumentedExampleValueDecodes() throws {
        // Protocols/storage.md section 3: a vector of 0.5, -0.25, 1.0, 0.0 with model "M".
        let hex = "43424B53 01000300 29000000 04000000 7B22656E636F64696E67223A22766C6164222C22666C616773223A302C226D6F64656C223A224D227D 0000003F 000080BE 0000803F 00000000"
        let compact = hex.filter { !$0.isWhitespace }
        let raw = stride(from: 0, to: compact.count, by: 2).map { offset -> UInt8 in
            let start = compact.index(compact.startIndex, offsetBy: offset)
            return UInt8(compact[start ..< compact.index(start, offsetBy: 2)], radix: 16)!
        }
        #expect(raw.count == 73)
        let value = try StoredValue(bytes: raw, expecting: .vector, key: "S/example")
        #expect(value.values == [0.5, -0.25, 1, 0])
        #expect(try value.decode(VectorMetadata.self, key: "S/example") == VectorMetadata(encoding: "vlad", model: "M", flags: 0))
        #expect(try StoredValue(kind: .vector, metadata: VectorMetadata(encoding: "vlad", model: "M", flags: 0),
                                values: [0.5, -0.25, 1, 0]).bytes == raw)
    }

    // MARK: Corrupt values

    @Test func corruptValuesGiveClearErrorsNamingTheKey() throws {
        let seed: UInt64 = 14
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        let good = try Self.vectorValue([1, 2, 3]).bytes
        let metadata = Array(#"{"encoding":"vlad","flags":0,"model":"M"}"#.utf8)
        var randomBytes = random.bytes(100)
        randomBytes[0] = 0x00 // never "C" by chance
        let cases: [(key: String, raw: [UInt8], code: StoreError.Code, says: String)] = [
            ("random", randomBytes, .corrupt, "does not start with \"CBKS\""),
            ("short random", random.bytes(7), .corrupt, "7 bytes is shorter than the 16-byte header"),
            ("empty", [], .corrupt, "0 bytes is shorter than the 16-byte header"),
            ("truncated", Array(good.dropLast(3)), .corrupt, "value has \(good.count - 3) bytes but its header says \(good.count)"),
            ("header only", Array(good.prefix(16)), .corrupt, "but its header says \(good.count)"),
            ("one byte more", good + [0], .corrupt, "value has \(good.count + 1) bytes but its header says \(good.count)"),
            ("version 2", envelope(version: 2, type: 3, metadata: metadata, values: [1]), .unsupportedVersion,
             "value format version 2; this build reads version 1"),
            ("version 0", envelope(version: 0, type: 3, metadata: metadata, values: [1]), .unsupportedVersion, "version 0"),
            ("a model", envelope(type: 1, metadata: metadata, values: [1]), .corrupt, "holds a model record where a vector was expected"),
            ("a job", envelope(type: 4, metadata: metadata, values: []), .corrupt, "holds a job record where a vector was expected"),
            ("type 9", envelope(type: 9, metadata: metadata, values: [1]), .corrupt, "unknown record type 9"),
            ("type 0", envelope(type: 0, metadata: metadata, values: [1]), .corrupt, "unknown record type 0"),
            ("huge count", envelope(type: 3, metadata: metadata, floatCount: .max, values: [1]), .corrupt, "but its header says"),
            ("lower-case magic", envelope(magic: Array("cbks".utf8), type: 3, metadata: metadata, values: [1]), .corrupt, "CBKS"),
        ]
        do {
            _ = try CodebookStore(path: path) // creates the column families
        }
        do {
            let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
            let vectors = try #require(database.columnFamily(named: "vectors"))
            for entry in cases { try database.put(bytes("s/\(entry.key)"), entry.raw, in: vectors) }
            try database.put(bytes("s/not json"), envelope(type: 3, metadata: Array("{\"enc".utf8), values: [1]), in: vectors)
            let models = try #require(database.columnFamily(named: "models"))
            try database.put(bytes("broken model"), good, in: models)
            try database.put(bytes("truncated model"), Array(try StoredValue(kind: .model, metadata: metadata, values: [1]).bytes.dropLast()),
                             in: models)
            let sets = try #require(database.columnFamily(named: "sets"))
            try database.put(bytes("broken set"), envelope(version: 7, type: 2, metadata: metadata, values: []), in: sets)
            let jobs = try #require(database.columnFamily(named: "jobs"))
            try database.put([0, 0, 0, 0, 0, 0, 0, 7], envelope(type: 3, metadata: metadata, values: []), in: jobs)
        }
        let store = try CodebookStore(path: path)
        for entry in cases {
            let error = #expect(throws: StoreError.self, "\(entry.key) (seed \(seed))") { try store.vector(set: "s", key: entry.key) }
            #expect(error?.code == entry.code, "\(entry.key): \(String(describing: error))")
            #expect(error?.message.hasPrefix("s/\(entry.key): ") == true, "\(entry.key): \(String(describing: error))")
            #expect(error?.message.contains(entry.says) == true, "\(entry.key): \(String(describing: error))")
        }
        // The envelope is sound but the metadata is not JSON: the value reads, its metadata does not.
        let notJSON = try #require(try store.vector(set: "s", key: "not json"))
        let metadataError = #expect(throws: StoreError.self) { try notJSON.decode(VectorMetadata.self, key: "s/not json") }
        #expect(metadataError?.code == .corrupt)
        #expect(metadataError?.message.hasPrefix("s/not json: unreadable vector metadata") == true, "\(String(describing: metadataError))")

        // A field that does not fit is named (Foundation says only "not valid JSON").
        for (metadata, says) in [(#"{"encoding":"vlad","flags":1.5,"model":"M"}"#, "field flags: 1.5 is not an integer"),
                                 (#"{"encoding":"vlad","flags":1e19,"model":"M"}"#, "field flags: 1e19 is out of the field's range"),
                                 (#"{"encoding":4,"flags":1,"model":"M"}"#, "field encoding: 4 is not a string")] {
            let fieldError = #expect(throws: StoreError.self) {
                try StoredValue.decodeMetadata(VectorMetadata.self, from: Array(metadata.utf8), of: .vector, key: "s/k")
            }
            #expect(fieldError?.message == "s/k: unreadable vector metadata: \(says)", "\(String(describing: fieldError))")
        }

        let modelError = #expect(throws: StoreError.self) { try store.model(named: "broken model") }
        #expect(modelError?.message == "model broken model: holds a vector record where a model was expected")
        let truncatedModel = #expect(throws: StoreError.self) { try store.model(named: "truncated model") }
        #expect(truncatedModel?.code == .corrupt && truncatedModel?.message.hasPrefix("model truncated model: value has") == true)
        let setError = #expect(throws: StoreError.self) { try store.set(named: "broken set") }
        #expect(setError?.code == .unsupportedVersion && setError?.message.hasPrefix("set broken set: value format version 7") == true)
        let jobError = #expect(throws: StoreError.self) { try store.job(7) }
        #expect(jobError?.message == "job 7: holds a vector record where a job was expected")
        let allJobsError = #expect(throws: StoreError.self) { try store.allJobs() }
        #expect(allJobsError?.message.hasPrefix("job 7:") == true)
        #expect(allJobsError?.description.hasPrefix("corrupt value: ") == true)
        // Listing does not decode: every key is still listed, and a good neighbour reads.
        #expect(try store.vectorKeys(prefix: "s/", limit: .max).count == cases.count + 1)
    }

    @Test func aJobKeyOfTheWrongLengthIsCorrupt() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        do { _ = try CodebookStore(path: path) }
        do {
            let database = try Database(path: path, columnFamilies: CodebookStore.columnFamilies)
            try database.put([0, 0, 1], try StoredValue(kind: .job, metadata: ["state": "running"]).bytes,
                             in: try #require(database.columnFamily(named: "jobs")))
        }
        let error = #expect(throws: StoreError.self) { try CodebookStore(path: path).allJobs() }
        #expect(error?.code == .corrupt)
        #expect(error?.message == "job key 000001 is not an 8-byte job id")
    }

    // MARK: Opening what is not a Codebook store

    @Test func aRocksDBDatabaseWithoutCodebooksColumnFamiliesIsRefusedClearly() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("foreign")
        do {
            let foreign = try Database(path: path, columnFamilies: ["other"])
            try foreign.put(bytes("k"), bytes("v"), in: try #require(foreign.columnFamily(named: "other")))
        }
        let secondary = #expect(throws: StoreError.self) {
            try CodebookStore(path: path, mode: .secondary(secondaryPath: directory.file("reader")))
        }
        #expect(secondary?.code == .mismatch, "\(String(describing: secondary))")
        #expect(secondary?.message.contains("cannot open \(path) as a Codebook store") == true, "\(String(describing: secondary))")
        #expect(secondary?.message.contains("models, sets, vectors, jobs") == true)

        let primary = #expect(throws: StoreError.self) { try CodebookStore(path: path) }
        #expect(primary?.code == .mismatch, "\(String(describing: primary))")
        #expect(primary?.message.contains("cannot open \(path) as a Codebook store") == true)
        #expect(primary?.message.contains("other") == true, "names the family it does not know: \(String(describing: primary))")

        // The foreign database is untouched: it opens with exactly its own family and data.
        let reopened = try Database(path: path, columnFamilies: ["other"],
                                    options: .init(createIfMissing: false, createMissingColumnFamilies: false))
        #expect(try reopened.get(bytes("k"), in: try #require(reopened.columnFamily(named: "other"))) == bytes("v"))
    }

    @Test func aDirectoryOfOtherFilesOrAPlainFileIsRefusedClearly() throws {
        let seed: UInt64 = 15
        var random = SeededGenerator(seed: seed)
        let directory = try TemporaryDirectory()
        let plain = directory.file("plain")
        try FileManager.default.createDirectory(atPath: plain, withIntermediateDirectories: false)
        for name in ["notes.txt", "data.bin", "000001.log", "MANIFEST"] {
            _ = FileManager.default.createFile(atPath: "\(plain)/\(name)", contents: Data(random.bytes(300)))
        }
        let file = directory.file("a-file")
        _ = FileManager.default.createFile(atPath: file, contents: Data(random.bytes(64)))
        let missing = directory.file("missing")

        for (number, path) in [plain, file, missing].enumerated() {
            let error = #expect(throws: StoreError.self, "\(path) (seed \(seed))") {
                try CodebookStore(path: path, mode: .secondary(secondaryPath: directory.file("reader-\(number)")))
            }
            #expect(error?.message.contains("cannot open \(path) as a Codebook store") == true, "\(String(describing: error))")
        }
        let fileError = #expect(throws: StoreError.self) { try CodebookStore(path: file) }
        #expect(fileError?.message.contains("cannot open \(file) as a Codebook store") == true, "\(String(describing: fileError))")
        #expect(!FileManager.default.fileExists(atPath: missing), "a failed secondary open created the store")
    }

    @Test func aSecondStoreOnTheSamePathIsRefusedWhileTheFirstIsOpen() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        let first = try CodebookStore(path: path)
        let error = #expect(throws: StoreError.self) { try CodebookStore(path: path) }
        #expect(error?.message.contains("cannot open \(path)") == true, "\(String(describing: error))")
        #expect(error?.message.contains("LOCK") == true, "names the lock: \(String(describing: error))")
        try first.putJob(1, try StoredValue(kind: .job, metadata: ["state": "running"]))
        #expect(try first.allJobs().count == 1)
    }
}

// MARK: A secondary reader while the primary writes

/// What the writer thread shares with the test: how many vectors it has written, its error.
private final class WriterProgress: Sendable {
    let published = Atomic<Int>(0)
    let error = Mutex<String?>(nil)
}

@Suite struct SecondaryReaderTests {
    static let dimension = 96

    /// Image `index`'s vector: recognisable from its key, so a reader can check every value.
    static func values(_ index: Int) -> [Float] { (0..<dimension).map { Float(index) + Float($0) / 128 } }

    static func key(_ index: Int) -> String { String(format: "img-%06d", index) }

    /// A writer thread stores vectors in small batches, publishing how many it has written;
    /// twice it closes and reopens the primary (as a coordinator restart does: the memtable
    /// goes to a table file and a new MANIFEST is written). The reader catches up in a loop:
    /// every vector written before a catch-up is visible after it, and every vector it
    /// reads is whole (full dimension, the expected values).
    @Test func aSecondarySeesNewVectorsAfterCatchingUpAndNeverAPartialOne() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        let total = 6_000, batch = 20, reopenEvery = 2_000
        let metadata = VectorMetadata(encoding: "vlad", model: "m", flags: 0)
        do {
            let store = try CodebookStore(path: path)
            try store.putSet(named: "live", try StoredValue(kind: .set, metadata: ["dimension": Self.dimension]))
        }
        let progress = WriterProgress()
        let writerDone = DispatchSemaphore(value: 0)
        let writer = Thread {
            defer { writerDone.signal() }
            do {
                var store: CodebookStore? = try CodebookStore(path: path)
                for first in stride(from: 0, to: total, by: batch) {
                    if first > 0, first % reopenEvery == 0 {
                        store = nil // closes the primary
                        store = try CodebookStore(path: path)
                    }
                    let entries = try (first ..< first + batch).map { index in
                        (set: "live", key: Self.key(index), value: try StoredValue(kind: .vector, metadata: metadata, values: Self.values(index)))
                    }
                    try store!.putVectors(entries)
                    progress.published.store(first + batch, ordering: .releasing)
                }
            } catch {
                progress.error.withLock { $0 = "\(error)" }
            }
        }
        writer.start()

        let reader = try CodebookStore(path: path, mode: .secondary(secondaryPath: directory.file("reader")))
        var seen = 0, catchUps = 0, distinctCounts = Set<Int>(), checked = 0
        var finished = false
        let deadline = Date().addingTimeInterval(45)
        while !finished {
            try #require(Date() < deadline, "the writer did not finish within 45 s (published \(progress.published.load(ordering: .acquiring)))")
            if writerDone.wait(timeout: .now()) == .success { finished = true }
            let written = progress.published.load(ordering: .acquiring)
            try reader.catchUp()
            catchUps += 1
            // New keys since the last round, in order; each one whole.
            let keys = try reader.vectorKeys(prefix: "live/", after: seen == 0 ? nil : "live/\(Self.key(seen - 1))", limit: .max)
            for (offset, key) in keys.enumerated() {
                #expect(key == "live/\(Self.key(seen + offset))", "keys appear in write order without gaps")
                let value = try #require(try reader.vector(set: "live", key: String(key.dropFirst(5))))
                #expect(value.values.count == Self.dimension, "\(key): \(value.values.count) values")
                #expect(value.values == Self.values(seen + offset), "\(key) holds other values")
                #expect(try value.decode(VectorMetadata.self, key: key) == metadata)
                checked += 1
            }
            seen += keys.count
            #expect(seen >= written, "after a catch-up the reader sees \(seen) vectors; \(written) were written before it")
            #expect(seen % batch == 0, "a batch was seen in part: \(seen) vectors")
            distinctCounts.insert(seen)
            // And a few earlier ones again, still whole.
            for index in stride(from: 0, to: seen, by: max(1, seen / 5)) {
                #expect(try reader.vector(set: "live", key: Self.key(index))?.values == Self.values(index))
            }
        }
        #expect(progress.error.withLock { $0 } == nil, "the writer failed: \(progress.error.withLock { $0 } ?? "")")
        try reader.catchUp()
        #expect(try reader.vectorKeys(prefix: "live/", limit: .max).count == total)
        #expect(seen == total && checked == total)
        // It saw the set grow, not only its end.
        #expect(distinctCounts.count >= 3, "only \(distinctCounts.sorted()) after \(catchUps) catch-ups")
    }
}
