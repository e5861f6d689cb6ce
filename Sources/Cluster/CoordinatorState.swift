import Descriptors

/// A ZeroMQ routing identity: how the coordinator's ROUTER names a worker.
public typealias WorkerID = [UInt8]

/// One pass of one job.
public struct RoundKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var job: UInt64
    public var round: UInt32

    public init(job: UInt64, round: UInt32) {
        self.job = job
        self.round = round
    }

    public static func < (a: RoundKey, b: RoundKey) -> Bool { (a.job, a.round) < (b.job, b.round) }
    public var description: String { "job \(job) pass \(round)" }
}

/// A pass to run over every shard of a corpus.
public struct RoundSpec: Sendable, Equatable {
    public var key: RoundKey
    public var corpus: CorpusReference
    public var plan: ShardPlan
    public var computation: PassDescription
    public var model: [[UInt8]]
    /// Encode passes: the images to encode; the plan's shards are ranges of this list and
    /// each task reads from the whole descriptor file.
    public var images: [ImageSlice]?

    public init(key: RoundKey, corpus: CorpusReference, plan: ShardPlan, computation: PassDescription, model: [[UInt8]],
                images: [ImageSlice]? = nil) {
        self.images = images
        self.key = key
        self.corpus = corpus
        self.plan = plan
        self.computation = computation
        self.model = model
    }
}

/// The coordinator's bookkeeping, without I/O: it takes events (a worker's message, a new
/// pass, a tick of the clock) and returns directives (send this, deliver that shard's
/// statistics, fail that pass). The clock is a parameter, so failure handling is tested
/// without sockets or sleeps.
///
/// Shards are handed out in ascending order to the workers with the fewest tasks in flight.
/// A dead or departed worker's shards go back to the queue. A result is taken once per
/// shard: a late or duplicate one is dropped (and counted).
public struct CoordinatorState: Sendable {
    public enum Directive: Sendable, Equatable {
        case send(to: WorkerID, WireMessage)
        /// A shard's RESULT, for the pass's owner to merge (in shard order).
        case deliver(RoundKey, shard: Int, WireMessage)
        /// The pass cannot finish: a worker reported this.
        case fail(RoundKey, String)
        case log(String)
    }

    struct WorkerRecord: Sendable {
        var name: String
        var threads: Int
        var lastHeard: Double
        var lastSent: Double
        var inFlight: [RoundKey: Set<Int>] = [:]
        var modelRounds: Set<RoundKey> = []
        var shardsDone = 0
        var taskCount: Int { inFlight.values.reduce(0) { $0 + $1.count } }
    }

    struct RoundRecord: Sendable {
        var spec: RoundSpec
        var queue: [Int]
        var inFlight: [Int: WorkerID] = [:]
        var done: Set<Int> = []
    }

    public let settings: CoordinatorSettings
    private(set) var workers: [WorkerID: WorkerRecord] = [:]
    private(set) var workerOrder: [WorkerID] = []
    private(set) var rounds: [RoundKey: RoundRecord] = [:]
    /// Results dropped because their shard was already merged or their pass is over.
    public private(set) var droppedResults = 0

    public init(settings: CoordinatorSettings = CoordinatorSettings()) { self.settings = settings }

    // MARK: Events

    /// Starts a pass: every shard of its plan goes into the queue.
    public mutating func start(_ spec: RoundSpec, now: Double) -> [Directive] {
        rounds[spec.key] = RoundRecord(spec: spec, queue: Array(0..<spec.plan.count))
        return dispatch(now: now)
    }

    /// Forgets every pass of `job` (cancelled or failed); their late results will be dropped.
    public mutating func cancel(job: UInt64) {
        for key in rounds.keys where key.job == job { finish(key) }
    }

    /// A message from a worker (already decoded).
    public mutating func receive(_ message: WireMessage, from worker: WorkerID, now: Double) -> [Directive] {
        var directives: [Directive] = []
        if message.header.type == .ready {
            guard let introduction = try? message.decode(WorkerIntroduction.self) else {
                return [.log("READY without a valid introduction dropped")]
            }
            if workers[worker] != nil { directives += requeue(worker) }
            if workers[worker] == nil { workerOrder.append(worker) }
            workers[worker] = WorkerRecord(name: introduction.name, threads: max(1, introduction.threads),
                                           lastHeard: now, lastSent: now)
            let terms = HeartbeatTerms(intervalMilliseconds: Int(settings.heartbeatInterval * 1000), liveness: settings.liveness)
            directives.append(.send(to: worker, WireMessage(header: WireHeader(.welcome), metadata: terms)))
            directives.append(.log("worker \(introduction.name) joined with \(introduction.threads) thread(s)"))
            return directives + dispatch(now: now)
        }
        let known = workers[worker] != nil
        workers[worker]?.lastHeard = now
        switch message.header.type {
        case .workerHeartbeat:
            break
        case .result:
            directives += takeResult(message, from: worker)
        case .failure:
            directives += takeFailure(message, from: worker)
        case .goodbye:
            if let name = workers[worker]?.name { directives.append(.log("worker \(name) left")) }
            directives += remove(worker)
            return directives + dispatch(now: now)
        default:
            directives.append(.log("unexpected \(message.header.type) from a worker dropped"))
        }
        if !known {
            // Not registered (the coordinator restarted, or declared it dead): ask it to introduce itself.
            directives.append(.send(to: worker, WireMessage(header: WireHeader(.resync))))
        }
        return directives + dispatch(now: now)
    }

    /// The passage of time: declares silent workers dead and sends heartbeats.
    public mutating func tick(now: Double) -> [Directive] {
        var directives: [Directive] = []
        let deadline = settings.heartbeatInterval * Double(settings.liveness)
        for id in workerOrder {
            guard let record = workers[id] else { continue }
            if now - record.lastHeard > deadline {
                directives.append(.log("worker \(record.name) silent for \(Int(now - record.lastHeard)) s: dead; "
                                       + "\(record.taskCount) shard(s) back in the queue"))
                directives += remove(id)
            } else if now - record.lastSent >= settings.heartbeatInterval {
                directives.append(contentsOf: sendTo(id, WireMessage(header: WireHeader(.coordinatorHeartbeat)), now: now))
            }
        }
        return directives + dispatch(now: now)
    }

    // MARK: Queries

    /// When `tick` next has something to do (a heartbeat to send, a silent worker to
    /// declare dead), or nil while nothing waits on the clock. The I/O thread sleeps until
    /// then unless a message comes first; every deadline that `tick` acts on belongs here.
    public var nextDeadline: Double? {
        let silence = settings.heartbeatInterval * Double(settings.liveness)
        return workers.values.lazy.map { min($0.lastSent + settings.heartbeatInterval, $0.lastHeard + silence) }.min()
    }

    /// Passes with shards left, and whether any worker is alive to take them.
    public var isWaitingForWorkers: Bool { workers.isEmpty && !rounds.isEmpty }

    public func status(now: Double) -> ClusterStatus {
        ClusterStatus(
            workers: workerOrder.compactMap { id in
                workers[id].map { record in
                    ClusterStatus.Worker(name: record.name, threads: record.threads,
                                         secondsSinceHeard: now - record.lastHeard,
                                         tasksInFlight: record.taskCount, shardsDone: record.shardsDone)
                }
            },
            passes: rounds.keys.sorted().map { key in
                let round = rounds[key]!
                return ClusterStatus.Pass(job: key.job, pass: Int(key.round), kind: round.spec.computation.kind.rawValue,
                                          shards: round.spec.plan.count, done: round.done.count,
                                          inFlight: round.inFlight.count, queued: round.queue.count)
            },
            droppedResults: droppedResults)
    }

    // MARK: Internals

    private mutating func takeResult(_ message: WireMessage, from worker: WorkerID) -> [Directive] {
        let key = RoundKey(job: message.header.job, round: message.header.round)
        let shard = Int(message.header.shard)
        workers[worker]?.inFlight[key]?.remove(shard)
        guard var round = rounds[key], shard < round.spec.plan.count, !round.done.contains(shard) else {
            droppedResults += 1
            return []
        }
        round.done.insert(shard)
        if let holder = round.inFlight.removeValue(forKey: shard), holder != worker {
            workers[holder]?.inFlight[key]?.remove(shard)
        }
        round.queue.removeAll { $0 == shard }
        workers[worker]?.shardsDone += 1
        rounds[key] = round
        if round.done.count == round.spec.plan.count { finish(key) }
        return [.deliver(key, shard: shard, message)]
    }

    private mutating func takeFailure(_ message: WireMessage, from worker: WorkerID) -> [Directive] {
        let key = RoundKey(job: message.header.job, round: message.header.round)
        let shard = Int(message.header.shard)
        let report = (try? message.decode(FailureReport.self)) ?? FailureReport(message: "unreadable failure report")
        workers[worker]?.inFlight[key]?.remove(shard)
        guard var round = rounds[key], round.inFlight[shard] == worker else { return [] }
        round.inFlight.removeValue(forKey: shard)
        if report.retry == true {
            workers[worker]?.modelRounds.remove(key)
            round.queue.insert(shard, at: round.queue.firstIndex { $0 > shard } ?? round.queue.endIndex)
            rounds[key] = round
            return []
        }
        finish(key)
        let name = workers[worker]?.name ?? "unknown worker"
        return [.fail(key, "worker \(name): \(report.message)")]
    }

    /// Removes a worker and puts its shards back in the queue.
    private mutating func remove(_ worker: WorkerID) -> [Directive] {
        let directives = requeue(worker)
        workers.removeValue(forKey: worker)
        workerOrder.removeAll { $0 == worker }
        return directives
    }

    private mutating func requeue(_ worker: WorkerID) -> [Directive] {
        guard let record = workers[worker] else { return [] }
        for (key, shards) in record.inFlight {
            guard var round = rounds[key] else { continue }
            for shard in shards where round.inFlight[shard] == worker {
                round.inFlight.removeValue(forKey: shard)
                round.queue.append(shard)
            }
            round.queue.sort()
            rounds[key] = round
        }
        workers[worker]?.inFlight = [:]
        workers[worker]?.modelRounds = []
        return []
    }

    private mutating func finish(_ key: RoundKey) {
        rounds.removeValue(forKey: key)
        for id in workerOrder {
            workers[id]?.modelRounds.remove(key)
            workers[id]?.inFlight.removeValue(forKey: key)
        }
    }

    private mutating func sendTo(_ worker: WorkerID, _ message: WireMessage, now: Double) -> [Directive] {
        workers[worker]?.lastSent = now
        return [.send(to: worker, message)]
    }

    /// Hands queued shards to workers with spare capacity, oldest pass first.
    private mutating func dispatch(now: Double) -> [Directive] {
        var directives: [Directive] = []
        for key in rounds.keys.sorted() {
            while var round = rounds[key], let shard = round.queue.first {
                guard let worker = leastLoadedWorker() else { return directives }
                round.queue.removeFirst()
                round.inFlight[shard] = worker
                rounds[key] = round
                let includesModel = !(workers[worker]!.modelRounds.contains(key))
                workers[worker]!.modelRounds.insert(key)
                workers[worker]!.inFlight[key, default: []].insert(shard)
                let rows = round.spec.plan.rows(of: shard)
                var assignment = TaskAssignment(corpus: round.spec.corpus, firstRow: rows.lowerBound, rowCount: rows.count,
                                                computation: round.spec.computation, includesModel: includesModel)
                if let images = round.spec.images {
                    assignment.images = Array(images[rows])
                    assignment.firstRow = 0
                    assignment.rowCount = round.spec.corpus.rows
                }
                let message = WireMessage(header: WireHeader(.task, job: key.job, round: key.round, shard: UInt32(shard)),
                                          metadata: assignment, arrays: includesModel ? round.spec.model : [])
                directives += sendTo(worker, message, now: now)
            }
        }
        return directives
    }

    private func leastLoadedWorker() -> WorkerID? {
        var best: (id: WorkerID, load: Int)?
        for id in workerOrder {
            guard let record = workers[id] else { continue }
            let load = record.taskCount
            // Subtracted, not added: a READY's thread count is the peer's word and may be Int.max.
            guard load - settings.extraTasksPerWorker < record.threads else { continue }
            if best == nil || load < best!.load { best = (id, load) }
        }
        return best?.id
    }
}

/// A snapshot of the cluster, as the STATUS reply carries it.
public struct ClusterStatus: Codable, Sendable, Equatable {
    public struct Worker: Codable, Sendable, Equatable {
        public var name: String
        public var threads: Int
        public var secondsSinceHeard: Double
        public var tasksInFlight: Int
        public var shardsDone: Int
    }

    public struct Pass: Codable, Sendable, Equatable {
        public var job: UInt64
        public var pass: Int
        public var kind: String
        public var shards: Int
        public var done: Int
        public var inFlight: Int
        public var queued: Int
    }

    public var workers: [Worker]
    public var passes: [Pass]
    public var droppedResults: Int
    public var jobs: [JobSummary] = []
}
