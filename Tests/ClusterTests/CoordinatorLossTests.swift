import Cluster
import ClusterProtocol
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// A client waiting on a job whose coordinator is killed notices within seconds (its
/// connection drops) and says so, naming the endpoint and that the job resumes when the
/// coordinator starts again. It used to wait for its whole timeout.
@Suite(.serialized) struct CoordinatorLossTests {
    static let rows = 20_000, dimension = 16

    /// A k-means job that runs for minutes: many iterations, no early stop.
    static func longJob(_ corpus: String) -> TrainingJob {
        TrainingJob(kind: .kmeans, corpus: corpus, k: 8, iterations: 100_000, seed: 1, tolerance: 0, shardRows: 2_000,
                    initialization: .random)
    }

    @Test(.timeLimit(.minutes(3))) func aFollowingClientFailsSoonAfterItsCoordinatorIsKilled() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
            let coordinator = try await cluster.startCoordinator(["--store", cluster.scratch.file("store")])
            try cluster.startWorker("w1")
            let timeout = Duration.seconds(120)
            let client = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: timeout)
            let job = try client.submit(Self.longJob(corpus))
            var killed: ContinuousClock.Instant?
            let error = await #expect(throws: ClusterError.self) {
                _ = try await client.follow(job, iteration: { _ in
                    guard killed == nil else { return }
                    coordinator.kill(SIGKILL)
                    killed = .now
                })
            }
            let waited = killed.map { ContinuousClock.now - $0 }
            try cluster.require(waited != nil, "no iteration ran before the error: \(String(describing: error))")
            cluster.check(waited! < .seconds(30), "the client noticed after \(waited!), its timeout being \(timeout)")
            let message = error.map { "\($0)" } ?? ""
            cluster.check(message.contains("the connection to the coordinator at \(cluster.clientsEndpoint) was lost")
                          && message.contains("resumes when it starts again"), "error: \(message)")
        }
    }

    @Test(.timeLimit(.minutes(3))) func theTrainCommandExitsSoonAfterItsCoordinatorIsKilled() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Corpora.path(rows: Self.rows, dimension: Self.dimension)
            let coordinator = try await cluster.startCoordinator(["--store", cluster.scratch.file("store")])
            try cluster.startWorker("w1")
            let train = try cluster.start("train", ["train", "kmeans", "--coordinator", cluster.clientsEndpoint, "--corpus", corpus,
                                                    "--k", "8", "--iterations", "100000", "--tolerance", "0", "--init", "random",
                                                    "--shard-rows", "2000", "--name", "m"])
            try cluster.require(await waitUntil(timeout: 60) { train.log.contains("k-means   2") || !train.isRunning },
                                "train shows no iteration")
            coordinator.kill(SIGKILL)
            let killed = ContinuousClock.now
            let status = await train.waitForExit(timeout: 60)
            let waited = ContinuousClock.now - killed
            cluster.check(status == 2, "train exited with \(String(describing: status))")
            // Its timeout is 10 s: the connection's loss, not the timeout, ended it.
            cluster.check(waited < .seconds(8), "train exited \(waited) after the coordinator was killed")
            cluster.check(train.log.contains("the connection to the coordinator at \(cluster.clientsEndpoint) was lost")
                          && train.log.contains("resumes when it starts again"), "train's output: \(train.log)")
        }
    }
}
