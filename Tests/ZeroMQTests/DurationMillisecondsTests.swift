import Testing
@testable import ZeroMQ

@Suite struct DurationMillisecondsTests {
    @Test func roundsUpAndClamps() {
        #expect(Duration.milliseconds(250).zmqMilliseconds == 250)
        #expect(Duration.microseconds(1).zmqMilliseconds == 1)
        #expect(Duration.microseconds(1500).zmqMilliseconds == 2)
        #expect(Duration.zero.zmqMilliseconds == 0)
        #expect(Duration.milliseconds(-5).zmqMilliseconds == 0)
        #expect(Duration.seconds(10_000_000).zmqMilliseconds == .max)
        #expect(Optional<Duration>.none.zmqMilliseconds == -1)
    }
}
