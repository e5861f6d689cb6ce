import CRocksDB

/// Puts and deletes, possibly in several column families, that `Database.write(_:sync:)`
/// applies atomically. Nothing is visible before that write. Destroyed in `deinit`.
///
/// A batch is for one database and one thread at a time.
public final class WriteBatch {
    let handle: OpaquePointer
    /// The database of the column families used so far; kept open while the batch refers to it.
    private(set) var database: Database?

    public init() {
        handle = rocksdb_writebatch_create()
    }

    deinit {
        rocksdb_writebatch_destroy(handle)
    }

    /// The number of operations in the batch.
    public var count: Int { Int(rocksdb_writebatch_count(handle)) }

    /// Adds "store the concatenation of `parts` under `key` in `family`", without
    /// concatenating them first.
    public func put(_ key: [UInt8], parts: [UnsafeRawBufferPointer], in family: ColumnFamily) {
        use(family)
        let pointers = parts.map { $0.baseAddress?.assumingMemoryBound(to: CChar.self) }
        let sizes = parts.map(\.count)
        key.withCBytes { keyBytes, keyLength in
            var keyPointer: UnsafePointer<CChar>? = keyBytes
            var keySize = keyLength
            rocksdb_writebatch_putv_cf(handle, family.handle, 1, &keyPointer, &keySize, Int32(parts.count), pointers, sizes)
        }
    }

    /// Adds "store `value` under `key` in `family`".
    public func put(_ key: [UInt8], _ value: [UInt8], in family: ColumnFamily) {
        use(family)
        key.withCBytes { keyBytes, keyLength in
            value.withCBytes { valueBytes, valueLength in
                rocksdb_writebatch_put_cf(handle, family.handle, keyBytes, keyLength, valueBytes, valueLength)
            }
        }
    }

    /// Adds "remove `key` from `family`".
    public func delete(_ key: [UInt8], in family: ColumnFamily) {
        use(family)
        key.withCBytes { keyBytes, keyLength in
            rocksdb_writebatch_delete_cf(handle, family.handle, keyBytes, keyLength)
        }
    }

    /// Removes every operation, so the batch can be filled again (for any database).
    public func clear() {
        rocksdb_writebatch_clear(handle)
        database = nil
    }

    private func use(_ family: ColumnFamily) {
        if let database {
            precondition(family.database === database,
                         "a write batch cannot mix column families of two databases")
        } else {
            database = family.database
        }
    }
}
