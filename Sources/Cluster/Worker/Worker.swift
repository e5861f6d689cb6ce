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
    /// Compute threads: shards computed at once.
    public var threads: Int
    /// Until the coordinator's WELCOME says otherwise: heartbeat interval (s) and liveness.
    public var heartbeatInterval: Double = 1
    public var liveness: Int = 3
    /// Back-off before reconnecting to a silent coordinator: doubles from `reconnectInitial`
    /// to `reconnectMaximum` seconds (Paranoid Pirate).
    public var reconnectInitial: Double = 1
    public var reconnectMaximum: Double = 32
    public var maximumMessageSize: Int = 1 << 30
    /// CURVE with the coordinator; `nil`: no authentication, no encryption.
    public var security: ClientSecurity?
    /// The directories tasks may read corpora in; `nil`: any path.
    public var corpusRoots: CorpusRoots?
    /// Bytes of k-means distance bounds kept between passes (see `BoundCache`); 0 keeps none.
    public var boundMemory: Int = BoundCache.defaultBudget

    public init(name: String, threads: Int) {
        self.name = name
        self.threads = max(1, threads)
    }
}

/// A worker process's shell: an I/O thread owns the DEALER socket (heartbeats, tasks in,
/// results out, reconnection with back-off) and `threads` compute threads run the shards.
/// Shards are read from the corpus path in the task, by memory map. The I/O thread sleeps
/// in `zmq_poll` until a message arrives, a heartbeat is due, or the doorbell rings (a
/// result in the outbox, or `stop()`).
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
    private let tasks = TaskQueue()
    private let outbox = Mutex<[WireMessage]>([])
    /// Wakes the I/O thread; set once the thread runs.
    private let doorbell = Mutex<Doorbell?>(nil)
    private let corpora = CorpusCache()
    /// The k-means bounds of the shards this worker computed.
    private let bounds: BoundCache?
    /// What the compute threads count, if metrics are served.
    public let metrics: WorkerMetrics?

    public init(context: ZeroMQContext, endpoint: String, settings: WorkerSettings, metrics: WorkerMetrics? = nil, logger: Logger) {
        self.context = context
        self.endpoint = endpoint
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        bounds = settings.boundMemory > 0 ? BoundCache(budget: settings.boundMemory) : nil
    }

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

    private func connect() throws -> Socket {
        let socket = try Socket(.dealer, context: context)
        try socket.setMaxMessageSize(Int64(settings.maximumMessageSize))
        try socket.setLinger(.zero)
        try settings.security?.secure(socket, handshakeTimeout: .seconds(settings.heartbeatInterval * Double(settings.liveness)))
        try socket.connect(endpoint)
        return socket
    }

    private func wake() {
        doorbell.withLock { $0 }?.ring()
    }

    private var introduction: WireMessage {
        WireMessage(header: WireHeader(.ready),
                    metadata: WorkerIntroduction(name: settings.name, threads: settings.threads, pid: getpid()))
    }

    private func ioLoop() {
        var interval = settings.heartbeatInterval, liveness = settings.liveness
        var backoff = settings.reconnectInitial
        var socket: Socket
        let listener: DoorbellListener
        do {
            let (bell, bellListener) = try Doorbell.make(context: context)
            listener = bellListener
            // Published before the loop first looks at `stopping` and the outbox.
            doorbell.withLock { $0 = bell }
            socket = try connect()
        } catch {
            logger.error("cannot connect to \(endpoint): \(error)")
            return
        }
        var poller = Poller()
        poller.register(socket)
        poller.register(listener)
        /// Waits until a message arrives, `deadline` passes (at least 1 ms from now, so a
        /// deadline that just passed cannot make the loop spin) or the doorbell rings.
        func wait(until deadline: Double, on poller: Poller) {
            _ = try? poller.poll(timeout: .seconds(max(deadline - MonotonicClock.now(), 0.001)))
            listener.drain()
        }
        var lastHeard = MonotonicClock.now(), lastSent = lastHeard
        var models: [UInt64: (round: UInt32, computation: any WireComputation)] = [:]
        func send(_ message: WireMessage) {
            do {
                _ = try socket.send(frames: message.frames, dontWait: true)
                lastSent = MonotonicClock.now()
            } catch {
                logger.warning("send failed: \(error)")
            }
        }
        send(introduction)
        while !stopping.load(ordering: .sequentiallyConsistent) {
            for message in outbox.withLock({ outbox in defer { outbox.removeAll() }; return outbox }) { send(message) }
            wait(until: min(lastSent + interval, lastHeard + interval * Double(liveness)), on: poller)
            while let frames = (try? socket.receive(dontWait: true)) ?? nil {
                lastHeard = MonotonicClock.now()
                backoff = settings.reconnectInitial
                let message: WireMessage
                do {
                    message = try WireMessage(frames: frames)
                } catch {
                    logger.warning("dropped a malformed message from the coordinator: \(error)")
                    continue
                }
                switch message.header.type {
                case .welcome:
                    if let terms = try? message.decode(HeartbeatTerms.self) {
                        interval = Double(terms.intervalMilliseconds) / 1000
                        liveness = terms.liveness
                    }
                case .coordinatorHeartbeat:
                    break
                case .resync:
                    send(introduction)
                case .task:
                    if let failure = accept(message, models: &models) { send(failure) }
                default:
                    logger.warning("unexpected \(message.header.type) from the coordinator dropped")
                }
            }
            let now = MonotonicClock.now()
            if now - lastSent >= interval { send(WireMessage(header: WireHeader(.workerHeartbeat))) }
            if now - lastHeard > interval * Double(liveness) {
                logger.warning("coordinator silent for \(Int(now - lastHeard)) s; reconnecting in \(backoff) s")
                tasks.removeAll()
                models = [:]
                // Only the doorbell wakes this wait: `stop()` ends it, results wait for the new socket.
                let deadline = MonotonicClock.now() + backoff, bellOnly = Poller()
                bellOnly.register(listener)
                while MonotonicClock.now() < deadline && !stopping.load(ordering: .sequentiallyConsistent) {
                    wait(until: deadline, on: bellOnly)
                }
                backoff = min(backoff * 2, settings.reconnectMaximum)
                do {
                    socket = try connect()
                    poller = Poller()
                    poller.register(socket)
                    poller.register(listener)
                } catch {
                    logger.error("cannot reconnect to \(endpoint): \(error)")
                }
                lastHeard = MonotonicClock.now()
                send(introduction)
            }
        }
        // Give GOODBYE a moment to leave before the socket closes.
        try? socket.setLinger(.milliseconds(200))
        send(WireMessage(header: WireHeader(.goodbye)))
    }

    /// Queues a TASK for the compute threads, or returns the FAILURE to send back.
    private func accept(_ message: WireMessage, models: inout [UInt64: (round: UInt32, computation: any WireComputation)]) -> WireMessage? {
        let header = message.header
        func failure(_ text: String, retry: Bool = false) -> WireMessage {
            WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                        metadata: FailureReport(message: text, retry: retry))
        }
        do {
            var assignment = try message.decode(TaskAssignment.self)
            if let roots = settings.corpusRoots { assignment.corpus.path = try roots.check(assignment.corpus.path, what: "corpus") }
            if assignment.includesModel {
                models[header.job] = (header.round, try PassDecoder.computation(assignment.computation, arrays: message))
            }
            guard let model = models[header.job], model.round == header.round else {
                return failure("no model for pass \(header.round) of job \(header.job)", retry: true)
            }
            let computation = bounds?.attach(to: model.computation.forTask(assignment), job: header.job, corpus: assignment.corpus)
                ?? model.computation.forTask(assignment)
            tasks.push(ShardTask(header: header, assignment: assignment, computation: computation))
            return nil
        } catch {
            return failure("\(error)")
        }
    }

    // MARK: Compute

    private func compute(_ task: ShardTask, workspace: KernelWorkspace) {
        let header = task.header
        let reply: WireMessage
        do {
            let corpus = try corpora.open(task.assignment.corpus)
            let (first, count) = (task.assignment.firstRow, task.assignment.rowCount)
            guard let rows = corpus.rowRange(first: first, count: count) else {
                throw DescriptorError(.indexOutOfRange, "\(count) rows from row \(first) are outside the corpus's \(corpus.rows) rows",
                                      path: corpus.source)
            }
            let started = MonotonicClock.now()
            reply = try Self.compute(task.computation, rows: corpus.slice(rows), shard: Int(header.shard),
                                     header: header, workspace: workspace)
            // An encoding task names its images' rows; another, its range of rows.
            let rowsRead = task.assignment.images.map { $0.reduce(0) { $0 + $1.rowCount } } ?? count
            metrics?.shardComputed(rows: rowsRead, seconds: MonotonicClock.now() - started)
        } catch {
            reply = WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                                metadata: FailureReport(message: "\(error)", retry: false))
            metrics?.shardsFailed.increment()
        }
        outbox.withLock { $0.append(reply) }
        wake()
    }

    private static func compute<C: WireComputation>(_ computation: C, rows: DescriptorMatrix, shard: Int,
                                                    header: WireHeader, workspace: KernelWorkspace) throws -> WireMessage {
        let started = MonotonicClock.now()
        let statistics = try computation.statistics(of: rows, shard: shard, workspace: workspace)
        var shape = statistics.shape
        shape.computeSeconds = MonotonicClock.now() - started
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
}

/// A blocking FIFO between the I/O thread and the compute threads.
final class TaskQueue: Sendable {
    private let state = Mutex<(items: [ShardTask], closed: Bool)>(([], false))
    private let available = DispatchSemaphore(value: 0)

    func push(_ task: ShardTask) {
        state.withLock { $0.items.append(task) }
        available.signal()
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

/// Corpora a worker has open, checked against what the coordinator planned for.
final class CorpusCache: Sendable {
    private let open = Mutex<[String: DescriptorMatrix]>([:])

    func open(_ reference: CorpusReference) throws -> DescriptorMatrix {
        let matrix = try open.withLock { cache in
            if let matrix = cache[reference.path] { return matrix }
            let matrix = try DescriptorMatrix.open(path: reference.path)
            cache[reference.path] = matrix
            return matrix
        }
        let size = matrix.file?.size ?? 0
        guard matrix.rows == reference.rows, matrix.dimension == reference.dimension, size == reference.fileSize else {
            open.withLock { _ = $0.removeValue(forKey: reference.path) }
            throw DescriptorError(.dimensionMismatch,
                                  "this worker's copy is \(matrix.rows)×\(matrix.dimension) (\(size) bytes) but the job expects "
                                  + "\(reference.rows)×\(reference.dimension) (\(reference.fileSize) bytes)", path: reference.path)
        }
        return matrix
    }
}
