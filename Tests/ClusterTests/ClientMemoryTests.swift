import Cluster
import ClusterProtocol
import Foundation
import Synchronization
import Testing
import ZeroMQ

/// What one client can make the coordinator hold: a bounded queue of replies, returned to
/// the system when the client goes; a bounded number of requests waiting; an error, not
/// silence, past that.
@Suite(.serialized) struct ClientMemoryTests {
    /// A model of K·D = 65,536 values: each DESCRIBE with its values is a 256 KiB reply.
    static let k = 256, dimension = 256

    static func importModel(_ cluster: ProcessCluster) throws {
        let values = (0..<k * dimension).map { Float($0 % 1000) }
        let request = WireMessage(header: WireHeader(.importModel),
                                  metadata: ImportRequest(name: "big", kind: .kmeans, k: k, dimension: dimension, replace: true),
                                  arrays: [Frame.encode(values)])
        _ = try ClusterClient(context: try ZeroMQContext(), endpoint: cluster.clientsEndpoint).request(request)
    }

    static let describe = [[]] + WireMessage(header: WireHeader(.describe), metadata: DescribeRequest(model: "big", values: true)).frames

    /// Resident memory of a process, in MiB (VmRSS of /proc/PID/status).
    static func residentMiB(of pid: Int32) throws -> Double {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kilobytes = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) else {
            throw ClusterTestError("no VmRSS in /proc/\(pid)/status")
        }
        return kilobytes / 1024
    }

    /// Two clients ask for 600 replies of 256 KiB each and read none (their sockets stop
    /// taking data after one message). The coordinator holds a bounded number for them
    /// (high-water marks): it grew by about 290 MiB and kept 180 MiB after they left. Now it
    /// grows by less than 64 MiB, and gives it back when they disconnect.
    @Test(.timeLimit(.minutes(2))) func repliesNobodyReadsAreBoundedAndFreedWhenTheClientGoes() async throws {
        try await ProcessCluster().run { cluster in
            let coordinator = try await cluster.startCoordinator()
            try Self.importModel(cluster)
            try await Task.sleep(for: .milliseconds(500))
            let baseline = try Self.residentMiB(of: coordinator.pid)
            var peak = baseline
            do {
                let context = try ZeroMQContext()
                let flooders = try (0..<2).map { _ in
                    let socket = try Socket(.dealer, context: context)
                    try socket.setLinger(.zero)
                    try socket.setReceiveHighWaterMark(1)
                    try socket.connect(cluster.clientsEndpoint)
                    return socket
                }
                for round in 0..<600 {
                    for flooder in flooders { try flooder.send(frames: Self.describe) }
                    try await Task.sleep(for: .milliseconds(5))
                    if round % 50 == 0 { peak = max(peak, try Self.residentMiB(of: coordinator.pid)) }
                }
                // Until the coordinator has answered everything it was sent.
                var last = 0.0
                for _ in 0..<20 {
                    try await Task.sleep(for: .milliseconds(500))
                    let now = try Self.residentMiB(of: coordinator.pid)
                    peak = max(peak, now)
                    if abs(now - last) < 1 { break }
                    last = now
                }
                try context.shutdown()
            }
            try await Task.sleep(for: .seconds(2))
            let after = try Self.residentMiB(of: coordinator.pid)
            print("coordinator RSS: \(baseline) MiB before, \(peak) MiB at the peak, \(after) MiB after the clients left")
            cluster.check(peak - baseline < 64, "the coordinator grew by \(peak - baseline) MiB for two clients")
            cluster.check(after - baseline < 16, "\(after - baseline) MiB stayed after the clients left")
            let status = try MultiProcessTests.status(cluster)
            cluster.check(status.workers.isEmpty, "the coordinator does not answer after the flood: \(status)")
        }
    }

    /// Replies come in request order, whichever thread answers them. A client that sends 60
    /// requests that are answered off the I/O thread (within the 64 it may have outstanding)
    /// without waiting for replies gets a reply to every one: those that the coordinator
    /// cannot hold (16 behind the one in progress) are refused with `too-many-requests`
    /// (with no bound, all 60 were held, whatever their size).
    @Test(.timeLimit(.minutes(1))) func anOverPipelinedClientIsToldSoAndLosesNoReply() async throws {
        try await ProcessCluster().run { cluster in
            try await cluster.startCoordinator()
            try Self.importModel(cluster)
            let socket = try Socket(.dealer, context: try ZeroMQContext())
            try socket.setLinger(.zero)
            try socket.setReceiveTimeout(.seconds(10))
            try socket.connect(cluster.clientsEndpoint)
            let status = [[]] + WireMessage(header: WireHeader(.status)).frames
            let missing = [[]] + WireMessage(header: WireHeader(.describe), metadata: DescribeRequest(model: "missing")).frames
            for request in [Self.describe, status, missing, status] { try socket.send(frames: request) }
            var types: [MessageType] = []
            for _ in 0..<4 { try socket.receive().map { types.append(try WireHeader(bytes: $0[1]).type) } }
            cluster.check(types == [.describeReply, .statusReply, .errorReply, .statusReply], "replies in the order \(types)")

            let requests = 60
            for _ in 0..<requests { try socket.send(frames: Self.describe) }
            var described = 0, refused: [String] = [], other: [String] = []
            for _ in 0..<requests {
                guard let frames = try socket.receive() else { break }
                let reply = try WireMessage(frames: Array(frames.dropFirst()))
                switch reply.header.type {
                case .describeReply: described += 1
                case .errorReply:
                    let report = try reply.decode(FailureReport.self)
                    if report.code == .tooManyRequests { refused.append(report.message) } else { other.append(report.message) }
                default: other.append("\(reply.header.type)")
                }
            }
            print("\(described) described, \(refused.count) refused: \(refused.first ?? "")")
            cluster.check(described + refused.count == requests && other.isEmpty,
                          "\(described) described + \(refused.count) refused of \(requests); other replies: \(other.prefix(3))")
            cluster.check(described >= 17 && !refused.isEmpty, "\(described) described, \(refused.count) refused")
            cluster.check(refused.first?.contains("16") == true, "the refusal does not name the limit: \(refused.first ?? "")")
        }
    }
}
