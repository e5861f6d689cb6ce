#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Codebook's RocksDB store: the key schema (Protocols/storage.md) over four column families.
///
/// - `models`: model name → a model record.
/// - `sets`: set name → a set record (encoding, model, options, dimension).
/// - `vectors`: `set/imageKey` → one encoded vector.
/// - `jobs`: job id (8 bytes, big-endian, so jobs list in order) → the job and its last checkpoint.
///
/// Values are `StoredValue`s; what their metadata means is up to the caller. Only the
/// coordinator opens a store for writing; readers open it as a secondary instance, which
/// works while the coordinator writes and sees new writes after `catchUp()`.
public final class CodebookStore: Sendable {
    public static let columnFamilies = ["models", "sets", "vectors", "jobs"]

    /// Vectors are float32 and read by key: uncompressed tables, bloom filters, a 256 MiB
    /// block cache, and table files read through a memory map (a GET copies its 32 KiB
    /// vector from the page cache once, not twice: 15 vs 21 µs per GET in `codebook-bench store`).
    static let tuning = Database.Tuning(compression: false, pointLookupCacheMegabytes: 256, memoryMappedReads: true)

    /// How to open a store.
    public enum Mode: Sendable {
        /// Read-write, created if missing; one process at a time.
        case primary
        /// Read-only, following a primary that may be writing; `secondaryPath` is a
        /// directory of this reader's own.
        case secondary(secondaryPath: String)
    }

    public let path: String
    private let isPrimary: Bool
    /// The open database; replaced after a failed write (see `writableDatabase()`).
    private let state: Mutex<State>
    /// Held by the one writer that reopens the database; the time of its last attempt.
    private let reopening = Mutex<ContinuousClock.Instant?>(nil)
    /// The least time between two attempts to reopen a store that cannot be written: a
    /// write sooner than that after a failed one fails at once.
    public static let reopenInterval = Duration.seconds(1)

    /// A database and its column families, used together: a family of one database must
    /// never be used with another.
    private struct Opened: Sendable {
        let database: Database
        let readOnly: Bool
        let models, sets, vectors, jobs: ColumnFamily

        init(_ database: Database, readOnly: Bool = false) {
            self.database = database
            self.readOnly = readOnly
            models = database.columnFamily(named: "models")!
            sets = database.columnFamily(named: "sets")!
            vectors = database.columnFamily(named: "vectors")!
            jobs = database.columnFamily(named: "jobs")!
        }
    }

    private struct State: Sendable {
        var opened: Opened
        /// Set when a write failed on an I/O error: RocksDB then refuses every write (its
        /// background error) until the database is opened again.
        var writeFailure: RocksDBError?
    }

    public init(path: String, mode: Mode = .primary) throws {
        self.path = path
        let database: Database
        do {
            switch mode {
            case .primary:
                isPrimary = true
                database = try Database(path: path, columnFamilies: Self.columnFamilies, tuning: Self.tuning)
            case .secondary(let secondaryPath):
                isPrimary = false
                database = try Database.openSecondary(path: path, secondaryPath: secondaryPath,
                                                      columnFamilies: Self.columnFamilies, tuning: Self.tuning)
            }
        } catch let error as RocksDBError {
            switch error.code {
            case .invalidArgument:
                throw StoreError(.mismatch, "cannot open \(path) as a Codebook store (column families "
                                 + "\(Self.columnFamilies.joined(separator: ", "))): \(error.message)",
                                 path: path, underlying: error)
            case .ioError where error.message.contains("lock"):
                throw StoreError(.unavailable, "cannot open \(path): it is in use by another process (a running coordinator?): \(error.message)",
                                 path: path, underlying: error)
            case .ioError, .busy, .timedOut:
                throw StoreError(.unavailable, "cannot open \(path) as a Codebook store: \(error.message)", path: path, underlying: error)
            default:
                throw StoreError(.notFound, "cannot open \(path) as a Codebook store: \(error.message)", path: path, underlying: error)
            }
        }
        state = Mutex(State(opened: Opened(database)))
    }

    /// For a secondary instance: catch up with the primary's writes so far, never showing a
    /// write without the ones before it (see `Database.tryCatchUpWithPrimary()`; it throws a
    /// `.busy` `RocksDBError` when the primary switched logs during each of 8 attempts).
    public func catchUp() throws { try opened.database.tryCatchUpWithPrimary() }

    // MARK: Reads, writes and a full disk

    /// The database to read from (and its families, taken together).
    private var opened: Opened { state.withLock { $0.opened } }

    /// Runs `body`, which writes, on a writable database. A write that fails on an I/O error
    /// (a full disk, typically) throws an `.unavailable` error naming the store, and makes
    /// the next write reopen the database first.
    private func write<Result>(_ what: @autoclosure () -> String, _ body: (Opened) throws -> Result) throws -> Result {
        let opened = try writableDatabase(for: what())
        do {
            return try body(opened)
        } catch let error as RocksDBError where error.code == .ioError && isPrimary {
            state.withLock { if $0.opened.database === opened.database { $0.writeFailure = error } }
            throw writeFailure(error, what())
        }
    }

    private func writeFailure(_ error: RocksDBError, _ what: String) -> StoreError {
        let cause = error.message.localizedCaseInsensitiveContains("no space left") ? "no space left on device" : "I/O error"
        return StoreError(.unavailable, "\(cause) (store \(path)): cannot \(what); reads still work, and writes "
                          + "work again once the cause is gone [\(error.message)]", path: path, underlying: error)
    }

    /// The database to write to. After a failed write RocksDB refuses writes until it is
    /// opened again (its C API has no `Resume`), and it allows one read-write instance per
    /// directory. So readers move to a read-only instance, which sees every write that
    /// returned; the failed instance closes once its last reader lets go; and a new
    /// read-write instance opens. While that fails (the disk is still full) readers keep the
    /// read-only instance, and writes try again at most once per `reopenInterval`.
    private func writableDatabase(for what: String) throws -> Opened {
        if let opened = state.withLock({ $0.writeFailure == nil ? $0.opened : nil }) { return opened }
        return try reopening.withLock { lastAttempt in
            let failure = state.withLock { $0.writeFailure }
            guard let failure else { return opened }  // another writer has reopened it
            let now = ContinuousClock.now
            if let lastAttempt, now - lastAttempt < Self.reopenInterval { throw writeFailure(failure, what) }
            lastAttempt = now
            do {
                try moveReadersToReadOnlyInstance()
                let reopened = Opened(try Database(path: path, columnFamilies: Self.columnFamilies, tuning: Self.tuning))
                state.withLock { $0 = State(opened: reopened) }
                return reopened
            } catch let error as RocksDBError {
                state.withLock { $0.writeFailure = error }
                throw writeFailure(error, what)
            }
        }
    }

    /// Replaces a read-write database by a read-only instance of the same directory, and
    /// waits (up to 5 s) until the read-write one has closed, its last user gone.
    private func moveReadersToReadOnlyInstance() throws {
        weak var replaced: Database?
        do {
            let current = opened
            guard !current.readOnly else { return }
            let readOnly = Opened(try Database.openReadOnly(path: path, columnFamilies: Self.columnFamilies, tuning: Self.tuning),
                                  readOnly: true)
            state.withLock { $0.opened = readOnly }
            replaced = current.database
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while replaced != nil, ContinuousClock.now < deadline { usleep(1_000) }
    }

    // MARK: Names and keys

    /// Checks a model or set name: 1 to 255 bytes of UTF-8, no '/', no control characters.
    public static func validate(name: String, of what: String) throws {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 255, !name.contains("/"),
              !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw StoreError(.invalidName, "\(what) name \"\(name)\" must be 1–255 bytes without '/' or control characters")
        }
    }

    static func vectorKey(set: String, key: String) -> [UInt8] { Array("\(set)/\(key)".utf8) }

    /// Job `id`'s key in `jobs`: the id, 8 bytes big-endian.
    public static func jobKey(_ id: UInt64) -> [UInt8] { withUnsafeBytes(of: id.bigEndian) { Array($0) } }

    // MARK: Models

    public func model(named name: String) throws -> StoredValue? {
        let opened = opened
        return try opened.database.get(Array(name.utf8), in: opened.models).map {
            try StoredValue(bytes: $0, expecting: .model, key: "model \(name)")
        }
    }

    /// Stores a model; an existing one is kept (and an error thrown) unless `replace`.
    /// With `job`, the job's record is written in the same atomic batch.
    public func putModel(named name: String, _ value: StoredValue, replace: Bool,
                         job: (id: UInt64, value: StoredValue)? = nil) throws {
        try write("store model \"\(name)\"") { opened in
            try checkModelName(name, replace: replace, in: opened)
            let batch = WriteBatch()
            batch.put(Array(name.utf8), value.bytes, in: opened.models)
            if let job { batch.put(Self.jobKey(job.id), job.value.bytes, in: opened.jobs) }
            try opened.database.write(batch)
        }
    }

    /// Stores a model whose values are `arrays` back to back, as
    /// `putModel(named:_:replace:job:)` does, without first copying them into one value.
    public func putModel(named name: String, metadata: [UInt8], arrays: [[Float]], replace: Bool) throws {
        try write("store model \"\(name)\"") { opened in
            try checkModelName(name, replace: replace, in: opened)
            let key = Array(name.utf8)
            let prefix = StoredValue.prefix(kind: .model, metadata: metadata, floatCount: arrays.reduce(0) { $0 + $1.count })
            let batch = WriteBatch()
            func put(_ parts: [UnsafeRawBufferPointer], _ rest: ArraySlice<[Float]>) {
                guard let next = rest.first else { return batch.put(key, parts: parts, in: opened.models) }
                next.withUnsafeBytes { put(parts + [$0], rest.dropFirst()) }
            }
            prefix.withUnsafeBytes { put([$0], arrays[...]) }
            try opened.database.write(batch)
        }
    }

    /// Throws unless `name` is a valid model name, free or to be replaced.
    private func checkModelName(_ name: String, replace: Bool, in opened: Opened) throws {
        try Self.validate(name: name, of: "model")
        if !replace, try opened.database.get(Array(name.utf8), in: opened.models) != nil {
            throw StoreError(.exists, "a model named \"\(name)\" exists", path: path)
        }
    }

    /// Model names in byte order.
    public func modelNames() throws -> [String] {
        let opened = opened
        return try opened.database.keys(withPrefix: [], in: opened.models).map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: Sets and vectors

    public func set(named name: String) throws -> StoredValue? {
        let opened = opened
        return try opened.database.get(Array(name.utf8), in: opened.sets).map {
            try StoredValue(bytes: $0, expecting: .set, key: "set \(name)")
        }
    }

    /// Stores a set's record; with `job`, the job's record is written in the same atomic batch.
    public func putSet(named name: String, _ value: StoredValue, job: (id: UInt64, value: StoredValue)? = nil) throws {
        try Self.validate(name: name, of: "set")
        try write("store set \"\(name)\"") { opened in
            let batch = WriteBatch()
            batch.put(Array(name.utf8), value.bytes, in: opened.sets)
            if let job { batch.put(Self.jobKey(job.id), job.value.bytes, in: opened.jobs) }
            try opened.database.write(batch)
        }
    }

    /// Set names in byte order.
    public func setNames() throws -> [String] {
        let opened = opened
        return try opened.database.keys(withPrefix: [], in: opened.sets).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Deletes a set's record and every vector in it.
    public func deleteSet(named name: String) throws {
        let prefix = Self.vectorKey(set: name, key: "")
        try write("delete set \"\(name)\"") { opened in
            var after: [UInt8]?
            while true {
                let keys = try opened.database.keys(withPrefix: prefix, in: opened.vectors, after: after, limit: 4096)
                guard let last = keys.last else { break }
                let batch = WriteBatch()
                for key in keys { batch.delete(key, in: opened.vectors) }
                try opened.database.write(batch)
                after = last
            }
            try opened.database.delete(Array(name.utf8), in: opened.sets)
        }
    }

    public func vector(set: String, key: String) throws -> StoredValue? {
        let opened = opened
        return try opened.database.get(Self.vectorKey(set: set, key: key), in: opened.vectors).map {
            try StoredValue(bytes: $0, expecting: .vector, key: "\(set)/\(key)")
        }
    }

    /// The stored bytes of `set/key` (a `StoredValue`), undecoded and in place.
    public func vectorValue(set: String, key: String) throws -> PinnedValue? {
        let opened = opened
        return try opened.database.getPinned(Self.vectorKey(set: set, key: key), in: opened.vectors)
    }

    /// Whether `set/key` holds a vector (without decoding it).
    public func hasVector(set: String, key: String) throws -> Bool {
        try vectorValue(set: set, key: key) != nil
    }

    /// Writes vectors in one atomic batch: each image's vector is whole or absent.
    public func putVectors(_ entries: [(set: String, key: String, value: StoredValue)]) throws {
        try write("store \(entries.count) vectors") { opened in
            let batch = WriteBatch()
            for entry in entries { batch.put(Self.vectorKey(set: entry.set, key: entry.key), entry.value.bytes, in: opened.vectors) }
            try opened.database.write(batch)
        }
    }

    /// Writes the vectors of `keys` into `set` in one atomic batch, vector i being
    /// `floatBytes[i·4·dimension ..< (i+1)·4·dimension]` (little-endian float32) with the
    /// shared, already encoded `metadata`; each value goes into the batch from its parts.
    /// `.unlogged` vectors are durable only after `flushVectors()`.
    public func putVectors(set: String, keys: [String], metadata: [UInt8], dimension: Int,
                           floatBytes: UnsafeRawBufferPointer, durability: Database.Durability) throws {
        precondition(floatBytes.count == keys.count * dimension * 4, "one vector of the dimension per key")
        let prefix = StoredValue.prefix(kind: .vector, metadata: metadata, floatCount: dimension)
        try write("store \(keys.count) vectors in set \"\(set)\"") { opened in
            let batch = WriteBatch()
            prefix.withUnsafeBytes { prefix in
                for (index, key) in keys.enumerated() {
                    let vector = UnsafeRawBufferPointer(rebasing: floatBytes[index * dimension * 4 ..< (index + 1) * dimension * 4])
                    batch.put(Self.vectorKey(set: set, key: key), parts: [prefix, vector], in: opened.vectors)
                }
            }
            try opened.database.write(batch, durability: durability)
        }
    }

    /// Writes the vectors held in memory to a table file and waits: every `.unlogged`
    /// vector written before the call is then durable and visible to secondary instances.
    public func flushVectors() throws {
        try write("flush vectors to disk") { try $0.database.flush($0.vectors) }
    }

    /// Full keys (`set/imageKey`) of the vectors starting with `prefix`, in byte order,
    /// after `after` (exclusive), at most `limit`.
    public func vectorKeys(prefix: String, after: String? = nil, limit: Int) throws -> [String] {
        let opened = opened
        return try opened.database.keys(withPrefix: Array(prefix.utf8), in: opened.vectors, after: after.map { Array($0.utf8) },
                                        limit: limit).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with every vector of `set` in byte order of the image keys (from image
    /// key `from` on, at most `limit`): the image key and the stored value's bytes (a
    /// `StoredValue`), valid during the call only.
    public func forEachVector(set: String, from: String = "", limit: Int = .max,
                              _ body: (String, UnsafeRawBufferPointer) throws -> Void) throws {
        let opened = opened, prefix = Self.vectorKey(set: set, key: "")
        let iterator = opened.database.makeIterator(in: opened.vectors)
        iterator.seek(to: Self.vectorKey(set: set, key: from))
        var visited = 0
        while iterator.isValid, visited < limit {
            visited += 1
            let key = iterator.key
            guard key.starts(with: prefix) else { break }
            try iterator.withValue { try body(String(decoding: key[prefix.count...], as: UTF8.self), $0) }
            iterator.next()
        }
        try iterator.checkStatus()
    }

    // MARK: Jobs

    public func job(_ id: UInt64) throws -> StoredValue? {
        let opened = opened
        return try opened.database.get(Self.jobKey(id), in: opened.jobs).map {
            try StoredValue(bytes: $0, expecting: .job, key: "job \(id)")
        }
    }

    public func putJob(_ id: UInt64, _ value: StoredValue) throws {
        try write("store job \(id)") { try $0.database.put(Self.jobKey(id), value.bytes, in: $0.jobs) }
    }

    /// Deletes jobs (their records and values) in one atomic batch.
    public func deleteJobs(_ ids: [UInt64]) throws {
        try write("delete \(ids.count) job(s)") { opened in
            let batch = WriteBatch()
            for id in ids { batch.delete(Self.jobKey(id), in: opened.jobs) }
            try opened.database.write(batch)
        }
    }

    /// Every job, in id order (quarantined values left out). Throws for a key that is not a
    /// job id, or a value that is not a job value.
    public func allJobs() throws -> [(id: UInt64, value: StoredValue)] {
        try jobValues().filter { !Self.isQuarantinedJobKey($0.key) }.map { entry in
            guard let id = entry.id else { throw StoreError(.corrupt, "job key \(Self.hex(entry.key)) is not an 8-byte job id") }
            return try (id, entry.value.get())
        }
    }

    /// The prefix of the key that keeps an unreadable job value (`quarantineJob`); the job's
    /// 8-byte id follows it.
    public static let quarantinedJobPrefix = Array("quarantined job ".utf8)

    /// Every value of the `jobs` column family, in key order, with its bytes and as it decodes:
    /// `id` is nil for a key that is not an 8-byte job id (a quarantined value's key, say), and
    /// a value that is not a valid job value comes with the error saying why.
    public func jobValues() throws -> [(key: [UInt8], id: UInt64?, bytes: [UInt8], value: Result<StoredValue, any Error>)] {
        let opened = opened
        return try opened.database.scan(prefix: [], in: opened.jobs).map { entry in
            let id = entry.key.count == 8 ? entry.key.reduce(UInt64(0)) { $0 << 8 | UInt64($1) } : nil
            let name = id.map { "job \($0)" } ?? "job key \(Self.hex(entry.key))"
            return (entry.key, id, entry.value, Result { try StoredValue(bytes: entry.value, expecting: .job, key: name) })
        }
    }

    /// Replaces job `id`'s value by `replacement` and keeps its former bytes under
    /// `quarantinedJobPrefix` + the id's 8 bytes, in one atomic batch.
    public func quarantineJob(_ id: UInt64, original: [UInt8], replacement: StoredValue) throws {
        try write("quarantine job \(id)") { opened in
            let batch = WriteBatch()
            batch.put(Self.quarantinedJobKey(id), original, in: opened.jobs)
            batch.put(Self.jobKey(id), replacement.bytes, in: opened.jobs)
            try opened.database.write(batch)
        }
    }

    /// The key under which `quarantineJob` keeps job `id`'s former bytes.
    public static func quarantinedJobKey(_ id: UInt64) -> [UInt8] { quarantinedJobPrefix + jobKey(id) }

    /// Whether `key` is a `quarantinedJobKey`.
    public static func isQuarantinedJobKey(_ key: [UInt8]) -> Bool {
        key.count == quarantinedJobPrefix.count + 8 && key.starts(with: quarantinedJobPrefix)
    }

    /// Bytes as lowercase hexadecimal, for naming a key in a message.
    public static func hex(_ bytes: [UInt8]) -> String { bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined() }
}
