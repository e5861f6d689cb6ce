import ClusterProtocol
import Descriptors
import TestSupport
import Testing

/// The PCA pipeline from the command line, on the embedded cluster: descriptor PCA, a
/// codebook and VLAD through it, whitening of the VLAD set, search with projected queries,
/// export and import of a PCA model.
@Suite struct PCACommandTests {
    @Test(.timeLimit(.minutes(5))) func descriptorPCAWhiteningAndSearchFromTheCommandLine() throws {
        let scratch = try TemporaryDirectory()
        let corpus = scratch.file("corpus.npy"), index = scratch.file("images.tsv"), store = scratch.file("store")
        func run(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> CommandRunner.Outcome {
            let storeAccess = ["models", "search", "export", "import", "transform-set"].contains(arguments[0])
            let outcome = try CommandRunner.run(arguments + ["--store", store] + (storeAccess ? [] : ["--local-workers", "2"]))
            #expect(outcome.status == 0, "\(arguments): \(outcome.error)", sourceLocation: sourceLocation)
            return outcome
        }
        _ = try CommandRunner.run(["generate", "--n", "3000", "--dim", "16", "--clusters", "5", "--seed", "3",
                                   "--out", corpus, "--index", index, "--image-rows", "100"])
        var outcome = try run(["train", "pca", "--corpus", corpus, "--dimensions", "6", "--name", "p", "--out", scratch.file("p"),
                               "--shard-rows", "512"])
        #expect(outcome.output.contains("kept 6 of 16 components"), "\(outcome.output)")
        let components = try NpyFile.readFloat32(path: scratch.file("p_components.npy"))
        #expect(components.rows == 6 && components.columns == 16)
        _ = try run(["train", "kmeans", "--corpus", corpus, "--k", "4", "--iterations", "3", "--pca", "p", "--name", "km",
                     "--out", scratch.file("centres.npy")])
        #expect(try NpyFile.readFloat32(path: scratch.file("centres.npy")).columns == 6)

        // Encoding with the codebook needs its PCA.
        let refused = try CommandRunner.run(["encode", "vlad", "--model", "km", "--set", "v", "--descriptors", corpus,
                                             "--index", index, "--store", store, "--local-workers", "1"])
        #expect(refused.status != 0)
        #expect(refused.error.contains("model \"km\" was trained on descriptors projected by PCA model \"p\""), "\(refused.error)")
        _ = try run(["encode", "vlad", "--model", "km", "--pca", "p", "--set", "v", "--descriptors", corpus, "--index", index])

        outcome = try run(["train", "pca", "--set", "v", "--dimensions", "5", "--whiten", "--name", "w"])
        _ = try run(["encode", "vlad", "--model", "km", "--pca", "p", "--whiten-with", "w", "--set", "vw",
                     "--descriptors", corpus, "--index", index])
        outcome = try run(["models"])
        #expect(outcome.output.contains("  p  pca  D'=6  D=16  trained"), "\(outcome.output)")
        #expect(outcome.output.contains("  w  pca  D'=5  D=24  whitening  trained"), "\(outcome.output)")
        #expect(outcome.output.contains("  km  kmeans  K=4  D=6  through PCA p  trained"), "\(outcome.output)")
        outcome = try run(["search", "vw", "--queries", "v", "--pca", "w", "--top", "1", "--format", "tsv"])
        let lines = outcome.output.split(separator: "\n").dropFirst()
        #expect(lines.count == 30 && lines.allSatisfy { $0.split(separator: "\t")[0] == $0.split(separator: "\t")[2] },
                "each image finds itself first: \(outcome.output)")

        // The same whitened vectors without encoding again.
        outcome = try run(["transform-set", "v", "--pca", "w", "--into", "vt"])
        #expect(outcome.output.contains("stored set vt: the vectors of set v through PCA model w, 5 values each"), "\(outcome.output)")
        _ = try run(["export", "set", "vw", "--out", scratch.file("vw.npy")])
        _ = try run(["export", "set", "vt", "--out", scratch.file("vt.npy")])
        let (encoded, transformed) = (try NpyFile.readFloat32(path: scratch.file("vw.npy")), try NpyFile.readFloat32(path: scratch.file("vt.npy")))
        #expect(encoded.rows == 30 && encoded.values.map(\.bitPattern) == transformed.values.map(\.bitPattern))
        let exists = try CommandRunner.run(["transform-set", "v", "--pca", "w", "--into", "vt", "--store", store])
        #expect(exists.status != 0 && exists.error.contains("set \"vt\" exists already"), "\(exists.error)")

        // Export, import under another name, export again: the same files.
        _ = try run(["export", "model", "w", "--out", scratch.file("w")])
        _ = try run(["import", "model", "w2", "--pca", scratch.file("w"), "--whiten"])
        _ = try run(["export", "model", "w2", "--out", scratch.file("w2")])
        for part in ["mean", "components", "eigenvalues"] {
            let first = try NpyFile.readFloat32(path: scratch.file("w_\(part).npy"))
            let second = try NpyFile.readFloat32(path: scratch.file("w2_\(part).npy"))
            #expect(first.values.map(\.bitPattern) == second.values.map(\.bitPattern) && first.rows == second.rows, "\(part)")
        }
    }
}
