import ClusterProtocol

/// What a pass's shards stand for: the scheduler knows shard numbers and the plan's
/// ranges; the pass's layout says what a shard's task reads.
public protocol ShardLayout: Sendable {
    /// Says in `assignment` what the shard whose range of the plan is `items` reads.
    func place(_ assignment: inout TaskAssignment, items: Range<Int>)
}

/// The plan's items are the corpus's rows: a shard reads its range of rows.
public struct RowShards: ShardLayout {
    public init() {}

    public func place(_ assignment: inout TaskAssignment, items: Range<Int>) {
        assignment.firstRow = items.lowerBound
        assignment.rowCount = items.count
    }
}
