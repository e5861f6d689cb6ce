extension Database {
    /// The keys in `family` that start with `prefix`, in bytewise order: those after `start`
    /// (exclusive) if given, at most `limit` of them. Pass the last key of one page as
    /// `start` of the next.
    public func keys(withPrefix prefix: [UInt8], in family: ColumnFamily, after start: [UInt8]? = nil,
                     limit: Int = .max) throws -> [[UInt8]] {
        var keys: [[UInt8]] = []
        try forEachEntry(withPrefix: prefix, in: family, after: start, limit: limit) { key, _ in
            keys.append(key)
        }
        return keys
    }

    /// Like `keys(withPrefix:in:after:limit:)`, with each key's value.
    public func scan(prefix: [UInt8], in family: ColumnFamily, after start: [UInt8]? = nil,
                     limit: Int = .max) throws -> [(key: [UInt8], value: [UInt8])] {
        var entries: [(key: [UInt8], value: [UInt8])] = []
        try forEachEntry(withPrefix: prefix, in: family, after: start, limit: limit) { key, iterator in
            entries.append((key, iterator.value))
        }
        return entries
    }

    private func forEachEntry(withPrefix prefix: [UInt8], in family: ColumnFamily, after start: [UInt8]?,
                              limit: Int, _ body: ([UInt8], Iterator) -> Void) throws {
        let iterator = makeIterator(in: family)
        if let start, !start.lexicographicallyPrecedes(prefix) {
            iterator.seek(to: start)
            if iterator.isValid && iterator.key == start { iterator.next() }
        } else {
            iterator.seek(to: prefix)
        }
        var count = 0
        while count < limit && iterator.isValid {
            let key = iterator.key
            guard key.starts(with: prefix) else { break }
            body(key, iterator)
            count += 1
            iterator.next()
        }
        try iterator.checkStatus()
    }
}
