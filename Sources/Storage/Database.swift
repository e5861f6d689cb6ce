import CRocksDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A RocksDB database and its open column families, closed in `deinit`.
///
/// Keys and values are bytes, compared bytewise. A missing key reads as `nil`; an empty
/// value is `[]`. Column family handles, iterators and write batches keep the database
/// open while they exist.
///
/// `@unchecked Sendable`: RocksDB documents a database as safe for concurrent reads and
/// writes from many threads without external locking, and this class's own state does
/// not change after opening.
public final class Database: @unchecked Sendable {
    /// How `init(path:columnFamilies:options:)` opens a database for writing.
    public struct Options: Sendable, Hashable {
        /// Create the database if `path` holds none.
        public var createIfMissing: Bool
        /// Create the listed column families that do not exist yet.
        public var createMissingColumnFamilies: Bool

        public init(createIfMissing: Bool = true, createMissingColumnFamilies: Bool = true) {
            self.createIfMissing = createIfMissing
            self.createMissingColumnFamilies = createMissingColumnFamilies
        }
    }

    /// What a write survives.
    public enum Durability: Sendable, Hashable {
        /// In the write-ahead log, which the system writes back (RocksDB's default): the
        /// write survives the process's crash.
        case logged
        /// In the write-ahead log, synced to disk before the write returns: the write
        /// survives the machine's crash.
        case synced
        /// Kept out of the write-ahead log: until `flush(_:)` writes its column family to a
        /// table file, the write is in memory only (lost if the process dies) and secondary
        /// instances do not see it. For bulk data that can be made again.
        case unlogged
    }

    /// How data is kept, for any way of opening.
    public struct Tuning: Sendable, Hashable {
        /// Compress table files (RocksDB's default); float data gains little from it and
        /// every read pays for decompression.
        public var compression: Bool
        /// Tune for reads of single keys with a block cache of this many MiB
        /// (`OptimizeForPointLookup`: bloom filters, a hashed block index); 0 keeps RocksDB's defaults.
        public var pointLookupCacheMegabytes: Int
        /// Read table files through a memory map (`allow_mmap_reads`): an uncompressed
        /// value is read from the page cache in place instead of being copied in first.
        public var memoryMappedReads: Bool

        public init(compression: Bool = true, pointLookupCacheMegabytes: Int = 0, memoryMappedReads: Bool = false) {
            self.compression = compression
            self.pointLookupCacheMegabytes = pointLookupCacheMegabytes
            self.memoryMappedReads = memoryMappedReads
        }
    }

    private enum Mode {
        case readWrite(Options)
        case readOnly
        case secondary(path: String)
    }

    /// The database directory.
    public let path: String
    /// The open column families, `"default"` first.
    public let columnFamilyNames: [String]
    let handle: OpaquePointer
    let readOptions: OpaquePointer
    /// Write options by durability.
    private let writeOptions: [Durability: OpaquePointer]
    private let columnFamilyHandles: [String: OpaquePointer]

    /// Opens the database at `path` for reading and writing, with the column families
    /// `columnFamilies` (the `"default"` family is always opened). Every column family
    /// that exists must be listed: RocksDB refuses to open a database otherwise.
    public convenience init(path: String, columnFamilies: [String],
                            options: Options = Options(), tuning: Tuning = Tuning()) throws {
        try self.init(path: path, columnFamilies: columnFamilies, mode: .readWrite(options), tuning: tuning)
    }

    /// Opens the database at `path` read-only: a consistent view as of opening, which does
    /// not see later writes. Any subset of the column families may be listed.
    public static func openReadOnly(path: String, columnFamilies: [String], tuning: Tuning = Tuning()) throws -> Database {
        try Database(path: path, columnFamilies: columnFamilies, mode: .readOnly, tuning: tuning)
    }

    /// RocksDB's `InfoLogLevel::HEADER_LEVEL`.
    private static let headerLogLevel: Int32 = 5

    /// Opens the database at `path`, which another process may be writing, as a secondary
    /// instance: read-only, and brought up to date by `tryCatchUpWithPrimary()`.
    /// `secondaryPath` is a directory of its own where this instance keeps its logs.
    public static func openSecondary(path: String, secondaryPath: String,
                                     columnFamilies: [String], tuning: Tuning = Tuning()) throws -> Database {
        try retryingRaceWithPrimary {
            try Database(path: path, columnFamilies: columnFamilies, mode: .secondary(path: secondaryPath), tuning: tuning)
        }
    }

    /// Runs `body` again (up to `attempts` times, 20, 40, … ms apart) while it fails because
    /// the primary deleted a file the secondary had just read about: a table file its
    /// compaction replaced, or a MANIFEST it rotated (RocksDB reports "No such file or
    /// directory" or "Try again"; facebook/rocksdb#12469, #14125). The next attempt reads the
    /// newer MANIFEST, which no longer lists the file.
    static func retryingRaceWithPrimary<Result>(attempts: Int = 6, _ body: () throws -> Result) throws -> Result {
        var attempt = 1
        while true {
            do {
                return try body()
            } catch let error as RocksDBError where attempt < attempts && error.isRaceWithPrimary {
                usleep(useconds_t(20_000 * attempt))
                attempt += 1
            }
        }
    }

    private init(path: String, columnFamilies: [String], mode: Mode, tuning: Tuning = Tuning()) throws {
        var names = ["default"]
        for name in columnFamilies where !names.contains(name) { names.append(name) }

        let options = rocksdb_options_create()
        defer { rocksdb_options_destroy(options) }  // RocksDB copies the options it opens with.
        // RocksDB's own log (LOG) gets its header at open and nothing after: with the
        // library built with assertions (Debian's), a write to a LOG whose last write failed
        // (a full disk) aborts the process. Errors reach callers as `RocksDBError`s instead.
        rocksdb_options_set_info_log_level(options, Self.headerLogLevel)
        if !tuning.compression { rocksdb_options_set_compression(options, Int32(rocksdb_no_compression)) }
        if tuning.memoryMappedReads { rocksdb_options_set_allow_mmap_reads(options, 1) }
        if tuning.pointLookupCacheMegabytes > 0 {
            rocksdb_options_optimize_for_point_lookup(options, UInt64(tuning.pointLookupCacheMegabytes))
        }
        switch mode {
        case .readWrite(let settings):
            rocksdb_options_set_create_if_missing(options, settings.createIfMissing ? 1 : 0)
            rocksdb_options_set_create_missing_column_families(
                options, settings.createMissingColumnFamilies ? 1 : 0)
        case .readOnly:
            break
        case .secondary:
            // A secondary instance must keep every table file open (RocksDB requires -1).
            rocksdb_options_set_max_open_files(options, -1)
        }

        let familyOptions = [OpaquePointer?](repeating: options, count: names.count)
        var familyHandles = [OpaquePointer?](repeating: nil, count: names.count)
        let count = Int32(names.count)
        let handle = try names.withCStringArray { cNames in
            try LibRocksDB.call("open", path: path) { error in
                switch mode {
                case .readWrite:
                    rocksdb_open_column_families(options, path, count, cNames, familyOptions,
                                                 &familyHandles, error)
                case .readOnly:
                    rocksdb_open_for_read_only_column_families(options, path, count, cNames,
                                                               familyOptions, &familyHandles, 0, error)
                case .secondary(let secondaryPath):
                    rocksdb_open_as_secondary_column_families(options, path, secondaryPath, count,
                                                              cNames, familyOptions, &familyHandles, error)
                }
            }
        }
        guard let handle else {
            preconditionFailure("RocksDB open of \(path) returned neither a database nor an error")
        }
        self.handle = handle
        self.path = path
        self.columnFamilyNames = names
        self.columnFamilyHandles = Dictionary(uniqueKeysWithValues: zip(names, familyHandles.map { $0! }))
        self.readOptions = rocksdb_readoptions_create()
        let synced = rocksdb_writeoptions_create()!, unlogged = rocksdb_writeoptions_create()!
        rocksdb_writeoptions_set_sync(synced, 1)
        rocksdb_writeoptions_disable_WAL(unlogged, 1)
        self.writeOptions = [.logged: rocksdb_writeoptions_create(), .synced: synced, .unlogged: unlogged]
    }

    deinit {
        for family in columnFamilyHandles.values { rocksdb_column_family_handle_destroy(family) }
        rocksdb_close(handle)
        rocksdb_readoptions_destroy(readOptions)
        writeOptions.values.forEach(rocksdb_writeoptions_destroy)
    }

    // MARK: Column families

    /// The open column family called `name`, or `nil` if it was not opened.
    public func columnFamily(named name: String) -> ColumnFamily? {
        columnFamilyHandles[name].map { ColumnFamily(name: name, database: self, handle: $0) }
    }

    // MARK: Reads and writes

    /// The value stored under `key` in `family`, or `nil` if there is none.
    public func get(_ key: [UInt8], in family: ColumnFamily) throws -> [UInt8]? {
        try getPinned(key, in: family).map { [UInt8]($0.bytes) }
    }

    /// The value stored under `key` in `family`, read in place, or `nil` if there is none.
    public func getPinned(_ key: [UInt8], in family: ColumnFamily) throws -> PinnedValue? {
        requireOwnFamily(family)
        // A pinned slice tells "missing" (nil) from "empty" without relying on malloc(0).
        let slice = try key.withCBytes { keyBytes, keyLength in
            try LibRocksDB.call("get in \(family.name)", path: path) { error in
                rocksdb_get_pinned_cf(handle, readOptions, family.handle, keyBytes, keyLength, error)
            }
        }
        return slice.map { PinnedValue(slice: $0, database: self) }
    }

    /// Stores `value` under `key` in `family`.
    public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily, durability: Durability = .logged) throws {
        requireOwnFamily(family)
        let options = writeOptions[durability]
        try key.withCBytes { keyBytes, keyLength in
            try value.withCBytes { valueBytes, valueLength in
                try LibRocksDB.call("put in \(family.name)", path: path) { error in
                    rocksdb_put_cf(handle, options, family.handle, keyBytes, keyLength,
                                   valueBytes, valueLength, error)
                }
            }
        }
    }

    /// Removes `key` from `family`; removing a missing key is not an error.
    public func delete(_ key: [UInt8], in family: ColumnFamily, durability: Durability = .logged) throws {
        requireOwnFamily(family)
        let options = writeOptions[durability]
        try key.withCBytes { keyBytes, keyLength in
            try LibRocksDB.call("delete in \(family.name)", path: path) { error in
                rocksdb_delete_cf(handle, options, family.handle, keyBytes, keyLength, error)
            }
        }
    }

    /// Applies every operation of `batch` atomically: readers see all of them or none.
    public func write(_ batch: WriteBatch, durability: Durability = .logged) throws {
        precondition(batch.database == nil || batch.database === self,
                     "the write batch holds column families of another database")
        let options = writeOptions[durability]
        try LibRocksDB.call("write batch of \(batch.count)", path: path) { error in
            rocksdb_write(handle, options, batch.handle, error)
        }
    }

    /// Writes the memtable of `family` to a table file and waits until it is on disk: the
    /// family's `.unlogged` writes made before the call become durable, and visible to
    /// secondary instances once they catch up.
    public func flush(_ family: ColumnFamily) throws {
        requireOwnFamily(family)
        let options = rocksdb_flushoptions_create()
        defer { rocksdb_flushoptions_destroy(options) }
        rocksdb_flushoptions_set_wait(options, 1)
        try LibRocksDB.call("flush \(family.name)", path: path) { error in
            rocksdb_flush_cf(handle, options, family.handle, error)
        }
    }

    /// Secondary instance only: replays the primary's newest writes so reads see them,
    /// never a write without the ones before it.
    ///
    /// One RocksDB catch-up reads the primary's MANIFEST, then lists its write-ahead logs and
    /// reads them. When the primary flushes a memtable in between (its restart does: recovery
    /// writes the old log to a table file, records it in a new MANIFEST and deletes the log),
    /// that catch-up misses both the table file and the unread rest of the deleted log, yet
    /// reads the newer log: later writes show without earlier ones. The primary records the
    /// table file before it deletes the log, so a catch-up during which the set of logs did
    /// not change reads it (and drops the stale memtable). Hence: catch up until one catch-up
    /// saw the same logs before and after (at most 8 catch-ups; then it throws a `.busy` error).
    public func tryCatchUpWithPrimary() throws {
        try catchUpWithPrimary { try catchUpOnce() }
    }

    /// The loop of `tryCatchUpWithPrimary()`, with `attempt` doing one RocksDB catch-up.
    func catchUpWithPrimary(attempts: Int = 8, attempt: () throws -> Void) throws {
        for number in 1...attempts {
            let before = try primaryLogFiles()
            try attempt()
            if try primaryLogFiles() == before { return }
            if number < attempts { usleep(useconds_t(10_000 * number)) }
        }
        throw RocksDBError(code: .busy, message: "the primary switched its write-ahead logs during each of \(attempts) catch-ups, "
                           + "so the view may miss writes; try again", operation: "catch up with primary", path: path)
    }

    /// One RocksDB catch-up, tried again when the primary deleted a file it was reading.
    func catchUpOnce() throws {
        try Self.retryingRaceWithPrimary {
            try LibRocksDB.call("catch up with primary", path: path) { error in
                rocksdb_try_catch_up_with_primary(handle, error)
            }
        }
    }

    /// The names of the primary's write-ahead logs (`NNNNNN.log` in its directory, where
    /// RocksDB keeps them unless told otherwise).
    func primaryLogFiles() throws -> Set<String> {
        guard let directory = opendir(path) else {
            throw RocksDBError(code: .ioError, message: "cannot list the directory: \(String(cString: strerror(errno)))",
                               operation: "catch up with primary", path: path)
        }
        defer { closedir(directory) }
        var names = Set<String>()
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let stem = name.utf8.dropLast(4)
            if name.hasSuffix(".log"), !stem.isEmpty, stem.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) {
                names.insert(name)
            }
        }
        return names
    }

    /// Traps when `family` comes from another database: its handle would be used after
    /// that database closed, or address the wrong family here.
    func requireOwnFamily(_ family: ColumnFamily) {
        precondition(family.database === self,
                     "column family \(family.name) belongs to the database at \(family.database.path)")
    }
}

extension Array<String> {
    /// Calls `body` with these strings as a C array of NUL-terminated strings.
    fileprivate func withCStringArray<Result>(
        _ body: (UnsafePointer<UnsafePointer<CChar>?>) throws -> Result
    ) rethrows -> Result {
        let copies = map { strdup($0) }
        defer { copies.forEach { free($0) } }
        return try copies.map { UnsafePointer($0) }.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }
}
