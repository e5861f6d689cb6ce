@testable import Cluster
import ClusterProtocol
import Foundation
import Testing
import ZeroMQ

@Suite struct WorkerReconnectTests {
    /// A worker whose coordinator falls silent reconnects after a back-off that doubles
    /// (0.5 s, then 1 s), and `stop()` during a back-off returns without waiting it out.
    @Test(.timeLimit(.minutes(1))) func aSilentCoordinatorIsRetriedWithADoublingBackOff() async throws {
        let context = try ZeroMQContext()
        let router = try Socket(.router, context: context)
        try router.setLinger(.zero)
        try router.setReceiveTimeout(.seconds(10))
        try router.bind("tcp://127.0.0.1:*")
        let endpoint = try router.lastEndpoint
        var settings = WorkerSettings(name: "silent-test", threads: 1)
        settings.heartbeatInterval = .milliseconds(100)
        settings.liveness = 2
        settings.reconnectInitial = .milliseconds(500)
        settings.reconnectMaximum = .seconds(4)
        let worker = Worker(context: context, endpoint: endpoint, settings: settings, logger: quietLogger())
        worker.start()
        var readies: [ContinuousClock.Instant] = []
        while readies.count < 3 {
            guard let frames = try router.receive() else { break }
            if try WireMessage(frames: Array(frames.dropFirst())).header.type == .ready { readies.append(.now) }
        }
        try #require(readies.count == 3, "\(readies.count) READY messages within 10 s of each other")
        let first = (readies[1] - readies[0]).seconds, second = (readies[2] - readies[1]).seconds
        // Each wait: 0.2 s of silence, then the back-off (less 0.1 s: each READY also waits
        // for its connection's handshake).
        #expect(first >= 0.2 + 0.5 - 0.1 && second >= 0.2 + 1.0 - 0.1 && second - first >= 0.3,
                "reconnected after \(first) s, then \(second) s")
        try await Task.sleep(for: .milliseconds(400)) // in the 2 s back-off now
        let stopping = ContinuousClock.now
        worker.stop()
        let stopped = (ContinuousClock.now - stopping).seconds
        #expect(stopped < 1.5, "stop() took \(stopped) s during a back-off")
    }
}
