import ClusterProtocol
import Cluster
import Descriptors
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// Real `codebook` processes on loopback with CURVE keys and allow-lists, and with corpus
/// roots.
@Suite(.serialized) struct SecureClusterTests {
    /// Key pairs in `directory`: NAME.secret and NAME.public for each name.
    static func keys(_ names: [String], in directory: TemporaryDirectory) throws -> [String: CurveKeyPair] {
        try Dictionary(uniqueKeysWithValues: names.map { name in
            let pair = try CurveKeyPair.generate()
            try KeyFiles.write(pair, name: directory.file(name))
            return (name, pair)
        })
    }

    /// The options that make a worker or client use key pair `name` with the coordinator's key `coordinatorKey`.
    static func keyOptions(_ name: String, coordinatorKey: String = "coordinator", in directory: TemporaryDirectory) -> [String] {
        ["--secret-key", directory.file("\(name).secret"), "--coordinator-key", directory.file("\(coordinatorKey).public")]
    }

    @Test(.timeLimit(.minutes(4)))
    func listedPeersJoinUnlistedOnesCannotAndReadKeysOnlyRead() async throws {
        try await ProcessCluster().run { cluster in
            let scratch = cluster.scratch
            // The coordinator's key through the command line, the others directly.
            let generated = try await cluster.run("keys", ["keys", "generate", "--out", scratch.file("coordinator")])
            try cluster.require(generated.status == 0, "keys generate: \(generated.log)")
            let pairs = try Self.keys(["worker", "stranger", "writer", "reader"], in: scratch)
            try "# workers\n\(pairs["worker"]!.publicKey.z85)\n".write(toFile: scratch.file("workers.keys"), atomically: true, encoding: .utf8)
            try "\(pairs["writer"]!.publicKey.z85) write\n\(pairs["reader"]!.publicKey.z85) read  # dashboards\n"
                .write(toFile: scratch.file("clients.keys"), atomically: true, encoding: .utf8)
            let coordinator = try await cluster.startCoordinator(["--secret-key", scratch.file("coordinator.secret"),
                                                "--worker-keys", scratch.file("workers.keys"),
                                                "--client-keys", scratch.file("clients.keys")])
            try cluster.startWorker("listed", options: Self.keyOptions("worker", in: scratch))
            let unlisted = try cluster.startWorker("unlisted", options: Self.keyOptions("stranger", in: scratch))
            // A worker key is no client key: the clients endpoint has its own list.
            try cluster.startWorker("wrong-endpoint", options: Self.keyOptions("writer", in: scratch))

            let writer = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint, timeout: .seconds(5),
                                           security: ClientSecurity(keyPair: pairs["writer"]!,
                                                                    coordinatorKey: try KeyFiles.readPublicKey(path: scratch.file("coordinator.public"))))
            let joined = try await waitUntil(timeout: 20) { try writer.status().workers.contains { $0.name == "listed" } }
            try cluster.require(joined, "the listed worker never joined")
            try await Task.sleep(for: .seconds(2))
            let names = try writer.status().workers.map(\.name)
            cluster.check(names == ["listed"], "workers in status: \(names)")

            // Clients without a key, with an unknown key, with the wrong coordinator key: exit code 2, in time.
            for (name, options, why) in [
                ("no-key", [], "requires CURVE keys, and this client has none"),
                ("unknown-key", Self.keyOptions("stranger", in: scratch), "refused this client's key"),
                ("wrong-coordinator-key", Self.keyOptions("writer", coordinatorKey: "worker", in: scratch),
                 "failed: its public key is not the one this client was given"),
            ] {
                let started = Date()
                let run = try await cluster.run("status-\(name)", ["status", "--coordinator", cluster.clientsEndpoint] + options)
                let seconds = Date().timeIntervalSince(started)
                cluster.check(run.status == 2 && run.log.contains(why) && seconds < 15,
                              "status with \(name): exit \(run.status) after \(seconds) s: \(run.log)")
            }
            // A listed client key at the workers' endpoint: refused, and the message names that mistake.
            let workersEndpoint = try await cluster.run("status-workers-endpoint", ["status", "--coordinator", cluster.workersEndpoint]
                                                        + Self.keyOptions("writer", in: scratch))
            cluster.check(workersEndpoint.status == 2 && workersEndpoint.log.contains("refused this client's key: its list of client keys "
                                                                                       + "lacks it, or this is its workers' endpoint"),
                          "status at the workers' endpoint: \(workersEndpoint.log)")
            // Nobody at the endpoint: silence, the same exit code.
            let nobody = try await cluster.run("status-nobody", ["status", "--coordinator", "tcp://127.0.0.1:\(try freeLoopbackPort())"])
            cluster.check(nobody.status == 2 && nobody.log.contains("did not answer within 5"), "status with nobody there: \(nobody.log)")
            let coordinatorLog = coordinator.log
            cluster.check(coordinatorLog.contains("refused a worker key") && coordinatorLog.contains(pairs["stranger"]!.publicKey.z85),
                          "the coordinator did not log the refused worker key")
            // The refused worker says so, and backs off instead of letting libzmq retry at once.
            cluster.check(unlisted.log.contains("the coordinator refused the connection: the coordinator at \(cluster.workersEndpoint) "
                                                + "refused this worker's key; reconnecting in"),
                          "the unlisted worker's log: \(unlisted.log.suffix(600))")

            // A write key trains the model the embedded cluster trains, and encodes a set.
            let corpus = try MultiProcessTests.corpus()
            let training = MultiProcessTests.kmeansArguments(corpus, iterations: 6, out: "")
            let reference = try await MultiProcessTests.reference(MultiProcessTests.withoutOut(training), outputs: [""])
            let centres = scratch.file("centres.npy")
            let via = ["--coordinator", cluster.clientsEndpoint]
            var run = try await cluster.run("train-writer", MultiProcessTests.kmeansArguments(corpus, iterations: 6, out: centres)
                                            + ["--name", "M"] + via + Self.keyOptions("writer", in: scratch))
            try cluster.require(run.status == 0, "train with the write key exited with \(run.status)")
            cluster.check(MultiProcessTests.bytes(centres) == reference[0], "the centres trained with keys differ from the embedded run's")
            let index = scratch.file("images.tsv")
            let keys = try StoreProcessTests.writeIndex(index, images: 20, rows: 10, seed: 3)
            let encode = ["encode", "vlad", "--model", "M", "--descriptors", corpus, "--index", index, "--images-per-shard", "8"] + via
            run = try await cluster.run("encode-writer", encode + ["--set", "S"] + Self.keyOptions("writer", in: scratch))
            try cluster.require(run.status == 0, "encode with the write key exited with \(run.status)")

            // A read key reads; what would change something is forbidden, and nothing changes.
            let reader = via + Self.keyOptions("reader", in: scratch)
            run = try await cluster.run("get-reader", ["get", "S/\(keys[3])"] + reader)
            cluster.check(run.status == 0 && run.log.split(separator: "\n").count == 128, "get with the read key: \(run.log.prefix(300))")
            run = try await cluster.run("list-reader", ["list", "S/"] + reader)
            cluster.check(run.status == 0 && run.log.split(separator: "\n").count == keys.count, "list with the read key: \(run.log)")
            let jobsBefore = try writer.status().jobs.count
            let forbidden = [("import-reader", ["import", "model", "X", "--centres", centres] + reader),
                             ("replace-reader", ["import", "model", "M", "--centres", centres, "--replace"] + reader),
                             ("train-reader", MultiProcessTests.kmeansArguments(corpus, iterations: 2, out: scratch.file("x.npy"))
                                                + ["--name", "X"] + reader),
                             ("encode-reader", encode + ["--set", "T"] + Self.keyOptions("reader", in: scratch))]
            for (name, arguments) in forbidden {
                run = try await cluster.run(name, arguments)
                cluster.check(run.status != 0 && run.log.contains("this client's key has the read role"), "\(name): \(run.log)")
            }
            let catalog = try writer.catalog()
            cluster.check(catalog.models.map(\.name) == ["M"] && catalog.sets.map(\.name) == ["S"],
                          "the store changed: \(catalog.models.map(\.name)) \(catalog.sets.map(\.name))")
            cluster.check(try writer.status().jobs.count == jobsBefore, "a read key started a job")

            // SIGHUP: the stranger becomes a reader, the writer is dropped; the admitted worker stays.
            try "\(pairs["reader"]!.publicKey.z85) read\n\(pairs["stranger"]!.publicKey.z85) read\n"
                .write(toFile: scratch.file("clients.keys"), atomically: true, encoding: .utf8)
            coordinator.kill(SIGHUP)
            let reloaded = await waitUntil(timeout: 10) { coordinator.log.components(separatedBy: "access lists loaded").count == 3 }
            try cluster.require(reloaded, "the coordinator did not reload its lists on SIGHUP")
            run = try await cluster.run("status-stranger", ["status"] + via + Self.keyOptions("stranger", in: scratch))
            cluster.check(run.status == 0 && run.log.contains("workers: 1") && run.log.contains("listed"),
                          "status with the newly listed key: \(run.log)")
            let dropped = #expect(throws: ClusterError.self) { try writer.status() }
            cluster.check(dropped?.message == "this client's key is no longer listed", "the dropped writer: \(String(describing: dropped))")
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func corporaOutsideTheRootsAreRefusedByTheCoordinatorAndByWorkers() async throws {
        let outside = try MultiProcessTests.corpus()
        let root = try TemporaryDirectory()
        // Inside the root by name only: a symbolic link out, and a `..` path.
        try FileManager.default.createSymbolicLink(atPath: root.file("link.npy"), withDestinationPath: outside)
        try FileManager.default.copyItem(atPath: outside, toPath: root.file("inside.npy"))
        let dotDot = root.file("../\(URL(fileURLWithPath: outside).deletingLastPathComponent().lastPathComponent)/"
                               + URL(fileURLWithPath: outside).lastPathComponent)
        func train(_ cluster: ProcessCluster, _ name: String, _ corpus: String) async throws -> (status: Int32, log: String) {
            try await cluster.run(name, MultiProcessTests.kmeansArguments(corpus, iterations: 2, out: cluster.scratch.file("\(name).npy"))
                                  + ["--coordinator", cluster.clientsEndpoint])
        }
        try await ProcessCluster().run { cluster in
            try await cluster.startCoordinator(["--corpus-root", root.path])
            try cluster.startWorker("worker")
            for (name, corpus) in [("outside", outside), ("link", root.file("link.npy")), ("dot-dot", dotDot)] {
                let run = try await train(cluster, name, corpus)
                let sent = URL(fileURLWithPath: corpus).standardizedFileURL.path
                cluster.check(run.status != 0 && run.log.contains("is outside the corpus roots") && run.log.contains(sent),
                              "\(name): \(run.log)")
            }
            let inside = try await train(cluster, "inside", root.file("inside.npy"))
            cluster.check(inside.status == 0, "a corpus inside the root: \(inside.log)")
        }
        try await ProcessCluster().run { cluster in
            try await cluster.startCoordinator()
            try cluster.startWorker("worker", options: ["--corpus-root", root.path])
            let run = try await train(cluster, "outside-worker", outside)
            cluster.check(run.status != 0 && run.log.contains("is outside the corpus roots") && run.log.contains(outside),
                          "a worker with roots: \(run.log)")
            let inside = try await train(cluster, "inside-worker", root.file("inside.npy"))
            cluster.check(inside.status == 0, "a corpus inside the worker's root: \(inside.log)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aStoredJobOutsideTheRootsOfTheNextStartDoesNotResume() async throws {
        try await ProcessCluster().run { cluster in
            let corpus = try MultiProcessTests.corpus()
            let coordinator = StoreCoordinator(cluster, store: cluster.scratch.file("store"))
            try await coordinator.start()
            // No worker: the job waits, stored as running.
            _ = try cluster.start("train", MultiProcessTests.kmeansArguments(corpus, iterations: 2, out: cluster.scratch.file("c.npy"))
                                  + coordinator.viaCoordinator)
            let client = try coordinator.client()
            try cluster.require(await waitUntil(timeout: 10) { (try? client.progress(of: 1, since: 0))?.state == .running },
                                "the job was not accepted")
            let status = try await coordinator.stop(SIGTERM)
            cluster.check(status == 0, "the coordinator exited with \(status) after SIGTERM")
            let root = try TemporaryDirectory()
            try await coordinator.start(["--corpus-root", root.path])
            let progress = try coordinator.client().progress(of: 1, since: 0)
            cluster.check(progress.state == .failed && progress.message?.contains("cannot resume") == true
                          && progress.message?.contains("is outside the corpus roots") == true,
                          "the stored job after a start with other roots: \(progress.state) \(progress.message ?? "")")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func aCoordinatorWithoutKeysRefusesToBindBeyondLoopback() async throws {
        try await ProcessCluster().run { cluster in
            // Refused before anything is bound: no socket is opened on the wildcard address.
            let run = try await cluster.run("coordinator", ["coordinator", "--workers-endpoint", "tcp://*:5555"])
            cluster.check(run.status != 0 && run.log.contains("refusing to bind tcp://*:5555 beyond loopback"), run.log)
        }
    }
}
