import ClusterProtocol
import Logging
import Synchronization
import ZeroMQ

/// CURVE on a coordinator's two sockets: its key pair, and the files that list the worker
/// and client keys it admits (see `AccessLists`).
public struct CoordinatorSecurity: Sendable {
    public var keyPair: CurveKeyPair
    public var workerKeysFile: String
    public var clientKeysFile: String

    public init(keyPair: CurveKeyPair, workerKeysFile: String, clientKeysFile: String) {
        self.keyPair = keyPair
        self.workerKeysFile = workerKeysFile
        self.clientKeysFile = clientKeysFile
    }
}

/// CURVE for a worker or a client: its key pair and the coordinator's public key.
public struct ClientSecurity: Sendable {
    public var keyPair: CurveKeyPair
    public var coordinatorKey: CurveKey

    public init(keyPair: CurveKeyPair, coordinatorKey: CurveKey) {
        self.keyPair = keyPair
        self.coordinatorKey = coordinatorKey
    }

    /// Makes `socket` a CURVE client of the coordinator; a handshake not done within
    /// `handshakeTimeout` is dropped.
    func secure(_ socket: Socket, handshakeTimeout: Duration) throws {
        try socket.setCurveClient(keys: keyPair, serverKey: coordinatorKey)
        try socket.setHandshakeInterval(handshakeTimeout)
    }
}

/// The coordinator's gatekeeper: the ZAP handler that admits listed keys to each socket,
/// and the roles of the admitted clients. Each socket has its own ZAP domain, so a worker
/// key cannot pass on the clients endpoint nor a client key on the workers endpoint.
/// Admitted connections carry their public key (Z85) as ZeroMQ user id.
final class CoordinatorGatekeeper: Sendable {
    /// The two sockets' ZAP domains.
    enum Domain: String, Sendable {
        case workers = "codebook-workers"
        case clients = "codebook-clients"
    }

    let security: CoordinatorSecurity
    private let admissions: Admissions
    private let handler: ZAPHandler

    init(security: CoordinatorSecurity, context: ZeroMQContext, logger: Logger) {
        self.security = security
        let admissions = Admissions(logger: logger)
        self.admissions = admissions
        handler = ZAPHandler(context: context) { admissions.decide($0) }
    }

    /// Reads the allow-lists and starts the ZAP handler; call before the sockets bind.
    func start() throws {
        try reload()
        try handler.start()
    }

    /// Stops the ZAP handler; call after the sockets have closed.
    func stop() { handler.stop() }

    /// Reads the allow-lists again; new handshakes are checked against the new lists, and
    /// connections whose key is no longer listed are refused from their next message on.
    /// On an error the lists in force stay.
    func reload() throws {
        let lists = try AccessLists(workersFile: security.workerKeysFile, clientsFile: security.clientKeysFile)
        admissions.lists.withLock { $0 = lists }
        admissions.logger.info("access lists loaded", metadata: ["worker keys": "\(lists.workers.count)",
                                                                "client keys": "\(lists.clients.count)"])
    }

    /// Makes `socket` a CURVE server whose handshakes are checked in `domain`.
    func secure(_ socket: Socket, for domain: Domain) throws {
        try socket.setZAPDomain(domain.rawValue)
        try socket.setCurveServer(true)
        try socket.setCurveSecretKey(security.keyPair.secretKey)
    }

    /// Handshakes refused since start.
    var refusedHandshakes: Int { admissions.refused.load(ordering: .relaxed) }

    /// Whether the worker whose connection carries `userID` is still listed.
    func admitsWorker(_ userID: String?) -> Bool {
        guard let key = userID.flatMap({ try? CurveKey(z85: $0) }) else { return false }
        return admissions.lists.withLock { $0.workers.contains(key) }
    }

    /// The role of the client whose connection carries `userID`; `nil` if it is no longer listed.
    func role(of userID: String?) -> ClientRole? {
        guard let key = userID.flatMap({ try? CurveKey(z85: $0) }) else { return nil }
        return admissions.lists.withLock { $0.clients[key] }
    }

    /// What the ZAP handler's thread decides with: the lists in force, and the count of refusals.
    private final class Admissions: Sendable {
        let logger: Logger
        let lists = Mutex<AccessLists>(AccessLists(workers: [], clients: [:]))
        let refused = Atomic<Int>(0)
        /// When each refused key was last logged.
        private let lastLogged = Mutex<[String: ContinuousClock.Instant]>([:])

        init(logger: Logger) { self.logger = logger }

        func decide(_ request: ZAPRequest) -> ZAPDecision {
            let domain = Domain(rawValue: request.domain)
            if let key = request.curveKey, let domain {
                let listed = lists.withLock { lists in
                    domain == .workers ? lists.workers.contains(key) : lists.clients[key] != nil
                }
                if listed { return .allow(userID: key.z85) }
            }
            let count = refused.add(1, ordering: .relaxed).newValue
            let peer = domain == .workers ? "worker" : "client"
            // A refused peer's libzmq keeps reconnecting: one line per key and minute is enough.
            let now = ContinuousClock.now
            let identity = "\(request.domain) \(request.curveKey?.z85 ?? request.mechanism)"
            let quiet = lastLogged.withLock { logged in
                if let last = logged[identity], now - last < .seconds(60) { return true }
                if logged.count >= 1024 { logged.removeAll() }
                logged[identity] = now
                return false
            }
            guard !quiet else { return .deny(reason: "key not listed") }
            logger.warning("refused a \(peer) key", metadata: ["key": "\(request.curveKey?.z85 ?? "none (\(request.mechanism))")",
                                                               "address": "\(request.address)", "refused": "\(count)"])
            return .deny(reason: "key not listed")
        }
    }
}
