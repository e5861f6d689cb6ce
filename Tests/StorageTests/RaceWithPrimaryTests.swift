@testable import Storage
import Testing

/// A secondary instance tries again when the primary deleted a file it had just read about,
/// and only then.
struct RaceWithPrimaryTests {
    static let deletedTable = RocksDBError(
        statusMessage: "Corruption: Can't access /db/000123.sst: IO error: while stat a file for size: /db/000123.sst: No such file or directory",
        operation: "open", path: "/db")
    static let rotatedManifest = RocksDBError(
        statusMessage: "Operation failed. Try again.: The primary may have switched to a new MANIFEST and deleted the old one.",
        operation: "catch up with primary", path: "/db")
    static let corrupt = RocksDBError(statusMessage: "Corruption: bad block contents", operation: "open", path: "/db")

    @Test func aRaceIsTriedAgainUntilItPasses() throws {
        var calls = 0
        let result = try Database.retryingRaceWithPrimary(attempts: 4) { () throws -> String in
            calls += 1
            if calls == 1 { throw Self.deletedTable }
            if calls == 2 { throw Self.rotatedManifest }
            return "opened"
        }
        #expect(result == "opened" && calls == 3)
    }

    @Test func otherErrorsAndTheLastAttemptThrow() {
        var calls = 0
        #expect(throws: Self.corrupt) {
            try Database.retryingRaceWithPrimary(attempts: 4) { calls += 1; throw Self.corrupt }
        }
        #expect(calls == 1)
        calls = 0
        #expect(throws: Self.deletedTable) {
            try Database.retryingRaceWithPrimary(attempts: 3) { calls += 1; throw Self.deletedTable }
        }
        #expect(calls == 3)
    }
}
