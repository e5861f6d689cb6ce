import ClusterProtocol
import Cluster
import Storage
import Testing
@testable import codebook

/// Library errors name no flags; the command line maps their codes to exit codes and hints.
@Suite struct CommandFailureTests {
    @Test func codesBecomeExitCodesAndFlagHints() {
        let exists = "a model named \"m\" exists; pass --replace to overwrite it"
        let cases: [(any Error, Int32, String)] = [
            (ClusterError(.unanswered, "the coordinator at tcp://127.0.0.1:1 did not answer within 5 seconds"), 2,
             "the coordinator at tcp://127.0.0.1:1 did not answer within 5 seconds"),
            (ClusterError(.notFound, "no set named \"S\""), 1, "not found: no set named \"S\""),
            (StoreError(.notFound, "no model named \"m\""), 1, "not found: no model named \"m\""),
            (ClusterError(.exists, "a model named \"m\" exists"), 1, exists),
            (StoreError(.exists, "a model named \"m\" exists"), 1, exists),
        ]
        for (error, status, text) in cases {
            let failure = CommandFailure(error)
            #expect(failure?.exitCode == status && failure?.text == text, "\(error)")
        }
        #expect(CommandFailure(ClusterError(.rejected, "job 3 is still running")) == nil)
    }
}
