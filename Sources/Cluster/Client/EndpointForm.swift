import ClusterProtocol

/// Checks that `endpoint` has the form of a ZeroMQ endpoint the cluster uses:
/// `tcp://HOST:PORT` (`*` for any interface or port when binding), `ipc://PATH` or
/// `inproc://NAME`. Throws `invalidRequest` naming the endpoint and the accepted forms, so
/// that `127.0.0.1:5556` is refused with that rather than libzmq's "Invalid argument", or
/// a worker retrying it for ever.
public func checkEndpointForm(_ endpoint: String) throws {
    let forms = "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
    guard let separator = endpoint.range(of: "://") else {
        throw ClusterError(.invalidRequest, "\"\(PeerText.escaped(endpoint))\" is not a ZeroMQ endpoint: \(forms)")
    }
    let transport = endpoint[..<separator.lowerBound], address = endpoint[separator.upperBound...]
    switch transport {
    case "ipc", "inproc":
        guard !address.isEmpty else { throw ClusterError(.invalidRequest, "\"\(PeerText.escaped(endpoint))\" names no \(transport) address") }
    case "tcp":
        guard let colon = address.lastIndex(of: ":"), colon != address.startIndex,
              case let port = address[address.index(after: colon)...],
              port == "*" || (!port.isEmpty && port.allSatisfy(\.isASCII) && port.allSatisfy(\.isNumber) && Int(port).map { $0 <= 65_535 } == true)
        else {
            throw ClusterError(.invalidRequest, "\"\(PeerText.escaped(endpoint))\" is not a ZeroMQ tcp endpoint: expected tcp://HOST:PORT")
        }
    default:
        throw ClusterError(.invalidRequest, "\"\(PeerText.escaped(endpoint))\" has transport \"\(PeerText.escaped(String(transport)))\": \(forms)")
    }
}
