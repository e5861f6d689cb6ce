@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import TestSupport
import Testing
import ZeroMQ

/// Every client request type reaches a handler: the coordinator's own (`reply(to:)`) or the
/// store's table (`StoreQueries`), which the coordinator consults rather than a list of its own.
@Suite struct RequestRoutingTests {
    static let notARequest = "is not a client request"

    /// The coordinator's answer to a request of `type` with empty metadata; its ERROR-REPLY message, if any.
    static func refusal(of type: MessageType, by coordinator: Coordinator) throws -> String? {
        let reply = coordinator.answer(WireMessage(header: WireHeader(type)), state: CoordinatorState(), now: at(0))
        return reply.header.type == .errorReply ? try reply.decode(FailureReport.self).message : nil
    }

    @Test func everyClientRequestHasAHandlerAndNothingElseDoes() throws {
        let scratch = try TemporaryDirectory(), tag = UUID().uuidString
        // A coordinator that is never started: answering needs no sockets.
        let coordinator = Coordinator(context: try ZeroMQContext(), workersEndpoint: "inproc://workers-\(tag)",
                                      clientsEndpoint: "inproc://clients-\(tag)",
                                      store: try CodebookStore(path: scratch.file("db")), logger: quietLogger())
        // Codes 32–47 are the client's requests (Protocols/cluster.md §2).
        let requests = MessageType.allCases.filter { (32..<48).contains($0.rawValue) }
        #expect(requests.count == 14)
        for type in MessageType.allCases {
            let refusal = try Self.refusal(of: type, by: coordinator)
            if requests.contains(type) {
                #expect(refusal?.hasSuffix(Self.notARequest) != true, "\(type): \(refusal ?? "")")
            } else {
                #expect(refusal == "\(type) \(Self.notARequest)")
            }
        }
        #expect(requests.filter(StoreQueries.answers).map(\.rawValue) == [36, 37, 38, 39, 41, 43, 45])
    }
}
