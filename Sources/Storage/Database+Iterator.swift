import CRocksDB

extension Database {
    /// Makes an iterator over `family`, which reads the family as it was at this moment.
    public func makeIterator(in family: ColumnFamily) -> Iterator {
        requireOwnFamily(family)
        return Iterator(family)
    }

    /// A cursor over one column family in bytewise key order, destroyed in `deinit`.
    ///
    /// It keeps its database open and reads the snapshot taken when it was made. Start it
    /// with `seek(to:)` (`[]`: the first entry); `key`, `value` and `next()` need `isValid`.
    /// After the walk, `checkStatus()` tells an end of data from a read error. An iterator
    /// is for one thread at a time.
    public final class Iterator {
        /// The column family this iterator walks.
        public let columnFamily: ColumnFamily
        private let handle: OpaquePointer

        fileprivate init(_ family: ColumnFamily) {
            columnFamily = family
            handle = rocksdb_create_iterator_cf(family.database.handle, family.database.readOptions,
                                                family.handle)
        }

        deinit {
            rocksdb_iter_destroy(handle)
        }

        /// Whether the iterator is at an entry (false past the end or after an error).
        public var isValid: Bool { rocksdb_iter_valid(handle) != 0 }

        /// Moves to the first entry whose key is at or after `key`.
        public func seek(to key: [UInt8]) {
            key.withCBytes { rocksdb_iter_seek(handle, $0, $1) }
        }

        /// Moves to the next entry.
        public func next() {
            precondition(isValid, "next() on an iterator that is not at an entry")
            rocksdb_iter_next(handle)
        }

        /// The current entry's key.
        public var key: [UInt8] {
            precondition(isValid, "key of an iterator that is not at an entry")
            var length = 0
            let bytes = rocksdb_iter_key(handle, &length)
            return [UInt8](copying: bytes, count: length)
        }

        /// The current entry's value.
        public var value: [UInt8] {
            precondition(isValid, "value of an iterator that is not at an entry")
            var length = 0
            let bytes = rocksdb_iter_value(handle, &length)
            return [UInt8](copying: bytes, count: length)
        }

        /// `body` of the current entry's value, read in place: the bytes are valid only
        /// during the call.
        public func withValue<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            precondition(isValid, "value of an iterator that is not at an entry")
            var length = 0
            let bytes = rocksdb_iter_value(handle, &length)
            return try body(UnsafeRawBufferPointer(start: bytes, count: length))
        }

        /// Throws the error that stopped the iterator, if one did.
        public func checkStatus() throws {
            try LibRocksDB.call("iterate over \(columnFamily.name)", path: columnFamily.database.path) { error in
                rocksdb_iter_get_error(handle, error)
            }
        }
    }
}
