#if canImport(Glibc)
import ClusterProtocol
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a ZeroMQ endpoint to bind can be reached only from this machine: `inproc://`,
/// `ipc://`, or `tcp://` on a loopback address (127.0.0.0/8, `[::1]`, `localhost`). A
/// wildcard, an interface name or any other host counts as reachable from elsewhere.
public func isLoopbackEndpoint(_ endpoint: String) -> Bool {
    if endpoint.hasPrefix("inproc://") || endpoint.hasPrefix("ipc://") { return true }
    guard endpoint.hasPrefix("tcp://"), let colon = endpoint.lastIndex(of: ":"),
          colon > endpoint.index(endpoint.startIndex, offsetBy: 5) else { return false }
    var host = String(endpoint[endpoint.index(endpoint.startIndex, offsetBy: 6)..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    if host == "localhost" { return true }
    var ipv4 = in_addr()
    if inet_pton(AF_INET, host, &ipv4) == 1 { return UInt32(bigEndian: ipv4.s_addr) >> 24 == 127 }
    var ipv6 = in6_addr()
    guard inet_pton(AF_INET6, host, &ipv6) == 1 else { return false }
    return withUnsafeBytes(of: ipv6) { $0.dropLast().allSatisfy { $0 == 0 } && $0.last == 1 }
}
