import ClusterProtocol
import Dispatch
import Search
import Storage
import Synchronization

/// A stored set searched in partitions on the workers: its keys in order, as the set was at
/// `generation`, and the backend whose passes search it. Partition `p` is rows
/// `p·partitionRows ..< (p+1)·partitionRows` of the keys (a fixed number of vectors, so a
/// result never depends on the number of workers); each pass of the backend is one SEARCH,
/// and its job number is this generation's alone, so the coordinator's affinity map sends a
/// partition to the worker that holds it.
struct SplitSet: Sendable {
    let set: String
    let generation: UInt64
    let dimension: Int
    let keys: [String]
    let backend: ClusterBackend

    /// Bytes the set's vectors would take in memory (as `SetVectors.bytes` counts them).
    var bytes: Int { keys.count * dimension * 4 + keys.reduce(0) { $0 + $1.utf8.count + 16 } }

    /// Starts the search of `queries` on the workers and returns; `completion` gets each
    /// query's best `top` rows of the whole set, or why the pass failed, or, if it has not
    /// ended after `deadline`, a deadline error (its pass alone is then cancelled: other
    /// searches of the set go on): once, from another thread, unless this throws.
    func start(queries: [Float], top: Int, deadline: Duration,
               completion: @escaping @Sendable (Result<[[Neighbour]], any Error>) -> Void) throws {
        guard !keys.isEmpty else { return completion(.success(Array(repeating: [], count: queries.count / dimension))) }
        let pass = try SearchPass(queries: queries, dimension: dimension, top: top)
        let complete = OnceCompletion(completion)
        let backend = backend, set = set, key = backend.nextPass()
        let timer = Task {
            try await Task.sleep(for: deadline)
            let late = ClusterError(.jobFailed, "the search of set \"\(set)\" on the workers did not end within \(deadline.secondsText) s")
            if complete(.failure(late)) { backend.coordinator.cancelPass(key) }
        }
        Task {
            let result: Result<[[Neighbour]], any Error>
            do { result = .success(try await backend.run(pass, as: key).neighbours) } catch { result = .failure(error) }
            timer.cancel()
            complete(result)
        }
    }
}

/// A completion called at most once: by the first of its callers.
private final class OnceCompletion<Value: Sendable>: Sendable {
    private let pending: Mutex<(@Sendable (Value) -> Void)?>

    init(_ completion: @escaping @Sendable (Value) -> Void) { pending = Mutex(completion) }

    /// Calls the completion with `value` unless it was called; true if it was not.
    @discardableResult
    func callAsFunction(_ value: Value) -> Bool {
        guard let completion = pending.withLock({ $0.take() }) else { return false }
        completion(value)
        return true
    }
}

/// The partitions of a stored set as a search pass's shards: each task says which rows of
/// which generation of the set it searches, and carries them, read from the store as the
/// task goes out (off the I/O thread), to a worker that may not hold them. A partition is
/// read in up to `readers` pieces at once, each from its own first key, straight into the
/// task's array.
struct SetPartitions: CarriedShards {
    let store: CodebookStore
    let set: String
    let generation: UInt64
    let dimension: Int
    let keys: [String]

    /// The most pieces of a partition read at once, and the fewest rows of a piece.
    static let readers = 4, pieceRows = 4096

    func place(_ assignment: inout TaskAssignment, items: Range<Int>) {
        RowShards().place(&assignment, items: items)
        assignment.partition = SetPartition(set: set, generation: generation, includesVectors: false)
    }

    func carry(_ assignment: inout TaskAssignment) {
        assignment.partition?.includesVectors = true
    }

    func rows(_ items: Range<Int>) throws -> [UInt8] {
        let rowBytes = dimension * 4
        let pieces = max(1, min(Self.readers, items.count / Self.pieceRows))
        // By piece: why it could not be read (the first piece's error is reported).
        let failures = Mutex<[Int: any Error]>([:])
        let bytes = try [UInt8](unsafeUninitializedCapacity: items.count * rowBytes) { buffer, count in
            // Each piece writes its own rows only.
            nonisolated(unsafe) let target = UnsafeMutableRawBufferPointer(buffer)
            DispatchQueue.concurrentPerform(iterations: pieces) { piece in
                let first = items.lowerBound + items.count * piece / pieces, end = items.lowerBound + items.count * (piece + 1) / pieces
                let offset = (first - items.lowerBound) * rowBytes
                do {
                    try read(first ..< end, into: UnsafeMutableRawBufferPointer(rebasing: target[offset ..< offset + (end - first) * rowBytes]))
                } catch {
                    failures.withLock { $0[piece] = error }
                }
            }
            if let failure = failures.withLock({ $0.min { $0.key < $1.key }?.value }) { throw failure }
            count = items.count * rowBytes
        }
        return bytes
    }

    /// Reads the float32 values of rows `range` into `target` (`range.count` rows of 4·D bytes).
    private func read(_ range: Range<Int>, into target: UnsafeMutableRawBufferPointer) throws {
        let rowBytes = dimension * 4
        var row = range.lowerBound
        try store.forEachVector(set: set, from: keys[row], limit: range.count) { key, value in
            // Keys other than the plan's: the set changed since (its next search plans again).
            guard key == keys[row] else {
                throw ClusterError(.conflict, "set \"\(set)\" changed while it was searched (row \(row) is \"\(key)\", "
                                   + "not \"\(keys[row])\"); search again")
            }
            let floats = try SetVectors.floatBytes(of: value, set: set, key: key, dimension: dimension)
            UnsafeMutableRawBufferPointer(rebasing: target[(row - range.lowerBound) * rowBytes ..< (row - range.lowerBound + 1) * rowBytes])
                .copyMemory(from: floats)
            row += 1
        }
        guard row == range.upperBound else {
            throw ClusterError(.conflict, "set \"\(set)\" changed while it was searched (it ends at row \(row), "
                               + "before \(range.upperBound)); search again")
        }
    }
}

/// The sets searched on the workers lately, each at the generation it was planned at: at
/// most `CoordinatorState.affinityJobs` of them (the affinity map keeps as many jobs).
final class SplitSets: Sendable {
    /// Search passes' job numbers start here, above any job the registry numbers.
    static let firstJob: UInt64 = 1 << 63

    private let state = Mutex<(sets: [String: SplitSet], nextJob: UInt64)>(([:], firstJob))
    /// Searches started and not yet ended.
    private let running = Mutex(0)

    /// Counts one more search as running; throws a `limit` error if `limit` are.
    func startSearch(limit: Int) throws {
        let refused = running.withLock { running in
            guard running < limit else { return true }
            running += 1
            return false
        }
        guard !refused else {
            throw ClusterError(.limit, "\(limit) searches on the workers are running, the most at once (maximumSplitSearches); "
                               + "search again when one has ended")
        }
    }

    /// One search counted by `startSearch` has ended.
    func endSearch() { running.withLock { $0 -= 1 } }

    /// Forgets every set: a stopped coordinator, which their backends hold, is let go.
    func removeAll() { state.withLock { $0.sets.removeAll() } }

    /// `set` at `generation`, planned again (its keys read) if it is not kept at it.
    func plan(_ set: String, generation: UInt64, store: CodebookStore, coordinator: Coordinator) throws -> SplitSet {
        if let kept = state.withLock({ $0.sets[set] }), kept.generation == generation { return kept }
        guard let value = try store.set(named: set) else { throw ClusterError(.notFound, "no set named \"\(set)\"") }
        let dimension = try value.decode(SetRecord.self, key: "set \(set)").dimension
        var keys: [String] = []
        let prefix = set + "/"
        while true {
            let page = try store.vectorKeys(prefix: prefix, after: keys.last.map { prefix + $0 }, limit: 65_536)
            guard !page.isEmpty else { break }
            keys += page.map { String($0.dropFirst(prefix.count)) }
        }
        guard let partitionRows = coordinator.settings.searchPartitionRows(dimension: dimension) else {
            throw ClusterError(.limit, "set \"\(set)\" cannot be searched on the workers: a partition of "
                               + "\(InnerProductSearch.blockRows) vectors of \(dimension) values takes "
                               + "\(InnerProductSearch.blockRows * dimension * 4) bytes, above the coordinator's "
                               + "maximumMessageSize (\(coordinator.settings.maximumMessageSize), from maximumModelValues)")
        }
        let (planned, dropped) = state.withLock { state in
            let job = state.nextJob
            state.nextJob &+= 1
            let layout = SetPartitions(store: store, set: set, generation: generation, dimension: dimension, keys: keys)
            let corpus = CorpusReference(path: set, rows: keys.count, dimension: dimension, fileSize: 0)
            let planned = SplitSet(set: set, generation: generation, dimension: dimension, keys: keys,
                                   backend: ClusterBackend(coordinator: coordinator, job: job, corpus: corpus,
                                                           shardRows: partitionRows, passesBefore: 0, layout: layout))
            var dropped = state.sets.updateValue(planned, forKey: set).map { [$0.backend.job] } ?? []
            if state.sets.count > CoordinatorState.affinityJobs, let oldest = state.sets.min(by: { $0.value.backend.job < $1.value.backend.job }) {
                state.sets[oldest.key] = nil
                dropped.append(oldest.value.backend.job)
            }
            return (planned, dropped)
        }
        // The scheduler forgets where the partitions of the versions no longer searched are.
        dropped.forEach(coordinator.cancelPasses(of:))
        return planned
    }
}

extension CoordinatorSettings {
    /// The vectors of a split search's partitions of vectors of `dimension` values:
    /// `searchPartitionRows` rounded up to a multiple of `InnerProductSearch.blockRows` (so
    /// that a partition's scores are those of one search over the whole set), then lowered
    /// by whole blocks until a partition's array frame fits `maximumMessageSize` (a worker
    /// accepts no larger frame); nil when not even one block fits.
    func searchPartitionRows(dimension: Int) -> Int? {
        let block = InnerProductSearch.blockRows
        let blocks = searchPartitionRows / block + (searchPartitionRows % block == 0 ? 0 : 1)
        let fitting = maximumMessageSize / max(1, 4 * dimension * block)
        let chosen = min(max(1, min(blocks, Int.max / block)), fitting)
        return chosen >= 1 ? chosen * block : nil
    }
}
