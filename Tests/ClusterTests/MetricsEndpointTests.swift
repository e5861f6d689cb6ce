import Foundation
import Testing

/// The metrics endpoint follows the coordinator's endpoints' rule: nothing is served beyond
/// loopback (the metrics have no authentication) without an explicit acknowledgement.
@Suite struct MetricsEndpointTests {
    /// Refused before anything is bound, by the coordinator and the worker alike (before, each
    /// served its metrics on the wildcard address and ran on).
    @Test(.timeLimit(.minutes(1)), arguments: ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"])
    func metricsAreNotServedBeyondLoopbackWithoutAnAcknowledgement(_ endpoint: String) async throws {
        try await ProcessCluster().run { cluster in
            for command in ["coordinator", "worker"] {
                let run = try await cluster.run(command, [command, "--metrics-endpoint", endpoint])
                cluster.check(run.status == 64 && run.log.contains("refusing to serve metrics at \(endpoint) beyond loopback"),
                              "\(command): \(run.status) \(run.log)")
            }
        }
    }
}
