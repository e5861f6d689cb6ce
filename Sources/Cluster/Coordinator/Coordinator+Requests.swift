import ClusterProtocol
import Storage
import Telemetry

extension Coordinator {
    /// Answers a client's request through `send`, once: at once, or, for a SEARCH that runs
    /// on the workers or a TRANSFORM-SET, when it ends (from another thread: this thread is
    /// free meanwhile). SEARCH and TRANSFORM-SET are answered only here (SEARCH may use the
    /// workers `state` has).
    func answer(_ request: WireMessage, state: CoordinatorState, now: ContinuousClock.Instant,
                send: @escaping @Sendable (WireMessage) -> Void) {
        let job = request.header.job
        if request.header.type == .transformSet {
            do {
                try settings.checkRequestArrays(request.arrays)
                try acceptTransform(try request.decode(TransformSetRequest.self), send: send)
            } catch {
                send(Self.errorReply(to: job, error))
            }
            return
        }
        guard request.header.type == .search, let queries else { return send(answer(request, state: state, now: now)) }
        do {
            try settings.checkRequestArrays(request.arrays)
            queries.search(try request.decode(SearchRequest.self), message: request,
                           workers: SearchWorkers(coordinator: self, count: state.workers.count)) { reply in
                switch reply {
                case .success(let message): send(message)
                case .failure(let error): send(Self.errorReply(to: job, error))
                }
            }
        } catch {
            send(Self.errorReply(to: job, error))
        }
    }

    /// The ERROR-REPLY to a request of `job` that failed with `error`.
    static func errorReply(to job: UInt64, _ error: any Error) -> WireMessage {
        WireMessage(header: WireHeader(.errorReply, job: job), metadata: FailureReport(replyingTo: error))
    }

    /// The reply to a client's request (never throws: failures become ERROR-REPLY).
    func answer(_ request: WireMessage, state: CoordinatorState, now: ContinuousClock.Instant) -> WireMessage {
        let timed: CoordinatorMetrics.TimedRequest? = switch request.header.type {
        case .get: .get
        case .list: .list
        default: nil
        }
        let started = ContinuousClock.now
        defer { if let timed { metrics?.requestAnswered(timed, seconds: (ContinuousClock.now - started).seconds) } }
        do {
            return try reply(to: request, state: state, now: now)
        } catch {
            return Self.errorReply(to: request.header.job, error)
        }
    }

    /// GETs of at most this many keys are answered on the I/O thread.
    static let quickGetKeys = 16

    /// Whether a request is answered on the I/O thread: only those that take microseconds
    /// (PROGRESS, STATUS, a GET of a few keys). The others may read files, scan the store or
    /// plan a job: they are answered on the request thread, which sees a snapshot of the
    /// state as the request was handed over, so a request that reads the state belongs here.
    static func answersOnIOThread(_ request: WireMessage) -> Bool {
        switch request.header.type {
        case .progress, .status: true
        case .get: ((try? request.decode(GetRequest.self))?.keys.count ?? 0) <= quickGetKeys
        default: false
        }
    }

    private func reply(to request: WireMessage, state: CoordinatorState, now: ContinuousClock.Instant) throws -> WireMessage {
        let job = request.header.job
        try settings.checkRequestArrays(request.arrays)
        switch request.header.type {
        case .submit:
            let id = try accept(try request.decode(TrainingJob.self), arrays: request.arrays)
            return WireMessage(header: WireHeader(.accepted, job: id), metadata: JobTicket(job: id))
        case .submitEncoding:
            let id = try accept(try request.decode(EncodingJob.self))
            return WireMessage(header: WireHeader(.accepted, job: id), metadata: JobTicket(job: id))
        case .submitExtraction:
            let id = try accept(try request.decode(ExtractionJob.self))
            return WireMessage(header: WireHeader(.accepted, job: id), metadata: JobTicket(job: id))
        case .progress:
            guard let record = jobs[job]?.record else { throw ClusterError(.notFound, "no job \(job)") }
            let since = (try? request.decode(ProgressRequest.self).since) ?? 0
            return progressReply(job, record: record, since: since, state: state, now: now)
        case .cancel:
            let entry = try jobs.cancel(job)
            cancelPasses(of: job)
            logger.info("job \(job) cancelled")
            return progressReply(job, record: entry.record, since: .max, state: state, now: now)
        case .fetchResult:
            guard let entry = jobs[job] else { throw ClusterError(.notFound, "no job \(job)") }
            guard let outcome = entry.record.outcome else {
                throw ClusterError(.conflict, entry.record.state == .failed ? "job \(job) failed: \(entry.record.message ?? "")"
                                   : entry.record.state == .cancelled ? "job \(job) was cancelled"
                                   : entry.record.encoding != nil ? "job \(job) is an encoding job: its vectors are in set \"\(entry.record.encoding!.set)\""
                                   : entry.record.extraction != nil ? "job \(job) is an extraction job: its descriptors are in \(entry.record.extraction!.descriptors)"
                                   : "job \(job) is still running")
            }
            return WireMessage(header: WireHeader(.resultReply, job: job), metadata: outcome, arrays: try entry.modelArrays())
        case .status:
            let paging = (try? request.decode(StatusRequest.self)) ?? StatusRequest()
            var status = state.status(now: now)
            (status.jobs, status.jobsBefore) = jobs.summaries(finished: min(max(paging.jobsLimit ?? StatusRequest.defaultLimit, 0),
                                                                            StatusRequest.maximumLimit),
                                                              before: paging.jobsBefore)
            return WireMessage(header: WireHeader(.statusReply), metadata: status)
        case let type where StoreQueries.answers(type):
            if type == .importModel {
                let model = try request.decode(ImportRequest.self)
                try settings.checkModel(k: model.k, dimension: model.dimension)
            }
            guard let queries else { throw Self.noStore(for: "models and vectors") }
            return try queries.request(request)
        default:
            throw ClusterError(.invalidRequest, "\(request.header.type) is not a client request")
        }
    }

    /// A job's PROGRESS-REPLY, with its iteration records from `since` on.
    private func progressReply(_ job: UInt64, record: JobRecord, since: Int, state: CoordinatorState, now: ContinuousClock.Instant) -> WireMessage {
        var message = record.message
        if record.state == .running && state.isWaitingForWorkers { message = "waiting: no workers alive" }
        let progress = JobProgress(job: job, kind: record.kindName, state: record.state, iterations: Array(record.iterations.dropFirst(max(0, since))),
                                   message: message, imagesDone: record.imagesDone, imagesTotal: record.imagesTotal,
                                   pass: record.state == .running ? state.passProgress(of: job, now: now) : nil,
                                   descriptors: record.descriptors, skipped: record.skipped)
        return WireMessage(header: WireHeader(.progressReply, job: job), metadata: progress)
    }
}
