@testable import Cluster
import ClusterProtocol
import Foundation
import Search
import Storage
import Synchronization
import TestSupport
import Testing

/// Split searches of one set run as passes of one job: a search that ends early (its
/// deadline, a worker's failure) ends its own pass alone, and the others answer as before.
@Suite struct SplitSearchEndTests {
    /// Each search's outcome, by its index, once it has one.
    final class Outcomes: Sendable {
        private let results = Mutex<[Int: Result<[[Neighbour]], any Error>]>([:])

        func set(_ index: Int, _ result: Result<[[Neighbour]], any Error>) { results.withLock { $0[index] = result } }
        subscript(index: Int) -> Result<[[Neighbour]], any Error>? { results.withLock { $0[index] } }

        func error(_ index: Int) -> String? {
            guard case .failure(let error)? = self[index] else { return nil }
            return "\(error)"
        }
    }

    /// Three searches of one set, all held by a stalling worker: the first reaches its
    /// deadline, the worker fails the third's tasks; the second goes on, and once a real
    /// worker replaces the stalling one it answers as the coordinator alone does.
    @Test(.timeLimit(.minutes(2)))
    func aSearchPastItsDeadlineOrFailedEndsAloneAndTheOthersAnswer() async throws {
        let scratch = try TemporaryDirectory()
        let store = try SplitSearchTests.store(at: scratch.file("db"))
        let cluster = try await SplitSearchTests.Cluster(workers: 0, store: store)
        defer { cluster.stop() }
        let staller = StallingWorker(context: cluster.context, endpoint: cluster.endpoints.workers, threads: 16)
        defer { staller.stop() }
        try await cluster.waitForWorkers(1)
        let coordinator = cluster.coordinator, queries = coordinator.queries!
        let set = try queries.splitSets.plan("S", generation: queries.searchCache.generation(of: "S"), store: store,
                                             coordinator: coordinator)
        let partitions = (SplitSearchTests.rows + 4095) / 4096
        let vectors = (0..<3 * SplitSearchTests.dimension).map { Float($0 % 5) - 2 }

        let outcomes = Outcomes()
        // Passes 1, 2 and 3 of the set's job, in this order.
        for (index, deadline) in [Duration.seconds(1), .seconds(90), .seconds(90)].enumerated() {
            try set.start(queries: vectors, top: 10, deadline: deadline) { outcomes.set(index, $0) }
        }
        #expect(await waitUntil(timeout: 20) { staller.tasks.load(ordering: .relaxed) == 3 * partitions },
                "every search's tasks went to the stalling worker")
        #expect(await waitUntil(timeout: 20) { outcomes[0] != nil })
        #expect(outcomes.error(0)?.contains("did not end within 1 s") == true, "\(String(describing: outcomes.error(0)))")
        staller.fail(pass: 3)
        #expect(await waitUntil(timeout: 20) { outcomes[2] != nil })
        #expect(outcomes.error(2)?.contains("released") == true, "\(String(describing: outcomes.error(2)))")
        try await Task.sleep(for: .milliseconds(300))
        #expect(outcomes[1] == nil, "the second search ended with the others: \(String(describing: outcomes.error(1)))")

        // The stalling worker leaves; a real one takes its tasks.
        let settings = WorkerSettings(name: "real", threads: 1)
        let worker = Worker(context: cluster.context, endpoint: cluster.endpoints.workers, settings: settings, logger: quietLogger())
        worker.start()
        cluster.workers.append(worker)
        staller.stop()
        #expect(await waitUntil(timeout: 30) { outcomes[1] != nil })
        let found = try #require(try outcomes[1]?.get())
        let expected = try StoreQueries(store: store).search(SearchRequest(set: "S", top: 10, queries: 3), vectors: vectors)
        let got = found.map { (query: String?.none, keys: $0.map { set.keys[$0.row] }, scores: $0.map(\.score)) }
        #expect(SplitSearchTests.same(got, expected))
    }
}
