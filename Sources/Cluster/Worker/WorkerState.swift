import ClusterProtocol
import Logging

/// A worker's bookkeeping, without I/O: it takes events (connected, a message from the
/// coordinator, a shard computed, a tick of the clock, a refused handshake) and returns
/// directives (connect, disconnect, send this, compute that shard, log). The clock is a
/// parameter, so liveness, back-off and the model cache are tested without sockets or sleeps.
///
/// One connection is a session. A session ends when the coordinator has been silent for
/// `liveness` heartbeat intervals, refused the handshake, or dismissed the worker (DISMISS,
/// after its RESULTs were rejected or its tasks overdue); then the tasks not yet started
/// and the model cache are dropped, and the worker reconnects after a back-off (Paranoid
/// Pirate). The back-off doubles from `reconnectInitial` up to `reconnectMaximum` after
/// every session that ends without the coordinator having been heard, and after every
/// refusal or dismissal; a session that heard the coordinator and then ended in silence
/// (it restarted, or the network broke) starts again from `reconnectInitial`. So a worker
/// the coordinator keeps refusing or dismissing retries at most every `reconnectMaximum`.
struct WorkerState {
    enum Directive {
        /// Open a new connection to the coordinator; the shell then reports `connected` or `connectFailed`.
        case connect
        /// Close the connection and drop the queued tasks: the coordinator gives them to other workers.
        case disconnect
        case send(WireMessage)
        /// Queue a shard for the compute threads; its reply comes back through `finished`.
        case compute(ShardTask)
        case log(Logger.Level, String)
    }

    /// How a session ended.
    enum SessionEnd: Equatable, CustomStringConvertible {
        /// Nothing heard from the coordinator for this long.
        case silent(Duration)
        /// The coordinator refused the connection's handshake (the reason, as the socket reported it).
        case refused(String)
        /// The coordinator dropped this worker (its reason, from DISMISS).
        case dismissed(String)
        /// No connection could be made.
        case connectFailed(String)

        var description: String {
            switch self {
            case .silent(let duration): "the coordinator was silent for \(duration.secondsText) s"
            case .refused(let reason): "the coordinator refused the connection: \(reason)"
            case .dismissed(let reason): "the coordinator dismissed this worker: \(reason)"
            case .connectFailed(let reason): "cannot connect: \(reason)"
            }
        }
    }

    private struct Session {
        /// Numbers the sessions, so a shard computed for an earlier one is not sent on a later one.
        var number: Int
        var lastHeard: ContinuousClock.Instant
        var lastSent: ContinuousClock.Instant
        var heard = false
    }

    private enum Phase {
        case idle
        case connected(Session)
        /// Waiting out the back-off until the next connection.
        case waiting(until: ContinuousClock.Instant)
        case stopped
    }

    let settings: WorkerSettings
    private var phase = Phase.idle
    private var sessions = 0
    /// Heartbeat interval and liveness: the settings' until the coordinator's WELCOME says otherwise.
    private(set) var interval: Duration
    private(set) var liveness: Int
    /// Sessions in a row that ended badly (see the type's comment): the next back-off is
    /// `reconnectInitial` · 2^`failures`, at most `reconnectMaximum`.
    private(set) var failures = 0
    /// How the last session ended, if one has.
    private(set) var lastEnd: SessionEnd?
    /// Per job, the model of its latest pass that this worker was sent, in this session;
    /// for the `maximumModelJobs` jobs it was last sent tasks of.
    private var models = RecentlyUsed<UInt64, (round: UInt32, computation: any WireComputation)>(capacity: maximumModelJobs)
    /// The most jobs whose models a worker keeps: one model per job the coordinator ever
    /// sent would grow for as long as a session lasts. A task of a job whose model was
    /// dropped is answered with FAILURE `retry`, and comes back with the model.
    static let maximumModelJobs = 16

    /// The process id the READY carries.
    let pid: Int32?
    /// The partitions the worker keeps, which each READY names (see `PartitionTicket`).
    private let held: () -> [HeldPartition]

    init(settings: WorkerSettings, pid: Int32? = nil, held: @escaping () -> [HeldPartition] = { [] }) {
        self.settings = settings
        self.pid = pid
        self.held = held
        interval = settings.heartbeatInterval
        liveness = settings.liveness
    }

    private var introduction: WireMessage {
        let holds = held()
        return WireMessage(header: WireHeader(.ready),
                           metadata: WorkerIntroduction(name: settings.name, threads: settings.threads, pid: pid,
                                                        holds: holds.isEmpty ? nil : holds,
                                                        extendsCandidates: true))
    }

    var isConnected: Bool {
        if case .connected = phase { true } else { false }
    }

    /// The pass whose model is held, by job.
    var cachedModels: [UInt64: UInt32] { models.values.mapValues(\.round) }

    /// When `tick` next has something to do (a heartbeat to send, silence to act on, a
    /// reconnection), or nil before `start` and after `stop`.
    var nextDeadline: ContinuousClock.Instant? {
        switch phase {
        case .connected(let session): min(session.lastSent + interval, session.lastHeard + interval * liveness)
        case .waiting(let until): until
        case .idle, .stopped: nil
        }
    }

    // MARK: Events

    mutating func start() -> [Directive] {
        guard case .idle = phase else { return [] }
        return [.connect]
    }

    /// A new connection is made: the worker introduces itself.
    mutating func connected(now: ContinuousClock.Instant) -> [Directive] {
        sessions += 1
        phase = .connected(Session(number: sessions, lastHeard: now, lastSent: now))
        return [.send(introduction)]
    }

    mutating func connectFailed(_ reason: String, now: ContinuousClock.Instant) -> [Directive] {
        end(.connectFailed(reason), now: now)
    }

    /// The connection's security handshake failed.
    mutating func refused(_ reason: String, now: ContinuousClock.Instant) -> [Directive] {
        guard isConnected else { return [] }
        return end(.refused(reason), now: now)
    }

    /// A message (its frames) from the coordinator.
    mutating func receive(_ frames: [[UInt8]], now: ContinuousClock.Instant) -> [Directive] {
        guard case .connected(var session) = phase else { return [] }
        session.lastHeard = now
        session.heard = true
        phase = .connected(session)
        let message: WireMessage
        do {
            message = try WireMessage(frames: frames)
        } catch {
            return [.log(.warning, "dropped a malformed message from the coordinator: \(error)")]
        }
        switch message.header.type {
        case .welcome:
            if let terms = try? message.decode(HeartbeatTerms.self), terms.intervalMilliseconds >= 1, terms.liveness >= 1 {
                interval = .milliseconds(terms.intervalMilliseconds)
                liveness = terms.liveness
            }
            return []
        case .coordinatorHeartbeat:
            return []
        case .resync:
            return send(introduction, now: now)
        case .task:
            return accept(message, session: session.number, now: now)
        case .dismiss:
            let report = (try? message.decode(FailureReport.self))?.message ?? "no reason given"
            return end(.dismissed(PeerText.escaped(report, limit: PeerText.messageLimit)), now: now)
        default:
            return [.log(.warning, "unexpected \(message.header.type) from the coordinator dropped")]
        }
    }

    /// A compute thread's reply (RESULT or FAILURE) to a task of session `session`. A
    /// reply for an earlier session is dropped: its shard went back to the coordinator's queue.
    mutating func finished(_ reply: WireMessage, session: Int, now: ContinuousClock.Instant) -> [Directive] {
        guard case .connected(let current) = phase, current.number == session else { return [] }
        return send(reply, now: now)
    }

    /// A message could not be sent (it is lost; the coordinator's liveness covers it).
    func sendFailed(_ message: WireMessage, error: String) -> [Directive] {
        [.log(.warning, "sending \(message.header.type) failed: \(error)")]
    }

    /// The passage of time: heartbeats, silence, the end of a back-off.
    mutating func tick(now: ContinuousClock.Instant) -> [Directive] {
        switch phase {
        case .connected(let session):
            let silence = now - session.lastHeard
            if silence > interval * liveness { return end(.silent(silence), now: now) }
            if now - session.lastSent >= interval { return send(WireMessage(header: WireHeader(.workerHeartbeat)), now: now) }
            return []
        case .waiting(let until):
            return now >= until ? [.connect] : []
        case .idle, .stopped:
            return []
        }
    }

    /// Leaving: GOODBYE if connected; then nothing more.
    mutating func stop() -> [Directive] {
        defer { phase = .stopped }
        guard isConnected else { return [] }
        return [.send(WireMessage(header: WireHeader(.goodbye)))]
    }

    // MARK: Internals

    private mutating func send(_ message: WireMessage, now: ContinuousClock.Instant) -> [Directive] {
        if case .connected(var session) = phase {
            session.lastSent = now
            phase = .connected(session)
        }
        return [.send(message)]
    }

    /// Queues a TASK for the compute threads, or answers it with a FAILURE: retry if this
    /// worker does not hold the pass's model, or the candidates its model extends (the
    /// coordinator sends the task again with the whole model).
    private mutating func accept(_ message: WireMessage, session: Int, now: ContinuousClock.Instant) -> [Directive] {
        let header = message.header
        func failure(_ text: String, retry: Bool) -> [Directive] {
            send(WireMessage(header: WireHeader(.failure, job: header.job, round: header.round, shard: header.shard),
                             metadata: FailureReport(message: text, retry: retry)), now: now)
        }
        do {
            var assignment = try message.decode(TaskAssignment.self)
            if assignment.includesModel {
                let whole: WireMessage
                (whole, assignment.computation) = try ModelExtension.joined(message, assignment.computation, held: models[header.job],
                                                                           maximumValues: settings.maximumModelValues)
                models.set(header.job, (header.round, try PassDecoder.computation(assignment.computation, arrays: whole)))
            }
            guard let model = models[header.job], model.round == header.round else {
                return failure("no model for pass \(header.round) of job \(header.job)", retry: true)
            }
            models.use(header.job)
            return [.compute(ShardTask(header: header, assignment: assignment, computation: model.computation.forTask(assignment),
                                       session: session, carriedRows: try Self.carriedRows(of: message, assignment)))]
        } catch let missing as ModelExtension.Missing {
            return failure(missing.description, retry: true)
        } catch {
            return failure("\(error)", retry: false)
        }
    }

    /// The partition a search task carries as its last array: rowCount·D values.
    private static func carriedRows(of message: WireMessage, _ assignment: TaskAssignment) throws -> [Float]? {
        guard let partition = assignment.partition, partition.includesVectors else { return nil }
        if let ticket = partition.ticket { try PartitionTicket.check(ticket) }
        let count = try PassDecoder.product(assignment.rowCount, assignment.computation.dimension)
        guard let last = message.arrays.indices.last else { throw ClusterError.malformed("the task carries no partition array") }
        return try message.array(last, as: Float.self, count: count)
    }

    /// Ends the session: drops its tasks and models and waits out the back-off.
    private mutating func end(_ reason: SessionEnd, now: ContinuousClock.Instant) -> [Directive] {
        var heard = false
        if case .connected(let session) = phase { heard = session.heard }
        if case .silent = reason, heard { failures = 0 }
        let backoff = min(settings.reconnectInitial * (1 << min(failures, 30)), settings.reconnectMaximum)
        failures += 1
        lastEnd = reason
        models.removeAll()
        phase = .waiting(until: now + backoff)
        let level: Logger.Level = if case .silent = reason { .warning } else { .error }
        return [.disconnect, .log(level, "\(reason); reconnecting in \(backoff.secondsText) s")]
    }
}
