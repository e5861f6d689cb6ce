import Foundation
import TestSupport
import Testing

/// `codebook progress` against a running coordinator: a snapshot of a finished job (its
/// iterations), `--follow` to its end, and an unknown job.
@Suite(.serialized) struct ProgressCommandProcessTests {
    @Test(.timeLimit(.minutes(3))) func progressShowsAndFollowsAJob() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try Corpora.path(rows: 20_000, dimension: 16)
            try await cluster.startCoordinator(["--store", cluster.scratch.file("store")])
            try cluster.startWorker("w1")
            let endpoint = cluster.clientsEndpoint
            let train = try await cluster.run("train", ["train", "kmeans", "--coordinator", endpoint, "--corpus", corpus, "--k", "8",
                                                        "--iterations", "3", "--tolerance", "0", "--init", "random",
                                                        "--shard-rows", "2000", "--name", "m"], timeout: 60)
            try cluster.require(train.status == 0, "train exited with \(train.status)")
            let snapshot = try await cluster.run("progress", ["progress", "--job", "1", "--coordinator", endpoint])
            cluster.check(snapshot.status == 0 && snapshot.log.hasPrefix("job 1  kmeans  succeeded\nk-means   0  objective/row ")
                          && snapshot.log.contains("\nk-means   2  objective/row "), "progress: \(snapshot.log)")
            let follow = try await cluster.run("follow", ["progress", "--job", "1", "--follow", "--coordinator", endpoint])
            cluster.check(follow.status == 0 && follow.log.hasSuffix("job 1 succeeded\n"), "progress --follow: \(follow.log)")
            let unknown = try await cluster.run("unknown", ["progress", "--job", "99", "--coordinator", endpoint])
            cluster.check(unknown.status == 1 && unknown.log.contains("no job 99"), "progress of job 99: \(unknown.status) \(unknown.log)")
        }
    }
}
