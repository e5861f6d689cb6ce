import ClusterProtocol
import Foundation
import ZeroMQ

/// A client of the coordinator's clients endpoint: submit training jobs, follow them, fetch
/// their models, ask for the cluster's status.
///
/// Requests go over a DEALER socket in a REQ envelope, one at a time. A coordinator that
/// does not answer within `timeout` gets the socket closed and reopened (the Guide's "Lazy
/// Pirate"), and the request fails with a clear error. Use from one thread.
public final class ClusterClient: Requester {
    public let endpoint: String
    public let timeout: Duration
    private let context: ZeroMQContext
    private var socket: Socket
    /// The socket's handshakes, to tell a refused key from a silent coordinator.
    private var handshakes: SocketMonitor

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
        try socket.setReceiveTimeout(timeout)
        try security?.secure(socket, handshakeTimeout: timeout)
        let handshakes = try socket.monitor([.handshakeSucceeded, .handshakeFailedNoDetail, .handshakeFailedProtocol,
                                             .handshakeFailedAuthentication])
        try socket.connect(endpoint)
        return (socket, handshakes)
    }

    /// Why no reply came: the last handshake's failure if it failed, else silence.
    private func silence() throws -> ClusterError {
        var failure: SocketEvent?
        while let event = try handshakes.next() { failure = event.kind == .handshakeSucceeded ? nil : event }
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
        _ = try socket.send(frames: [[]] + message.frames)
        // A blocking receive bounded by the socket's receive timeout: one wait, no poller.
        guard let frames = try socket.receive() else {
            let error = try silence()
            (socket, handshakes) = try Self.connect(context: context, endpoint: endpoint, timeout: timeout, security: security,
                                                    maximumMessageSize: maximumMessageSize)
            throw error
        }
        guard frames.first?.isEmpty == true else { throw ClusterError(.malformed, "reply without an envelope from \(endpoint)", peer: endpoint) }
        let reply = try WireMessage(frames: Array(frames.dropFirst()))
        if reply.header.type == .errorReply {
            let report = (try? reply.decode(FailureReport.self)) ?? FailureReport(message: "the coordinator reported an error")
            throw ClusterError(reply: report, peer: endpoint)
        }
        return reply
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

    /// Waits for a job to end, reporting its progress; throws if it failed.
    public func wait(for job: UInt64, every interval: Duration = .milliseconds(100),
                     progress report: (JobProgress) -> Void = { _ in }) async throws -> JobProgress {
        while true {
            let progress = try progress(of: job, since: Int.max)
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
        var seen = 0
        var lastNote: String?
        while true {
            let progress = try progress(of: job, since: seen)
            progress.iterations.forEach(iteration)
            seen += progress.iterations.count
            progress.pass.map(pass)
            switch progress.state {
            case .succeeded:
                return try result(of: job)
            case .failed, .cancelled:
                throw Self.ended(progress)
            case .running:
                if let note = progress.message, note != lastNote { waiting(note) }
                lastNote = progress.message
                try await Task.sleep(for: interval)
            }
        }
    }

    /// The error for a job that failed or was cancelled.
    private static func ended(_ progress: JobProgress) -> ClusterError {
        progress.state == .cancelled ? ClusterError(.jobFailed, "job \(progress.job) was cancelled")
            : ClusterError(.jobFailed, "job \(progress.job) failed: \(progress.message ?? "no reason given")")
    }
}
