import Foundation
import Testing
import ZeroMQ

@Suite struct DoorbellTests {
    /// A ring from another thread ends a wait that would otherwise last a minute; once
    /// drained, the listener waits again, and a thousand rings at once neither block the
    /// ringer nor leave more than one wake-up behind.
    @Test(.timeLimit(.minutes(1))) func aRingFromAnotherThreadEndsTheWait() throws {
        let context = try ZeroMQContext()
        let (doorbell, listener) = try Doorbell.make(context: context)
        let poller = Poller()
        poller.register(listener)
        let clock = ContinuousClock()
        let start = clock.now
        Thread {
            Thread.sleep(forTimeInterval: 0.05)
            doorbell.ring()
        }.start()
        #expect(try poller.poll(timeout: .seconds(60)).count == 1)
        #expect(clock.now - start < .seconds(30))
        listener.drain()
        #expect(try poller.poll(timeout: .milliseconds(20)).isEmpty)

        for _ in 0..<1_000 { doorbell.ring() }
        #expect(try poller.poll(timeout: .zero).count == 1)
        listener.drain()
        #expect(try poller.poll(timeout: .milliseconds(20)).isEmpty)
    }
}
