import Foundation
import Telemetry
import Testing

/// The metrics server holds a bounded number of connections, and not for ever: idle
/// connections (a peer that opens thousands and sends nothing) would otherwise use up the
/// descriptors of the process it serves, the coordinator's.
@Suite struct MetricsServerLimitTests {
    /// A blocking TCP connection to 127.0.0.1:`port`, whose reads wait at most 5 s.
    static func connect(_ port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0, "connect: errno \(errno)")
        return fd
    }

    /// Whether the server closes `fd` (end of file, or reset) within `seconds`.
    static func closedByServer(_ fd: Int32, within seconds: Double) -> Bool {
        var poll = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, Int32(seconds * 1000)) == 1 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) <= 0
    }

    /// The status line of a GET of `/metrics` on a new connection.
    static func scrape(_ port: Int) throws -> String {
        let fd = try connect(port)
        defer { close(fd) }
        let request = Array("GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return "send failed" }
        var reply: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 4096)
        // To the end: the server closes the connection after the reply.
        while case let count = recv(fd, &buffer, buffer.count, 0), count > 0 { reply += buffer[..<count] }
        return String(decoding: reply.prefix { $0 != 13 }, as: UTF8.self)
    }

    static func port(of server: MetricsServer) throws -> Int {
        try #require(Int(server.boundAddress.split(separator: ":").last!))
    }

    @Test(.timeLimit(.minutes(1)))
    func connectionsBeyondTheMostServedAreClosed() async throws {
        let server = try MetricsServer(host: "127.0.0.1", port: 0, registry: MetricsRegistry())
        defer { server.stop() }
        let port = try Self.port(of: server)
        let held = try (0..<MetricsServer.maximumConnections).map { _ in try Self.connect(port) }
        let extra = try (0..<4).map { _ in try Self.connect(port) }
        #expect(extra.allSatisfy { Self.closedByServer($0, within: 10) }, "connections beyond the most were kept")
        #expect(!held.prefix(4).contains { Self.closedByServer($0, within: 0.2) }, "a connection within the most was closed")
        (held + extra).forEach { close($0) }
        // Served again once they are gone.
        let served = try await waitUntil(timeout: 10) { try Self.scrape(port) == "HTTP/1.1 200 OK" }
        #expect(served)
    }

    @Test(.timeLimit(.minutes(1)))
    func aConnectionThatSendsNothingIsClosed() throws {
        let server = try MetricsServer(host: "127.0.0.1", port: 0, registry: MetricsRegistry(), idleTimeout: .milliseconds(300))
        defer { server.stop() }
        let port = try Self.port(of: server)
        #expect(try Self.scrape(port) == "HTTP/1.1 200 OK")
        let idle = try Self.connect(port)
        defer { close(idle) }
        #expect(Self.closedByServer(idle, within: 10))
    }
}
