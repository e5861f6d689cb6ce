import TestSupport
import Testing
import Storage

let families = ["models", "vectors", "jobs"]

@Suite struct DatabaseTests {
    @Test func putGetDeleteInEachColumnFamily() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: families)
        #expect(database.columnFamilyNames == ["default"] + families)
        for name in families {
            let family = try #require(database.columnFamily(named: name))
            try database.put(bytes("key"), bytes("value in \(name)"), in: family)
        }
        for name in families {
            let family = try #require(database.columnFamily(named: name))
            #expect(try database.get(bytes("key"), in: family) == bytes("value in \(name)"))
        }
        let models = try #require(database.columnFamily(named: "models"))
        try database.delete(bytes("key"), in: models)
        #expect(try database.get(bytes("key"), in: models) == nil)
        #expect(try database.get(bytes("key"), in: database.columnFamily(named: "default")!) == nil)
        #expect(try database.get(bytes("key"), in: database.columnFamily(named: "jobs")!) == bytes("value in jobs"))
        #expect(database.columnFamily(named: "nonexistent") == nil)
    }

    @Test func missingKeyIsNilAndEmptyValueIsEmpty() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: [])
        let family = try #require(database.columnFamily(named: "default"))
        #expect(try database.get(bytes("absent"), in: family) == nil)
        try database.put(bytes("empty"), [], in: family, durability: .synced)
        #expect(try database.get(bytes("empty"), in: family) == [])
        try database.put([], bytes("empty key"), in: family)
        #expect(try database.get([], in: family) == bytes("empty key"))
    }

    @Test func keysAndValuesWithZeroBytes() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: ["vectors"])
        let vectors = try #require(database.columnFamily(named: "vectors"))
        let key: [UInt8] = [0, 1, 0, 2]
        let value: [UInt8] = [0, 0, 0, 255, 0]
        try database.put(key, value, in: vectors)
        try database.put([0, 1], bytes("prefix only"), in: vectors)
        #expect(try database.get(key, in: vectors) == value)
        #expect(try database.get([0, 1], in: vectors) == bytes("prefix only"))
        #expect(try database.get([0], in: vectors) == nil)
        #expect(try database.keys(withPrefix: [0, 1, 0], in: vectors) == [key])
    }

    @Test func putFromPartsStoresTheirConcatenation() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: families)
        let vectors = try #require(database.columnFamily(named: "vectors"))
        let head: [UInt8] = [9, 8, 7], body = [UInt8](0..<200), empty: [UInt8] = []
        let batch = WriteBatch()
        head.withUnsafeBytes { head in
            body.withUnsafeBytes { body in
                empty.withUnsafeBytes { empty in
                    batch.put(bytes("set/a"), parts: [head, body], in: vectors)
                    batch.put(bytes("set/b"), parts: [body, empty, head], in: vectors)
                }
            }
        }
        try database.write(batch)
        #expect(try database.get(bytes("set/a"), in: vectors) == head + body)
        #expect(try database.get(bytes("set/b"), in: vectors) == body + head)
    }

    @Test func writeBatchAcrossTwoFamiliesIsVisibleOnlyAfterWrite() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: families)
        let vectors = try #require(database.columnFamily(named: "vectors"))
        let jobs = try #require(database.columnFamily(named: "jobs"))
        try database.put(bytes("stale"), bytes("x"), in: jobs)

        let batch = WriteBatch()
        batch.put(bytes("set/image-1"), [1, 2, 3], in: vectors)
        batch.put(bytes("job-1"), bytes("checkpoint 4"), in: jobs)
        batch.delete(bytes("stale"), in: jobs)
        #expect(batch.count == 3)
        #expect(try database.get(bytes("set/image-1"), in: vectors) == nil)
        #expect(try database.get(bytes("job-1"), in: jobs) == nil)
        #expect(try database.get(bytes("stale"), in: jobs) == bytes("x"))

        try database.write(batch, durability: .synced)
        #expect(try database.get(bytes("set/image-1"), in: vectors) == [1, 2, 3])
        #expect(try database.get(bytes("job-1"), in: jobs) == bytes("checkpoint 4"))
        #expect(try database.get(bytes("stale"), in: jobs) == nil)

        batch.clear()
        #expect(batch.count == 0)
    }

    @Test func prefixScanInByteOrderWithStartAfterAndLimit() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: ["vectors"])
        let vectors = try #require(database.columnFamily(named: "vectors"))
        // Inserted out of order; 0xFF sorts after ASCII, so bytewise order is not string order.
        for key in ["b/2", "a/1", "b/10", "b/1", "c/1", "b/\u{FF}", "b"] {
            try database.put(bytes(key), bytes("v:" + key), in: vectors)
        }
        let all = try database.keys(withPrefix: bytes("b/"), in: vectors)
        #expect(all == ["b/1", "b/10", "b/2", "b/\u{FF}"].map(bytes))

        #expect(try database.keys(withPrefix: bytes("b/"), in: vectors, after: bytes("b/10"), limit: 1)
                == [bytes("b/2")])
        #expect(try database.keys(withPrefix: bytes("b/"), in: vectors, after: bytes("b/15"))
                == ["b/2", "b/\u{FF}"].map(bytes))
        #expect(try database.keys(withPrefix: bytes("b/"), in: vectors, after: bytes("a"), limit: 2)
                == ["b/1", "b/10"].map(bytes))
        #expect(try database.keys(withPrefix: bytes("b/"), in: vectors, after: bytes("b/\u{FF}")) == [])
        #expect(try database.keys(withPrefix: bytes("b/"), in: vectors, limit: 0) == [])

        let page = try database.scan(prefix: bytes("b/"), in: vectors, after: bytes("b/1"), limit: 2)
        #expect(page.map(\.key) == ["b/10", "b/2"].map(bytes))
        #expect(page.map(\.value) == ["v:b/10", "v:b/2"].map(bytes))
        #expect(try database.keys(withPrefix: [], in: vectors).count == 7)
    }

    @Test func iteratorWalksAFamilyAndKeepsTheDatabaseOpen() throws {
        let directory = try TemporaryDirectory()
        // Neither the database nor its column family outlives this function; the iterator does.
        func makeIterator() throws -> Database.Iterator {
            let database = try Database(path: directory.file("db"), columnFamilies: ["jobs"])
            let jobs = try #require(database.columnFamily(named: "jobs"))
            for index in 0 ..< 5 { try database.put([UInt8(index)], [UInt8(index * 2)], in: jobs) }
            let iterator = database.makeIterator(in: jobs)
            try database.put([9], [9], in: jobs)  // After the iterator's snapshot: not seen.
            return iterator
        }
        let iterator = try makeIterator()
        #expect(iterator.columnFamily.name == "jobs")
        #expect(!iterator.isValid)
        iterator.seek(to: [])
        var entries: [[UInt8]] = []
        while iterator.isValid {
            entries.append(iterator.key + iterator.value)
            iterator.next()
        }
        try iterator.checkStatus()
        #expect(entries == [[0, 0], [1, 2], [2, 4], [3, 6], [4, 8]])
        iterator.seek(to: [2, 0])
        #expect(iterator.key == [3])
        #expect(iterator.value == [6])
    }

    @Test func reopeningKeepsTheData() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        do {
            let database = try Database(path: path, columnFamilies: ["models"])
            try database.put(bytes("codebook"), bytes("k=256"), in: database.columnFamily(named: "models")!)
        }
        let reopened = try Database(path: path, columnFamilies: ["models"],
                                    options: .init(createIfMissing: false, createMissingColumnFamilies: false))
        #expect(try reopened.get(bytes("codebook"), in: reopened.columnFamily(named: "models")!) == bytes("k=256"))
    }

    @Test func openingANonDatabaseWithoutCreateThrowsRocksDBsMessage() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("not-a-db")
        let error = #expect(throws: RocksDBError.self) {
            try Database(path: path, columnFamilies: [], options: .init(createIfMissing: false))
        }
        #expect(error?.code == .invalidArgument)
        #expect(error?.path == path)
        #expect(error?.operation == "open")
        #expect(error?.message.contains("does not exist") == true)
        #expect(error?.description.hasPrefix(path) == true)
    }

    @Test func readOnlyInstanceReadsButCannotWrite() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        do {
            let database = try Database(path: path, columnFamilies: ["models"])
            try database.put(bytes("m"), bytes("1"), in: database.columnFamily(named: "models")!)
        }
        let readOnly = try Database.openReadOnly(path: path, columnFamilies: ["models"])
        let models = try #require(readOnly.columnFamily(named: "models"))
        #expect(try readOnly.get(bytes("m"), in: models) == bytes("1"))
        let error = #expect(throws: RocksDBError.self) { try readOnly.put(bytes("m"), bytes("2"), in: models) }
        #expect(error?.code == .notSupported)
    }

    @Test func secondarySeesPrimaryWritesAfterCatchingUp() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        let primary = try Database(path: path, columnFamilies: ["vectors"])
        let primaryVectors = try #require(primary.columnFamily(named: "vectors"))
        try primary.put(bytes("first"), bytes("1"), in: primaryVectors)

        let secondary = try Database.openSecondary(path: path, secondaryPath: directory.file("secondary"),
                                                   columnFamilies: ["vectors"])
        let vectors = try #require(secondary.columnFamily(named: "vectors"))
        #expect(try secondary.get(bytes("first"), in: vectors) == bytes("1"))

        try primary.put(bytes("second"), bytes("2"), in: primaryVectors)
        #expect(try secondary.get(bytes("second"), in: vectors) == nil)
        try secondary.tryCatchUpWithPrimary()
        #expect(try secondary.get(bytes("second"), in: vectors) == bytes("2"))
    }

    /// An unlogged write is read at once by the primary, but reaches secondary instances
    /// (which follow the write-ahead log and the table files) only when its family is
    /// flushed; a logged write reaches them on the next catch-up.
    @Test func unloggedWritesReachSecondariesWhenTheirFamilyIsFlushed() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        let primary = try Database(path: path, columnFamilies: ["vectors", "jobs"])
        let primaryVectors = try #require(primary.columnFamily(named: "vectors"))
        let primaryJobs = try #require(primary.columnFamily(named: "jobs"))
        let secondary = try Database.openSecondary(path: path, secondaryPath: directory.file("secondary"),
                                                   columnFamilies: ["vectors", "jobs"])
        let vectors = try #require(secondary.columnFamily(named: "vectors"))
        let jobs = try #require(secondary.columnFamily(named: "jobs"))

        let batch = WriteBatch()
        batch.put(bytes("a"), bytes("1"), in: primaryVectors)
        batch.put(bytes("b"), bytes("2"), in: primaryVectors)
        try primary.write(batch, durability: .unlogged)
        try primary.put(bytes("job"), bytes("running"), in: primaryJobs)
        #expect(try primary.get(bytes("b"), in: primaryVectors) == bytes("2"))
        try secondary.tryCatchUpWithPrimary()
        #expect(try secondary.get(bytes("job"), in: jobs) == bytes("running"))
        #expect(try secondary.get(bytes("a"), in: vectors) == nil)

        try primary.flush(primaryVectors)
        try secondary.tryCatchUpWithPrimary()
        #expect(try secondary.get(bytes("a"), in: vectors) == bytes("1"))
        #expect(try secondary.get(bytes("b"), in: vectors) == bytes("2"))
    }

    @Test func manyIteratorsAndBatchesComeAndGo() throws {
        let directory = try TemporaryDirectory()
        let database = try Database(path: directory.file("db"), columnFamilies: families)
        let models = try #require(database.columnFamily(named: "models"))
        let jobs = try #require(database.columnFamily(named: "jobs"))
        for round in 0 ..< 2_000 {
            let batch = WriteBatch()
            batch.put(bytes("model/\(round % 10)"), [UInt8(truncatingIfNeeded: round)], in: models)
            batch.put(bytes("job/\(round % 10)"), [UInt8(truncatingIfNeeded: round)], in: jobs)
            try database.write(batch)
            let iterator = database.makeIterator(in: models)
            iterator.seek(to: [])
            #expect(iterator.isValid)
        }
        #expect(try database.keys(withPrefix: bytes("model/"), in: models).count == 10)
        #expect(try database.get(bytes("job/9"), in: jobs) == [UInt8(truncatingIfNeeded: 1999)])
    }
}
