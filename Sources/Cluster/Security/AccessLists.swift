import ClusterProtocol
import ZeroMQ

/// What a client key may do on the clients endpoint.
public enum ClientRole: String, Sendable, Hashable {
    /// Requests that only read: those whose `MessageType.changesState` is false.
    case read
    /// Every request.
    case write

    /// Whether this role may send a request of `type`.
    public func permits(_ type: MessageType) -> Bool { self == .write || !type.changesState }
}

/// The public keys a CURVE coordinator admits: workers on the workers endpoint, clients
/// (each with a role) on the clients endpoint.
///
/// Files: one key per line; on the client list each key is followed by its role, `read` or
/// `write`. Blank lines and `#` comments are ignored, and so is a `#` comment after the
/// entry.
public struct AccessLists: Sendable, Equatable {
    public var workers: Set<CurveKey>
    public var clients: [CurveKey: ClientRole]

    public init(workers: Set<CurveKey>, clients: [CurveKey: ClientRole]) {
        self.workers = workers
        self.clients = clients
    }

    /// Reads both files; throws a `badFile` `ClusterError` naming the file and line of any mistake.
    public init(workersFile: String, clientsFile: String) throws {
        workers = Set(try KeyFiles.lines(of: workersFile).map { line in
            guard line.words.count == 1 || line.words[1].hasPrefix("#") else {
                throw line.error("expected a worker's public key alone on its line")
            }
            return try line.key(at: 0)
        })
        var clients: [CurveKey: ClientRole] = [:]
        for line in try KeyFiles.lines(of: clientsFile) {
            let key = try line.key(at: 0)
            guard line.words.count >= 2, let role = ClientRole(rawValue: line.words[1]),
                  line.words.count == 2 || line.words[2].hasPrefix("#") else {
                throw line.error("expected a client's public key and its role, read or write")
            }
            guard clients.updateValue(role, forKey: key) == nil else {
                throw line.error("the key \(key.z85) is listed twice")
            }
        }
        self.clients = clients
    }
}
