import ArgumentParser
import Cluster
import ClusterProtocol
import Descriptors
import Foundation
import Storage
import ZeroMQ

/// Where store queries go: a running coordinator, or the store's files directly.
struct StoreAccessOptions: ParsableArguments {
    @Option(help: "A running coordinator's clients endpoint (e.g. tcp://HOST:5556).") var coordinator: String?
    @Option(help: "Or open this store directly (read-only, as a RocksDB secondary instance; works while a coordinator writes).")
    var store: String = "codebook.db"
    @OptionGroup var keys: ClientKeyOptions

    /// A requester, and what to do when done with it.
    func requester() throws -> (any Requester, cleanup: () -> Void) {
        if let coordinator { return (try keys.client(of: coordinator), {}) }
        guard FileManager.default.fileExists(atPath: store) else {
            throw ValidationError("no store at \(store) (give --store PATH or --coordinator ENDPOINT)")
        }
        let secondary = NSTemporaryDirectory() + "codebook-reader-\(UUID().uuidString)"
        let opened = try CodebookStore(path: store, mode: .secondary(secondaryPath: secondary))
        try opened.catchUp()
        return (StoreQueries(store: opened), { try? FileManager.default.removeItem(atPath: secondary) })
    }
}

/// Where a write to the store goes: a running coordinator, or the store's files.
struct StoreWriteOptions: ParsableArguments {
    @Option(help: "A running coordinator's clients endpoint (e.g. tcp://HOST:5556).") var coordinator: String?
    @Option(help: "Or open this store directly, for writing (no coordinator may have it open).")
    var store: String = "codebook.db"
    @OptionGroup var keys: ClientKeyOptions

    /// `timeout`: how long a coordinator's reply is waited for.
    func requester(timeout: Duration = .seconds(10)) throws -> any Requester {
        if let coordinator { return try keys.client(of: coordinator, timeout: timeout) }
        return StoreQueries(store: try CodebookStore(path: store))
    }
}

extension ClientKeyOptions {
    /// A client of the coordinator at `endpoint`, with these keys.
    func client(of endpoint: String, timeout: Duration = .seconds(10)) throws -> ClusterClient {
        try ClusterClient(context: try ZeroMQContext(), endpoint: endpoint, timeout: timeout, security: try security())
    }
}

struct GetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Read one stored vector by key.")

    @Argument(help: "SET/KEY") var key: String
    @Option(help: "text (one value per line), json, or npy (with --out) (default: text).", transform: { try .parse($0) })
    var format: VectorFormat = .text
    @Option(help: "Write to this file instead of standard output.") var out: String?
    @OptionGroup var access: StoreAccessOptions

    func validate() throws {
        guard format != .npy || out != nil else { throw ValidationError("--format npy needs --out FILE") }
        guard key.contains("/") else { throw ValidationError("the key is SET/IMAGE_KEY") }
    }

    func run() throws {
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        let (entry, values) = try requester.get([key])[0]
        guard let values else { throw ExitCode(1) }
        switch format {
        case .npy:
            try NpyFile.write(path: out!, rows: 1, columns: values.count, values: values)
        case .json:
            struct Output: Encodable { let key: String; let encoding: String?; let model: String?; let flags: Int?; let values: [Float] }
            let json = try JSONEncoder().encode(Output(key: key, encoding: entry.encoding?.rawValue, model: entry.model,
                                                       flags: entry.flags, values: values))
            try emit(String(decoding: json, as: UTF8.self) + "\n")
        case .text:
            try emit(values.map { "\($0)" }.joined(separator: "\n") + "\n")
        }
    }

    private func emit(_ text: String) throws {
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List stored vector keys (SET/KEY) by prefix.")

    @Argument(help: "Key prefix, e.g. SET/ (default: everything).") var prefix: String = ""
    @Option(help: "At most this many keys.") var limit: Int = 100
    @OptionGroup var access: StoreAccessOptions

    func run() throws {
        guard limit >= 1 else { throw ValidationError("--limit must be at least 1") }
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        var after: String?, printed = 0
        while printed < limit {
            let page = try requester.list(prefix: prefix, after: after, limit: min(limit - printed, 10_000))
            page.keys.forEach { print($0) }
            printed += page.keys.count
            guard page.more, let last = page.keys.last else { break }
            after = last
        }
    }
}

struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List stored models and sets.")

    @OptionGroup var access: StoreAccessOptions

    func run() throws {
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        let catalog = try requester.catalog()
        print("models: \(catalog.models.count)")
        for model in catalog.models {
            let record = model.record
            let shape = record.kind == .pca ? "D'=\(record.k)  D=\(record.dimension)\(record.whiten == true ? "  whitening" : "")"
                                            : "K=\(record.k)  D=\(record.dimension)"
            print("  \(model.name)  \(record.kind.rawValue)  \(shape)  \(record.pca.map { "through PCA \($0.name)  " } ?? "")"
                  + "\(record.source)  \(record.created)")
        }
        print("sets: \(catalog.sets.count)")
        for set in catalog.sets {
            print("  \(set.name)  \(set.record.encoding.rawValue)  model \(set.record.model)  dimension \(set.record.dimension)  "
                  + "options [\(set.record.options.joined(separator: ", "))]  \(set.record.created)")
        }
        for (what, unreadable) in [("models", catalog.unreadableModels ?? []), ("sets", catalog.unreadableSets ?? [])] where !unreadable.isEmpty {
            print("unreadable \(what): \(unreadable.count)")
            for entry in unreadable { print("  \(entry.name)  \(entry.reason)") }
        }
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Export a stored model or set as .npy files.", subcommands: [ExportModel.self, ExportSet.self])
}

struct ExportModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "A model: CENTRES.npy, PREFIX_{means,variances,priors}.npy, or PREFIX_{mean,components,eigenvalues}.npy.")

    @Argument(help: "Model name.") var name: String
    @Option(help: "k-means: the .npy file; GMM and PCA: the prefix.") var out: String
    @OptionGroup var access: StoreAccessOptions

    func run() throws {
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        let (reply, message) = try requester.describe(DescribeRequest(model: name, values: true))
        guard let record = reply.model else { throw ExitCode(1) }
        let kd = record.k * record.dimension
        switch record.kind {
        case .kmeans:
            try NpyFile.write(path: out, rows: record.k, columns: record.dimension, values: try message.array(0, as: Float.self, count: kd))
            print("wrote \(record.k)×\(record.dimension) centres of \(name) to \(out)")
        case .gmm:
            let model = try GaussianMixtureModelFiles.model(from: message, k: record.k, dimension: record.dimension)
            print("wrote \(try ModelFiles.write(model, prefix: out).joined(separator: ", "))")
        case .pca:
            let projection = try PCAFiles.projection(from: message, k: record.k, dimension: record.dimension, whiten: record.whiten ?? false,
                                                     power: record.power)
            print("wrote \(try PCAFiles.write(projection, prefix: out).joined(separator: ", "))\(record.whiten == true ? " (a whitening PCA)" : "")")
        }
    }
}

struct ExportSet: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "A set: VECTORS.npy (N×dim) and VECTORS.keys.txt, in key order.")

    @Argument(help: "Set name.") var name: String
    @Option(help: "The .npy file; the keys go to the same path with .keys.txt.") var out: String
    @OptionGroup var access: StoreAccessOptions

    func run() throws {
        let (requester, cleanup) = try access.requester()
        defer { cleanup() }
        let (reply, _) = try requester.describe(DescribeRequest(set: name))
        guard let set = reply.set else { throw ExitCode(1) }
        let writer = try DescriptorWriter(path: out, dimension: set.dimension, format: .npy)
        var keys: [String] = [], after: String?
        do {
            while true {
                let page = try requester.list(prefix: "\(name)/", after: after, limit: 1024)
                for entry in try requester.get(page.keys) {
                    guard let values = entry.values, values.count == set.dimension else {
                        throw ClusterError(.conflict, "vector \(entry.entry.key) vanished or has \(entry.values?.count ?? 0) values")
                    }
                    try writer.append(values)
                    keys.append(String(entry.entry.key.dropFirst(name.count + 1)))
                }
                guard page.more, let last = page.keys.last else { break }
                after = last
            }
            try writer.finish()
        } catch {
            writer.cancel()
            throw error
        }
        let keysPath = (out.hasSuffix(".npy") ? String(out.dropLast(4)) : out) + ".keys.txt"
        try (keys.joined(separator: "\n") + (keys.isEmpty ? "" : "\n")).write(toFile: keysPath, atomically: true, encoding: .utf8)
        print("wrote \(keys.count) vectors of \(set.dimension) values to \(out) and their keys to \(keysPath)")
    }
}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "import", abstract: "Import a model trained elsewhere.",
                                                    subcommands: [ImportModel.self])
}

struct ImportModel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Store centres (k-means), means/variances/priors (GMM, e.g. VLFeat's) or a PCA under a name.")

    @Argument(help: "Model name.") var name: String
    @Option(help: "K×D centres (.npy).") var centres: String?
    @Option(help: "K×D means (.npy).") var means: String?
    @Option(help: "K×D variances σ² (.npy).") var variances: String?
    @Option(help: "K priors (.npy).") var priors: String?
    @Option(help: ArgumentHelp("A PCA: PREFIX_mean.npy (D), PREFIX_components.npy (D'×D, unit rows), PREFIX_eigenvalues.npy (D', non-increasing).",
                               valueName: "PREFIX"))
    var pca: String?
    @Flag(help: "With --pca: a whitening PCA.") var whiten = false
    @Flag(help: "Overwrite a model of the same name.") var replace = false
    @OptionGroup var access: StoreWriteOptions

    func validate() throws {
        let gmm = [means, variances, priors].compactMap { $0 }.count
        let given = (centres != nil ? 1 : 0) + (gmm > 0 ? 1 : 0) + (pca != nil ? 1 : 0)
        guard given == 1, gmm == 0 || gmm == 3 else {
            throw ValidationError("give --centres, or --means, --variances and --priors, or --pca PREFIX")
        }
        guard !whiten || pca != nil else { throw ValidationError("--whiten goes with --pca") }
    }

    func run() throws {
        let requester = try access.requester()
        let request: ImportRequest, arrays: [[UInt8]]
        if let centres {
            let codebook = try ModelFiles.codebook(centres: centres)
            request = ImportRequest(name: name, kind: .kmeans, k: codebook.k, dimension: codebook.dimension, replace: replace)
            arrays = [Frame.encode(codebook.centres)]
        } else if let pca {
            let projection = try PCAFiles.read(prefix: pca, whiten: whiten)
            request = ImportRequest(name: name, kind: .pca, k: projection.outputDimension, dimension: projection.inputDimension,
                                    replace: replace, whiten: whiten)
            arrays = projection.frames
        } else {
            let model = try ModelFiles.gaussianMixture(means: means!, variances: variances!, priors: priors!)
            request = ImportRequest(name: name, kind: .gmm, k: model.k, dimension: model.dimension, replace: replace)
            arrays = model.frames
        }
        let record = try requester.importModel(request, arrays: arrays)
        print("stored \(record.kind.rawValue) model \(name): K=\(record.k), D=\(record.dimension)")
    }
}
