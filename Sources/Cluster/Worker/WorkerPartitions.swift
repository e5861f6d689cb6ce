import ClusterProtocol
import Descriptors
import Synchronization

/// The partitions of stored sets a worker was sent by search tasks, kept so that the next
/// search of the set sends only its queries: at most `budget` bytes of vectors, the least
/// recently searched dropped first. A partition of a newer generation of its set replaces
/// the older generation's partitions. Each keeps the job, shard and ticket of the task
/// that carried it, which a READY names (`held`) so that a reconnected worker keeps them.
final class PartitionCache: Sendable {
    private struct Key: Hashable {
        var set: String
        var generation: UInt64
        var firstRow: Int
        var rowCount: Int
        var dimension: Int
    }

    private struct State {
        var entries: [Key: (rows: DescriptorMatrix, used: UInt64, held: HeldPartition?)] = [:]
        var bytes = 0
        var clock: UInt64 = 0
    }

    private let state = Mutex(State())
    let budget: Int

    init(budget: Int) { self.budget = budget }

    /// Bytes of vectors held.
    var bytes: Int { state.withLock { $0.bytes } }

    /// The partitions held that came with a ticket, most recently searched first: at most `limit`.
    func held(limit: Int) -> [HeldPartition] {
        state.withLock { state in
            Array(state.entries.values.sorted { $0.used > $1.used }.lazy.compactMap(\.held).prefix(limit))
        }
    }

    /// The rows `task` searches: those it carries (kept, if they fit), or the copy kept of
    /// its partition; nil if neither (the coordinator sends them again).
    func rows(for task: ShardTask) throws -> DescriptorMatrix? {
        guard let partition = task.assignment.partition else { return nil }
        let assignment = task.assignment
        let key = Key(set: partition.set, generation: partition.generation, firstRow: assignment.firstRow,
                      rowCount: assignment.rowCount, dimension: assignment.computation.dimension)
        guard let carried = task.carriedRows else {
            return state.withLock { state in
                guard state.entries[key] != nil else { return nil }
                state.clock += 1
                state.entries[key]!.used = state.clock
                return state.entries[key]!.rows
            }
        }
        let rows = try DescriptorMatrix(rows: key.rowCount, dimension: key.dimension, values: carried, firstRow: key.firstRow,
                                        source: "set \"\(key.set)\" rows \(key.firstRow)..<\(key.firstRow + key.rowCount)")
        let size = carried.count * 4
        state.withLock { state in
            for old in state.entries.keys where old.set == key.set && (old.generation < key.generation || old == key) {
                state.bytes -= state.entries.removeValue(forKey: old)!.rows.rows * old.dimension * 4
            }
            guard size <= budget else { return }
            while state.bytes + size > budget, let oldest = state.entries.min(by: { $0.value.used < $1.value.used })?.key {
                state.bytes -= state.entries.removeValue(forKey: oldest)!.rows.rows * oldest.dimension * 4
            }
            state.clock += 1
            let held = partition.ticket.map { HeldPartition(job: task.header.job, shard: task.header.shard, ticket: $0) }
            state.entries[key] = (rows, state.clock, held)
            state.bytes += size
        }
        return rows
    }
}
