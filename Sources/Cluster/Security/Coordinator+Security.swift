import ClusterProtocol
import Features

extension Coordinator {
    /// Reads the allow-lists again (for SIGHUP). Throws, keeping the lists in force, if a
    /// file cannot be read; does nothing without CURVE.
    public func reloadAccessLists() throws {
        try gatekeeper?.reload()
    }

    /// CURVE handshakes refused since start: keys not listed for the socket they tried.
    public var refusedHandshakes: Int { gatekeeper?.refusedHandshakes ?? 0 }

    /// Whether a worker's message is heard: always without CURVE; with it, while the
    /// worker's key is listed.
    func admitsWorker(_ userID: String?) -> Bool {
        gatekeeper?.admitsWorker(userID) ?? true
    }

    /// The ERROR-REPLY `forbidden` for a request the client's key may not make (its role is
    /// `read` and the request changes state, or the key is no longer listed); `nil` if it may.
    func refusal(of request: WireMessage, from userID: String?) -> WireMessage? {
        guard let gatekeeper else { return nil }
        let type = request.header.type
        let why: String
        switch gatekeeper.role(of: userID) {
        case .write: return nil
        case .read where !type.changesState: return nil
        case .read: why = "\(type) changes the coordinator's state, and this client's key has the read role"
        case nil: why = "this client's key is no longer listed"
        }
        logger.warning("refused a client request", metadata: ["key": "\(userID ?? "none")", "request": "\(type)"])
        metrics?.refusedRequests.increment()
        return WireMessage(header: WireHeader(.errorReply, job: request.header.job),
                           metadata: FailureReport(replyingTo: ClusterError(.forbidden, why)))
    }

    /// The job with its corpus path resolved, if `settings.corpusRoots` allows it (as is
    /// without roots); throws a forbidden `ClusterError` otherwise.
    func allowed(_ job: TrainingJob) throws -> TrainingJob {
        var job = job
        job.corpus = try allowedPath(job.corpus, what: "corpus")
        return job
    }

    /// The job with its descriptor and index paths resolved, if `settings.corpusRoots`
    /// allows them; throws a forbidden `ClusterError` otherwise.
    func allowed(_ job: EncodingJob) throws -> EncodingJob {
        var job = job
        job.descriptors = try allowedPath(job.descriptors, what: "descriptor file")
        job.index = try allowedPath(job.index, what: "index")
        return job
    }

    /// The job with its image paths and output paths resolved, if `settings.corpusRoots`
    /// allows them: every path absolute, every image inside a root (an image that does not
    /// exist, by its path's text: the worker reports it unreadable, as a local run would),
    /// and each output's directory inside one. Throws a forbidden `ClusterError` otherwise.
    func allowed(_ job: ExtractionJob) throws -> ExtractionJob {
        var job = job
        for path in job.images.map(\.path) + [job.descriptors, job.index] where !path.hasPrefix("/") || path.contains("\0") {
            throw ClusterError(.invalidArgument, "\(PeerText.escaped(path)) is not an absolute path")
        }
        guard let roots = settings.corpusRoots else { return job }
        job.images = try job.images.map { image in
            do {
                return ImageSource.Entry(key: image.key, path: try roots.check(image.path, what: "image"))
            } catch let error as ClusterError where error.code == .badFile {
                return image
            }
        }
        job.descriptors = try allowedOutput(job.descriptors, what: "descriptor file", roots: roots)
        job.index = try allowedOutput(job.index, what: "index", roots: roots)
        return job
    }

    /// `path` with its directory resolved, if that is inside a root; the name must be a file's.
    private func allowedOutput(_ path: String, what: String, roots: CorpusRoots) throws -> String {
        let slash = path.lastIndex(of: "/")!
        let name = String(path[path.index(after: slash)...])
        guard !name.isEmpty, name != ".", name != ".." else {
            throw ClusterError(.invalidArgument, "\(what) \(PeerText.escaped(path)) does not name a file")
        }
        let directory = try roots.check(slash == path.startIndex ? "/" : String(path[..<slash]), what: "\(what)'s directory")
        return (directory.hasSuffix("/") ? directory : directory + "/") + name
    }

    private func allowedPath(_ path: String, what: String) throws -> String {
        try settings.corpusRoots?.check(path, what: what) ?? path
    }
}
