/// A fixed split of a corpus's rows into contiguous shards.
///
/// Shards, not workers, own the arithmetic: statistics are computed per shard and merged
/// in shard order, so a result depends on the plan but never on who computed what.
/// Any positive `shardRows` works, up to `Int.max` (one shard): nothing here can overflow.
public struct ShardPlan: Sendable, Equatable, Codable {
    /// Default rows per shard: large enough that per-shard overhead vanishes, small enough
    /// that two threads (or workers) balance and a lost shard is cheap to redo.
    public static let defaultShardRows = 65_536

    public let totalRows: Int
    public let shardRows: Int

    /// A plan of `totalRows` ≥ 0 rows in shards of `shardRows` ≥ 1 rows; callers check
    /// values that come from input before (see `init(from:)` for decoded plans).
    public init(totalRows: Int, shardRows: Int = ShardPlan.defaultShardRows) {
        precondition(totalRows >= 0 && shardRows > 0)
        self.totalRows = totalRows
        self.shardRows = shardRows
    }

    /// Decodes a plan, refusing negative rows and shards of fewer than one row.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let totalRows = try container.decode(Int.self, forKey: .totalRows)
        let shardRows = try container.decode(Int.self, forKey: .shardRows)
        guard totalRows >= 0, shardRows >= 1 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "a shard plan needs totalRows ≥ 0 and shardRows ≥ 1"))
        }
        self.init(totalRows: totalRows, shardRows: shardRows)
    }

    /// ⌈totalRows / shardRows⌉, computed without overflow.
    public var count: Int { totalRows == 0 ? 0 : (totalRows - 1) / shardRows + 1 }

    /// The row range of shard `index`.
    public func rows(of index: Int) -> Range<Int> {
        precondition(index >= 0 && index < count, "shard index out of range")
        // index < count, so start ≤ totalRows − 1; the end is start plus what is left, at most.
        let start = index * shardRows
        return start ..< start + min(shardRows, totalRows - start)
    }
}
