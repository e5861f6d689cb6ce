import ArgumentParser
import Cluster
import ClusterProtocol
import Foundation
import ZeroMQ

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "CurveZMQ keys for the coordinator, workers and clients.", subcommands: [GenerateKeys.self])
}

struct GenerateKeys: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Write a new key pair: NAME.secret (mode 0600) and NAME.public (the public key, one line).")

    @Option(help: "NAME: the files are NAME.secret and NAME.public; neither may exist.") var out: String

    func run() throws {
        let pair = try CurveKeyPair.generate()
        let paths = try KeyFiles.write(pair, name: out)
        print("wrote \(paths.secret) (keep it private) and \(paths.public): \(pair.publicKey.z85)")
    }
}

/// The key options of a worker or a client: its own key pair and the coordinator's public
/// key, for a coordinator that requires CURVE.
struct ClientKeyOptions: ParsableArguments {
    @Option(help: ArgumentHelp("This process's key pair (a .secret file of `codebook keys generate`; default: $CODEBOOK_SECRET_KEY).",
                               valueName: "file"))
    var secretKey: String?
    @Option(help: ArgumentHelp("The coordinator's public key (its .public file; default: $CODEBOOK_COORDINATOR_KEY).",
                               valueName: "file"))
    var coordinatorKey: String?

    /// The keys to connect with, from the options or the environment; `nil` if neither names any.
    func security() throws -> ClientSecurity? {
        let environment = ProcessInfo.processInfo.environment
        let secret = secretKey ?? environment["CODEBOOK_SECRET_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        let coordinator = coordinatorKey ?? environment["CODEBOOK_COORDINATOR_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        switch (secret, coordinator) {
        case (nil, nil):
            return nil
        case (let secret?, let coordinator?):
            return ClientSecurity(keyPair: try KeyFiles.readKeyPair(path: secret),
                                  coordinatorKey: try KeyFiles.readPublicKey(path: coordinator))
        default:
            throw ValidationError("--secret-key and --coordinator-key (or $CODEBOOK_SECRET_KEY and $CODEBOOK_COORDINATOR_KEY) go together")
        }
    }
}

/// A coordinator's security options: CURVE and its allow-lists, or the explicit choice of
/// none beyond loopback; and the directories jobs may read.
struct CoordinatorSecurityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The coordinator's key pair (a .secret file of `codebook keys generate`): turns CURVE on for both endpoints.",
                               valueName: "file"))
    var secretKey: String?
    @Option(help: ArgumentHelp("With --secret-key: the worker public keys admitted, one per line (# comments). Re-read on SIGHUP.",
                               valueName: "file"))
    var workerKeys: String?
    @Option(help: ArgumentHelp("With --secret-key: the client public keys admitted, each followed by its role, read or write. Re-read on SIGHUP.",
                               valueName: "file"))
    var clientKeys: String?
    @Flag(help: "Allow binding beyond loopback without --secret-key: no authentication, no encryption.")
    var insecure = false
    @Option(help: ArgumentHelp("Jobs may read corpora, descriptors and indexes only inside this directory (repeatable; default: anywhere).",
                               valueName: "dir"))
    var corpusRoot: [String] = []

    func validate() throws {
        guard (secretKey == nil) == (workerKeys == nil), (secretKey == nil) == (clientKeys == nil) else {
            throw ValidationError("--secret-key, --worker-keys and --client-keys go together (an empty list admits nobody)")
        }
        guard !(insecure && secretKey != nil) else { throw ValidationError("--insecure and --secret-key exclude each other") }
    }

    /// CURVE settings from the key files, `nil` without `--secret-key`; refuses an endpoint
    /// beyond loopback without keys unless `--insecure`.
    func security(binding endpoints: [String]) throws -> CoordinatorSecurity? {
        guard let secretKey, let workerKeys, let clientKeys else {
            if !insecure, let open = endpoints.first(where: { !isLoopbackEndpoint($0) }) {
                throw ValidationError("refusing to bind \(open) beyond loopback without authentication: give --secret-key, "
                                      + "--worker-keys and --client-keys (CURVE), or --insecure to run unprotected")
            }
            return nil
        }
        return CoordinatorSecurity(keyPair: try KeyFiles.readKeyPair(path: secretKey), workerKeysFile: workerKeys,
                                   clientKeysFile: clientKeys)
    }

    /// The corpus roots, resolved; `nil` when none is given.
    var roots: CorpusRoots? {
        get throws { corpusRoot.isEmpty ? nil : try CorpusRoots(corpusRoot) }
    }
}
