@testable import Cluster
import ClusterProtocol
import Foundation
import Search
import Storage
import Synchronization
import Telemetry
import TestSupport
import Testing
import ZeroMQ

/// A worker that reconnects (a new identity at the coordinator) keeps the partitions it
/// was sent: it names them in its READY with the ticket that came with their rows, and
/// the coordinator sends it only the queries for those whose ticket it made; a peer that
/// names partitions it was not sent changes nothing.
@Suite struct HeldPartitionTests {
    typealias T = CoordinatorStateTests
    static let job = SplitSets.firstJob
    static let alice2: WorkerID = Array("alice, reconnected".utf8)
    static let mallory: WorkerID = Array("mallory".utf8)

    /// The TASKs among `directives`: (worker, shard, ticket if it carries rows).
    static func tasks(_ directives: [CoordinatorState.Directive]) -> [(worker: WorkerID, shard: Int, ticket: String?)] {
        SplitSearchTests.tasks(directives).map { task in
            let ticket = directives.lazy.compactMap { directive -> String? in
                guard case .sendCarrying(let to, let message, _, _) = directive, to == task.worker,
                      Int(message.header.shard) == task.shard else { return nil }
                return try? message.decode(TaskAssignment.self).partition?.ticket
            }.first
            #expect(task.carried == (ticket != nil), "a TASK carries rows with a ticket, and only then")
            return (task.worker, task.shard, ticket)
        }
    }

    /// The partitions of `job`'s shards 0, 1, … with `tickets`.
    static func holds(_ tickets: [String]) -> [HeldPartition] {
        tickets.indices.map { HeldPartition(job: job, shard: UInt32($0), ticket: tickets[$0]) }
    }

    /// What the coordinator logs when `name` names `named` partitions, `taken` of them its own.
    static func recognised(_ name: String, _ taken: Int, of named: Int) -> CoordinatorState.Directive {
        .log("worker \(name) holds \(taken) of the \(named) partitions it names (the others' tickets are unknown, or were sent to another key)")
    }

    static func ready(_ name: String, holds: [HeldPartition]) -> WireMessage {
        WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: name, threads: 2, holds: holds))
    }

    /// Alice (authenticated with `key`, if any) searched both partitions in pass 1 (with
    /// their rows); the tickets she was sent.
    static func aliceHoldsBothPartitions(_ state: inout CoordinatorState, key: String? = nil) throws -> [String] {
        _ = state.receive(T.ready("alice", threads: 2), from: T.alice, key: key, now: at(0))
        let first = tasks(state.start(SplitSearchTests.searchSpec(round: 1), now: at(0)))
        try #require(first.map(\.shard) == [0, 1] && first.allSatisfy { $0.worker == T.alice && $0.ticket != nil })
        for shard in 0..<2 { _ = state.receive(T.result(job: job, round: 1, shard: shard), from: T.alice, key: key, now: at(0.1)) }
        let tickets = first.map { $0.ticket! }
        #expect(Set(tickets).count == 2 && tickets.allSatisfy { (try? PartitionTicket.check($0)) != nil })
        return tickets
    }

    /// Without CURVE (no key) and with it (her key, both times).
    @Test(arguments: [nil, "alice's key"])
    func aReconnectedWorkerKeepsThePartitionsItShowsTicketsFor(key: String?) throws {
        var state = CoordinatorState()
        let tickets = try Self.aliceHoldsBothPartitions(&state, key: key)
        // Alice reconnects under a new identity, naming both; the old one is not yet dead.
        let logged = state.receive(Self.ready("alice", holds: Self.holds(tickets)), from: Self.alice2, key: key, now: at(0.2))
        #expect(logged.contains(Self.recognised("alice", 2, of: 2)))
        _ = state.receive(T.ready("bob", threads: 2), from: T.bob, key: key.map { _ in "bob's key" }, now: at(0.2))
        let second = Self.tasks(state.start(SplitSearchTests.searchSpec(round: 2), now: at(0.3)))
        #expect(second.count == 2 && second.allSatisfy { $0.worker == Self.alice2 && $0.ticket == nil }, "\(second)")
    }

    @Test func namesWithoutTheirTicketChangeNothing() throws {
        var state = CoordinatorState()
        let tickets = try Self.aliceHoldsBothPartitions(&state)
        let other = SplitSets.firstJob + 1
        // Mallory names both partitions: a made-up ticket, the other partition's ticket,
        // a ticket of another job, an empty and an overlong ticket; then (another READY)
        // partitions past the most a READY may name, with their right tickets among them.
        let forged = [HeldPartition(job: Self.job, shard: 0, ticket: PartitionTicket.make()),
                      HeldPartition(job: Self.job, shard: 1, ticket: tickets[0]),
                      HeldPartition(job: other, shard: 0, ticket: tickets[0]),
                      HeldPartition(job: Self.job, shard: 0, ticket: ""),
                      HeldPartition(job: Self.job, shard: 1, ticket: tickets[1] + tickets[1])]
        let logged = state.receive(Self.ready("mallory", holds: forged), from: Self.mallory, now: at(0.2))
        #expect(logged.contains(Self.recognised("mallory", 0, of: 5)))
        let tooMany = (0...WorkerIntroduction.maximumHeldPartitions).map {
            HeldPartition(job: Self.job, shard: UInt32($0 % 2), ticket: tickets[$0 % 2])
        }
        let refused = state.receive(Self.ready("mallory", holds: tooMany), from: Self.mallory, now: at(0.3))
        #expect(refused.contains(.log("worker mallory names 4097 partitions it holds, more than 4096: none is taken")))
        // Alice is gone: the partitions go to mallory with their rows (and new tickets).
        _ = state.receive(WireMessage(header: WireHeader(.goodbye)), from: T.alice, now: at(0.4))
        let second = Self.tasks(state.start(SplitSearchTests.searchSpec(round: 2), now: at(0.5)))
        #expect(second.count == 2 && second.allSatisfy { $0.worker == Self.mallory && $0.ticket != nil }, "\(second)")
        #expect(Set(second.compactMap(\.ticket)).isDisjoint(with: tickets))
    }

    /// With CURVE, a ticket counts only from the key of the worker it was sent to (Alice back
    /// with her key keeps her partitions: above); Mallory, authenticated with her own key,
    /// who shows Alice's tickets, takes none: once Alice is gone she is sent the rows (with
    /// new tickets), never the queries alone.
    @Test func aTicketCountsOnlyFromTheKeyItWasSentTo() throws {
        let (aliceKey, malloryKey) = ("alice's key", "mallory's key")
        var state = CoordinatorState()
        let tickets = try Self.aliceHoldsBothPartitions(&state, key: aliceKey)
        let stolen = state.receive(Self.ready("mallory", holds: Self.holds(tickets)), from: Self.mallory, key: malloryKey, now: at(0.2))
        #expect(stolen.contains(Self.recognised("mallory", 0, of: 2)))
        _ = state.receive(WireMessage(header: WireHeader(.goodbye)), from: T.alice, key: aliceKey, now: at(0.3))
        let second = Self.tasks(state.start(SplitSearchTests.searchSpec(round: 2), now: at(0.4)))
        #expect(second.count == 2 && second.allSatisfy { $0.worker == Self.mallory && $0.ticket != nil }, "\(second)")
        #expect(Set(second.compactMap(\.ticket)).isDisjoint(with: tickets))
    }

    /// A peer may choose its routing identity, so it can take that of a worker whose
    /// connection is gone; under another key, nothing it sends on it counts: a RESULT for the
    /// worker's task is dropped, and a heartbeat does not keep the worker alive.
    @Test func anotherKeyOnAWorkersIdentityIsNotTheWorker() throws {
        var state = CoordinatorState()
        _ = state.receive(T.ready("alice", threads: 1), from: T.alice, key: "alice's key", now: at(0))
        let sent = T.tasks(state.start(T.spec(shards: 2), now: at(0)))
        try #require(sent.map(\.shard) == [0, 1])
        let forged = state.receive(T.result(shard: 0), from: T.alice, key: "mallory's key", now: at(0.1))
        #expect(T.delivered(forged).isEmpty && state.droppedResults == 1)
        _ = state.receive(WireMessage(header: WireHeader(.workerHeartbeat)), from: T.alice, key: "mallory's key", now: at(2.5))
        let silent = state.tick(now: at(3.5))
        #expect(silent.contains { if case .log(let text) = $0 { text.hasPrefix("worker alice silent for") } else { false } })
        // Her own key's RESULT would have counted.
        var honest = CoordinatorState()
        _ = honest.receive(T.ready("alice", threads: 1), from: T.alice, key: "alice's key", now: at(0))
        _ = honest.start(T.spec(shards: 2), now: at(0))
        #expect(T.delivered(honest.receive(T.result(shard: 0), from: T.alice, key: "alice's key", now: at(0.1))) == [0])
    }

    /// A cancelled job's tickets are forgotten: naming them later changes nothing.
    @Test func aCancelledJobsTicketsAreForgotten() throws {
        var state = CoordinatorState()
        let tickets = try Self.aliceHoldsBothPartitions(&state)
        state.cancel(job: Self.job)
        let logged = state.receive(Self.ready("alice", holds: Self.holds(tickets)), from: Self.alice2, now: at(0.2))
        #expect(logged.contains(Self.recognised("alice", 0, of: 2)))
    }

    /// The worker's side: it names the partitions it keeps (with the ticket of the task that
    /// carried them, most recently searched first) in every READY, and fails a task whose
    /// ticket is not 32 hexadecimal digits.
    @Test func aWorkerNamesWhatItKeepsAndRefusesAMalformedTicket() throws {
        let cache = PartitionCache(budget: 1 << 20)
        var state = WorkerState(settings: WorkerSettings(name: "w", threads: 1)) { cache.held(limit: 10) }
        _ = state.start()
        _ = state.connected(now: at(0))
        let pass = try SearchPass(queries: [1, 0], dimension: 2, top: 1)
        func task(shard: UInt32, ticket: String?, model: Bool) -> [[UInt8]] {
            var assignment = TaskAssignment(corpus: CorpusReference(path: "S", rows: 8, dimension: 2, fileSize: 0),
                                            firstRow: Int(shard) * 4, rowCount: 4, computation: pass.description, includesModel: model)
            assignment.partition = SetPartition(set: "S", generation: 1, includesVectors: true, ticket: ticket)
            return WireMessage(header: WireHeader(.task, job: Self.job, round: 1, shard: shard), metadata: assignment,
                               arrays: (model ? pass.modelArrays : []) + [Frame.encode([Float](repeating: 1, count: 8))]).frames
        }
        let tickets = [PartitionTicket.make(), PartitionTicket.make()]
        for shard in 0..<2 {
            let directives = state.receive(task(shard: UInt32(shard), ticket: tickets[shard], model: shard == 0), now: at(0.1))
            guard case .compute(let computed)? = directives.first else { Issue.record("\(directives)"); return }
            _ = try cache.rows(for: computed)
        }
        let resync = state.receive(WireMessage(header: WireHeader(.resync)).frames, now: at(0.2))
        guard case .send(let ready)? = resync.first else { Issue.record("\(resync)"); return }
        #expect(try ready.decode(WorkerIntroduction.self).holds == [HeldPartition(job: Self.job, shard: 1, ticket: tickets[1]),
                                                                    HeldPartition(job: Self.job, shard: 0, ticket: tickets[0])])
        for bad in ["", String(tickets[0].dropLast()), tickets[0].uppercased(), tickets[0] + "0", String(repeating: "g", count: 32)]
            where bad != tickets[0] {
            let failed = state.receive(task(shard: 0, ticket: bad, model: false), now: at(0.3))
            guard case .send(let failure)? = failed.first, failure.header.type == .failure else { Issue.record("\(failed)"); continue }
            #expect(try failure.decode(FailureReport.self).message.contains("a partition ticket must be 32 lower-case hexadecimal digits"))
        }
    }

    /// A network blip (the relay between a worker and its coordinator drops the connection):
    /// the worker's socket reconnects, the coordinator sees a new identity, and the next
    /// split search sends the worker only its queries, with the same reply. Over CURVE
    /// (`curve`), the same; and then Mallory, a listed worker that shows the worker's tickets
    /// once it is back, is sent no task at all.
    @Test(.timeLimit(.minutes(2)), arguments: [false, true])
    func aWorkerBackAfterANetworkBlipIsNotSentItsPartitionsAgain(curve: Bool) async throws {
        let scratch = try TemporaryDirectory()
        let store = try SplitSearchTests.store(at: scratch.file("db"))
        let context = try ZeroMQContext(), registry = MetricsRegistry()
        let pairs = try SecureClusterTests.keys(["coordinator", "worker", "mallory", "client"], in: scratch)
        let security = { (name: String) in curve ? ClientSecurity(keyPair: pairs[name]!, coordinatorKey: pairs["coordinator"]!.publicKey) : nil }
        var settings = CoordinatorSettings()
        settings.searchPartitionRows = 4096
        settings.resumesStoredJobs = false
        if curve {
            try "\(pairs["worker"]!.publicKey.z85)\n\(pairs["mallory"]!.publicKey.z85)\n"
                .write(toFile: scratch.file("workers.keys"), atomically: true, encoding: .utf8)
            try "\(pairs["client"]!.publicKey.z85) write\n".write(toFile: scratch.file("clients.keys"), atomically: true, encoding: .utf8)
            settings.security = CoordinatorSecurity(keyPair: pairs["coordinator"]!, workerKeysFile: scratch.file("workers.keys"),
                                                    clientKeysFile: scratch.file("clients.keys"))
        }
        let coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*",
                                      clientsEndpoint: curve ? "tcp://127.0.0.1:*" : "inproc://held-clients-\(UUID().uuidString)",
                                      settings: settings, store: store, metrics: CoordinatorMetrics(registry: registry), logger: quietLogger())
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let relay = try TCPRelay(target: try #require(Int(endpoints.workers.split(separator: ":").last!)))
        defer { relay.stop() }
        var workerSettings = WorkerSettings(name: "w", threads: 1)
        workerSettings.security = security("worker")
        let worker = Worker(context: context, endpoint: "tcp://127.0.0.1:\(relay.port)", settings: workerSettings, logger: quietLogger())
        worker.start()
        defer { worker.stop() }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(60), security: security("client"))
        #expect(try await waitUntil(timeout: 20) { try client.status().workers.count == 1 })
        func taskBytes() -> Int {
            let text = String(decoding: registry.exposition(), as: UTF8.self)
            return text.split(separator: "\n").first { $0.hasPrefix("codebook_task_bytes_total ") }
                .flatMap { Int($0.split(separator: " ").last!) } ?? -1
        }
        let queries = [Float](repeating: 1, count: SplitSearchTests.dimension)
        let request = SearchRequest(set: "S", top: 10, queries: 1, split: true)
        let first = try client.search(request, vectors: queries)
        let sent = taskBytes()
        let partitionBytes = SplitSearchTests.rows * SplitSearchTests.dimension * 4
        #expect(sent > partitionBytes, "the first search sent the partitions (\(sent) bytes)")

        relay.cut()
        // The new connection registers (a second worker, until the old identity is declared dead).
        #expect(try await waitUntil(timeout: 20) { try client.status().workers.count == 2 }, "the worker came back")
        #expect(try await waitUntil(timeout: 20) { try client.status().workers.count == 1 }, "the old identity died")
        let thief = curve ? try TicketThief(context: context, endpoint: endpoints.workers, security: security("mallory")!,
                                            holds: worker.partitions.held(limit: WorkerIntroduction.maximumHeldPartitions)) : nil
        defer { thief?.stop() }
        if let thief {
            #expect(thief.holds.count == 4, "the worker holds the 4 partitions")
            #expect(try await waitUntil(timeout: 20) { try client.status().workers.count == 2 }, "mallory joined")
        }
        let second = try client.search(request, vectors: queries)
        #expect(SplitSearchTests.same(first, second))
        let resent = taskBytes() - sent
        #expect(resent < partitionBytes / 4, "the second search sent \(resent) bytes of tasks")
        if let thief { #expect(thief.tasks.load(ordering: .relaxed) == 0, "mallory was sent \(thief.tasks.load(ordering: .relaxed)) tasks") }
    }
}

/// Mallory: a worker whose key is listed, that names in its READY partitions it was never
/// sent, with tickets stolen from another worker; it heartbeats, answers every TASK with
/// FAILURE `retry` (so a search it was given does not wait for it) and counts them.
final class TicketThief: Sendable {
    let holds: [HeldPartition]
    let tasks = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(context: ZeroMQContext, endpoint: String, security: ClientSecurity, holds: [HeldPartition]) throws {
        self.holds = holds
        let thread = Thread { [self] in
            defer { finished.signal() }
            guard let socket = try? Socket(.dealer, context: context), (try? socket.setLinger(.zero)) != nil,
                  (try? security.secure(socket, handshakeTimeout: .seconds(5))) != nil, (try? socket.connect(endpoint)) != nil else { return }
            let ready = WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "mallory", threads: 1, holds: holds))
            var lastSent = ContinuousClock.now
            func send(_ message: WireMessage) {
                _ = try? socket.send(frames: message.frames, dontWait: true)
                lastSent = .now
            }
            send(ready)
            while !stopping.load(ordering: .relaxed) {
                if ContinuousClock.now - lastSent > .milliseconds(300) { send(WireMessage(header: WireHeader(.workerHeartbeat))) }
                guard let frames = (try? socket.receive(dontWait: true)) ?? nil, let message = try? WireMessage(frames: frames) else {
                    Thread.sleep(forTimeInterval: 0.002)
                    continue
                }
                if message.header.type == .resync { send(ready) }
                guard message.header.type == .task else { continue }
                tasks.add(1, ordering: .relaxed)
                let header = message.header
                send(WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                 metadata: FailureReport(message: "not mine", retry: true)))
            }
        }
        thread.start()
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }
}
