#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension CodebookStore {
    /// Closes the store on the calling thread: waits (up to `timeout`) until `store` is the
    /// last reference to it, then releases it, so that its database is closed when this
    /// returns true. A process that opened a store ends this way before `exit`: a database
    /// closed by a thread that outlives `main` (the last user of the store letting go) is
    /// closed while `exit` destroys RocksDB's static objects, and RocksDB then aborts on a
    /// destroyed mutex ("pthread lock: Invalid argument"). Returns false, leaving `store`
    /// as it was, if another reference remains after `timeout`. Values read without a copy
    /// (`vectorValue(set:key:)`) keep the database open too: they must be released first.
    public static func close(_ store: inout CodebookStore?, waitingUpTo timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while store != nil {
            if isKnownUniquelyReferenced(&store) {
                store = nil
                return true
            }
            guard ContinuousClock.now < deadline else { return false }
            usleep(1_000)
        }
        return true
    }
}
