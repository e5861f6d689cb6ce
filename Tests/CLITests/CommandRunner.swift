import Foundation
import TestSupport

/// Runs the built `codebook` executable and captures what it prints.
struct CommandRunner {
    struct Outcome {
        let status: Int32
        let output: String
        let error: String
    }

    /// Runs `codebook arguments`; kills it (SIGKILL) if it still runs after `timeout` seconds.
    static func run(_ arguments: [String], timeout: Double = 300) throws -> Outcome {
        let process = Process()
        process.executableURL = codebookExecutable
        process.arguments = arguments
        let output = Pipe(), error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let deadline = DispatchWorkItem { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout, execute: deadline)
        defer { deadline.cancel() }
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self),
                       error: String(decoding: err, as: UTF8.self))
    }
}
