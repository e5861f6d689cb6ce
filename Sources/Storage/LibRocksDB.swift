import CRocksDB

/// The one place that interprets RocksDB's C error convention.
enum LibRocksDB {
    /// Runs `body` with a fresh error pointer of its own (never shared between calls or
    /// threads). If RocksDB stored a message there, frees it and throws it as a `RocksDBError`.
    static func call<Result>(_ operation: @autoclosure () -> String, path: String,
                             _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Result) throws -> Result {
        var error: UnsafeMutablePointer<CChar>? = nil
        let result = body(&error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            throw RocksDBError(statusMessage: message, operation: operation(), path: path)
        }
        return result
    }
}
