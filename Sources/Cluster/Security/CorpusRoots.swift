import ClusterProtocol
import Foundation

/// The directories a job's files (corpus, descriptors, index) must be inside, after
/// symbolic links and `..` are resolved (`realpath`).
public struct CorpusRoots: Sendable, Equatable {
    /// The roots, resolved.
    public let directories: [String]

    /// Resolves every directory; throws a `badFile` `ClusterError` for one that does not exist or is not
    /// a directory.
    public init(_ directories: [String]) throws {
        self.directories = try directories.map { directory in
            let resolved = try Self.resolve(directory, what: "corpus root")
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: resolved, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ClusterError(.badFile, "corpus root \(directory) is not a directory")
            }
            return resolved
        }
    }

    /// `path` resolved, if it is inside a root; throws a `forbidden` `ClusterError` naming it otherwise.
    /// A path that cannot be resolved (it does not exist) is refused as outside the roots
    /// unless its text alone puts it inside one, so that refusals do not tell which files
    /// exist outside.
    @discardableResult
    public func check(_ path: String, what: String) throws -> String {
        let resolved: String
        do {
            resolved = try Self.resolve(path, what: what)
        } catch {
            guard contains(URL(fileURLWithPath: path).standardizedFileURL.path) else { throw refusal(path, what: what) }
            throw error
        }
        guard contains(resolved) else { throw refusal(path, what: what, resolved: resolved) }
        return resolved
    }

    private func contains(_ path: String) -> Bool {
        directories.contains { root in path == root || path.hasPrefix(root.hasSuffix("/") ? root : root + "/") }
    }

    private func refusal(_ path: String, what: String, resolved: String? = nil) -> ClusterError {
        let shown = resolved.map { $0 == path ? path : "\(path) (\($0))" } ?? path
        return ClusterError(.forbidden, "\(what) \(shown) is outside the corpus roots "
                            + "(\(directories.joined(separator: ", "))): refused")
    }

    private static func resolve(_ path: String, what: String) throws -> String {
        guard let resolved = realpath(path, nil) else {
            throw ClusterError(.badFile, "\(what) \(path): \(String(cString: strerror(errno)))")
        }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
