@testable import Cluster
import ClusterProtocol
import Foundation
import Storage
import Testing

/// Errors become ERROR-REPLY codes in one place, and codes become errors again in the client.
@Suite struct ErrorReplyTests {
    @Test func errorsBecomeWireCodesInOnePlace() {
        let cases: [(any Error, String, ErrorReplyCode?)] = [
            (ClusterError(.notFound, "no job 5"), "no job 5", .notFound),
            (StoreError(.notFound, "no model named \"m\""), "no model named \"m\"", .notFound),
            (StoreError(.exists, "a model named \"m\" exists"), "a model named \"m\" exists", .exists),
            (ClusterError(.exists, "a model named \"m\" exists"), "a model named \"m\" exists", .exists),
            (ClusterError(.forbidden, "corpus /x is outside the corpus roots"), "corpus /x is outside the corpus roots", .forbidden),
            (ClusterError(.limit, "D is 9, above the coordinator's limit"), "D is 9, above the coordinator's limit", .limit),
            (ClusterError(.invalidArgument, "shard rows must be ≥ 1 (got 0)"), "invalid argument: shard rows must be ≥ 1 (got 0)", nil),
            (ClusterError.malformed("header does not start with \"CDBK\""), "malformed message: header does not start with \"CDBK\"", nil),
            (StoreError(.corrupt, "job 3: bad"), "corrupt value: job 3: bad", nil),
        ]
        for (error, message, code) in cases {
            #expect(FailureReport(replyingTo: error) == FailureReport(message: message, code: code), "\(error)")
        }
    }

    @Test func wireCodesKeepTheirSpellingsAndUnknownOnesCountAsNone() throws {
        #expect(ErrorReplyCode.allCases.map(\.rawValue) == ["not-found", "exists", "forbidden", "limit", "too-many-requests"])
        let decoder = JSONDecoder()
        let known = try decoder.decode(FailureReport.self, from: Data(#"{"message":"no job 5","code":"not-found"}"#.utf8))
        #expect(known == FailureReport(message: "no job 5", code: .notFound))
        let later = try decoder.decode(FailureReport.self, from: Data(#"{"message":"slow down","code":"rate-limited"}"#.utf8))
        #expect(later == FailureReport(message: "slow down"))
        #expect(String(decoding: try JSONEncoder().encode(known), as: UTF8.self).contains(#""code":"not-found""#))
    }

    @Test func theClientTurnsReplyCodesBackIntoErrors() {
        for code in ErrorReplyCode.allCases {
            let error = ClusterError(reply: FailureReport(message: "m", code: code), peer: "tcp://127.0.0.1:1")
            #expect(error.replyCode == code && error.message == "m" && error.peer == "tcp://127.0.0.1:1")
        }
        #expect(ClusterError(reply: FailureReport(message: "job 3 is still running"), peer: nil)
                == ClusterError(.rejected, "job 3 is still running"))
    }
}
