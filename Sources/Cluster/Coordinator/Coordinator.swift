import ClusterProtocol
import Descriptors
import Foundation
import Logging
import Storage
import Synchronization
import Telemetry
import ZeroMQ

/// The coordinator process's shell: one I/O thread owns the ROUTER socket for workers and
/// the ROUTER socket for clients, feeds `CoordinatorState` and carries out its directives.
/// It never waits on anything but `zmq_poll`: requests that read files, scan the store or
/// plan a job are answered on the request thread, one at a time, and training jobs run as
/// tasks; both talk to the I/O thread through its inbox and wake it with a doorbell. Shard
/// RESULTs are decoded, checked and merged on the merge thread (see `mergeThread`).
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
    /// What the shell counts, if metrics are served.
    public let metrics: CoordinatorMetrics?
    private let requestedWorkersEndpoint: String
    private let requestedClientsEndpoint: String
    /// Commands for the I/O thread; `stopped` once it has taken `.stop`, after which passes
    /// submitted fail at once (nobody would run them).
    private let inbox = Mutex<(commands: [Command], stopped: Bool)>(([], false))
    /// Wakes the I/O thread when the inbox has something; set once the thread runs.
    private let doorbell = Mutex<Doorbell?>(nil)
    /// Where requests that may take more than a moment are answered (see `answersOnIOThread`).
    private let requestThread = DispatchQueue(label: "codebook-coordinator-requests")
    /// Where transform jobs (TRANSFORM-SET) run, one at a time, which take as long as their
    /// set is large: the request thread answers other clients meanwhile.
    let transformThread = DispatchQueue(label: "codebook-coordinator-transforms")
    /// Where the state machine's `persist` directives are carried out, in order, so that the
    /// I/O thread never waits on the store.
    private let persistThread = DispatchQueue(label: "codebook-coordinator-persist")
    /// Where the rows that tasks carry are read (`sendCarrying`), in order, so that the I/O
    /// thread never waits on the store; a worker's tasks behind one go through it too.
    private let carrier = DispatchQueue(label: "codebook-coordinator-carrier")
    /// Where the passes' sinks are called, one call at a time, in the order the I/O thread
    /// asks: a RESULT's check (reported back with `checked`), its merge once the state
    /// machine has taken it (each pass's `OrderedMerger` keeps shard order), and their
    /// `fail` and `addDispatchTime`. A 64 MiB RESULT (K = 65,536, D = 128) took the I/O
    /// thread, and with it heartbeats and STATUS, for a second on a loaded machine. What
    /// waits here is bounded: one RESULT per shard of a pass out, and shards out stay within
    /// `CoordinatorSettings.mergeWindow` of the pass's lowest shard not yet taken.
    private let mergeThread = DispatchQueue(label: "codebook-coordinator-merge")
    private let bound = Mutex<(workers: String, clients: String)?>(nil)
    private let finished = DispatchSemaphore(value: 0)
    private let counters = Mutex<(malformed: Int, requests: Int)>((0, 0))
    private let jobTasks = Mutex<[DispatchSemaphore]>([])

    private enum Command {
        case start(RoundSpec, any RoundSink)
        /// Ends every pass of a job, or (`pass`) that one alone.
        case cancel(UInt64, pass: UInt32?)
        /// The request thread's reply to a client's request.
        case reply(to: [UInt8], WireMessage)
        /// The persist thread has written what pass `key` writes first (or failed to).
        case persisted(RoundKey, failure: String?)
        /// The carrier has made a TASK ready to send (`failure`: it could not read its rows).
        case carried(to: WorkerID, WireMessage, failure: String?)
        /// The merge thread has checked a RESULT.
        case checked(CoordinatorState.ResultClaim, failure: (any Error)?)
        case stop
    }

    /// - Parameters:
    ///   - workersEndpoint: where workers connect (ROUTER), e.g. `tcp://127.0.0.1:5555`.
    ///   - clientsEndpoint: where clients connect (ROUTER), e.g. `tcp://127.0.0.1:5556`.
    ///   - store: where trained models and job checkpoints go; jobs left running in it are
    ///     resumed from their last checkpoint when the coordinator starts.
    ///   - metrics: where to count what happens (nil: nothing is counted).
    public init(context: ZeroMQContext, workersEndpoint: String, clientsEndpoint: String,
                settings: CoordinatorSettings = CoordinatorSettings(), store: CodebookStore? = nil,
                metrics: CoordinatorMetrics? = nil, logger: Logger) {
        self.context = context
        self.store = store
        queries = store.map { StoreQueries(store: $0, searchCacheBytes: settings.searchCacheBytes) }
        vectorFlusher = store.map { store in GroupFlusher(delay: settings.vectorFlushDelay) { try store.flushVectors() } }
        jobs = JobRegistry(store: store, policy: JobRegistry.Policy(settings))
        requestedWorkersEndpoint = workersEndpoint
        requestedClientsEndpoint = clientsEndpoint
        self.settings = settings
        self.logger = logger
        gatekeeper = settings.security.map { CoordinatorGatekeeper(security: $0, context: context, logger: logger) }
        self.metrics = metrics
        metrics?.registry.onScrape { [weak self] in self?.sampleMetrics() }
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
        do {
            try resumeStoredJobs()
        } catch {
            // The I/O thread runs: stopped, it lets go of the coordinator (and its store).
            stop(keepingJobs: true)
            throw error
        }
        return bound.withLock { $0! }
    }

    private func run(ready: DispatchSemaphore, failure: borrowing Mutex<(any Error)?>) {
        do {
            let workers = try makeSocket(binding: requestedWorkersEndpoint, domain: .workers,
                                         highWaterMark: settings.workerHighWaterMark)
            let clients = try makeSocket(binding: requestedClientsEndpoint, domain: .clients,
                                         highWaterMark: settings.clientHighWaterMark)
            let (bell, listener) = try Doorbell.make(context: context)
            // Published before the loop first looks at the inbox: a command posted earlier
            // is seen then, one posted later rings.
            doorbell.withLock { $0 = bell }
            let endpoints = (workers: (try? workers.lastEndpoint) ?? requestedWorkersEndpoint,
                             clients: (try? clients.lastEndpoint) ?? requestedClientsEndpoint)
            bound.withLock { $0 = endpoints }
            ready.signal()
            loop(workers: workers, clients: clients, listener: listener)
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
        queries?.interruption.raise()
        inbox.withLock { $0.commands.append(.stop) }
        wake()
        finished.wait()
        gatekeeper?.stop()
        // A request being answered may still start a job, whose pass then fails at once; a
        // checkpoint being written still holds the coordinator.
        for queue in [requestThread, transformThread, persistThread, carrier, mergeThread] {
            let done = DispatchSemaphore(value: 0)
            queue.async { done.signal() }
            _ = done.wait(timeout: .now() + 30)
        }
        vectorFlusher?.flushNow()
        for task in jobTasks.withLock({ tasks in defer { tasks.removeAll() }; return tasks }) {
            _ = task.wait(timeout: .now() + 30)
        }
        // The sets searched on the workers hold backends that hold the coordinator.
        queries?.splitSets.removeAll()
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
        if let refusal { sink.fail(refusal) } else { wake() }
    }

    /// Forgets the passes of a job that ended, failing their sinks (a job's task waiting
    /// on one ends); their late results will be dropped.
    func cancelPasses(of job: UInt64) {
        post(.cancel(job, pass: nil))
    }

    /// Forgets pass `key` alone, failing its sink, as `cancelPasses` does; the job's other
    /// passes go on.
    func cancelPass(_ key: RoundKey) {
        post(.cancel(key.job, pass: key.round))
    }

    /// Hands `command` to the I/O thread and wakes it; false (and dropped) once it has stopped.
    @discardableResult
    private func post(_ command: Command) -> Bool {
        let accepted = inbox.withLock { inbox in
            if !inbox.stopped { inbox.commands.append(command) }
            return !inbox.stopped
        }
        if accepted { wake() }
        return accepted
    }

    private func wake() {
        doorbell.withLock { $0 }?.ring()
    }

    /// Submits a training job as a client would (for the embedded cluster and tests).
    public func submit(_ job: TrainingJob, arrays: [[UInt8]] = []) throws -> UInt64 {
        try accept(job, arrays: arrays)
    }

    private func makeSocket(binding endpoint: String, domain: CoordinatorGatekeeper.Domain, highWaterMark: Int) throws -> Socket {
        let socket = try Socket(.router, context: context)
        try gatekeeper?.secure(socket, for: domain)
        try socket.setMaxMessageSize(Int64(settings.maximumMessageSize))
        try socket.setSendHighWaterMark(Int32(clamping: highWaterMark))
        try socket.setReceiveHighWaterMark(Int32(clamping: highWaterMark))
        try socket.setLinger(.zero)
        try socket.setRouterMandatory(false)
        try socket.bind(endpoint)
        return socket
    }

    // MARK: The I/O loop

    private func loop(workers: Socket, clients: Socket, listener: DoorbellListener) {
        var state = CoordinatorState(settings: settings)
        var sinks: [RoundKey: any RoundSink] = [:]
        var requests = ClientRequests(limit: settings.maximumWaitingRequestsPerClient, outstanding: settings.clientHighWaterMark)
        /// Workers' TASKs with the carrier, by worker: the worker's next TASKs follow them there.
        var carrying: [WorkerID: Int] = [:]
        let poller = Poller()
        poller.register(workers)
        poller.register(clients)
        poller.register(listener)
        func sendTask(_ message: WireMessage, to worker: WorkerID) {
            let started = ContinuousClock.now
            do {
                _ = try workers.send(frames: [worker] + message.frames, dontWait: true)
            } catch {
                logger.warning("send to a worker failed", metadata: ["error": "\(error)"])
            }
            if message.header.type == .task {
                let sink = sinks[RoundKey(job: message.header.job, round: message.header.round)]
                let duration = ContinuousClock.now - started
                mergeThread.async { sink?.addDispatchTime(duration) }
                metrics?.tasksDispatched.increment()
                metrics?.taskBytes.increment(by: message.frames.reduce(0) { $0 + $1.count })
            }
        }
        /// Hands `message` to the carrier, which appends `rows` (if any) and gives it back.
        func carry(_ message: WireMessage, to worker: WorkerID, rows: (layout: any CarriedShards, items: Range<Int>)?) {
            carrying[worker, default: 0] += 1
            carrier.async { [self] in
                var message = message, failure: String?
                do {
                    if let rows { message.arrays.append(try rows.layout.rows(rows.items)) }
                } catch {
                    failure = "job \(message.header.job) pass \(message.header.round) shard \(message.header.shard): \(error)"
                }
                post(.carried(to: worker, message, failure: failure))
            }
        }
        func perform(_ directives: [CoordinatorState.Directive]) {
            for directive in directives {
                switch directive {
                case .send(let worker, let message) where message.header.type == .task && carrying[worker] != nil:
                    carry(message, to: worker, rows: nil)
                case .send(let worker, let message):
                    sendTask(message, to: worker)
                case .sendCarrying(let worker, let message, let key, let items):
                    guard let layout = state.rounds[key]?.spec.layout as? any CarriedShards else { continue }
                    carry(message, to: worker, rows: (layout, items))
                case .check(let claim):
                    let sink = sinks[claim.key]
                    mergeThread.async { [self] in
                        var failure: (any Error)?
                        do {
                            guard let sink else { throw ClusterError(.jobFailed, "\(claim.key) has ended") }
                            try sink.check(shard: claim.shard, claim.message)
                        } catch {
                            failure = error
                        }
                        post(.checked(claim, failure: failure))
                    }
                case .deliver(let key, let shard, let message):
                    // Once taken, so that STATUS counts it before its pass's owner goes on.
                    let sink = sinks[key]
                    mergeThread.async { sink?.deliver(shard: shard, message: message) }
                    metrics?.tasksCompleted.increment()
                case .fail(let key, let why):
                    let sink = sinks.removeValue(forKey: key)
                    mergeThread.async { sink?.fail(why) }
                    // That pass alone: the job's owner decides about the rest (other searches
                    // of a split-searched set go on).
                    state.cancel(pass: key)
                    metrics?.tasksFailed.increment()
                case .persist(let key):
                    guard let sink = sinks[key] else { continue }
                    persistThread.async { [self] in
                        var failure: String?
                        do { try sink.persist() } catch { failure = "\(error)" }
                        post(.persisted(key, failure: failure))
                    }
                case .passFinished(_, let kind, let duration):
                    metrics?.passFinished(kind: kind.rawValue, seconds: duration.seconds)
                case .log(let text):
                    logger.info("\(text)")
                }
            }
            sinks = sinks.filter { key, _ in state.rounds[key] != nil }
            if let metrics { count(state, into: metrics) }
        }
        /// Answers a client's `items` in order, up to one that goes to the request thread;
        /// the rest then wait for its reply.
        func respond(_ items: [ClientRequests.Item], of client: [UInt8]) {
            for (index, item) in items.enumerated() {
                switch item {
                case .reply(let reply):
                    send(reply, to: client, on: clients)
                case .request(let request) where Self.answersOnIOThread(request):
                    send(answer(request, state: state, now: .now), to: client, on: clients)
                case .request(let request):
                    requests.handedOff(client, leaving: Array(items[(index + 1)...]))
                    // A snapshot of the state goes along (copy-on-write: cheap until changed).
                    let snapshot = state
                    requestThread.async { [self] in
                        // Once the coordinator stops, what still waits here is not answered.
                        guard !inbox.withLock({ $0.stopped }) else { return }
                        answer(request, state: snapshot, now: .now) { [self] in post(.reply(to: client, $0)) }
                    }
                    return
                }
            }
        }
        while true {
            listener.drain()
            let (commands, stopping) = inbox.withLock { inbox in
                defer { inbox.commands.removeAll() }
                if inbox.commands.contains(where: { if case .stop = $0 { true } else { false } }) { inbox.stopped = true }
                return (inbox.commands, inbox.stopped)
            }
            for command in commands {
                switch command {
                case .start(let spec, let sink):
                    sinks[spec.key] = sink
                    if !stopping { perform(state.start(spec, now: .now)) }
                case .cancel(let job, let pass):
                    let ends = { (key: RoundKey) in key.job == job && (pass == nil || key.round == pass) }
                    if let pass { state.cancel(pass: RoundKey(job: job, round: pass)) } else { state.cancel(job: job) }
                    let ended = sinks.filter { ends($0.key) }.values
                    let why = pass.map { "job \(job) pass \($0) ended" } ?? "job \(job) ended"
                    mergeThread.async { for sink in ended { sink.fail(why) } }
                    sinks = sinks.filter { !ends($0.key) }
                case .reply(let client, let reply):
                    send(reply, to: client, on: clients)
                    respond(requests.answered(client), of: client)
                case .persisted(let key, nil):
                    if !stopping { perform(state.persisted(key, now: .now)) }
                case .persisted(let key, let failure?):
                    state.cancel(pass: key)
                    let sink = sinks.removeValue(forKey: key)
                    mergeThread.async { sink?.fail(failure) }
                case .checked(let claim, let failure):
                    if !stopping { perform(state.checked(claim, failure: failure, now: .now)) }
                case .carried(let worker, let message, let failure):
                    carrying[worker, default: 1] -= 1
                    if carrying[worker] == 0 { carrying[worker] = nil }
                    let key = RoundKey(job: message.header.job, round: message.header.round)
                    // A pass that ended meanwhile needs it no more.
                    guard !stopping, state.rounds[key] != nil else { continue }
                    if let failure { perform([.fail(key, failure)]) } else { sendTask(message, to: worker) }
                case .stop:
                    break
                }
            }
            if stopping {
                logger.info("coordinator stopping")
                let stopped = Array(sinks.values)
                mergeThread.async { for sink in stopped { sink.fail("the coordinator stopped") } }
                return
            }
            // Sleep until the clock has something for the state machine, a message arrives,
            // or another thread rings; at least a millisecond once a deadline has passed,
            // so that a deadline `tick` leaves as it is cannot make this loop spin. The
            // messages already waiting are read before the deadline is acted on (below): after
            // a stall (a loaded machine), the heartbeats queued meanwhile must count before
            // the liveness check, or live workers would be declared dead.
            let timeout = state.nextDeadline.map { max($0 - .now, .milliseconds(1)) }
            let ready: [Poller.Ready]
            do {
                ready = try poller.poll(timeout: timeout)
            } catch {
                logger.error("poll failed; coordinator stopping", metadata: ["error": "\(error)"])
                return
            }
            for socketReady in ready where socketReady.socket === workers || socketReady.socket === clients {
                let isWorkers = socketReady.socket === workers
                // Drain what is there, a bounded number at a time, so neither side starves.
                for _ in 0..<256 {
                    let received: (frames: [[UInt8]], property: String?)?
                    do {
                        received = try socketReady.socket.receive(dontWait: true, property: .userID,
                                                                  maximumFrames: Self.maximumFrames)
                    } catch let error as ZeroMQError where error.code == EMSGSIZE {
                        noteMalformed(error, from: isWorkers ? .workers : .clients)
                        continue
                    } catch {
                        break
                    }
                    guard let (frames, userID) = received else { break }
                    if isWorkers {
                        guard admitsWorker(userID) else { continue }
                        perform(handleWorker(frames, key: userID, state: &state, now: .now))
                    } else if let (client, item) = clientRequest(frames, from: userID) {
                        respond(requests.admit(item, of: client), of: client)
                    }
                }
            }
            let now = ContinuousClock.now
            if let deadline = state.nextDeadline, deadline <= now { perform(state.tick(now: now)) }
        }
    }

    /// The most frames of a message received: the envelope (routing id, and a client's empty
    /// delimiter), header, metadata and `WireMessage.maximumArraysToCoordinator` arrays.
    private static let maximumFrames = 4 + WireMessage.maximumArraysToCoordinator

    /// A worker's message; `key` is its connection's ZAP user id (its CURVE key), if any.
    private func handleWorker(_ frames: [[UInt8]], key: String?, state: inout CoordinatorState,
                              now: ContinuousClock.Instant) -> [CoordinatorState.Directive] {
        guard let identity = frames.first else { return [] }
        let message: WireMessage
        do {
            message = try WireMessage(frames: Array(frames.dropFirst()))
        } catch {
            noteMalformed(error, from: .workers)
            return []
        }
        if let metrics, message.header.type == .result {
            metrics.resultBytes.increment(by: frames.dropFirst().reduce(0) { $0 + $1.count })
        }
        // A RESULT the state machine would take is checked by its pass first (decoded once,
        // against the shard's task), on the merge thread (`check` directives); a rejected one
        // is not taken and its shard is sent again.
        return state.admit(message, from: identity, key: key, now: now)
    }

    func noteMalformed(_ error: any Error, from domain: CoordinatorGatekeeper.Domain) {
        let count = counters.withLock { $0.malformed += 1; return $0.malformed }
        (domain == .workers ? metrics?.malformedWorkerMessages : metrics?.malformedClientMessages)?.increment()
        // The error may quote what the peer sent.
        logger.warning("dropped a malformed message from \(domain == .workers ? "a worker" : "a client")",
                       metadata: ["error": "\(PeerText.escaped("\(error)"))", "count": "\(count)"])
    }

    /// Brings the metrics that follow the state machine's own counts up to date.
    private func count(_ state: CoordinatorState, into metrics: CoordinatorMetrics) {
        metrics.workersAlive.record(state.workers.count)
        metrics.resultsDropped.sync(to: state.droppedResults)
        metrics.resultsRejected.sync(to: state.rejectedResults)
        metrics.tasksRequeued.sync(to: state.requeuedShards)
    }

    /// Sets the sampled metrics before a scrape: jobs by state, the store's size, refused handshakes.
    private func sampleMetrics() {
        guard let metrics else { return }
        for (state, count) in jobs.countsByState() { metrics.jobs(state.rawValue, count: count) }
        if let store { metrics.storeSize(bytes: Self.diskBytes(under: store.path)) }
        metrics.refusedHandshakes.sync(to: refusedHandshakes)
    }

    /// Bytes of the regular files under `path`.
    private static func diskBytes(under path: String) -> Int {
        guard let files = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        for case let file as String in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + file)
            if attributes?[.type] as? FileAttributeType == .typeRegular { total += (attributes?[.size] as? Int) ?? 0 }
        }
        return total
    }

    // MARK: Clients

    /// A client request's identity and its request (or the ERROR-REPLY for a malformed one,
    /// or for one the client's key may not make). Requests arrive as [identity, empty delimiter, header, metadata, arrays…] (a REQ
    /// socket, or a DEALER that sends the delimiter) and get a reply in the same envelope;
    /// nil for a message without that envelope, which is dropped.
    private func clientRequest(_ frames: [[UInt8]], from userID: String?) -> (client: [UInt8], ClientRequests.Item)? {
        guard frames.count >= 2, frames[1].isEmpty else {
            noteMalformed(ClusterError.malformed("client request without an envelope"), from: .clients)
            return nil
        }
        do {
            let request = try WireMessage(frames: Array(frames.dropFirst(2)))
            return (frames[0], refusal(of: request, from: userID).map { .reply($0) } ?? .request(request))
        } catch {
            noteMalformed(error, from: .clients)
            return (frames[0], .reply(WireMessage(header: WireHeader(.errorReply), metadata: FailureReport(replyingTo: error))))
        }
    }

    /// Queues `reply` for `client`; ZeroMQ drops it if the client is gone or has
    /// `clientHighWaterMark` replies unread.
    private func send(_ reply: WireMessage, to client: [UInt8], on socket: Socket) {
        _ = try? socket.send(frames: [client, []] + reply.frames, dontWait: true)
    }
}

/// The clients' requests between arrival and reply, kept by the I/O thread so that each
/// client gets its replies in the order of its requests while some of them are answered on
/// the request thread: a client's requests that arrive while one of its own is there wait
/// behind it. At most `limit` requests wait; the next ones are refused (their ERROR-REPLY
/// waits in their place), and past `outstanding` waiting items (the most replies the
/// client can have unread without losing some) the client's messages are dropped.
struct ClientRequests {
    enum Item {
        case request(WireMessage)
        /// The reply is known already (the request was malformed).
        case reply(WireMessage)
    }

    let limit: Int
    let outstanding: Int
    /// By client with a request on the request thread: the items that wait behind it.
    private var waiting: [[UInt8]: [Item]] = [:]

    init(limit: Int, outstanding: Int) {
        self.limit = limit
        self.outstanding = outstanding
    }

    /// What to answer now that `item` has arrived: the item itself, if the client has no
    /// request on the request thread; otherwise nothing, and the item (or, past `limit`
    /// waiting requests, its refusal) waits for the replies due before it.
    mutating func admit(_ item: Item, of client: [UInt8]) -> [Item] {
        guard var items = waiting.removeValue(forKey: client) else { return [item] }
        defer { waiting[client] = items }
        guard items.count < outstanding else { return [] }
        if case .request(let request) = item, items.count(where: { if case .request = $0 { true } else { false } }) >= limit {
            items.append(.reply(WireMessage(header: WireHeader(.errorReply, job: request.header.job), metadata: FailureReport(replyingTo: ClusterError(
                .tooManyRequests,
                "too many requests: \(limit) of this client already wait for an earlier one's reply; read replies before sending more")))))
        } else {
            items.append(item)
        }
        return []
    }

    /// The client's request went to the request thread; `rest` waits for its reply.
    mutating func handedOff(_ client: [UInt8], leaving rest: [Item]) {
        waiting[client] = rest
    }

    /// The client's request on the request thread has been answered: what waited behind it.
    mutating func answered(_ client: [UInt8]) -> [Item] {
        waiting.removeValue(forKey: client) ?? []
    }
}
