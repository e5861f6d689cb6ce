import Foundation

/// The built `codebook` binary next to the test bundle (SwiftPM builds it first when the
/// test target depends on it): the first of the bundle's ancestor directories that holds it.
public let codebookExecutable: URL = {
    var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<5 {
        let candidate = directory.appendingPathComponent("codebook")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        directory = directory.deletingLastPathComponent()
    }
    fatalError("codebook executable not found near \(CommandLine.arguments[0])")
}()
