import Testing
import ZeroMQ

@Suite struct PollerTests {
    @Test func timeoutWithNothingReadyReturnsNothing() throws {
        let context = try ZeroMQContext()
        let socket = try Socket(.router, context: context)
        _ = try bindLoopback(socket)
        let poller = Poller()
        poller.register(socket)
        let clock = ContinuousClock()
        let start = clock.now
        #expect(try poller.poll(timeout: .milliseconds(50)).isEmpty)
        #expect(clock.now - start >= .milliseconds(45))
    }

    @Test func reportsOnlyTheSocketWithAMessage() throws {
        let context = try ZeroMQContext()
        let quiet = try Socket(.pair, context: context)
        let busy = try Socket(.pair, context: context)
        let peer = try Socket(.pair, context: context)
        try quiet.bind("inproc://quiet-\(UInt64.random(in: 0 ... .max))")
        let endpoint = "inproc://busy-\(UInt64.random(in: 0 ... .max))"
        try busy.bind(endpoint)
        try peer.connect(endpoint)
        try peer.send(frames: [bytes("hello")])

        let poller = Poller()
        poller.register(quiet)
        poller.register(busy)
        let ready = try poller.poll(timeout: deliveryTimeout)
        #expect(ready.count == 1)
        #expect(ready.first?.socket === busy)
        #expect(ready.first?.events == .readable)
        #expect(try busy.receive(dontWait: true) == [bytes("hello")])
    }

    @Test func writableWhenAPeerIsConnected() throws {
        let context = try ZeroMQContext()
        let left = try Socket(.pair, context: context)
        let right = try Socket(.pair, context: context)
        let endpoint = "inproc://writable-\(UInt64.random(in: 0 ... .max))"
        try left.bind(endpoint)
        try right.connect(endpoint)
        let poller = Poller()
        poller.register(right, for: [.readable, .writable])
        let ready = try poller.poll(timeout: deliveryTimeout)
        #expect(ready.map(\.events) == [.writable])
    }
}
