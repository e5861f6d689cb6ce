import Synchronization
import Testing
@testable import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite struct ZAPHandlerTests {
    /// A CURVE client of `server` with key pair `keys`, and its handshake events.
    private func client(_ keys: CurveKeyPair, of serverKeys: CurveKeyPair, at endpoint: String,
                        context: ZeroMQContext) throws -> (socket: Socket, monitor: SocketMonitor) {
        let client = try Socket(.dealer, context: context)
        try client.setLinger(.zero)
        try client.setCurveClient(keys: keys, serverKey: serverKeys.publicKey)
        let monitor = try client.monitor([.handshakeSucceeded, .handshakeFailedAuthentication, .handshakeFailedNoDetail])
        try client.connect(endpoint)
        return (client, monitor)
    }

    private func events(of client: (socket: Socket, monitor: SocketMonitor)) throws -> [SocketEvent] {
        var events: [SocketEvent] = []
        while let event = try client.monitor.next() { events.append(event) }
        return events
    }

    @Test func admitsListedKeysWithTheirUserIDAndRefusesOthers() throws {
        let context = try ZeroMQContext()
        let serverKeys = try CurveKeyPair.generate(), alice = try CurveKeyPair.generate(), mallory = try CurveKeyPair.generate()
        let seen = Mutex<[ZAPRequest]>([])
        let handler = ZAPHandler(context: context) { request in
            seen.withLock { $0.append(request) }
            return request.domain == "test" && request.curveKey == alice.publicKey ? .allow(userID: "alice") : .deny(reason: "no")
        }
        try handler.start()
        defer { handler.stop() }
        // A second handler in the same context cannot bind.
        let second = ZAPHandler(context: context) { _ in .allow(userID: "") }
        #expect(throws: ZeroMQError.self) { try second.start() }

        let server = try Socket(.router, context: context)
        try server.setLinger(.zero)
        try server.setZAPDomain("test")
        try server.setCurveServer(true)
        try server.setCurveSecretKey(serverKeys.secretKey)
        let endpoint = try bindLoopback(server)
        try server.setReceiveTimeout(silenceTimeout)

        let refused = try client(mallory, of: serverKeys, at: endpoint, context: context)
        try refused.socket.send(frames: [bytes("from mallory")])
        #expect(try server.receive() == nil)
        #expect(try events(of: refused).contains { $0.kind == .handshakeFailedAuthentication && $0.value == 400 })

        let admitted = try client(alice, of: serverKeys, at: endpoint, context: context)
        try admitted.socket.send(frames: [bytes("from alice")])
        try server.setReceiveTimeout(deliveryTimeout)
        let message = try #require(try server.receive(property: .userID))
        #expect(message.frames.last == bytes("from alice"))
        #expect(message.property == "alice")
        #expect(try events(of: admitted).map(\.kind) == [.handshakeSucceeded])

        let requests = seen.withLock { $0 }
        #expect(requests.contains { $0.curveKey == mallory.publicKey && $0.mechanism == "CURVE" && $0.address == "127.0.0.1" })
        #expect(requests.contains { $0.curveKey == alice.publicKey && $0.domain == "test" })
    }

    @Test func answersMalformedRequestsWith500() throws {
        let handler = ZAPHandler(context: try ZeroMQContext()) { _ in .allow(userID: "x") }
        let reply = handler.reply(to: [bytes("1.0"), bytes("7"), bytes("d"), bytes("127.0.0.1"), [], bytes("CURVE"), [1, 2]])
        #expect(reply.count == 6 && reply[1] == bytes("7") && reply[2] == bytes("500"))
        #expect(handler.reply(to: [bytes("2.0")])[2] == bytes("500"))
        let allowed = handler.reply(to: [bytes("1.0"), bytes("8"), bytes("d"), bytes("127.0.0.1"), [], bytes("NULL")])
        #expect(allowed[2] == bytes("200") && allowed[4] == bytes("x"))
    }
}
