/// What shows that a worker was sent a split search's partition (TASK `partition.ticket`):
/// 128 bits from the system's secure random source, as 32 lower-case hexadecimal digits,
/// made by the coordinator for each partition it sends with its rows, and sent only with
/// them. A worker that reconnects names the partitions it keeps with their tickets (READY
/// `holds`); the coordinator reuses only those whose ticket it made for that partition.
public enum PartitionTicket {
    /// Digits in a ticket.
    public static let length = 32

    /// A new ticket.
    public static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return (generator.next() as UInt64).hexDigits + (generator.next() as UInt64).hexDigits
    }

    /// Throws unless `ticket` is `length` lower-case hexadecimal digits.
    public static func check(_ ticket: String) throws {
        guard ticket.utf8.count == length, ticket.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw ClusterError.malformed("a partition ticket must be \(length) lower-case hexadecimal digits "
                                         + "(got \(ticket.utf8.count) bytes)")
        }
    }
}

/// A partition a worker keeps (READY `holds`): the split search job and shard whose TASK
/// carried its rows, and the ticket that came with them.
public struct HeldPartition: Codable, Sendable, Hashable {
    public var job: UInt64
    public var shard: UInt32
    public var ticket: String

    public init(job: UInt64, shard: UInt32, ticket: String) {
        self.job = job
        self.shard = shard
        self.ticket = ticket
    }
}
