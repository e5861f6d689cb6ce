import Descriptors
import Foundation
import Logging
import Storage
import Synchronization
import ZeroMQ

/// The coordinator process's shell: one I/O thread owns the ROUTER socket for workers and
/// the ROUTER socket for clients, feeds `CoordinatorState` and carries out its directives.
/// Training jobs run as tasks that talk to the I/O thread through `submit(_:to:)`.
///
/// `@unchecked Sendable`: the sockets and the state machine are touched only by the I/O
/// thread; other threads reach it through the `inbox` mutex, and `jobs` is itself locked.
public final class Coordinator: @unchecked Sendable {
    public let settings: CoordinatorSettings
    let context: ZeroMQContext
    let logger: Logger
    let jobs: JobRegistry
    /// Where models, vectors and job checkpoints are kept, if anywhere.
    public let store: CodebookStore?
    /// The store's side of the client protocol.
    let queries: StoreQueries?
    /// Makes the vectors that encoding jobs write unlogged durable (see `vectorFlushDelay`).
    let vectorFlusher: GroupFlusher?
    /// CURVE and the allow-lists, when `settings.security` is set.
    let gatekeeper: CoordinatorGatekeeper?
    private let requestedWorkersEndpoint: String
    private let requestedClientsEndpoint: String
    /// Commands for the I/O thread; `stopped` once it has taken `.stop`, after which passes
    /// submitted fail at once (nobody would run them).
    private let inbox = Mutex<(commands: [Command], stopped: Bool)>(([], false))
    private let bound = Mutex<(workers: String, clients: String)?>(nil)
    private let finished = DispatchSemaphore(value: 0)
    private let counters = Mutex<(malformed: Int, requests: Int)>((0, 0))
    private let jobTasks = Mutex<[DispatchSemaphore]>([])

    private enum Command {
        case start(RoundSpec, any RoundSink)
        case cancel(UInt64)
        case stop
    }

    /// - Parameters:
    ///   - workersEndpoint: where workers connect (ROUTER), e.g. `tcp://127.0.0.1:5555`.
    ///   - clientsEndpoint: where clients connect (ROUTER), e.g. `tcp://127.0.0.1:5556`.
    ///   - store: where trained models and job checkpoints go; jobs left running in it are
    ///     resumed from their last checkpoint when the coordinator starts.
    public init(context: ZeroMQContext, workersEndpoint: String, clientsEndpoint: String,
                settings: CoordinatorSettings = CoordinatorSettings(), store: CodebookStore? = nil, logger: Logger) {
        self.context = context
        self.store = store
        queries = store.map { StoreQueries(store: $0) }
        vectorFlusher = store.map { store in GroupFlusher(delay: settings.vectorFlushDelay) { try store.flushVectors() } }
        jobs = JobRegistry(store: store, policy: JobRegistry.Policy(settings))
        requestedWorkersEndpoint = workersEndpoint
        requestedClientsEndpoint = clientsEndpoint
        self.settings = settings
        self.logger = logger
        gatekeeper = settings.security.map { CoordinatorGatekeeper(security: $0, context: context, logger: logger) }
    }

    /// Binds both sockets and starts the I/O thread; throws if either endpoint cannot be bound.
    /// Returns the endpoints actually bound (a `*` port resolved).
    @discardableResult
    public func start() throws -> (workers: String, clients: String) {
        try gatekeeper?.start()
        let ready = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        // The thread holds the coordinator only while it runs, and signals `finished` after
        // letting go: the last reference (and with it the store) is then released by the
        // thread that called `stop()`, never by a thread that outlives `main`.
        let finished = self.finished
        let thread = Thread { [weak self] in
            self?.run(ready: ready, failure: failure)
            finished.signal()
        }
        thread.name = "codebook-coordinator-io"
        thread.start()
        ready.wait()
        if let error = failure.withLock({ $0 }) {
            gatekeeper?.stop()
            throw error
        }
        try resumeStoredJobs()
        return bound.withLock { $0! }
    }

    private func run(ready: DispatchSemaphore, failure: borrowing Mutex<(any Error)?>) {
        do {
            let workers = try makeSocket(binding: requestedWorkersEndpoint, domain: .workers)
            let clients = try makeSocket(binding: requestedClientsEndpoint, domain: .clients)
            let endpoints = (workers: (try? workers.lastEndpoint) ?? requestedWorkersEndpoint,
                             clients: (try? clients.lastEndpoint) ?? requestedClientsEndpoint)
            bound.withLock { $0 = endpoints }
            ready.signal()
            loop(workers: workers, clients: clients)
        } catch {
            failure.withLock { $0 = error }
            ready.signal()
        }
    }

    /// Stops the I/O thread after it has finished the message in hand, and waits for it.
    /// Then waits for the job tasks, which the stopped loop has failed, to let go of the
    /// coordinator, so that its last reference, and the store's, stays with the caller.
    /// - Parameter keepingJobs: leave the jobs that were running as the store has them
    ///   ("running", with their last checkpoint), so that the next coordinator on this store
    ///   resumes them, as after a crash (a coordinator process's graceful stop). Without it,
    ///   they are stored as failed (an embedded cluster, whose client is gone).
    public func stop(keepingJobs: Bool = false) {
        if keepingJobs { jobs.keepStoredJobsFromNowOn() }
        inbox.withLock { $0.commands.append(.stop) }
        finished.wait()
        gatekeeper?.stop()
        vectorFlusher?.flushNow()
        for task in jobTasks.withLock({ tasks in defer { tasks.removeAll() }; return tasks }) {
            _ = task.wait(timeout: .now() + 30)
        }
    }

    /// A semaphore the caller signals when a job task has ended.
    func trackJobTask() -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        jobTasks.withLock { $0.append(done) }
        return done
    }

    /// Messages that could not be decoded, counted since start.
    public var malformedMessages: Int { counters.withLock { $0.malformed } }

    /// Starts a pass; its shard results go to `sink` on the I/O thread. Once the coordinator
    /// is stopping, or the pass's job has ended (been cancelled), the pass fails at once.
    func submit(_ spec: RoundSpec, to sink: any RoundSink) {
        // Checked under the inbox's lock: a job that ends after this check has its
        // `cancelPasses` queued after this pass, which it then fails.
        let refusal = inbox.withLock { inbox -> String? in
            if inbox.stopped { return "the coordinator stopped" }
            if let state = jobs[spec.key.job]?.record.state, state != .running { return "job \(spec.key.job) \(state.rawValue)" }
            inbox.commands.append(.start(spec, sink))
            return nil
        }
        if let refusal { sink.fail(refusal) }
    }

    /// Forgets the passes of a job that ended, failing their sinks (a job's task waiting
    /// on one ends); their late results will be dropped.
    func cancelPasses(of job: UInt64) {
        inbox.withLock { $0.commands.append(.cancel(job)) }
    }

    /// Submits a training job as a client would (for the embedded cluster and tests).
    public func submit(_ job: TrainingJob, arrays: [[UInt8]] = []) throws -> UInt64 {
        try accept(job, arrays: arrays)
    }

    private func makeSocket(binding endpoint: String, domain: CoordinatorGatekeeper.Domain) throws -> Socket {
        let socket = try Socket(.router, context: context)
        try gatekeeper?.secure(socket, for: domain)
        try socket.setMaxMessageSize(Int64(settings.maximumMessageSize))
        try socket.setLinger(.zero)
        try socket.setRouterMandatory(false)
        try socket.bind(endpoint)
        return socket
    }

    // MARK: The I/O loop

    private func loop(workers: Socket, clients: Socket) {
        var state = CoordinatorState(settings: settings)
        var sinks: [RoundKey: any RoundSink] = [:]
        var lastTick = MonotonicClock.now()
        let poller = Poller()
        poller.register(workers)
        poller.register(clients)
        func perform(_ directives: [CoordinatorState.Directive]) {
            for directive in directives {
                switch directive {
                case .send(let worker, let message):
                    let started = MonotonicClock.now()
                    do {
                        _ = try workers.send(frames: [worker] + message.frames, dontWait: true)
                    } catch {
                        logger.warning("send to a worker failed", metadata: ["error": "\(error)"])
                    }
                    if message.header.type == .task {
                        sinks[RoundKey(job: message.header.job, round: message.header.round)]?
                            .addDispatchTime(MonotonicClock.now() - started)
                    }
                case .deliver(let key, let shard, let message):
                    sinks[key]?.deliver(shard: shard, message: message)
                case .fail(let key, let why):
                    sinks.removeValue(forKey: key)?.fail(why)
                    state.cancel(job: key.job)
                case .log(let text):
                    logger.info("\(text)")
                }
            }
            sinks = sinks.filter { key, _ in state.rounds[key] != nil }
        }
        while true {
            let (commands, stopping) = inbox.withLock { inbox in
                defer { inbox.commands.removeAll() }
                if inbox.commands.contains(where: { if case .stop = $0 { true } else { false } }) { inbox.stopped = true }
                return (inbox.commands, inbox.stopped)
            }
            for command in commands {
                switch command {
                case .start(let spec, let sink):
                    sinks[spec.key] = sink
                    if !stopping { perform(state.start(spec, now: MonotonicClock.now())) }
                case .cancel(let job):
                    for (key, sink) in sinks where key.job == job { sink.fail("job \(job) ended") }
                    sinks = sinks.filter { $0.key.job != job }
                    state.cancel(job: job)
                case .stop:
                    break
                }
            }
            if stopping {
                logger.info("coordinator stopping")
                for sink in sinks.values { sink.fail("the coordinator stopped") }
                return
            }
            let ready: [Poller.Ready]
            do {
                ready = try poller.poll(timeout: .milliseconds(1))
            } catch {
                logger.error("poll failed; coordinator stopping", metadata: ["error": "\(error)"])
                return
            }
            for socketReady in ready {
                let isWorkers = socketReady.socket === workers
                // Drain what is there, a bounded number at a time, so neither side starves.
                for _ in 0..<256 {
                    guard let (frames, userID) = try? socketReady.socket.receive(dontWait: true, property: .userID) else { break }
                    let now = MonotonicClock.now()
                    if isWorkers {
                        guard admitsWorker(userID) else { continue }
                        perform(handleWorker(frames, state: &state, sinks: sinks, now: now))
                    } else {
                        handleClient(frames, from: userID, socket: clients, state: state, now: now)
                    }
                }
            }
            let now = MonotonicClock.now()
            if now - lastTick >= 0.1 {
                perform(state.tick(now: now))
                lastTick = now
            }
        }
    }

    private func handleWorker(_ frames: [[UInt8]], state: inout CoordinatorState, sinks: [RoundKey: any RoundSink],
                              now: Double) -> [CoordinatorState.Directive] {
        guard let identity = frames.first else { return [] }
        let message: WireMessage
        do {
            message = try WireMessage(frames: Array(frames.dropFirst()))
        } catch {
            noteMalformed(error, from: "a worker")
            return []
        }
        // A RESULT the state machine would take is checked by its pass first (decoded once,
        // against the shard's task); a rejected one is not taken and its shard is sent again.
        return state.receive(message, from: identity, now: now) { key, shard, result in
            try sinks[key]?.check(shard: shard, result)
        }
    }

    func noteMalformed(_ error: any Error, from peer: String) {
        let count = counters.withLock { $0.malformed += 1; return $0.malformed }
        logger.warning("dropped a malformed message from \(peer)", metadata: ["error": "\(error)", "count": "\(count)"])
    }

    // MARK: Clients

    /// Client requests arrive as [identity, empty delimiter, header, metadata, arrays…]
    /// (a REQ socket, or a DEALER that sends the delimiter) and get a reply in the same envelope.
    private func handleClient(_ frames: [[UInt8]], from userID: String?, socket: Socket, state: CoordinatorState, now: Double) {
        guard frames.count >= 2, frames[1].isEmpty else {
            noteMalformed(WireError.malformed("client request without an envelope"), from: "a client")
            return
        }
        let reply: WireMessage
        do {
            let request = try WireMessage(frames: Array(frames.dropFirst(2)))
            reply = refusal(of: request, from: userID) ?? answer(request, state: state, now: now)
        } catch {
            noteMalformed(error, from: "a client")
            reply = WireMessage(header: WireHeader(.errorReply), metadata: FailureReport(message: "\(error)"))
        }
        _ = try? socket.send(frames: [frames[0], []] + reply.frames, dontWait: true)
    }
}
