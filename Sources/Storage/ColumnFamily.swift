import CRocksDB

/// An open column family of a `Database`: a key space of its own.
///
/// Get one from `Database.columnFamily(named:)`. It keeps its database open; the handle
/// itself is owned by the database and destroyed when the database closes.
///
/// `@unchecked Sendable`: the handle never changes, stays valid while the database it
/// keeps alive is open, and RocksDB allows using it from any thread.
public struct ColumnFamily: @unchecked Sendable, Hashable, CustomStringConvertible {
    /// The family's name.
    public let name: String
    let database: Database
    let handle: OpaquePointer

    public static func == (lhs: ColumnFamily, rhs: ColumnFamily) -> Bool {
        lhs.database === rhs.database && lhs.name == rhs.name
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(database))
        hasher.combine(name)
    }

    public var description: String { "\(database.path)#\(name)" }
}
