import Cluster
import ClusterProtocol
import Foundation
import TestSupport
import Testing
@testable import codebook

/// What a new user stumbles on: a mistake's message names the fix and the command it is
/// about, and a search can show the images its keys came from.
@Suite struct UserJourneyTests {
    /// A mistake found while the command runs (not while its options are parsed) points at
    /// that command's help, not at `codebook`'s usage line, which reads as if the
    /// subcommand were unknown.
    @Test(.timeLimit(.minutes(1))) func aMistakeFoundWhileRunningPointsAtItsCommandsHelp() throws {
        let scratch = try TemporaryDirectory()
        let cases: [([String], String, String)] = [
            (["models", "--store", scratch.file("none")], "no store at \(scratch.file("none"))", "codebook models"),
            (["export", "set", "S", "--out", scratch.file("s.npy"), "--store", scratch.file("none")], "no store at", "codebook export set"),
            (["worker", "--threads", "0"], "--threads must be 1…1024 (got 0)", "codebook worker"),
        ]
        for (arguments, message, command) in cases {
            let outcome = try CommandRunner.run(arguments, timeout: 30)
            #expect(outcome.status == 64, "\(arguments): \(outcome.error)")
            #expect(outcome.error.hasPrefix("Error: \(message)") && outcome.error.hasSuffix("\nSee '\(command) --help' for its options.\n")
                    && !outcome.error.contains("Usage: codebook <subcommand>"), "\(arguments): \(outcome.error)")
        }
    }

    @Test func endpointsOfTheWrongFormAreNamed() throws {
        for endpoint in ["tcp://127.0.0.1:5556", "tcp://*:5555", "tcp://[::1]:5556", "tcp://host.example:1", "ipc:///tmp/x", "inproc://a"] {
            #expect(throws: Never.self, "\(endpoint)") { try checkEndpointForm(endpoint) }
        }
        for endpoint in ["127.0.0.1:5556", "tcp://127.0.0.1", "tcp://:5556", "tcp://host:port", "tcp://host:70000", "udp://host:1",
                         "ipc://", "", "tcp://host:５"] {
            #expect(throws: ClusterError.self, "\(endpoint)") { try checkEndpointForm(endpoint) }
        }
    }

    /// `127.0.0.1:5556` without `tcp://`: a client said "zmq_connect …: Invalid argument", a
    /// worker retried it for ever, and a coordinator without keys refused it as "beyond
    /// loopback".
    @Test(.timeLimit(.minutes(1))) func anEndpointWithoutItsTransportIsRefusedAtOnce() throws {
        let expected = "\"127.0.0.1:1\" is not a ZeroMQ endpoint: expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        let cases: [([String], String)] = [
            (["status", "--coordinator", "127.0.0.1:1"], "Error: \(expected)"),
            (["search", "S", "--key", "a", "--coordinator", "127.0.0.1:1"], "Error: \(expected)"),
            (["worker", "--connect", "127.0.0.1:1"], "Error: --connect: \(expected)"),
            (["coordinator", "--clients-endpoint", "127.0.0.1:1"], "Error: --clients-endpoint: \(expected)"),
        ]
        for (arguments, message) in cases {
            let outcome = try CommandRunner.run(arguments, timeout: 20)
            #expect(outcome.status == 1 || outcome.status == 64, "\(arguments): \(outcome.status) \(outcome.error)")
            #expect(outcome.error.hasPrefix(message), "\(arguments): \(outcome.error)")
        }
    }

    /// Encoding and extraction jobs have no iterations: status does not say "0 iteration(s)".
    @Test func statusCountsIterationsOfTrainingJobsOnly() {
        let status = ClusterStatus(workers: [], passes: [], droppedResults: 0, rejectedResults: 0, jobs: [
            JobSummary(job: 3, kind: "vlad", corpus: "/d.npy", state: .succeeded, iterations: 0),
            JobSummary(job: 2, kind: "extract", corpus: "/e.npy", state: .running, iterations: 0),
            JobSummary(job: 1, kind: "kmeans", corpus: "/c.npy", state: .running, iterations: 0),
        ])
        #expect(StatusCommand.render(status) == """
            workers: 0
            jobs: 3
              3  vlad  succeeded  /d.npy
              2  extract  running  /e.npy
              1  kmeans  running  0 iteration(s)  /c.npy

            """)
    }

    /// `search --images DIR` (or `--image-list`) shows each neighbour's file, as `extract`
    /// named the keys; a key the listing lacks gets none.
    @Test(.timeLimit(.minutes(5))) func searchShowsTheNeighboursImageFiles() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy"), index = scratch.file("images.tsv"), store = scratch.file("store")
        let photographs = scratch.file("photographs")
        func run(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandRunner.Outcome {
            let outcome = try CommandRunner.run(arguments + ["--store", store])
            #expect(outcome.status == 0, "\(arguments): \(outcome.error)", sourceLocation: sourceLocation)
            return outcome
        }
        _ = try CommandRunner.run(["generate", "--n", "600", "--dim", "8", "--clusters", "3", "--seed", "5",
                                   "--out", corpus, "--index", index, "--image-rows", "100"])
        _ = try run(["train", "kmeans", "--corpus", corpus, "--k", "3", "--iterations", "2", "--name", "km", "--local-workers", "1"])
        _ = try run(["encode", "vlad", "--model", "km", "--set", "v", "--descriptors", corpus, "--index", index, "--local-workers", "1"])
        // Only names are read: the files need no pixels. image-000005 has no file.
        try FileManager.default.createDirectory(atPath: photographs, withIntermediateDirectories: true)
        for image in 0..<5 { _ = FileManager.default.createFile(atPath: "\(photographs)/image-00000\(image).JPG", contents: Data()) }

        var outcome = try run(["search", "v", "--key", "image-000002", "--top", "6", "--images", photographs])
        let ranked = outcome.output.split(separator: "\n").dropFirst()
        #expect(ranked.count == 6 && ranked.first?.hasSuffix("  image-000002  \(photographs)/image-000002.JPG") == true, "\(outcome.output)")
        #expect(ranked.contains { $0.hasSuffix("  image-000005") }, "\(outcome.output)")

        let list = scratch.file("list.txt")
        try "image-000002\tshots/two.png\n".write(toFile: list, atomically: true, encoding: .utf8)
        outcome = try run(["search", "v", "--key", "image-000002", "--top", "2", "--image-list", list, "--format", "tsv"])
        let rows = outcome.output.split(separator: "\n", omittingEmptySubsequences: false).map { $0.split(separator: "\t", omittingEmptySubsequences: false) }
        #expect(rows.first == ["query", "rank", "key", "score", "path"], "\(outcome.output)")
        #expect(rows.dropFirst().first.map { $0[2] == "image-000002" && $0[4] == "\(scratch.path)/shots/two.png" } == true, "\(outcome.output)")
        #expect(rows.dropFirst(2).first.map { $0.count == 5 && $0[4].isEmpty } == true, "\(outcome.output)")

        outcome = try run(["search", "v", "--key", "image-000002", "--top", "1", "--images", photographs, "--format", "json"])
        #expect(outcome.output.contains("\"path\":\"\(photographs.replacingOccurrences(of: "/", with: "\\/"))\\/image-000002.JPG\""),
                "\(outcome.output)")
    }

    /// `search --image FILE` extracts and encodes the image as the set's vectors were (here
    /// VLAD with flags, RootSIFT applied by the encoder, a descriptor PCA): an image of the set
    /// finds the same neighbours with the same scores, bit for bit, as its key does.
    @Test(.timeLimit(.minutes(5))) func searchByAnImageEqualsSearchByItsKey() throws {
        let scratch = try TemporaryDirectory()
        let folder = try TestImages.folder(in: scratch)
        let descriptors = scratch.file("d.npy"), index = scratch.file("i.tsv"), store = scratch.file("store")
        func run(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandRunner.Outcome {
            let outcome = try CommandRunner.run(arguments + ["--store", store])
            #expect(outcome.status == 0, "\(arguments): \(outcome.error)", sourceLocation: sourceLocation)
            return outcome
        }
        let extracted = try CommandRunner.run(["extract", "--images", folder, "--max-side", "128", "--out", descriptors, "--index", index])
        #expect(extracted.status == 0, "\(extracted.error)")
        _ = try run(["train", "pca", "--corpus", descriptors, "--root-sift", "--dimensions", "16", "--name", "p", "--local-workers", "1"])
        _ = try run(["train", "kmeans", "--corpus", descriptors, "--root-sift", "--pca", "p", "--k", "4", "--iterations", "3",
                     "--name", "km", "--local-workers", "1"])
        _ = try run(["encode", "vlad", "--model", "km", "--root-sift", "--pca", "p", "--set", "v", "--descriptors", descriptors,
                     "--index", index, "--square-root", "--normalize-components", "--local-workers", "1"])

        let byKey = try run(["search", "v", "--key", "photo-2", "--top", "5", "--format", "tsv"])
        let byImage = try run(["search", "v", "--image", "\(folder)/photo-2.png", "--max-side", "128", "--top", "5", "--format", "tsv"])
        func ranked(_ outcome: CommandRunner.Outcome) -> [String] {
            outcome.output.split(separator: "\n").dropFirst().map { $0.split(separator: "\t").dropFirst().joined(separator: "\t") }
        }
        #expect(ranked(byKey).count == 5 && ranked(byImage) == ranked(byKey), "\(byKey.output)\n\(byImage.output)")
        #expect(byImage.output.split(separator: "\n").dropFirst().allSatisfy { $0.hasPrefix("\(folder)/photo-2.png\t") })

        // Other extraction options give other descriptors: another vector, still the same image first.
        let otherSide = try run(["search", "v", "--image", "\(folder)/photo-2.png", "--max-side", "64", "--top", "5", "--format", "tsv"])
        #expect(ranked(otherSide) != ranked(byKey), "\(otherSide.output)")
        // The set holds this image's key, so the other options are seen and named; the same
        // options, or an image the set does not hold, give no warning.
        #expect(otherSide.error.contains("warning: set \"v\" holds image key \"photo-2\", but this image's vector is not the stored one"),
                "\(otherSide.error)")
        #expect(!byImage.error.contains("warning"), "\(byImage.error)")
        let copy = scratch.file("not-in-the-set.png")
        try FileManager.default.copyItem(atPath: "\(folder)/photo-2.png", toPath: copy)
        let notHeld = try run(["search", "v", "--image", copy, "--max-side", "64", "--top", "5", "--format", "tsv"])
        #expect(ranked(notHeld) == ranked(otherSide) && !notHeld.error.contains("warning"), "\(notHeld.error)")

        let notAnImage = try CommandRunner.run(["search", "v", "--image", "\(folder)/bad.jpg", "--store", store])
        #expect(notAnImage.status == 1 && notAnImage.error.contains("bad.jpg"), "\(notAnImage.error)")
        let withPCA = try CommandRunner.run(["search", "v", "--image", "\(folder)/photo-2.png", "--pca", "p", "--store", store])
        #expect(withPCA.status == 64 && withPCA.error.contains("an --image's is encoded as the set's were"), "\(withPCA.error)")
    }
}
