@testable import Cluster
import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Storage
import Synchronization
import TestSupport
import Testing
import ZeroMQ

/// The I/O threads never block and never spin: heartbeats keep their interval while a big
/// job is planned, and idle processes sleep.
@Suite(.serialized) struct IOThreadTests {
    /// CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat.
    static func cpuSeconds(of pid: Int32) throws -> Double {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        // Fields after the command name, which is in parentheses and may hold spaces:
        // state is field 3, utime and stime fields 14 and 15.
        guard let close = stat.lastIndex(of: ")") else { throw ClusterTestError("unreadable /proc/\(pid)/stat: \(stat)") }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw ClusterTestError("unreadable /proc/\(pid)/stat: \(stat)")
        }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// An idle coordinator with a worker, and that worker, each use under 1 % of a core
    /// (with a 1 ms poll they used 2–3 % each, debug build).
    @Test(.timeLimit(.minutes(1))) func anIdleCoordinatorAndAnIdleWorkerSleep() async throws {
        try await ProcessCluster().run { cluster in
            let coordinator = try await cluster.startCoordinator()
            let worker = try cluster.startWorker("idle")
            try cluster.require(await waitUntil(timeout: 20) { (try? MultiProcessTests.status(cluster).workers.count) == 1 },
                                "the worker did not join within 20 s")
            try await Task.sleep(for: .seconds(1)) // start-up work done
            let seconds = 4.0
            let before = (try Self.cpuSeconds(of: coordinator.pid), try Self.cpuSeconds(of: worker.pid))
            try await Task.sleep(for: .seconds(seconds))
            let after = (try Self.cpuSeconds(of: coordinator.pid), try Self.cpuSeconds(of: worker.pid))
            let coordinatorShare = (after.0 - before.0) / seconds, workerShare = (after.1 - before.1) / seconds
            print("idle CPU over \(seconds) s: coordinator \(coordinatorShare * 100) %, worker \(workerShare * 100) % of a core")
            cluster.check(coordinatorShare < 0.01, "the idle coordinator used \(coordinatorShare * 100) % of a core")
            cluster.check(workerShare < 0.01, "the idle worker used \(workerShare * 100) % of a core")
            // Still alive and talking to each other: the quiet was sleep, not a hang.
            let status = try MultiProcessTests.status(cluster)
            cluster.check(status.workers.count == 1 && status.workers[0].secondsSinceHeard < 3, "status after the wait: \(status)")
        }
    }

    /// While a SUBMIT-ENCODING of 1,000,000 images is accepted and planned (index read,
    /// one store lookup per image), the coordinator keeps heartbeating two workers: no gap
    /// between its messages to either is over 1.5 intervals, it hears them (STATUS
    /// answers, with `secondsSinceHeard` under 1.5 intervals), and none is declared dead.
    /// Planning on the I/O thread stopped its heartbeats for seconds.
    @Test(.timeLimit(.minutes(3))) func heartbeatsKeepTheirIntervalWhileAMillionImageJobIsPlanned() async throws {
        let scratch = try TemporaryDirectory()
        let images = 1_000_000, dimension = 8, interval = 1.0
        let descriptors = scratch.file("descriptors.npy"), index = scratch.file("images.tsv")
        try NpyFile.write(path: descriptors, rows: images, columns: dimension,
                          values: (0..<images * dimension).map { Float($0 % 13) })
        var lines = ""
        lines.reserveCapacity(images * 20)
        for image in 0..<images { lines += "img-\(image)\t\(image)\t1\n" }
        try lines.write(toFile: index, atomically: false, encoding: .utf8)
        let store = try CodebookStore(path: scratch.file("store"))
        let codebook = try Codebook(k: 4, dimension: dimension, centres: (0..<4 * dimension).map { Float($0 % 5) })
        try store.putModel(named: "cb", try StoredValue(kind: .model, metadata: ModelRecord(kind: .kmeans, k: 4, dimension: dimension,
                                                                                            source: "imported"),
                                                        values: codebook.centres), replace: false)

        var settings = CoordinatorSettings()
        settings.heartbeatInterval = .seconds(interval)
        let context = try ZeroMQContext()
        let coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*", clientsEndpoint: "tcp://127.0.0.1:*",
                                      settings: settings, store: store, logger: quietLogger())
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let probe = HeartbeatProbe(endpoint: endpoints.workers, workers: 2, interval: interval)
        defer { probe.stop() }
        let client = try ClusterClient(context: context, endpoint: endpoints.clients, timeout: .seconds(2))
        try #require(await waitUntil(timeout: 20) { (try? client.status().workers.count) == 2 }, "the probe workers did not join")

        let job = EncodingJob(encoding: .vlad, model: "cb", descriptors: descriptors, index: index, set: "S", flags: 0,
                              replace: false)
        // Submitted from a thread of its own: the reply comes once the job is planned.
        let submitted = SubmitOutcome()
        let clients = endpoints.clients
        let windowStart = ContinuousClock.now
        Thread {
            let result = Result { try ClusterClient(context: context, endpoint: clients, timeout: .seconds(150)).submit(job) }
            submitted.result.withLock { $0 = result }
        }.start()
        // Until the job is accepted and its pass planned, STATUS every 100 ms.
        var statusReplies = 0, longestSilence = 0.0, planned = false
        while !planned, ContinuousClock.now - windowStart < .seconds(150) {
            if let status = try? client.status() {
                statusReplies += 1
                longestSilence = max(longestSilence, status.workers.map(\.secondsSinceHeard).max() ?? .infinity)
                planned = status.passes.contains { $0.job == 1 && $0.shards == (images + job.imagesPerShard - 1) / job.imagesPerShard }
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let id = try #require(try submitted.result.withLock { $0 }?.get())
        try await Task.sleep(for: .seconds(interval))
        let windowEnd = ContinuousClock.now
        let status = try client.status()
        probe.stop()

        #expect(id == 1 && planned, "the job was not planned within 150 s")
        print("planning took \((windowEnd - windowStart).seconds - interval) s; longest gap between coordinator messages "
              + "\(probe.gaps(until: windowEnd)) s; longest silence in STATUS \(longestSilence) s")
        for (worker, gap) in probe.gaps(until: windowEnd).enumerated() {
            #expect(gap <= 1.5 * interval, "worker \(worker) heard nothing from the coordinator for \(gap) s")
        }
        #expect(statusReplies > 0 && longestSilence <= 1.5 * interval,
                "STATUS answered \(statusReplies) times; longest secondsSinceHeard \(longestSilence) s")
        #expect(probe.resyncs == 0, "a worker was told to introduce itself again (it had been declared dead)")
        #expect(status.workers.count == 2, "workers after planning: \(status.workers)")
    }
}

final class SubmitOutcome: Sendable {
    let result = Mutex<Result<UInt64, any Error>?>(nil)
}

/// Stand-ins for workers on raw DEALER sockets, on a thread of their own: they introduce
/// themselves, heartbeat every `interval` seconds, take no task, and note when each message
/// from the coordinator arrives.
final class HeartbeatProbe: Sendable {
    private let arrivals: Mutex<[[ContinuousClock.Instant]]>
    private let resyncCount = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(endpoint: String, workers: Int, interval: Double) {
        arrivals = Mutex(Array(repeating: [], count: workers))
        let thread = Thread { [self] in
            defer { finished.signal() }
            do {
                try run(endpoint: endpoint, workers: workers, interval: interval)
            } catch {
                print("heartbeat probe stopped: \(error)") // its gaps then count from its last message
            }
        }
        thread.start()
    }

    private func run(endpoint: String, workers: Int, interval: Double) throws {
        let context = try ZeroMQContext()
        let poller = Poller()
        let sockets = try (0..<workers).map { index in
            let socket = try Socket(.dealer, context: context)
            try socket.setLinger(.zero)
            try socket.connect(endpoint)
            try socket.send(frames: WireMessage(header: WireHeader(.ready),
                                                metadata: WorkerIntroduction(name: "probe-\(index)", threads: 1)).frames)
            poller.register(socket)
            return socket
        }
        var lastSent = ContinuousClock.now
        while !stopping.load(ordering: .sequentiallyConsistent) {
            _ = try poller.poll(timeout: .milliseconds(10))
            for (index, socket) in sockets.enumerated() {
                while let frames = try socket.receive(dontWait: true) {
                    let now = ContinuousClock.now
                    arrivals.withLock { $0[index].append(now) }
                    if (try? WireMessage(frames: frames))?.header.type == .resync { resyncCount.add(1, ordering: .relaxed) }
                }
            }
            if ContinuousClock.now - lastSent >= .seconds(interval) {
                for socket in sockets { try socket.send(frames: WireMessage(header: WireHeader(.workerHeartbeat)).frames) }
                lastSent = ContinuousClock.now
            }
        }
    }

    /// Per worker, the longest time without a message from the coordinator, from its first
    /// (the WELCOME) until `end`.
    func gaps(until end: ContinuousClock.Instant) -> [Double] {
        arrivals.withLock { arrivals in
            arrivals.map { times in
                let inWindow = times.filter { $0 <= end } + [end]
                return zip(inWindow, inWindow.dropFirst()).map { ($1 - $0).seconds }.max() ?? .infinity
            }
        }
    }

    var resyncs: Int { resyncCount.load(ordering: .relaxed) }

    /// Stops the thread and waits for it (once; later calls return at once).
    func stop() {
        guard !stopping.exchange(true, ordering: .sequentiallyConsistent) else { return }
        finished.wait()
    }
}
