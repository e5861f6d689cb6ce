import Foundation
import Storage
import Synchronization
import TestSupport
import Testing

/// `CodebookStore.close(_:waitingUpTo:)`: the database is closed on the caller's thread,
/// after every other user has let go, never by a thread that may outlive `main`.
struct StoreCloseTests {
    /// Another thread holds the store for a while after the caller is done with it. Simply
    /// dropping the caller's reference (what the coordinator process did before it returned
    /// from `main`) leaves the database open, to be closed by that thread later, during
    /// `exit` for all the caller knows: the same process cannot open the store again.
    /// `close` waits for that thread, closes it, and the store opens again at once.
    @Test(.timeLimit(.minutes(1))) func closeWaitsForTheOtherUsersAndClosesTheDatabaseBeforeItReturns() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("store")
        func holdElsewhere(_ store: CodebookStore?, for delay: useconds_t) {
            let held = Mutex(store)
            Thread {
                usleep(delay)
                held.withLock { $0 = nil }
            }.start()
        }

        var dropped: CodebookStore? = try CodebookStore(path: path)
        holdElsewhere(dropped, for: 2_000_000)
        dropped = nil
        #expect(throws: StoreError.self, "dropped, the store is still open") { try CodebookStore(path: path) }
        while (try? CodebookStore(path: path)) == nil { usleep(10_000) }

        var store: CodebookStore? = try CodebookStore(path: path)
        holdElsewhere(store, for: 300_000)
        #expect(CodebookStore.close(&store, waitingUpTo: .seconds(30)))
        #expect(store == nil)
        _ = try CodebookStore(path: path)
    }

    /// A user that does not let go in time: `close` says so and leaves the caller's reference.
    @Test(.timeLimit(.minutes(1))) func closeGivesUpAfterItsTimeoutAndKeepsTheReference() throws {
        let directory = try TemporaryDirectory()
        var store: CodebookStore? = try CodebookStore(path: directory.file("store"))
        let other = store
        #expect(!CodebookStore.close(&store, waitingUpTo: .milliseconds(50)))
        #expect(store != nil && store === other)
        withExtendedLifetime(other) {}
    }
}
