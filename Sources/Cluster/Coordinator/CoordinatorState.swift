import ClusterProtocol
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
public struct RoundSpec: Sendable {
    public var key: RoundKey
    public var corpus: CorpusReference
    public var plan: ShardPlan
    public var computation: PassDescription
    public var model: [[UInt8]]
    /// What the plan's shards stand for (by default, ranges of the corpus's rows).
    public var layout: any ShardLayout
    /// Whether something is written before the pass's first task goes out (its job's
    /// checkpoint): the state machine then says `persist` and waits for `persisted`.
    public var persistsFirst = false
    /// The model as an extension of the job's previous pass's (a k-means‖ round's new
    /// candidates), for workers that hold that one and take extensions.
    public var modelExtension: ModelExtension?

    public init(key: RoundKey, corpus: CorpusReference, plan: ShardPlan, computation: PassDescription, model: [[UInt8]],
                layout: any ShardLayout = RowShards()) {
        self.key = key
        self.corpus = corpus
        self.plan = plan
        self.computation = computation
        self.model = model
        self.layout = layout
    }

    /// The TASK metadata for `shard`.
    func assignment(of shard: Int, includesModel: Bool) -> TaskAssignment {
        var assignment = TaskAssignment(corpus: corpus, firstRow: 0, rowCount: 0, computation: computation, includesModel: includesModel)
        layout.place(&assignment, items: plan.rows(of: shard))
        return assignment
    }
}

/// The coordinator's bookkeeping, without I/O: it takes events (a worker's message, a new
/// pass, a tick of the clock) and returns directives (send this, deliver that shard's
/// statistics, fail that pass). The clock is a parameter, so failure handling is tested
/// without sockets or sleeps.
///
/// Shards are handed out in ascending order to the workers with the fewest tasks in flight.
/// A dead or departed worker's shards go back to the queue. A shard's RESULT is taken only
/// from a worker it was sent to, for its pass while that pass runs, once, and only if the
/// pass's check accepts it; anything else is dropped (and counted). The check may run
/// elsewhere (`admit` … `checked`): meanwhile the shard is nobody's to compute, and other
/// RESULTs for it are dropped. A rejected RESULT puts the shard back for another worker.
/// A pass hands out only shards within `CoordinatorSettings.mergeWindow` of its lowest
/// shard not yet taken. A task out for longer than its pass's deadline (see
/// `CoordinatorSettings.taskDeadlineFactor`) is sent to one more worker once no fresh shard
/// waits, and the first right RESULT from either is taken. A worker with
/// `strikesBeforeDrop` strikes in a row (RESULTs rejected, tasks overdue and computed by
/// another worker) is dropped, and its messages are ignored for `droppedWorkerPause`.
public struct CoordinatorState: Sendable {
    public enum Directive: Sendable, Equatable {
        case send(to: WorkerID, WireMessage)
        /// Send this TASK once rows `items` of its pass's `CarriedShards` layout are read
        /// and appended as its last array; after any TASK sent to the worker before it.
        case sendCarrying(to: WorkerID, WireMessage, RoundKey, items: Range<Int>)
        /// A shard's RESULT, for the pass's owner to merge (in shard order). After `admit`,
        /// it follows a `check` that passed.
        case deliver(RoundKey, shard: Int, WireMessage)
        /// A RESULT the state machine takes if the pass's owner accepts it (`admit`): check
        /// it, then report with `checked`.
        case check(ResultClaim)
        /// The pass cannot finish: a worker reported this.
        case fail(RoundKey, String)
        /// Write what the pass's owner keeps before the pass (see `RoundSpec.persistsFirst`),
        /// then report `persisted`; no task of the pass goes out before.
        case persist(RoundKey)
        /// Every shard of the pass is delivered; it ran this long (from `start`).
        case passFinished(RoundKey, kind: PassDescription.Kind, duration: Duration)
        case log(String)
    }

    /// Checks a RESULT for a shard of a pass before it is taken; throws to reject it.
    public typealias ResultCheck = (RoundKey, _ shard: Int, WireMessage) throws -> Void

    /// A RESULT being checked (see `admit`): the only one for its shard until `checked`.
    public struct ResultClaim: Sendable, Equatable {
        public let key: RoundKey
        public let shard: Int
        public let worker: WorkerID
        public let message: WireMessage
    }

    struct WorkerRecord: Sendable {
        /// As introduced, escaped and cut (see `PeerText`): safe to log and to show.
        var name: String
        var threads: Int
        /// The public key its connection authenticated with (CURVE: the ZAP user id, Z85);
        /// nil without CURVE. Messages on its identity under another key are not its own.
        var key: String?
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var inFlight: [RoundKey: Set<Int>] = [:]
        /// Its tasks that carried everything they need (the pass's whole model, and the rows
        /// if they travel with tasks): nothing it lacks can make one worth a FAILURE `retry`.
        var selfContained: [RoundKey: Set<Int>] = [:]
        var modelRounds: Set<RoundKey> = []
        /// Whether it takes k-means‖ candidates as extensions (READY `extendsCandidates`).
        var extendsCandidates = false
        /// Job → the k-means‖ pass whose model it was last sent of the job (a worker keeps
        /// one model per job), while nothing says it lost it.
        var candidates: [UInt64: UInt32] = [:]
        var shardsDone = 0
        /// RESULTs rejected, and its tasks that went overdue and were computed by another
        /// worker, since the last RESULT of its that was taken.
        var strikes = 0
        var taskCount: Int { inFlight.values.reduce(0) { $0 + $1.count } }
    }

    struct RoundRecord: Sendable {
        var spec: RoundSpec
        /// Shards waiting for a worker. Never a shard that a worker holds.
        var queue: ShardQueue
        /// Shards held past the deadline, waiting for one more worker.
        var overdue = ShardQueue()
        /// Shard → the workers it is out to, with the time it was sent to each.
        var holders: [Int: [WorkerID: ContinuousClock.Instant]] = [:]
        /// Shard → the worker whose RESULT for it is being checked, and when it was sent
        /// there. Neither queued nor overdue meanwhile.
        var checking: [Int: (worker: WorkerID, sent: ContinuousClock.Instant)] = [:]
        var done: Set<Int> = []
        /// Shard → workers whose RESULT for it was rejected: it is not sent to them again in
        /// this pass while a worker that is not among them is registered.
        var refused: [Int: Set<WorkerID>] = [:]
        /// The longest a shard of this pass has taken so far, from TASK to RESULT taken.
        var slowestShard = Duration.zero
        /// When the pass started, and the rows of the shards taken so far.
        let started: ContinuousClock.Instant
        var rowsDone = 0
        /// Waiting for `persisted`: no shard is handed out.
        var persisting: Bool

        init(spec: RoundSpec, now: ContinuousClock.Instant) {
            self.spec = spec
            started = now
            persisting = spec.persistsFirst
            queue = ShardQueue(count: spec.plan.count)
        }

        /// The `index`-th lowest shard waiting: in the queue, or among the overdue ones.
        func waiting(overdue fromOverdue: Bool, ascending index: Int) -> Int? {
            (fromOverdue ? overdue : queue)[ascending: index]
        }

        mutating func hold(_ shard: Int, by worker: WorkerID, at now: ContinuousClock.Instant) {
            queue.remove(shard)
            overdue.remove(shard)
            holders[shard, default: [:]][worker] = now
        }

        /// `worker` no longer holds `shard`; if nobody does, and no RESULT for it is being
        /// checked, it goes back in the queue (and true is returned).
        @discardableResult
        mutating func release(_ shard: Int, from worker: WorkerID) -> Bool {
            guard holders[shard]?.removeValue(forKey: worker) != nil, holders[shard]!.isEmpty else { return false }
            holders.removeValue(forKey: shard)
            overdue.remove(shard)
            guard checking[shard] == nil else { return false }
            queue.insert(shard)
            return true
        }

        /// `worker`'s RESULT for `shard` is to be checked: `worker` no longer holds it.
        mutating func claim(_ shard: Int, by worker: WorkerID) {
            guard let sent = holders[shard]?.removeValue(forKey: worker) else { return }
            if holders[shard]!.isEmpty { holders.removeValue(forKey: shard) }
            overdue.remove(shard)
            checking[shard] = (worker, sent)
        }

        /// `worker`'s RESULT for `shard` was rejected: the shard goes back in the queue
        /// unless another worker holds it.
        mutating func refuse(_ shard: Int, from worker: WorkerID) {
            refused[shard, default: []].insert(worker)
            checking.removeValue(forKey: shard)
            if holders[shard] == nil { queue.insert(shard) }
        }

        /// Takes `shard` as computed by the worker it was sent to at `sent`; returns the
        /// other workers that held it, with the time it was sent to each.
        mutating func complete(_ shard: Int, sentAt sent: ContinuousClock.Instant,
                               now: ContinuousClock.Instant) -> [WorkerID: ContinuousClock.Instant] {
            let holding = holders.removeValue(forKey: shard) ?? [:]
            checking.removeValue(forKey: shard)
            slowestShard = max(slowestShard, now - sent)
            overdue.remove(shard)
            refused.removeValue(forKey: shard)
            if done.insert(shard).inserted { rowsDone += spec.plan.rows(of: shard).count }
            return holding
        }

        /// The lowest shard whose RESULT is not yet taken (the next to merge), if any.
        var lowestNotDone: Int? {
            [queue[ascending: 0], overdue[ascending: 0], holders.keys.min(), checking.keys.min()].compactMap { $0 }.min()
        }
    }

    public let settings: CoordinatorSettings
    private(set) var workers: [WorkerID: WorkerRecord] = [:]
    private(set) var workerOrder: [WorkerID] = []
    private(set) var rounds: [RoundKey: RoundRecord] = [:]
    /// Dropped workers, with the time until which their messages are ignored.
    private(set) var benched: [WorkerID: ContinuousClock.Instant] = [:]
    /// Job → shard → the worker whose RESULT for it was last taken: it keeps the shard's
    /// k-means bounds, so the shard goes back to it when it has room (see `worker(for:of:idleThread:)`).
    /// Kept for the `affinityJobs` latest jobs.
    private(set) var affinity: [UInt64: [Int: WorkerID]] = [:]
    static let affinityJobs = 8
    /// Job → shard → the tickets sent with the shard's rows (`PartitionTicket`), the
    /// `ticketsPerShard` latest: a worker that names one in its READY holds those rows, and
    /// the shard goes back to it. Kept for the `affinityJobs` latest jobs.
    private(set) var tickets: [UInt64: [Int: [IssuedTicket]]] = [:]
    static let ticketsPerShard = 4

    /// A partition ticket, and the key of the worker it was sent to (nil without CURVE):
    /// only a worker that authenticated with that key may name it.
    struct IssuedTicket: Sendable, Equatable {
        var ticket: String
        var holder: String?
    }

    /// RESULTs not taken: from a peer the shard was not out to (unregistered, another
    /// worker, a dropped one), for a shard already taken, or for a pass that is over or unknown.
    public private(set) var droppedResults = 0
    /// RESULTs from the worker a shard was out to that the pass's check rejected.
    public private(set) var rejectedResults = 0
    /// Shards put back in the queue because their worker went away (dead, departed, dropped,
    /// introduced itself again) or gave them back (a FAILURE to retry).
    public private(set) var requeuedShards = 0

    public init(settings: CoordinatorSettings = CoordinatorSettings()) { self.settings = settings }

    // MARK: Events

    /// Starts a pass: every shard of its plan goes into the queue, handed out at once or,
    /// if the pass `persistsFirst`, once it is `persisted`.
    public mutating func start(_ spec: RoundSpec, now: ContinuousClock.Instant) -> [Directive] {
        rounds[spec.key] = RoundRecord(spec: spec, now: now)
        return spec.persistsFirst ? [.persist(spec.key)] : dispatch(now: now)
    }

    /// What pass `key` writes first is written: its shards may go out.
    public mutating func persisted(_ key: RoundKey, now: ContinuousClock.Instant) -> [Directive] {
        rounds[key]?.persisting = false
        return dispatch(now: now)
    }

    /// Forgets every pass of `job` (cancelled or failed); their late results will be dropped.
    public mutating func cancel(job: UInt64) {
        for key in rounds.keys where key.job == job { finish(key) }
        affinity.removeValue(forKey: job)
        tickets.removeValue(forKey: job)
        for id in workerOrder { workers[id]?.candidates.removeValue(forKey: job) }
    }

    /// Forgets pass `key` alone (its job's other passes go on, and the affinity of its
    /// shards is kept); its late results will be dropped.
    public mutating func cancel(pass key: RoundKey) {
        finish(key)
    }

    /// A message from a worker (already decoded), whose connection authenticated with `key`
    /// (CURVE: the ZAP user id; nil without CURVE). A RESULT that would be taken is first
    /// given to `check`, which throws to reject it.
    public mutating func receive(_ message: WireMessage, from worker: WorkerID, key: String? = nil, now: ContinuousClock.Instant,
                                 check: ResultCheck = { _, _, _ in }) -> [Directive] {
        withoutActuallyEscaping(check) { check in process(message, from: worker, key: key, now: now, check: check) }
    }

    /// A message from a worker, as `receive`, except that a RESULT that would be taken comes
    /// back as a `check` directive: it is checked elsewhere, and reported with `checked`.
    public mutating func admit(_ message: WireMessage, from worker: WorkerID, key: String? = nil,
                               now: ContinuousClock.Instant) -> [Directive] {
        process(message, from: worker, key: key, now: now, check: nil)
    }

    /// The outcome of a `check` directive: `failure` nil if the RESULT is right (and taken
    /// now, unless its pass ended meanwhile), else why it was rejected.
    public mutating func checked(_ claim: ResultClaim, failure: (any Error)?, now: ContinuousClock.Instant) -> [Directive] {
        settle(claim, failure: failure, now: now) + dispatch(now: now)
    }

    private mutating func process(_ message: WireMessage, from worker: WorkerID, key: String?, now: ContinuousClock.Instant,
                                  check: ResultCheck?) -> [Directive] {
        if let until = benched[worker] {
            guard now >= until else {
                if message.header.type == .result { droppedResults += 1 }
                return []
            }
            benched.removeValue(forKey: worker)
        }
        var directives: [Directive] = []
        if message.header.type == .ready {
            guard let introduction = try? message.decode(WorkerIntroduction.self) else {
                return [.log("READY without a valid introduction dropped")]
            }
            let name = PeerText.escaped(introduction.name, limit: PeerText.nameLimit)
            // Introducing itself again does not clear a worker's strikes.
            let strikes = workers[worker]?.strikes ?? 0
            if workers[worker] != nil { requeue(worker) } else { workerOrder.append(worker) }
            workers[worker] = WorkerRecord(name: name, threads: max(1, introduction.threads), key: key,
                                           lastHeard: now, lastSent: now,
                                           extendsCandidates: introduction.extendsCandidates ?? false, strikes: strikes)
            let terms = HeartbeatTerms(intervalMilliseconds: Int(settings.heartbeatInterval / .milliseconds(1)), liveness: settings.liveness)
            directives.append(.send(to: worker, WireMessage(header: WireHeader(.welcome), metadata: terms)))
            directives.append(.log("worker \(name) joined with \(introduction.threads) thread(s)"))
            directives += recognise(introduction.holds ?? [], by: worker, name: name)
            return directives + dispatch(now: now)
        }
        // A peer that took the routing identity of a worker gone meanwhile (a peer may choose
        // its own), under another key: nothing it sends is the worker's.
        if let record = workers[worker], record.key != key {
            if message.header.type == .result { droppedResults += 1 }
            return []
        }
        let known = workers[worker] != nil
        workers[worker]?.lastHeard = now
        switch message.header.type {
        case .workerHeartbeat:
            break
        case .result:
            directives += takeResult(message, from: worker, now: now, check: check)
        case .failure:
            directives += takeFailure(message, from: worker, now: now)
        case .goodbye:
            if let name = workers[worker]?.name { directives.append(.log("worker \(name) left")) }
            remove(worker)
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

    /// The passage of time: declares silent workers dead, marks overdue tasks and sends heartbeats.
    public mutating func tick(now: ContinuousClock.Instant) -> [Directive] {
        var directives: [Directive] = []
        benched = benched.filter { $0.value > now }
        let deadline = settings.heartbeatInterval * settings.liveness
        for id in workerOrder {
            guard let record = workers[id] else { continue }
            if now - record.lastHeard > deadline {
                directives.append(.log("worker \(record.name) silent for \(Int((now - record.lastHeard).seconds)) s: dead; "
                                       + "\(record.taskCount) shard(s) back in the queue"))
                remove(id)
            } else if now - record.lastSent >= settings.heartbeatInterval {
                directives.append(contentsOf: sendTo(id, WireMessage(header: WireHeader(.coordinatorHeartbeat)), now: now))
            }
        }
        directives += markOverdue(now: now)
        return directives + dispatch(now: now)
    }

    // MARK: Queries

    /// When `tick` next has something to do (a heartbeat to send, a silent worker to
    /// declare dead, a task to mark overdue), or nil while nothing waits on the clock. The
    /// I/O thread sleeps until then unless a message comes first; every deadline that `tick`
    /// acts on belongs here.
    public var nextDeadline: ContinuousClock.Instant? {
        let silence = settings.heartbeatInterval * settings.liveness
        var earliest = workers.values.lazy.map { min($0.lastSent + settings.heartbeatInterval, $0.lastHeard + silence) }.min()
        for (key, round) in rounds {
            let deadline = taskDeadline(of: key)
            for (shard, holding) in round.holders where !round.overdue.contains(shard) {
                guard let sent = holding.values.max() else { continue }
                earliest = min(earliest ?? sent + deadline, sent + deadline)
            }
        }
        return earliest
    }

    /// Passes with shards left, and whether any worker is alive to take them.
    public var isWaitingForWorkers: Bool { workers.isEmpty && !rounds.isEmpty }

    public func status(now: ContinuousClock.Instant) -> ClusterStatus {
        ClusterStatus(
            workers: workerOrder.compactMap { id in
                workers[id].map { record in
                    ClusterStatus.Worker(name: record.name, threads: record.threads,
                                         secondsSinceHeard: (now - record.lastHeard).seconds,
                                         tasksInFlight: record.taskCount, shardsDone: record.shardsDone)
                }
            },
            passes: rounds.keys.sorted().map { key in
                let round = rounds[key]!
                return ClusterStatus.Pass(job: key.job, pass: Int(key.round), kind: round.spec.computation.kind.rawValue,
                                          shards: round.spec.plan.count, done: round.done.count,
                                          inFlight: round.holders.count + round.checking.count, queued: round.queue.count)
            },
            droppedResults: droppedResults, rejectedResults: rejectedResults)
    }

    /// Where the latest running pass of `job` stands, if it has one.
    public func passProgress(of job: UInt64, now: ContinuousClock.Instant) -> PassProgress? {
        guard let key = rounds.keys.filter({ $0.job == job }).max(), let round = rounds[key] else { return nil }
        return PassProgress(pass: Int(key.round), kind: round.spec.computation.kind.rawValue,
                            shards: round.spec.plan.count, shardsDone: round.done.count,
                            rows: round.spec.plan.totalRows, rowsDone: round.rowsDone, seconds: max(0, (now - round.started).seconds))
    }

    /// How long a task of pass `key` may be out before it is overdue (see
    /// `CoordinatorSettings.taskDeadlineFactor`).
    func taskDeadline(of key: RoundKey) -> Duration {
        guard let round = rounds[key] else { return settings.taskDeadlineFloor }
        let description = round.spec.computation
        let work = Double(min(round.spec.plan.shardRows, round.spec.plan.totalRows)) * Double(max(1, description.k ?? 1)) * Double(max(1, description.dimension))
        let expected = settings.taskDeadlineRate > 0 ? Duration.seconds(min(work / settings.taskDeadlineRate, 1e9)) : .zero
        return min(settings.taskDeadlineCeiling, max(settings.taskDeadlineFloor, expected, round.slowestShard * settings.taskDeadlineFactor))
    }

    // MARK: Internals

    /// Claims a RESULT from a worker its shard is out to, and checks it with `check`, or
    /// (nil) hands it out to be checked.
    private mutating func takeResult(_ message: WireMessage, from worker: WorkerID, now: ContinuousClock.Instant,
                                     check: ResultCheck?) -> [Directive] {
        let key = RoundKey(job: message.header.job, round: message.header.round)
        let shard = Int(message.header.shard)
        // Only a worker the shard is out to (so a registered one, for a running pass, a
        // shard of its plan not yet taken) may answer it.
        guard rounds[key]?.holders[shard]?[worker] != nil, workers[worker] != nil else {
            droppedResults += 1
            return []
        }
        workers[worker]!.inFlight[key]?.remove(shard)
        // Another worker's RESULT for it is being checked.
        guard rounds[key]!.checking[shard] == nil else {
            droppedResults += 1
            rounds[key]!.release(shard, from: worker)
            return []
        }
        rounds[key]!.claim(shard, by: worker)
        let claim = ResultClaim(key: key, shard: shard, worker: worker, message: message)
        guard let check else { return [.check(claim)] }
        do {
            try check(key, shard, message)
            return settle(claim, failure: nil, now: now)
        } catch {
            return settle(claim, failure: error, now: now)
        }
    }

    /// Takes or rejects a claimed RESULT; nothing if its pass has ended meanwhile.
    private mutating func settle(_ claim: ResultClaim, failure: (any Error)?, now: ContinuousClock.Instant) -> [Directive] {
        let (key, shard, worker) = (claim.key, claim.shard, claim.worker)
        guard let checking = rounds[key]?.checking[shard], checking.worker == worker else { return [] }
        let name = workers[worker]?.name ?? "(gone)"
        if let failure {
            rejectedResults += 1
            // The worker may hold a damaged model: the next task of the pass carries it again, whole.
            workers[worker]?.modelRounds.remove(key)
            workers[worker]?.candidates.removeValue(forKey: key.job)
            rounds[key]!.refuse(shard, from: worker)
            let reason = PeerText.escaped("\(failure)", limit: PeerText.messageLimit)
            return [.log("worker \(name): RESULT for \(key) shard \(shard) rejected: \(reason)")] + strike(worker, now: now)
        }
        if workers[worker] != nil {
            workers[worker]!.strikes = 0
            workers[worker]!.shardsDone += 1
        }
        noteAffinity(of: shard, of: key.job, to: worker)
        var directives: [Directive] = [.deliver(key, shard: shard, claim.message)]
        let sent = checking.sent
        for (other, otherSent) in rounds[key]!.complete(shard, sentAt: sent, now: now) {
            workers[other]?.inFlight[key]?.remove(shard)
            // Another worker got it earlier and was overdue: a strike against it.
            if otherSent < sent { directives += strike(other, now: now) }
        }
        if let round = rounds[key], round.done.count == round.spec.plan.count {
            finish(key)
            directives.append(.passFinished(key, kind: round.spec.computation.kind, duration: now - round.started))
        }
        return directives
    }

    private mutating func takeFailure(_ message: WireMessage, from worker: WorkerID, now: ContinuousClock.Instant) -> [Directive] {
        let key = RoundKey(job: message.header.job, round: message.header.round)
        let shard = Int(message.header.shard)
        workers[worker]?.inFlight[key]?.remove(shard)
        guard rounds[key]?.holders[shard]?[worker] != nil else { return [] }
        let report = (try? message.decode(FailureReport.self)) ?? FailureReport(message: "unreadable failure report")
        if report.retry == true {
            workers[worker]?.modelRounds.remove(key)
            workers[worker]?.candidates.removeValue(forKey: key.job)
            // It does not hold what it computed last (a search partition it dropped): it is sent again.
            if affinity[key.job]?[shard] == worker { affinity[key.job]![shard] = nil }
            if rounds[key]!.release(shard, from: worker) { requeuedShards += 1 }
            guard workers[worker]?.selfContained[key]?.contains(shard) == true else { return [] }
            // Sent everything, it asks for it again: as a rejected RESULT, or it would be sent
            // the same task for ever.
            rounds[key]!.refused[shard, default: []].insert(worker)
            let name = workers[worker]?.name ?? "unknown worker"
            return [.log("worker \(name): FAILURE retry for \(key) shard \(shard), whose task carried all it needs")] + strike(worker, now: now)
        }
        finish(key)
        let name = workers[worker]?.name ?? "unknown worker"
        return [.fail(key, "worker \(name): \(PeerText.escaped(report.message, limit: PeerText.messageLimit))")]
    }

    /// `worker` computed `shard` of `job` last (or holds its rows): the shard goes back to it.
    private mutating func noteAffinity(of shard: Int, of job: UInt64, to worker: WorkerID) {
        affinity[job, default: [:]][shard] = worker
        if affinity.count > Self.affinityJobs, let oldest = affinity.keys.min() { affinity.removeValue(forKey: oldest) }
    }

    /// Gives `worker` the partitions it names with a ticket sent with their rows (to it,
    /// under another identity: the READY of a worker that reconnected), to a worker of the
    /// same key; names without such a ticket change nothing, and a READY naming more than
    /// `maximumHeldPartitions` is ignored as a whole.
    private mutating func recognise(_ holds: [HeldPartition], by worker: WorkerID, name: String) -> [Directive] {
        guard !holds.isEmpty else { return [] }
        let most = WorkerIntroduction.maximumHeldPartitions
        guard holds.count <= most else {
            return [.log("worker \(name) names \(holds.count) partitions it holds, more than \(most): none is taken")]
        }
        var taken = 0
        let key = workers[worker]?.key
        for held in holds where tickets[held.job]?[Int(held.shard)]?.contains(IssuedTicket(ticket: held.ticket, holder: key)) == true {
            noteAffinity(of: Int(held.shard), of: held.job, to: worker)
            taken += 1
        }
        return [.log("worker \(name) holds \(taken) of the \(holds.count) partitions it names "
                     + "(the others' tickets are unknown, or were sent to another key)")]
    }

    /// A new ticket for the rows of `shard` of `job`, sent with them to the worker of key `holder`.
    private mutating func issueTicket(for shard: Int, of job: UInt64, to holder: String?) -> String {
        let ticket = PartitionTicket.make()
        tickets[job, default: [:]][shard, default: []].append(IssuedTicket(ticket: ticket, holder: holder))
        if tickets[job]![shard]!.count > Self.ticketsPerShard { tickets[job]![shard]!.removeFirst() }
        if tickets.count > Self.affinityJobs, let oldest = tickets.keys.min() { tickets.removeValue(forKey: oldest) }
        return ticket
    }

    /// One strike against `worker`; at `strikesBeforeDrop` in a row it is dropped and benched.
    private mutating func strike(_ worker: WorkerID, now: ContinuousClock.Instant) -> [Directive] {
        guard let record = workers[worker] else { return [] }
        workers[worker]!.strikes += 1
        guard record.strikes + 1 >= settings.strikesBeforeDrop else { return [] }
        benched[worker] = now + settings.droppedWorkerPause
        remove(worker)
        let reason = "\(record.strikes + 1) results rejected or tasks overdue in a row"
        // Told, so that it reconnects after its back-off rather than waiting out the silence.
        return [.send(to: worker, WireMessage(header: WireHeader(.dismiss), metadata: FailureReport(message: reason))),
                .log("worker \(record.name) dropped: \(reason); its messages are ignored for \(settings.droppedWorkerPause.secondsText) s")]
    }

    /// Shards out for longer than their pass's deadline wait for one more worker.
    private mutating func markOverdue(now: ContinuousClock.Instant) -> [Directive] {
        var directives: [Directive] = []
        for key in rounds.keys.sorted() {
            let deadline = taskDeadline(of: key)
            for (shard, holding) in rounds[key]!.holders.sorted(by: { $0.key < $1.key }) {
                guard let sent = holding.values.max(), now - sent > deadline, !rounds[key]!.overdue.contains(shard) else { continue }
                rounds[key]!.overdue.insert(shard)
                let names = holding.keys.compactMap { workers[$0]?.name }.sorted().joined(separator: ", ")
                directives.append(.log("\(key) shard \(shard) overdue at \(names) (out \(Int((now - sent).seconds)) s, "
                                       + "deadline \(Int(deadline.seconds)) s): it goes to one more worker"))
            }
        }
        return directives
    }

    /// Removes a worker and puts its shards back in the queue.
    private mutating func remove(_ worker: WorkerID) {
        requeue(worker)
        workers.removeValue(forKey: worker)
        workerOrder.removeAll { $0 == worker }
    }

    /// Takes back every shard `worker` holds (those nobody else holds go back in the queue).
    private mutating func requeue(_ worker: WorkerID) {
        guard let record = workers[worker] else { return }
        for (key, shards) in record.inFlight {
            for shard in shards where rounds[key]?.release(shard, from: worker) == true { requeuedShards += 1 }
        }
        workers[worker]!.inFlight = [:]
        workers[worker]!.selfContained = [:]
        workers[worker]!.modelRounds = []
        workers[worker]!.candidates = [:]
    }

    private mutating func finish(_ key: RoundKey) {
        rounds.removeValue(forKey: key)
        for id in workerOrder {
            workers[id]?.modelRounds.remove(key)
            workers[id]?.inFlight.removeValue(forKey: key)
            workers[id]?.selfContained.removeValue(forKey: key)
        }
    }

    private mutating func sendTo(_ worker: WorkerID, _ message: WireMessage, now: ContinuousClock.Instant) -> [Directive] {
        workers[worker]?.lastSent = now
        return [.send(to: worker, message)]
    }

    /// Hands waiting shards to workers with spare capacity, oldest pass first: the queue in
    /// ascending order, then, once a pass's queue is empty, its overdue shards, to workers
    /// with an idle thread only (a second copy never waits behind other work).
    private mutating func dispatch(now: ContinuousClock.Instant) -> [Directive] {
        var directives: [Directive] = []
        for key in rounds.keys.sorted() where rounds[key]?.persisting == false {
            // Fresh shards only within the merge window; overdue ones are below its end.
            guard let lowest = rounds[key]?.lowestNotDone else { continue }
            let end = lowest + max(1, settings.mergeWindow)
            for overdue in [false, true] {
                if overdue, let next = rounds[key]?.queue[ascending: 0], next < end { break }
                var skipped = 0
                while let shard = rounds[key]?.waiting(overdue: overdue, ascending: skipped), overdue || shard < end {
                    guard leastLoadedWorker() != nil else { return directives }
                    guard let worker = worker(for: shard, of: key, idleThread: overdue) else {
                        skipped += 1
                        continue
                    }
                    directives += send(shard, of: key, to: worker, now: now)
                }
            }
        }
        return directives
    }

    /// The worker that last computed `shard` in this job if it has spare capacity (an idle
    /// thread, if `idleThread`), else the least loaded one that has (for a shard whose rows
    /// travel with its task, none while that worker is registered and busy); never one that
    /// holds the shard, nor one whose RESULT for it was rejected while another worker is registered.
    private func worker(for shard: Int, of key: RoundKey, idleThread: Bool) -> WorkerID? {
        let holding = rounds[key]?.holders[shard] ?? [:]
        let refused = rounds[key]?.refused[shard] ?? []
        let avoidsRefused = !refused.isEmpty && !workerOrder.allSatisfy(refused.contains)
        let excluded = { (id: WorkerID) in holding[id] != nil || (avoidsRefused && refused.contains(id)) }
        if let previous = affinity[key.job]?[shard], !excluded(previous), workers[previous] != nil {
            if leastLoadedWorker(idleThread: idleThread, excluding: { $0 != previous }) != nil { return previous }
            // Rows that travel with the task wait for the worker holding them: sending them
            // elsewhere costs more than the wait.
            if rounds[key]?.spec.layout is any CarriedShards { return nil }
        }
        return leastLoadedWorker(idleThread: idleThread, excluding: excluded)
    }

    private mutating func send(_ shard: Int, of key: RoundKey, to worker: WorkerID, now: ContinuousClock.Instant) -> [Directive] {
        let spec = rounds[key]!.spec
        let includesModel = !workers[worker]!.modelRounds.contains(key)
        var assignment = spec.assignment(of: shard, includesModel: includesModel)
        var model = includesModel ? spec.model : []
        var selfContained = includesModel
        if includesModel {
            let record = workers[worker]!
            if let partial = spec.modelExtension, record.extendsCandidates, record.candidates[key.job] == partial.previous {
                assignment.computation = partial.computation
                model = partial.model
                selfContained = false
            }
            workers[worker]!.candidates[key.job] = spec.computation.kind == .kmeansParallelRound ? key.round : nil
        }
        // Rows that travel with their task go to a worker that may not hold them.
        let carried = (spec.layout as? any CarriedShards).flatMap { affinity[key.job]?[shard] != worker ? $0 : nil }
        if let carried {
            carried.carry(&assignment)
            assignment.partition?.ticket = issueTicket(for: shard, of: key.job, to: workers[worker]!.key)
        } else if spec.layout is any CarriedShards {
            selfContained = false
        }
        rounds[key]!.hold(shard, by: worker, at: now)
        workers[worker]!.modelRounds.insert(key)
        workers[worker]!.inFlight[key, default: []].insert(shard)
        if selfContained {
            workers[worker]!.selfContained[key, default: []].insert(shard)
        } else {
            workers[worker]!.selfContained[key]?.remove(shard)
        }
        let message = WireMessage(header: WireHeader(.task, job: key.job, round: key.round, shard: UInt32(shard)),
                                  metadata: assignment, arrays: model)
        guard carried != nil else { return sendTo(worker, message, now: now) }
        workers[worker]!.lastSent = now
        return [.sendCarrying(to: worker, message, key, items: spec.plan.rows(of: shard))]
    }

    /// The worker with the fewest tasks among those with spare capacity: fewer tasks than
    /// threads + `extraTasksPerWorker`, or than threads if `idleThread`.
    private func leastLoadedWorker(idleThread: Bool = false, excluding excluded: (WorkerID) -> Bool = { _ in false }) -> WorkerID? {
        let extraTasks = idleThread ? 0 : settings.extraTasksPerWorker
        var best: (id: WorkerID, load: Int)?
        for id in workerOrder {
            guard let record = workers[id], !excluded(id) else { continue }
            let load = record.taskCount
            // Subtracted, not added: a READY's thread count is the peer's word and may be Int.max.
            guard load - extraTasks < record.threads else { continue }
            if best == nil || load < best!.load { best = (id, load) }
        }
        return best?.id
    }
}

/// Shard indices without repeats, served lowest first. Kept in descending order, so taking
/// the lowest takes the last element.
struct ShardQueue: Sendable {
    private var descending: [Int]

    init() { descending = [] }

    /// Shards 0 ..< `count`.
    init(count: Int) { descending = Array((0..<count).reversed()) }

    var count: Int { descending.count }
    var isEmpty: Bool { descending.isEmpty }

    /// The `index`-th lowest shard.
    subscript(ascending index: Int) -> Int? {
        index < descending.count ? descending[descending.count - 1 - index] : nil
    }

    func contains(_ shard: Int) -> Bool {
        let index = position(of: shard)
        return index < descending.count && descending[index] == shard
    }

    mutating func insert(_ shard: Int) {
        let index = position(of: shard)
        if !(index < descending.count && descending[index] == shard) { descending.insert(shard, at: index) }
    }

    mutating func remove(_ shard: Int) {
        let index = position(of: shard)
        if index < descending.count && descending[index] == shard { descending.remove(at: index) }
    }

    /// The index of the first element ≤ `shard`.
    private func position(of shard: Int) -> Int {
        var low = 0, high = descending.count
        while low < high {
            let middle = (low + high) / 2
            if descending[middle] > shard { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
