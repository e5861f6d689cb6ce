import CRocksDB

/// A value read without copying it: RocksDB keeps its bytes in place (in the block cache
/// or the memtable) until this is released. Holds the database open.
///
/// `@unchecked Sendable`: the bytes never change, and RocksDB releases a pinned value from
/// any thread.
public final class PinnedValue: @unchecked Sendable {
    /// The value's bytes, valid while this object lives.
    public let bytes: UnsafeRawBufferPointer
    private let slice: OpaquePointer
    private let database: Database

    init(slice: OpaquePointer, database: Database) {
        var length = 0
        let start = rocksdb_pinnableslice_value(slice, &length)
        bytes = UnsafeRawBufferPointer(start: start, count: length)
        self.slice = slice
        self.database = database
    }

    deinit { rocksdb_pinnableslice_destroy(slice) }
}
