import Foundation

/// A fresh directory under the system's temporary directory, removed with everything in it
/// when the value is released.
public final class TemporaryDirectory: Sendable {
    public let path: String

    /// Creates `codebook-test-<UUID>` in the temporary directory.
    public init() throws {
        path = NSTemporaryDirectory() + "codebook-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A path inside this directory (not created).
    public func file(_ name: String) -> String { "\(path)/\(name)" }

    /// Writes `bytes` to `name` and returns its path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) -> String {
        let target = file(name)
        _ = FileManager.default.createFile(atPath: target, contents: Data(bytes))
        return target
    }

    /// Writes `text` (UTF-8) to `name` and returns its path.
    @discardableResult
    public func write(_ name: String, text: String) -> String { write(name, Array(text.utf8)) }

    /// The bytes of `name`, empty if it cannot be read.
    public func read(_ name: String) -> [UInt8] {
        [UInt8](FileManager.default.contents(atPath: file(name)) ?? Data())
    }

    /// The names of the entries in this directory, sorted.
    public func names() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
