import ClusterProtocol
import Foundation
import ZeroMQ

/// A client of the coordinator's clients endpoint: submit training jobs, follow them, fetch
/// their models, ask for the cluster's status.
///
/// Requests go over a DEALER socket in a REQ envelope, one at a time. A coordinator that
/// does not answer within `timeout` gets the socket closed and reopened (the Guide's "Lazy
/// Pirate"), and the request fails with a clear error. A request also fails, without waiting
/// for `timeout`, when the connection to the coordinator is lost while it waits (the
/// coordinator stopped or was killed: the reply would never come), or stays lost for
/// `reconnectionGrace`; ZMTP heartbeats find a coordinator whose host went silent within
/// `heartbeatTimeout`. Use from one thread.
public final class ClusterClient: Requester {
    public let endpoint: String
    public let timeout: Duration
    private let context: ZeroMQContext
    private var socket: Socket
    /// The socket's handshakes and disconnections, to tell a refused key from a silent
    /// coordinator, and a lost connection from a slow reply.
    private var handshakes: SocketMonitor
    /// The last handshake's failure, if it failed.
    private var handshakeFailure: SocketEvent?
    /// Whether a connection is up (its handshake succeeded, and it was not lost since).
    private var connected = false
    /// When the last connection that was up was lost, if none is up now.
    private var lostAt: ContinuousClock.Instant?

    /// A PING to the coordinator every `heartbeatInterval`; a connection that hears nothing
    /// for `heartbeatTimeout` after one is dropped.
    public static let heartbeatInterval = Duration.seconds(1)
    public static let heartbeatTimeout = Duration.seconds(5)
    /// How long a request waits for a lost connection to come back before it fails.
    public static let reconnectionGrace = Duration.seconds(3)
    /// How long one receive waits before the connection's events are read again.
    static let receiveSlice = Duration.milliseconds(200)

    /// CURVE with the coordinator, if it requires keys.
    public let security: ClientSecurity?
    /// The largest reply frame accepted (ZMQ_MAXMSGSIZE); a larger one disconnects the
    /// coordinator, and the request fails unanswered.
    public let maximumMessageSize: Int

    /// - Parameter maximumMessageSize: by default what a coordinator of default limits
    ///   accepts (`CoordinatorSettings.maximumMessageSize`), which bounds every frame it sends.
    public init(context: ZeroMQContext, endpoint: String, timeout: Duration = .seconds(10),
                security: ClientSecurity? = nil, maximumMessageSize: Int = CoordinatorSettings().maximumMessageSize) throws {
        try checkEndpointForm(endpoint)
        self.context = context
        self.endpoint = endpoint
        self.timeout = timeout
        self.security = security
        self.maximumMessageSize = maximumMessageSize
        (socket, handshakes) = try Self.connect(context: context, endpoint: endpoint, timeout: timeout, security: security,
                                                maximumMessageSize: maximumMessageSize)
    }

    private static func connect(context: ZeroMQContext, endpoint: String, timeout: Duration, security: ClientSecurity?,
                                maximumMessageSize: Int) throws -> (Socket, SocketMonitor) {
        let socket = try Socket(.dealer, context: context)
        try socket.setLinger(.zero)
        try socket.setMaxMessageSize(Int64(maximumMessageSize))
        try socket.setReceiveTimeout(min(timeout, receiveSlice))
        try socket.setHeartbeat(interval: heartbeatInterval, timeout: heartbeatTimeout)
        try security?.secure(socket, handshakeTimeout: timeout)
        let handshakes = try socket.monitor([.handshakeSucceeded, .handshakeFailedNoDetail, .handshakeFailedProtocol,
                                             .handshakeFailedAuthentication, .disconnected])
        try socket.connect(endpoint)
        return (socket, handshakes)
    }

    /// Reads the connection's events that have arrived; returns whether a connection that
    /// was up was lost meanwhile.
    private func readEvents() throws -> Bool {
        var lost = false
        while let event = try handshakes.next() {
            switch event.kind {
            case .handshakeSucceeded:
                (handshakeFailure, connected, lostAt) = (nil, true, nil)
            case .disconnected:
                // Also reported after a failed handshake, of a connection that was never up.
                if connected { (connected, lostAt, lost) = (false, .now, true) }
            default:
                handshakeFailure = event
            }
        }
        return lost
    }

    /// The error of a request whose connection was lost: its reply will not come.
    private func lostConnection() -> ClusterError {
        ClusterError(.unanswered, "the connection to the coordinator at \(endpoint) was lost while waiting for its reply: "
                     + "the coordinator stopped or the network failed. A job it was running goes on if the coordinator "
                     + "still runs, and resumes when it starts again; ask for its progress then", peer: endpoint)
    }

    /// Why no reply came: the last handshake's failure if it failed, else silence.
    private func silence() throws -> ClusterError {
        _ = try readEvents()
        let failure = handshakeFailure
        let why: String
        switch failure?.kind {
        case .handshakeFailedAuthentication?:
            why = "the coordinator at \(endpoint) refused this client's key: its list of client keys lacks it, "
                + "or this is its workers' endpoint, not its clients'"
        case .handshakeFailedProtocol? where failure?.value == SocketEvent.mechanismMismatch:
            why = security == nil ? "the coordinator at \(endpoint) requires CURVE keys, and this client has none"
                                  : "the coordinator at \(endpoint) does not use CURVE keys, and this client does"
        case .some:
            why = "the handshake with the coordinator at \(endpoint) failed"
                + (security == nil ? "" : ": its public key is not the one this client was given")
        case nil:
            why = "the coordinator at \(endpoint) did not answer within \(timeout)"
        }
        return ClusterError(.unanswered, why, peer: endpoint)
    }

    /// Sends `message` and returns the reply; throws `ClusterError` for an error reply or none.
    public func request(_ message: WireMessage) throws -> WireMessage {
        _ = try readEvents()
        _ = try socket.send(frames: [[]] + message.frames)
        let deadline = ContinuousClock.now + timeout
        // Blocking receives of a slice each (the socket's receive timeout), the connection's
        // events read between them.
        var received = try socket.receive()
        while received == nil {
            let lost = try readEvents()
            let now = ContinuousClock.now
            if lost || lostAt.map({ now - $0 >= Self.reconnectionGrace }) == true {
                try reconnect()
                throw lostConnection()
            }
            if now >= deadline {
                let error = try silence()
                try reconnect()
                throw error
            }
            received = try socket.receive()
        }
        let frames = received!
        guard frames.first?.isEmpty == true else { throw ClusterError(.malformed, "reply without an envelope from \(endpoint)", peer: endpoint) }
        let reply = try WireMessage(frames: Array(frames.dropFirst()))
        if reply.header.type == .errorReply {
            let report = (try? reply.decode(FailureReport.self)) ?? FailureReport(message: "the coordinator reported an error")
            throw ClusterError(reply: report, peer: endpoint)
        }
        return reply
    }

    /// A new socket, after a request that got no reply: a late reply must not be taken for
    /// the next request's.
    private func reconnect() throws {
        (socket, handshakes) = try Self.connect(context: context, endpoint: endpoint, timeout: timeout, security: security,
                                                maximumMessageSize: maximumMessageSize)
        (handshakeFailure, connected, lostAt) = (nil, false, nil)
    }

    public func submit(_ job: TrainingJob, arrays: [[UInt8]] = []) throws -> UInt64 {
        try request(WireMessage(header: WireHeader(.submit), metadata: job, arrays: arrays)).decode(JobTicket.self).job
    }

    public func progress(of job: UInt64, since: Int) throws -> JobProgress {
        try request(WireMessage(header: WireHeader(.progress, job: job), metadata: ProgressRequest(since: since)))
            .decode(JobProgress.self)
    }

    /// The finished job's outcome, and the reply whose arrays hold the model.
    public func result(of job: UInt64) throws -> (JobOutcome, WireMessage) {
        let reply = try request(WireMessage(header: WireHeader(.fetchResult, job: job)))
        return (try reply.decode(JobOutcome.self), reply)
    }

    /// The cluster's workers and passes, the running jobs, and up to `finishedJobs` finished
    /// ones with ids below `before` (newest first; `jobsBefore` of the reply for the next page).
    public func status(finishedJobs: Int = StatusRequest.defaultLimit, before: UInt64? = nil) throws -> ClusterStatus {
        try request(WireMessage(header: WireHeader(.status), metadata: StatusRequest(jobsLimit: finishedJobs, jobsBefore: before)))
            .decode(ClusterStatus.self)
    }

    /// Cancels a running job; returns its progress, state `cancelled`.
    @discardableResult
    public func cancel(_ job: UInt64) throws -> JobProgress {
        try request(WireMessage(header: WireHeader(.cancel, job: job))).decode(JobProgress.self)
    }

    public func submit(_ job: EncodingJob) throws -> UInt64 {
        try request(WireMessage(header: WireHeader(.submitEncoding), metadata: job)).decode(JobTicket.self).job
    }

    public func submit(_ job: ExtractionJob) throws -> UInt64 {
        try request(WireMessage(header: WireHeader(.submitExtraction), metadata: job)).decode(JobTicket.self).job
    }

    /// Waits for a job to end, reporting its progress at every look (its `iterations`: those
    /// not reported before); throws if it failed.
    public func wait(for job: UInt64, every interval: Duration = .milliseconds(100),
                     progress report: (JobProgress) -> Void = { _ in }) async throws -> JobProgress {
        var seen = 0
        while true {
            let progress = try progress(of: job, since: seen)
            seen += progress.iterations.count
            report(progress)
            switch progress.state {
            case .succeeded: return progress
            case .failed, .cancelled: throw Self.ended(progress)
            case .running: try await Task.sleep(for: interval)
            }
        }
    }

    /// Follows a job to its end, calling `iteration` for each new iteration, `waiting`
    /// when the coordinator reports it waits (for workers) and `pass` with the running
    /// pass at every look; returns its result.
    public func follow(_ job: UInt64, every interval: Duration = .milliseconds(100),
                       iteration: (IterationRecord) -> Void, waiting: (String) -> Void = { _ in },
                       pass: (PassProgress) -> Void = { _ in }) async throws -> (JobOutcome, WireMessage) {
        var lastNote: String?
        _ = try await wait(for: job, every: interval) { progress in
            progress.iterations.forEach(iteration)
            progress.pass.map(pass)
            if progress.state == .running, let note = progress.message, note != lastNote { waiting(note) }
            lastNote = progress.message
        }
        return try result(of: job)
    }

    /// The error for a job that failed or was cancelled.
    private static func ended(_ progress: JobProgress) -> ClusterError {
        progress.state == .cancelled ? ClusterError(.jobFailed, "job \(progress.job) was cancelled")
            : ClusterError(.jobFailed, "job \(progress.job) failed: \(progress.message ?? "no reason given")")
    }
}
