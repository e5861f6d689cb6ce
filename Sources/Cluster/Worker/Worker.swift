import ClusterProtocol
import Clustering
import Descriptors
import Foundation
import Logging
import Synchronization
import Telemetry
import ZeroMQ

/// How a worker introduces itself, computes and reconnects.
public struct WorkerSettings: Sendable {
    public var name: String
    /// Compute threads: shards computed at once, 1…`maximumThreads`.
    public var threads: Int
    /// The most compute threads a worker starts: more would exhaust the process's threads
    /// (each has a 4 MiB stack) long before they could speed anything up.
    public static let maximumThreads = 1024
    /// Until the coordinator's WELCOME says otherwise: heartbeat interval and liveness.
    public var heartbeatInterval: Duration = .seconds(1)
    public var liveness: Int = 3
    /// Back-off before reconnecting to a silent coordinator: doubles from `reconnectInitial`
    /// to `reconnectMaximum` (Paranoid Pirate; see `WorkerState`).
    public var reconnectInitial: Duration = .seconds(1)
    public var reconnectMaximum: Duration = .seconds(32)
    /// The coordinator's `maximumModelValues` (K·D of the largest model it may send); raise
    /// both together.
    public var maximumModelValues: Int = CoordinatorSettings().maximumModelValues
    /// The largest frame accepted from the coordinator (ZMQ_MAXMSGSIZE): what a coordinator
    /// of `maximumModelValues` accepts, which bounds every frame it sends (8·K·D bytes, at
    /// least 1 MiB).
    public var maximumMessageSize: Int {
        var coordinator = CoordinatorSettings()
        coordinator.maximumModelValues = maximumModelValues
        return coordinator.maximumMessageSize
    }
    /// CURVE with the coordinator; `nil`: no authentication, no encryption.
    public var security: ClientSecurity?
    /// The directories tasks may read corpora in; `nil`: any path.
    public var corpusRoots: CorpusRoots?
    /// Bytes of k-means distance bounds kept between passes (see `BoundCache`); 0 keeps none.
    public var boundMemory: Int = 0
    /// Bytes of stored sets' partitions kept between search tasks (see `PartitionCache`);
    /// 0 keeps none.
    public var partitionMemory: Int = 1 << 30
    /// Bytes of k-means‖ distances kept between rounds (see `DistanceCache`); 0 keeps none.
    public var seedingMemory: Int = DistanceCache.seedingDefault

    public init(name: String, threads: Int) {
        self.name = name
        self.threads = min(max(1, threads), Self.maximumThreads)
    }
}

/// A worker process's shell: an I/O thread owns the DEALER socket and carries out the
/// directives of `WorkerState` (heartbeats, tasks in, results out, reconnection with
/// back-off), and `threads` compute threads run the shards. Shards are read from the
/// corpus path in the task, by memory map.
///
/// `@unchecked Sendable`: the socket is touched only by the I/O thread; the queues between
/// it and the compute threads are mutex-protected.
public final class Worker: @unchecked Sendable {
    public let settings: WorkerSettings
    let context: ZeroMQContext
    let endpoint: String
    let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Tasks waiting for a compute thread: at most `threads` + `extraWaitingTasks`. A
    /// coordinator sends `threads` + a few at once; one that sends more is not kept up with.
    private let tasks: TaskQueue
    static let extraWaitingTasks = 64
    /// Replies from the compute threads, with the session of their task.
    private let outbox = Mutex<[(session: Int, reply: WireMessage)]>([])
    /// Wakes the I/O thread; set once the thread runs.
    private let doorbell = Mutex<Doorbell?>(nil)
    private let corpora = CorpusCache()
    /// The k-means bounds and k-means‖ distances of the shards this worker computed.
    private let caches: WorkerCaches
    /// The partitions of sets this worker searched.
    let partitions: PartitionCache
    /// What the compute threads count, if metrics are served.
    public let metrics: WorkerMetrics?

    public init(context: ZeroMQContext, endpoint: String, settings: WorkerSettings, metrics: WorkerMetrics? = nil, logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        caches = WorkerCaches(boundMemory: settings.boundMemory, seedingMemory: settings.seedingMemory)
        partitions = PartitionCache(budget: settings.partitionMemory)
        tasks = TaskQueue(limit: settings.threads + Self.extraWaitingTasks)
    }

    /// Bytes of k-means‖ distances this worker keeps.
    var keptSeedingBytes: Int { caches.distances?.storedBytes ?? 0 }

    /// Starts the I/O and compute threads and returns.
    public func start() {
        for index in 0..<settings.threads {
            let tasks = self.tasks
            let thread = Thread { [weak self] in
                let workspace = KernelWorkspace()
                while let task = tasks.pop() { self?.compute(task, workspace: workspace) }
            }
            thread.name = "codebook-worker-compute-\(index)"
            thread.stackSize = 1 << 22
            thread.start()
        }
        // Threads hold the worker only while they use it (see `Coordinator.start`).
        let tasks = self.tasks, finished = self.finished
        let thread = Thread { [weak self] in
            self?.ioLoop()
            tasks.close()
            finished.signal()
        }
        thread.name = "codebook-worker-io"
        thread.start()
    }

    /// Says goodbye to the coordinator, stops the threads and waits for the I/O thread.
    public func stop() {
        stopping.store(true, ordering: .sequentiallyConsistent)
        wake()
        finished.wait()
    }

    // MARK: I/O

    /// A connection to the coordinator: the socket, and its handshake events.
    private struct Connection {
        let socket: Socket
        let handshakes: SocketMonitor
    }

    private func connect() throws -> Connection {
        let socket = try Socket(.dealer, context: context)
        try socket.setMaxMessageSize(Int64(settings.maximumMessageSize))
        try socket.setLinger(.zero)
        try settings.security?.secure(socket, handshakeTimeout: settings.heartbeatInterval * settings.liveness)
        let handshakes = try socket.monitor([.handshakeFailedNoDetail, .handshakeFailedProtocol, .handshakeFailedAuthentication])
        try socket.connect(endpoint)
        return Connection(socket: socket, handshakes: handshakes)
    }

    private func wake() {
        doorbell.withLock { $0 }?.ring()
    }

    /// Why a handshake failed, from the worker's side.
    private func refusal(_ event: SocketEvent) -> String {
        switch event.kind {
        case .handshakeFailedAuthentication:
            "the coordinator at \(endpoint) refused this worker's key"
        case .handshakeFailedProtocol where event.value == SocketEvent.mechanismMismatch:
            settings.security == nil ? "the coordinator at \(endpoint) requires CURVE keys, and this worker has none"
                                     : "the coordinator at \(endpoint) does not use CURVE keys, and this worker does"
        default:
            "the handshake with the coordinator at \(endpoint) failed"
                + (settings.security == nil ? "" : ": its public key is not the one this worker was given")
        }
    }

    /// Carries out `WorkerState`'s directives: owns the connection, the poller and the task
    /// queue; sleeps in `zmq_poll` until a message arrives, the state machine's next
    /// deadline passes, or the doorbell rings (a result in the outbox, or `stop()`).
    private func ioLoop() {
        let listener: DoorbellListener
        do {
            let (bell, bellListener) = try Doorbell.make(context: context)
            listener = bellListener
            // Published before the loop first looks at `stopping` and the outbox.
            doorbell.withLock { $0 = bell }
        } catch {
            logger.error("cannot start the worker's I/O thread: \(error)")
            return
        }
        let partitions = partitions
        var state = WorkerState(settings: settings, pid: getpid()) {
            partitions.held(limit: WorkerIntroduction.maximumHeldPartitions)
        }
        var connection: Connection?
        var poller = Poller()
        poller.register(listener)
        func perform(_ directives: [WorkerState.Directive]) {
            for directive in directives {
                switch directive {
                case .connect:
                    do {
                        let made = try connect()
                        connection = made
                        poller = Poller()
                        poller.register(made.socket)
                        poller.register(listener)
                        perform(state.connected(now: .now))
                    } catch {
                        perform(state.connectFailed("\(error)", now: .now))
                    }
                case .disconnect:
                    tasks.removeAll()
                    connection = nil
                    poller = Poller()
                    poller.register(listener)
                case .send(let message):
                    guard let socket = connection?.socket else { continue }
                    do {
                        _ = try socket.send(frames: message.frames, dontWait: true)
                    } catch {
                        perform(state.sendFailed(message, error: "\(error)"))
                    }
                case .compute(let task):
                    guard !tasks.push(caches.attach(to: task)) else { continue }
                    let header = task.header
                    let refusal = FailureReport(message: "this worker has \(tasks.limit) tasks waiting already", retry: true)
                    outbox.withLock { $0.append((task.session, WireMessage(header: WireHeader(.failure, job: header.job, round: header.round,
                                                                                             shard: header.shard), metadata: refusal))) }
                case .log(let level, let text):
                    logger.log(level: level, "\(text)")
                }
            }
        }
        perform(state.start())
        while !stopping.load(ordering: .sequentiallyConsistent) {
            let replies: [(session: Int, reply: WireMessage)] = outbox.withLock { outbox in
                defer { outbox.removeAll() }
                return outbox
            }
            for (session, reply) in replies { perform(state.finished(reply, session: session, now: .now)) }
            // At least 1 ms, so that a deadline that just passed cannot make the loop spin.
            let timeout = state.nextDeadline.map { max($0 - ContinuousClock.now, .milliseconds(1)) }
            _ = try? poller.poll(timeout: timeout)
            listener.drain()
            while let event = try? connection?.handshakes.next() {
                perform(state.refused(refusal(event), now: .now))
            }
            // A bounded number at a time: replies (above) and heartbeats go out between, however fast tasks come.
            for _ in 0..<256 {
                guard let frames = (try? connection?.socket.receive(dontWait: true)) ?? nil else { break }
                perform(state.receive(frames, now: .now))
            }
            if let deadline = state.nextDeadline, deadline <= ContinuousClock.now { perform(state.tick(now: .now)) }
        }
        // Give GOODBYE a moment to leave before the socket closes.
        try? connection?.socket.setLinger(.milliseconds(200))
        perform(state.stop())
    }

    // MARK: Compute

    private func compute(_ task: ShardTask, workspace: KernelWorkspace) {
        let header = task.header
        let reply: WireMessage
        do {
            if let rows = try rows(of: task) {
                let started = ContinuousClock.now
                reply = try Self.compute(task.computation, rows: rows, shard: Int(header.shard), header: header, workspace: workspace)
                // An extract task names its image files; an encoding task, its images' rows; another, its range of rows.
                let rowsRead = task.assignment.computation.kind == .extract ? task.assignment.imageFiles?.count ?? 0
                    : task.assignment.images.map { $0.reduce(0) { $0 + $1.rowCount } } ?? task.assignment.rowCount
                metrics?.shardComputed(rows: rowsRead, seconds: (ContinuousClock.now - started).seconds)
            } else {
                // A partition dropped from the cache (or never held): the coordinator sends it again.
                reply = WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                    metadata: FailureReport(message: "this worker does not hold the partition of rows "
                                                            + "\(task.assignment.firstRow)..<\(task.assignment.firstRow + task.assignment.rowCount)",
                                                            retry: true))
            }
        } catch {
            reply = WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                metadata: FailureReport(message: "\(error)", retry: false))
            metrics?.shardsFailed.increment()
        }
        outbox.withLock { $0.append((task.session, reply)) }
        wake()
    }

    /// The rows `task` computes: its range of the corpus file, or, for a search task, its
    /// partition of a set (nil if it is neither carried nor kept).
    private func rows(of task: ShardTask) throws -> DescriptorMatrix? {
        if task.assignment.partition != nil { return try partitions.rows(for: task) }
        if task.assignment.computation.kind == .extract {
            // An extract task reads image files, each of which must be inside the roots (one
            // that does not exist is the pass's to report as unreadable); it has no rows.
            for path in (task.assignment.imageFiles ?? []).map(\.path) {
                do { _ = try settings.corpusRoots?.check(path, what: "image") } catch let error as ClusterError where error.code == .badFile {}
            }
            return try DescriptorMatrix(rows: 0, dimension: 1, values: [])
        }
        var reference = task.assignment.corpus
        if let roots = settings.corpusRoots { reference.path = try roots.check(reference.path, what: "corpus") }
        let corpus = try corpora.open(reference)
        let (first, count) = (task.assignment.firstRow, task.assignment.rowCount)
        guard let rows = corpus.rowRange(first: first, count: count) else {
            throw DescriptorError(.indexOutOfRange, "\(count) rows from row \(first) are outside the corpus's \(corpus.rows) rows",
                                  path: corpus.source)
        }
        return try corpus.slice(rows)
    }

    private static func compute<C: WireComputation>(_ computation: C, rows: DescriptorMatrix, shard: Int,
                                                    header: WireHeader, workspace: KernelWorkspace) throws -> WireMessage {
        let started = ContinuousClock.now
        let statistics = try computation.statistics(of: rows, shard: shard, workspace: workspace)
        var shape = statistics.shape
        shape.computeSeconds = (ContinuousClock.now - started).seconds
        return WireMessage(header: WireHeader(.result, job: header.job, round: header.round, shard: header.shard),
                           metadata: shape, arrays: statistics.arrays)
    }
}

/// One shard to compute.
struct ShardTask: @unchecked Sendable {
    // @unchecked: the computation is an immutable value (its stored properties are Sendable).
    let header: WireHeader
    let assignment: TaskAssignment
    let computation: any WireComputation
    /// The worker's connection it came on (see `WorkerState`).
    let session: Int
    /// A search task's partition of its set, when the task carries it.
    var carriedRows: [Float]? = nil
}

/// A blocking FIFO between the I/O thread and the compute threads, of at most `limit` tasks.
final class TaskQueue: Sendable {
    let limit: Int
    private let state = Mutex<(items: [ShardTask], closed: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)

    init(limit: Int) { self.limit = limit }

    /// Queues `task`; false (and not queued) if `limit` tasks wait already.
    func push(_ task: ShardTask) -> Bool {
        guard state.withLock({ state in
            guard state.items.count < limit else { return false }
            state.items.append(task)
            return true
        }) else { return false }
        available.signal()
        return true
    }

    /// The next task, or nil once the queue is closed.
    func pop() -> ShardTask? {
        while true {
            available.wait()
            let next: ShardTask?? = state.withLock { state in
                if state.closed { return .some(nil) }
                return state.items.isEmpty ? nil : state.items.removeFirst()
            }
            if let next { return next }
        }
    }

    func removeAll() { state.withLock { $0.items.removeAll() } }

    func close() {
        state.withLock { $0.closed = true }
        for _ in 0..<64 { available.signal() }
    }
}

/// Corpora a worker has open, checked against what the coordinator planned for: the
/// `capacity` last used. Each holds its file mapped (and a deleted file's disk space with
/// it), and the paths are the coordinator's: one kept per path would grow without bound.
final class CorpusCache: Sendable {
    static let capacity = 16
    /// The open corpora by path.
    private let open = Mutex(RecentlyUsed<String, DescriptorMatrix>(capacity: capacity))

    /// The paths of the corpora kept open, the one last used last.
    var paths: [String] { open.withLock { $0.keys } }

    func open(_ reference: CorpusReference) throws -> DescriptorMatrix {
        let matrix = try open.withLock { cache in
            let matrix = try cache[reference.path] ?? DescriptorMatrix.open(path: reference.path)
            cache.set(reference.path, matrix)
            return matrix
        }
        let size = matrix.file?.size ?? 0
        guard matrix.rows == reference.rows, matrix.dimension == reference.dimension, size == reference.fileSize else {
            open.withLock { $0.remove(reference.path) }
            throw DescriptorError(.dimensionMismatch,
                                  "this worker's copy is \(matrix.rows)×\(matrix.dimension) (\(size) bytes) but the job expects "
                                  + "\(reference.rows)×\(reference.dimension) (\(reference.fileSize) bytes)", path: reference.path)
        }
        return matrix
    }
}
