import Cluster
import ClusterProtocol
import Foundation
import Testing
import ZeroMQ

/// How many frames a message to the coordinator may have, and how large a frame workers and
/// clients accept.
@Suite struct FrameLimitTests {
    /// A message of 100,000 empty frames is dropped as it is read, on either endpoint, and
    /// counted as malformed; the client's next request is answered as usual. (Before, the
    /// coordinator kept every frame, and answered the padded STATUS.)
    @Test(.timeLimit(.minutes(1))) func aMessageOfTooManyFramesIsDroppedAsItIsRead() async throws {
        let context = try ZeroMQContext()
        let coordinator = Coordinator(context: context, workersEndpoint: "tcp://127.0.0.1:*", clientsEndpoint: "tcp://127.0.0.1:*",
                                      logger: quietLogger())
        let endpoints = try coordinator.start()
        defer { coordinator.stop() }
        let padding = [[UInt8]](repeating: [], count: 100_000)

        let client = try Socket(.dealer, context: context)
        try client.setLinger(.zero)
        try client.setReceiveTimeout(.seconds(5))
        try client.connect(endpoints.clients)
        let status = [[]] + WireMessage(header: WireHeader(.status)).frames
        try client.send(frames: status + padding)
        try client.send(frames: status)
        let reply = try #require(try client.receive())
        #expect(try WireHeader(bytes: reply[1]).type == .statusReply)
        try client.setReceiveTimeout(.milliseconds(500))
        #expect(try client.receive() == nil, "the padded STATUS was answered too")
        #expect(coordinator.malformedMessages == 1)

        let worker = try Socket(.dealer, context: context)
        try worker.setLinger(.zero)
        try worker.connect(endpoints.workers)
        try worker.send(frames: WireMessage(header: WireHeader(.ready), metadata: WorkerIntroduction(name: "padded", threads: 1)).frames
                        + padding)
        #expect(await waitUntil(timeout: 10) { coordinator.malformedMessages == 2 })
        #expect(try ClusterClient(context: context, endpoint: endpoints.clients).status().workers.isEmpty)
    }

    /// A client accepts reply frames up to what a coordinator of default limits accepts
    /// (128 MiB), not 1 GiB: a larger reply disconnects the coordinator and the request fails
    /// unanswered. Workers derive theirs from the coordinator's `maximumModelValues`.
    @Test(.timeLimit(.minutes(1))) func clientsAndWorkersAcceptFramesUpToWhatTheCoordinatorMaySend() async throws {
        #expect(WorkerSettings(name: "w", threads: 1).maximumMessageSize == 128 << 20)
        var raised = WorkerSettings(name: "w", threads: 1)
        raised.maximumModelValues = 1 << 26
        #expect(raised.maximumMessageSize == 512 << 20)

        let context = try ZeroMQContext()
        let server = try OversizedReplier(context: context)
        let endpoint = try server.socket.lastEndpoint
        let answered = Task.detached { try server.answerOnce() }
        let client = try ClusterClient(context: context, endpoint: endpoint, timeout: .seconds(3))
        let error = #expect(throws: ClusterError.self) { try client.request(WireMessage(header: WireHeader(.status))) }
        #expect(error?.code == .unanswered)
        try await answered.value
    }
}

/// A stand-in coordinator that answers one request with a reply frame of 128 MiB + 1 byte.
private final class OversizedReplier: @unchecked Sendable {
    // @unchecked Sendable: the socket is used by one task at a time (bound here, then answering).
    let socket: Socket

    init(context: ZeroMQContext) throws {
        socket = try Socket(.router, context: context)
        try socket.setLinger(.zero)
        try socket.setReceiveTimeout(.seconds(10))
        try socket.bind("tcp://127.0.0.1:*")
    }

    func answerOnce() throws {
        guard let request = try socket.receive() else { return }
        let reply = WireMessage(header: WireHeader(.statusReply), arrays: [[UInt8](repeating: 0, count: (128 << 20) + 1)])
        try socket.send(frames: [request[0], []] + reply.frames)
    }
}
