import Descriptors
import Foundation
import TestSupport
import Testing
import ZeroMQ

/// Small synthetic corpora, written once per process and shared by the tests that only read them.
enum Corpora {
    private static let directory: String = {
        let path = NSTemporaryDirectory() + "codebook-cluster-corpora-\(getpid())"
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()
    private static let lock = NSLock()

    /// `rows`×`dimension` float32 rows drawn from `clusters` Gaussians (.npy).
    static func path(rows: Int, dimension: Int, clusters: Int = 8, seed: UInt64 = 7) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        let path = "\(directory)/corpus-\(rows)x\(dimension)-\(clusters)-\(seed).npy"
        if !FileManager.default.fileExists(atPath: path) {
            let partial = path + ".partial.npy"
            try SyntheticCorpus(rows: rows, dimension: dimension, clusters: clusters, seed: seed).write(to: partial)
            try FileManager.default.moveItem(atPath: partial, toPath: path)
        }
        return path
    }
}

/// Waits for `condition`, checking every 50 ms, for at most `timeout` seconds. Sleeps without
/// holding a thread of the cooperative pool (2 threads on 2 cores): in-process coordinators
/// run their jobs as tasks on that pool.
@discardableResult
func waitUntil(timeout: Double, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return try condition()
}

/// A TCP port on 127.0.0.1 that was free a moment ago (a throwaway ZeroMQ socket bound to
/// port 0, then closed). Another process may take it meanwhile: callers retry on bind failures.
func freeLoopbackPort() throws -> Int {
    let context = try ZeroMQContext()
    let port: Int
    do {
        let socket = try Socket(.router, context: context)
        try socket.setLinger(.zero)
        try socket.bind("tcp://127.0.0.1:*")
        let endpoint = try socket.lastEndpoint
        guard let text = endpoint.split(separator: ":").last, let value = Int(text) else {
            throw ClusterTestError("cannot read the port of \(endpoint)")
        }
        port = value
    }
    try context.shutdown()
    return port
}

struct ClusterTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}


// MARK: Child processes

/// One `codebook` process, its stdout and stderr captured to a log file.
final class ChildProcess: @unchecked Sendable {
    // @unchecked: `process` is started once in init; the rest are immutable.
    let name: String
    let arguments: [String]
    let logPath: String
    let process = Process()

    init(name: String, arguments: [String], logDirectory: String) throws {
        self.name = name
        self.arguments = arguments
        logPath = "\(logDirectory)/\(name).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = codebookExecutable
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        // Each test's processes run in its own directory: whatever they keep there (a
        // coordinator's default store, say) is theirs alone.
        process.currentDirectoryURL = URL(fileURLWithPath: logDirectory)
        try process.run()
        try log.close()
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }

    /// Sends `signal` if the process still runs.
    func kill(_ signal: Int32 = SIGKILL) {
        if process.isRunning { _ = Foundation.kill(process.processIdentifier, signal) }
    }

    /// The exit status, or nil if it still runs after `timeout` seconds.
    func waitForExit(timeout: Double) async -> Int32? {
        guard await waitUntil(timeout: timeout, { !process.isRunning }) else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }
}

/// The processes of one multi-process test: started here, killed in `shutdown()` (call it
/// from a `defer`), and their logs printed when the test fails.
final class ProcessCluster: @unchecked Sendable {
    // @unchecked: used from the test's task only.
    let scratch: TemporaryDirectory
    private(set) var children: [ChildProcess] = []
    private(set) var workersEndpoint = ""
    private(set) var clientsEndpoint = ""
    private var failed = false

    init() throws { scratch = try TemporaryDirectory() }

    func start(_ name: String, _ arguments: [String]) throws -> ChildProcess {
        let child = try ChildProcess(name: name, arguments: arguments, logDirectory: scratch.path)
        children.append(child)
        return child
    }

    /// Starts a coordinator on two free loopback ports, retrying if a port was taken meanwhile;
    /// `options` go after the endpoints.
    @discardableResult
    func startCoordinator(_ options: [String] = []) async throws -> ChildProcess {
        for attempt in 0..<5 {
            let workersPort = try freeLoopbackPort(), clientsPort = try freeLoopbackPort()
            guard workersPort != clientsPort else { continue }
            let workers = "tcp://127.0.0.1:\(workersPort)", clients = "tcp://127.0.0.1:\(clientsPort)"
            let coordinator = try start("coordinator-\(attempt)", ["coordinator", "--workers-endpoint", workers,
                                                                   "--clients-endpoint", clients] + options)
            let ready = await waitUntil(timeout: 20) { coordinator.log.contains("coordinator ready") || !coordinator.isRunning }
            if ready && coordinator.isRunning && coordinator.log.contains("coordinator ready") {
                workersEndpoint = workers
                clientsEndpoint = clients
                return coordinator
            }
            coordinator.kill()
        }
        throw ClusterTestError("no coordinator could bind two free loopback ports")
    }

    @discardableResult
    func startWorker(_ name: String, threads: Int = 1, options: [String] = []) throws -> ChildProcess {
        try start(name, ["worker", "--connect", workersEndpoint, "--threads", "\(threads)", "--name", name] + options)
    }

    /// Runs `codebook arguments` to its end (at most `timeout` seconds; killed after that).
    func run(_ name: String, _ arguments: [String], timeout: Double = 20) async throws -> (status: Int32, log: String) {
        let child = try start(name, arguments)
        guard let status = await child.waitForExit(timeout: timeout) else {
            child.kill()
            throw ClusterTestError("\(name) did not finish within \(timeout) s")
        }
        return (status, child.log)
    }

    /// Every process's command line and log.
    var logs: String {
        children.map { child in
            "===== \(child.name) (pid \(child.pid)): codebook \(child.arguments.joined(separator: " "))\n\(child.log)"
        }.joined(separator: "\n")
    }

    /// Records an issue with every log attached if `condition` is false.
    func check(_ condition: Bool, _ what: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) {
        guard !condition else { return }
        failed = true
        Issue.record("\(what())\n\(logs)", sourceLocation: sourceLocation)
    }

    /// Throws (with the logs recorded) if `condition` is false.
    func require(_ condition: Bool, _ what: @autoclosure () -> String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard !condition else { return }
        check(false, what(), sourceLocation: sourceLocation)
        throw ClusterTestError(what())
    }

    /// Runs `body`; on a thrown error records it with every log.
    func run(_ body: (ProcessCluster) async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        defer { shutdown() }
        do {
            try await body(self)
        } catch let error as ClusterTestError where failed {
            _ = error // already recorded with the logs
        } catch {
            Issue.record("\(error)\n\(logs)", sourceLocation: sourceLocation)
        }
        if failed { print(logs) }
    }

    /// Kills every child still running and reaps it.
    func shutdown() {
        for child in children { child.kill() }
        // SIGKILL is not ignored: each exits at once, and is reaped here.
        for child in children where child.process.processIdentifier > 0 { child.process.waitUntilExit() }
    }

    deinit { shutdown() }
}
