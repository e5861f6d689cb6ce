import ArgumentParser
import Cluster
import ClusterProtocol
import Foundation
import ZeroMQ

struct ProgressCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "progress", abstract: "Show how far a job is: its state, iterations, images or vectors done, and running pass.",
        discussion: "Any job a coordinator keeps: training, encoding, extraction or transform (status lists them). With --follow, "
            + "new iterations and counts are printed as they come until the job ends; the exit status is then 1 if it failed "
            + "or was cancelled.")

    @Option(help: "The job's id.") var job: UInt64
    @Option(help: "The coordinator's clients endpoint.") var coordinator: String = "tcp://127.0.0.1:5556"
    @OptionGroup var keys: ClientKeyOptions
    @Flag(help: "Follow the job until it ends.") var follow = false

    func run() async throws {
        let client = try ClusterClient(context: try ZeroMQContext(), endpoint: coordinator, timeout: .seconds(5),
                                       security: try keys.security())
        guard follow else { return print(Self.render(try client.progress(of: job, since: 0)), terminator: "") }
        var first = true, lastCount: String?, lastNote: String?, lastPass: Int?
        var lastReport = ContinuousClock.now
        let final = try await client.wait(for: job, every: .milliseconds(250)) { progress in
            if first { progressLine(Self.heading(progress)) }
            progress.iterations.forEach { progressLine(ProgressText.iteration($0)) }
            if let pass = progress.pass, pass.pass != lastPass { progressLine(Self.line(pass)) }
            lastPass = progress.pass?.pass ?? lastPass
            if progress.state == .running, let note = progress.message, note != lastNote { progressLine("  \(PeerText.escaped(note))") }
            lastNote = progress.message
            let count = Self.count(progress)
            if !first, let count, count != lastCount, ContinuousClock.now - lastReport >= .seconds(1) {
                progressLine("  \(count)")
                (lastCount, lastReport) = (count, .now)
            }
            first = false
        }
        print("job \(job) succeeded" + (Self.count(final).map { ": \($0)" } ?? ""))
    }

    /// A job's progress, one item a line: its heading, its iterations, its running pass and
    /// the images an extraction skipped.
    static func render(_ progress: JobProgress) -> String {
        var lines = [heading(progress)]
        lines += progress.iterations.map(ProgressText.iteration)
        if let pass = progress.pass { lines.append(line(pass)) }
        // Paths and reasons are other clients' and workers' text: never terminal codes.
        lines += (progress.skipped ?? []).map { "  skipped \(PeerText.escaped($0.path)): \(PeerText.escaped($0.message))" }
        return lines.map { $0 + "\n" }.joined()
    }

    /// `job 7  transform  running  1280/20000 vectors  (message)`.
    static func heading(_ progress: JobProgress) -> String {
        "job \(progress.job)  \(PeerText.escaped(progress.kind ?? "job"))  \(progress.state.rawValue)"
            + (count(progress).map { "  \($0)" } ?? "") + (progress.message.map { "  (\(PeerText.escaped($0)))" } ?? "")
    }

    private static func count(_ progress: JobProgress) -> String? {
        ProgressText.done(kind: progress.kind, imagesDone: progress.imagesDone, imagesTotal: progress.imagesTotal,
                          descriptors: progress.descriptors)
    }

    private static func line(_ pass: PassProgress) -> String {
        String(format: "  pass %d (%@): %d/%d shards, %d/%d rows, %.1f s", pass.pass, PeerText.escaped(pass.kind), pass.shardsDone,
               pass.shards, pass.rowsDone, pass.rows, pass.seconds)
    }
}
