@testable import Storage
import Foundation
import TestSupport
import Testing

/// A secondary instance's catch-up across a restart of the primary, with the race forced:
/// RocksDB's catch-up reads the MANIFEST before the restart records the old log's table
/// file, and lists the logs after the restart deleted that log (Database.tryCatchUpWithPrimary).
@Suite struct SecondaryCatchUpTests {
    static func key(_ index: Int) -> [UInt8] { bytes(String(format: "k-%06d", index)) }

    /// Writes keys `range` in one logged batch.
    static func write(_ range: Range<Int>, to database: Database) throws {
        let family = try #require(database.columnFamily(named: "vectors"))
        let batch = WriteBatch()
        for index in range { batch.put(key(index), bytes("value \(index)"), in: family) }
        try database.write(batch)
    }

    static func keys(_ database: Database) throws -> [[UInt8]] {
        try database.keys(withPrefix: [], in: try #require(database.columnFamily(named: "vectors")), limit: .max)
    }

    /// Makes `CURRENT` name `manifest` (RocksDB's own way: a new file renamed over it).
    static func pointCurrent(of path: String, to manifest: String) throws {
        try manifest.write(toFile: path + "/CURRENT.forced", atomically: false, encoding: .utf8)
        guard rename(path + "/CURRENT.forced", path + "/CURRENT") == 0 else { throw POSIXError(.init(rawValue: errno)!) }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCatchUpDuringAPrimaryRestartNeverShowsALaterWriteWithoutTheEarlierOnes() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        var primary: Database? = try Database(path: path, columnFamilies: ["vectors"])
        try Self.write(0 ..< 100, to: primary!)
        let reader = try Database.openSecondary(path: path, secondaryPath: directory.file("reader"), columnFamilies: ["vectors"])
        try reader.tryCatchUpWithPrimary()
        #expect(try Self.keys(reader) == (0 ..< 100).map(Self.key))
        // More writes to the log the reader has read in part.
        try Self.write(100 ..< 200, to: primary!)

        var attempts = 0
        try reader.catchUpWithPrimary {
            attempts += 1
            guard attempts == 1 else { return try reader.catchUpOnce() }
            // The restart: recovery writes the log to a table file, records it in a new
            // MANIFEST and deletes the log; then new writes go to a new log.
            let oldManifest = try String(contentsOfFile: path + "/CURRENT", encoding: .utf8)
            let logsBefore = try reader.primaryLogFiles()
            primary = nil
            primary = try Database(path: path, columnFamilies: ["vectors"])
            try Self.write(200 ..< 300, to: primary!)
            let newManifest = try String(contentsOfFile: path + "/CURRENT", encoding: .utf8)
            try #require(newManifest != oldManifest, "the restart wrote a new MANIFEST")
            try #require(try reader.primaryLogFiles().isDisjoint(with: logsBefore), "the restart deleted the old log")
            // RocksDB's catch-up as if it had read the MANIFEST before the restart: CURRENT
            // still names the old one (which the reader holds open) while it runs.
            try Self.pointCurrent(of: path, to: oldManifest)
            defer { try? Self.pointCurrent(of: path, to: newManifest) }
            try reader.catchUpOnce()
        }
        #expect(attempts == 2, "the changed logs made it catch up again")
        let seen = Set(try Self.keys(reader))
        let missing = (0 ..< 300).filter { !seen.contains(Self.key($0)) }
        #expect(missing.isEmpty && seen.count == 300, "keys \(missing.first ?? 0)…\(missing.last ?? 0) missing (\(missing.count))")
        #expect(try reader.get(Self.key(150), in: try #require(reader.columnFamily(named: "vectors"))) == bytes("value 150"))
    }

    @Test func aCatchUpWhileThePrimaryKeepsSwitchingLogsThrowsBusy() throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("db")
        let primary = try Database(path: path, columnFamilies: ["vectors"])
        try Self.write(0 ..< 10, to: primary)
        let reader = try Database.openSecondary(path: path, secondaryPath: directory.file("reader"), columnFamilies: ["vectors"])
        var attempts = 0, extra = 0
        let error = #expect(throws: RocksDBError.self) {
            try reader.catchUpWithPrimary(attempts: 3) {
                attempts += 1
                // A log appears during every attempt (a stand-in for the primary switching logs).
                extra += 1
                _ = FileManager.default.createFile(atPath: path + "/\(900_000 + extra).log", contents: Data())
                try reader.catchUpOnce()
            }
        }
        #expect(attempts == 3)
        #expect(error?.code == .busy)
        #expect(error?.message.contains("during each of 3 catch-ups") == true, "\(String(describing: error))")
    }
}
