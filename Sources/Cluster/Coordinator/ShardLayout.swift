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

/// A layout whose shards' rows travel with their tasks (a search's partitions of a stored
/// set): the worker whose RESULT for a shard was last taken keeps its rows (see
/// `CoordinatorState`'s affinity), so they go to a worker only when it may not hold them.
public protocol CarriedShards: ShardLayout {
    /// Says in `assignment` (placed already) that the shard's rows follow, as its last array.
    func carry(_ assignment: inout TaskAssignment)
    /// The rows `items`, the last array of a task that carries them. Read as the task goes
    /// out, off the coordinator's I/O thread (which must not wait on a store), so the rows
    /// are held only while they are sent.
    func rows(_ items: Range<Int>) throws -> [UInt8]
}
