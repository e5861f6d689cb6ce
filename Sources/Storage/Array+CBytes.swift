extension Array<UInt8> {
    /// A copy of the `count` bytes RocksDB returned at `start` (`nil` when `count` is 0).
    init(copying start: UnsafePointer<CChar>?, count: Int) {
        self.init(UnsafeRawBufferPointer(start: start, count: count))
    }

    /// Calls `body` with this array's bytes as RocksDB takes them: a pointer and a length,
    /// never read as a C string, so keys and values may contain zero bytes. An empty array
    /// gets a valid pointer too.
    @inline(__always)
    func withCBytes<Result>(_ body: (UnsafePointer<CChar>, Int) throws -> Result) rethrows -> Result {
        try withUnsafeBytes { bytes in
            guard let base = bytes.baseAddress else {
                var empty: CChar = 0
                return try body(&empty, 0)
            }
            return try body(base.assumingMemoryBound(to: CChar.self), bytes.count)
        }
    }
}
