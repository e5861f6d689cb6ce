import Testing
@testable import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Binds `socket` to an ephemeral port on the loopback interface and returns the endpoint.
func bindLoopback(_ socket: Socket) throws -> String {
    try socket.bind("tcp://127.0.0.1:*")
    return try socket.lastEndpoint
}

/// A receive that would hang the suite if a message were lost waits this long at most.
let deliveryTimeout = Duration.seconds(5)
/// How long a test waits to be sure a message does not arrive.
let silenceTimeout = Duration.milliseconds(250)

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

@Suite struct SocketTests {
    /// REP as the ZAP handler uses it: the peer (libzmq's ZAP client, a DEALER here) sends an
    /// empty delimiter before the request, REP strips it and puts it back on the reply.
    @Test func replySocketAnswersADealerOverTCP() throws {
        let context = try ZeroMQContext()
        let server = try Socket(.rep, context: context)
        let client = try Socket(.dealer, context: context)
        try server.setReceiveTimeout(deliveryTimeout)
        try client.setReceiveTimeout(deliveryTimeout)
        let endpoint = try bindLoopback(server)
        #expect(endpoint.hasPrefix("tcp://127.0.0.1:"))
        #expect(!endpoint.hasSuffix(":*"))
        try client.connect(endpoint)

        #expect(try client.send(frames: [[], bytes("ping"), []]))
        #expect(try server.receive() == [bytes("ping"), []])
        try server.send(frames: [bytes("pong")])
        #expect(try client.receive() == [[], bytes("pong")])
    }

    @Test func routerPrefixesTheDealersIdentityAndRepliesToIt() throws {
        let context = try ZeroMQContext()
        let router = try Socket(.router, context: context)
        let dealer = try Socket(.dealer, context: context)
        try router.setRouterMandatory(true)
        try router.setReceiveTimeout(deliveryTimeout)
        try dealer.setReceiveTimeout(deliveryTimeout)
        try dealer.connect(try bindLoopback(router))

        let header: [UInt8] = [1, 0, 0, 7]
        try dealer.send(frames: [header, [], bytes("payload")])
        let request = try #require(try router.receive())
        #expect(request.count == 4 && !request[0].isEmpty)
        #expect(Array(request.dropFirst()) == [header, [], bytes("payload")])

        try router.send(frames: [request[0], bytes("ack")])
        #expect(try dealer.receive() == [bytes("ack")])

        let error = #expect(throws: ZeroMQError.self) {
            try router.send(frames: [bytes("nobody"), bytes("lost")])
        }
        #expect(error?.code == EHOSTUNREACH)
    }

    @Test func pairOverInproc() throws {
        let context = try ZeroMQContext()
        let left = try Socket(.pair, context: context)
        let right = try Socket(.pair, context: context)
        let endpoint = "inproc://pair-\(UInt64.random(in: 0 ... .max))"
        try left.bind(endpoint)
        try right.connect(endpoint)
        try right.setReceiveTimeout(deliveryTimeout)
        try left.send(frames: [bytes("a"), bytes("b"), bytes("c")])
        #expect(try right.receive() == [bytes("a"), bytes("b"), bytes("c")])
        #expect(try left.lastEndpoint == endpoint)
    }

    @Test func tenMegabyteFrameArrivesIntact() throws {
        let context = try ZeroMQContext()
        let receiver = try Socket(.dealer, context: context)
        let sender = try Socket(.dealer, context: context)
        try receiver.setReceiveTimeout(deliveryTimeout)
        try sender.connect(try bindLoopback(receiver))
        // A pattern that is not periodic in any small power of two, so a misplaced chunk shows.
        let big = [UInt8](unsafeUninitializedCapacity: 10 * 1024 * 1024) { buffer, count in
            for index in buffer.indices { buffer[index] = UInt8(truncatingIfNeeded: index % 251) }
            count = buffer.count
        }
        try sender.send(frames: [bytes("header"), big])
        let message = try #require(try receiver.receive())
        #expect(message.count == 2)
        #expect(message[1].count == big.count)
        #expect(message[1] == big)
    }

    @Test func oversizedMessageIsDroppedAndTheConnectionRecovers() throws {
        let context = try ZeroMQContext()
        let receiver = try Socket(.dealer, context: context)
        let sender = try Socket(.dealer, context: context)
        try receiver.setMaxMessageSize(1000)
        try sender.connect(try bindLoopback(receiver))

        try sender.send(frames: [[UInt8](repeating: 7, count: 2000)])
        try receiver.setReceiveTimeout(silenceTimeout)
        #expect(try receiver.receive() == nil)

        // libzmq dropped the sender's connection; the sender reconnects and small messages flow.
        try sender.send(frames: [bytes("small")])
        try receiver.setReceiveTimeout(deliveryTimeout)
        #expect(try receiver.receive() == [bytes("small")])
    }

    @Test func dontWaitOnAnEmptySocketReturnsNil() throws {
        let context = try ZeroMQContext()
        let socket = try Socket(.dealer, context: context)
        _ = try bindLoopback(socket)
        #expect(try socket.receive(dontWait: true) == nil)
    }

    @Test func sendWithDontWaitAndNoPeerReturnsFalse() throws {
        let context = try ZeroMQContext()
        let socket = try Socket(.dealer, context: context)
        // A DEALER with no connected peer cannot queue a message.
        #expect(try socket.send(frames: [bytes("x")], dontWait: true) == false)
    }

    @Test func errorsCarryErrnoMessageAndOperation() throws {
        let context = try ZeroMQContext()
        let socket = try Socket(.rep, context: context)
        let error = #expect(throws: ZeroMQError.self) { try socket.bind("carrier-pigeon://nest") }
        #expect(error?.code == EPROTONOSUPPORT)
        #expect(error?.message == String(cString: strerror(EPROTONOSUPPORT)))
        #expect(error?.operation == "zmq_bind carrier-pigeon://nest")
    }

    @Test func shutdownMakesBlockingCallsFailWithETERM() throws {
        let context = try ZeroMQContext()
        let socket = try Socket(.dealer, context: context)
        try context.shutdown()
        let error = #expect(throws: ZeroMQError.self) { try socket.receive() }
        #expect(error?.isContextTerminated == true)
    }
}
