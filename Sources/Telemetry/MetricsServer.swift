import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small HTTP/1.1 server (swift-nio, one event-loop thread) that answers `GET /metrics`
/// (and `HEAD`) with a registry's exposition; every other path is 404, every other method
/// 405, and request bodies are discarded. It serves at most `maximumConnections` at once
/// (a connection beyond them is closed as it arrives) and closes a connection that sends
/// nothing for `idleTimeout`, so idle connections cannot use up the process's descriptors.
public final class MetricsServer: Sendable {
    /// The most connections served at once.
    public static let maximumConnections = 64
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The address bound, as `HOST:PORT` (a port 0 resolved).
    public let boundAddress: String

    /// Binds `host:port` (port 0: any free port) and starts serving `registry`.
    public init(host: String, port: Int, registry: MetricsRegistry, idleTimeout: Duration = .seconds(30)) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = ConnectionCount()
        let idle = TimeAmount.nanoseconds(Int64(idleTimeout / .nanoseconds(1)))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.closeFuture.whenComplete { _ in open.value.subtract(1, ordering: .relaxed) }
                guard open.value.add(1, ordering: .relaxed).newValue <= Self.maximumConnections else {
                    return channel.eventLoop.makeFailedFuture(MetricsServerError("more than \(Self.maximumConnections) connections"))
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: idle))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(MetricsHandler(registry: registry))
                }
            }
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MetricsServerError("cannot serve metrics on \(host):\(port): \(error)")
        }
        self.group = group
        let port = channel.localAddress?.port ?? port
        boundAddress = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Closes the listening socket and stops the event loop.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// Splits `HOST:PORT` (`[V6]:PORT` for IPv6; a bare port means 127.0.0.1).
    public static func parse(_ endpoint: String) throws -> (host: String, port: Int) {
        var host = "127.0.0.1", portText = Substring(endpoint)
        if let colon = endpoint.lastIndex(of: ":") {
            host = String(endpoint[..<colon])
            portText = endpoint[endpoint.index(after: colon)...]
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw MetricsServerError("metrics endpoint \"\(endpoint)\": expected HOST:PORT with a port in 0…65535")
        }
        return (host, port)
    }
}

/// The connections a server has open.
private final class ConnectionCount: Sendable {
    let value = Atomic<Int>(0)
}

/// Why the metrics server could not start.
public struct MetricsServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Answers each request once its end arrives; keeps the connection open when the client asks to.
private final class MetricsHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let registry: MetricsRegistry
    /// Set on `.head`, read on `.end`.
    private var request: HTTPRequestHead?

    init(registry: MetricsRegistry) { self.registry = registry }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is IdleStateHandler.IdleStateEvent else { return context.fireUserInboundEventTriggered(event) }
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let (status, contentType, body): (HTTPResponseStatus, String, [UInt8])
        if path != "/metrics" {
            (status, contentType, body) = (.notFound, "text/plain; charset=utf-8", Array("not found: try /metrics\n".utf8))
        } else if head.method != .GET && head.method != .HEAD {
            (status, contentType, body) = (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET\n".utf8))
        } else {
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", registry.exposition())
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        if status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            written.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
