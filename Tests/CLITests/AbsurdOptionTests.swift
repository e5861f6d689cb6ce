import Foundation
import TestSupport
import Testing

/// Option values a careless user may type, which the command line used to take.
@Suite struct AbsurdOptionTests {
    /// 100,000,000 threads used to be started (the worker's, or each embedded worker's),
    /// until the machine ran out of processes.
    @Test func threadCountsAboveTheLimitAreRefused() throws {
        let scratch = try TemporaryDirectory()
        let cases: [[String]] = [
            ["worker", "--connect", "tcp://127.0.0.1:1", "--threads", "100000000"],
            ["train", "kmeans", "--corpus", scratch.file("c.npy"), "--k", "2", "--threads", "100000000", "--out", scratch.file("o.npy")],
            ["extract", "--images", scratch.path, "--out", scratch.file("d.npy"), "--index", scratch.file("d.tsv"), "--threads", "100000000"],
        ]
        for arguments in cases {
            let outcome = try CommandRunner.run(arguments, timeout: 60)
            #expect(outcome.status == 64 && outcome.error.contains("--threads must be 1…1024 (got 100000000)"),
                    "\(arguments): \(outcome.error)")
        }
    }

    /// `generate --n` of 2^63 − 1 rows used to stop on an overflow trap.
    @Test func aCorpusOfMoreBytesThanIntMaxIsRefused() throws {
        let scratch = try TemporaryDirectory()
        let outcome = try CommandRunner.run(["generate", "--n", "9223372036854775807", "--dim", "128", "--clusters", "2",
                                             "--seed", "1", "--out", scratch.file("g.npy")], timeout: 60)
        #expect(outcome.status == 1 && outcome.error.contains("9223372036854775807 rows of dimension 128 need more than Int.max bytes"),
                "\(outcome.error)")
    }
}
