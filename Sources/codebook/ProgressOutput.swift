import ArgumentParser
import Cluster
import ClusterProtocol
import Foundation

/// How `train` and `encode` (store mode) report a job: a live bar on a terminal, lines
/// off it, JSON objects for scripts, or only the final line.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object per line: each iteration, progress event and the final result.") var json = false
    @Flag(help: "Print only errors and the final line.") var quiet = false

    func validate() throws {
        guard !(json && quiet) else { throw ValidationError("--json and --quiet exclude each other") }
    }

    /// The display for this run: `--json`, `--quiet`, else a bar when standard output is a terminal.
    func display() -> ProgressDisplay {
        if json { return ProgressDisplay(.json) }
        if quiet { return ProgressDisplay(.quiet) }
        return ProgressDisplay(isatty(STDOUT_FILENO) == 1 ? .bar : .lines)
    }
}

/// Prints a job's progress in one of the `Mode`s. The bar is the last line of the terminal,
/// redrawn in place; lines printed above it (iterations, notes) clear it first.
final class ProgressDisplay {
    enum Mode { case bar, lines, json, quiet }

    let mode: Mode
    private var barShown = false
    /// The last pass reported as an event (JSON) or a line (a seeding pass, off a terminal).
    private var lastPass: (pass: Int, shardsDone: Int)?

    init(_ mode: Mode) { self.mode = mode }

    /// A line about the job (submitted, waiting for workers).
    func note(_ text: String) {
        switch mode {
        case .bar, .lines: line(text)
        case .json: emit(["event": "note", "message": text])
        case .quiet: break
        }
    }

    func iteration(_ record: IterationRecord) {
        switch mode {
        case .bar, .lines: line(ProgressText.iteration(record))
        case .json:
            emit(["event": "iteration", "phase": record.phase.rawValue, "iteration": record.iteration, "valuePerRow": record.valuePerRow,
                  "total": record.total, "rows": record.rows, "seconds": record.seconds, "repaired": record.repaired,
                  "smallest": record.smallest, "largest": record.largest, "skippedRows": record.skippedRows ?? 0,
                  "skippedDistances": record.skippedDistances ?? 0])
        case .quiet: break
        }
    }

    /// The running pass, as the coordinator last reported it.
    func pass(_ pass: PassProgress) {
        let seen = lastPass
        switch mode {
        case .bar:
            let bar = ProgressText.bar(pass, width: Self.terminalWidth())
            print("\r\u{1B}[K" + bar, terminator: "")
            fflush(nil)
            barShown = true
        case .lines:
            // Off a terminal, only the seeding passes get a line (iterations have theirs).
            if seen?.pass != pass.pass, let phase = ProgressText.seedingPhase(pass.kind) {
                line("  seeding: \(phase) pass over \(pass.rows) rows in \(pass.shards) shards")
            }
        case .json:
            guard seen?.pass != pass.pass || seen?.shardsDone != pass.shardsDone else { return }
            emit(["event": "pass", "pass": pass.pass, "kind": pass.kind, "phase": ProgressText.phase(pass.kind),
                  "shards": pass.shards, "shardsDone": pass.shardsDone, "rows": pass.rows, "rowsDone": pass.rowsDone,
                  "seconds": pass.seconds])
        case .quiet:
            break
        }
        lastPass = (pass.pass, pass.shardsDone)
    }

    /// An encoding job's images stored so far (off a terminal, at most once a second).
    func images(done: Int, total: Int, message: String?) {
        switch mode {
        case .lines: line("  \(done)/\(total) images stored" + (message.map { " (\($0))" } ?? ""))
        case .json: emit(["event": "images", "imagesDone": done, "imagesTotal": total])
        case .bar, .quiet: break
        }
    }

    /// Clears the bar; then the final line (as `{"event":"done","message":…}` with `--json`).
    func finish(_ text: String) {
        clearBar()
        if mode == .json { emit(["event": "done", "message": text]) } else { line(text) }
    }

    /// Clears the bar, if one is shown (before an error goes to standard error).
    func clearBar() {
        guard barShown else { return }
        print("\r\u{1B}[K", terminator: "")
        fflush(nil)
        barShown = false
    }

    private func line(_ text: String) {
        clearBar()
        progressLine(text)
    }

    private func emit(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        progressLine(String(decoding: data, as: UTF8.self))
    }

    /// Columns of the terminal on standard output (80 if unknown).
    static func terminalWidth() -> Int {
        var size = winsize()
        guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return 80 }
        return Int(size.ws_col)
    }
}

/// The texts of the progress display, as pure functions.
enum ProgressText {
    /// One line per iteration.
    static func iteration(_ record: IterationRecord) -> String {
        if record.phase == .seeding {
            // k-means‖: a sampling round (or the weighting pass after the last), its cost and the candidates kept.
            return String(format: "seeding %2d  cost/row %.6g  %.3f s  candidates %.0f",
                          record.iteration, record.valuePerRow, record.seconds, record.largest)
        }
        if record.phase == .kmeans {
            let skipped = Double(record.skippedRows ?? 0) / Double(max(record.rows, 1))
            return String(format: "k-means %3d  objective/row %.6g  %.3f s  clusters %.0f..%.0f  empty repaired %d  skipped %.0f%% (distances %.0f%%)",
                          record.iteration, record.valuePerRow, record.seconds, record.smallest, record.largest, record.repaired,
                          100 * skipped, 100 * (record.skippedDistances ?? 0))
        }
        if record.phase == .pca {
            // A PCA's one record: the kept eigenvalues' sum, smallest and largest.
            return String(format: "PCA of %d rows  eigenvalue sum %.6g  %.3f s  eigenvalues %.3g..%.3g",
                          record.rows, record.total, record.seconds, record.smallest, record.largest)
        }
        return String(format: "EM %3d  log-likelihood/row %.6f  %.3f s  priors %.3g..%.3g  empty repaired %d",
                      record.iteration, record.valuePerRow, record.seconds, record.smallest, record.largest, record.repaired)
    }

    /// The seeding phase a pass kind belongs to, or nil for an iteration's or an encoding pass.
    static func seedingPhase(_ kind: String) -> String? {
        switch PassDescription.Kind(rawValue: kind) {
        case .sample?: "k-means++ sample"
        case .moments?: "moments"
        case .kmeansParallelRound?: "k-means‖ round"
        default: nil
        }
    }

    /// What a pass of `kind` is doing, for people.
    static func phase(_ kind: String) -> String {
        if let seeding = seedingPhase(kind) { return "seeding (\(seeding))" }
        switch PassDescription.Kind(rawValue: kind) {
        case .kmeansAssignment?: return "k-means"
        case .gaussianExpectation?: return "EM"
        case .encodeVLAD?, .encodeFisher?: return "encoding"
        default: return kind
        }
    }

    /// `phase [#####.....] done/total shards  rate rows/s  ETA t`, fitted to `width` columns:
    /// the bar takes what the text leaves (at least 10 columns), and the line is cut to `width`.
    static func bar(_ pass: PassProgress, width: Int) -> String {
        let rate = pass.seconds > 0 ? Double(pass.rowsDone) / pass.seconds : 0
        let eta = rate > 0 ? Double(max(0, pass.rows - pass.rowsDone)) / rate : nil
        let unit = pass.kind.hasPrefix("encode") ? "images" : "rows"
        let head = "\(phase(pass.kind)) "
        let tail = " \(pass.shardsDone)/\(pass.shards) shards  \(count(rate)) \(unit)/s  ETA \(duration(eta))"
        let barWidth = max(10, width - head.count - tail.count - 2)
        let fraction = pass.shards > 0 ? min(1, Double(pass.shardsDone) / Double(pass.shards)) : 0
        let filled = Int((fraction * Double(barWidth)).rounded(.down))
        let line = head + "[" + String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled) + "]" + tail
        return String(line.prefix(max(0, width)))
    }

    /// How much of a job is done: `1280/20000 vectors` (a transform job), `5/10 images` (an
    /// encoding or extraction job; an extraction adds `, 1234 descriptors`); nil with no count.
    static func done(kind: String?, imagesDone: Int?, imagesTotal: Int?, descriptors: Int? = nil) -> String? {
        guard let imagesDone else { return nil }
        let unit = kind == "transform" ? "vectors" : "images"
        return "\(imagesDone)/\(imagesTotal.map(String.init) ?? "?") \(unit)" + (descriptors.map { ", \($0) descriptors" } ?? "")
    }

    /// `42s`, `3m05s`, `2h07m`; `--` when unknown.
    static func duration(_ seconds: Double?) -> String {
        guard let seconds, seconds.isFinite, seconds >= 0 else { return "--" }
        let whole = Int(seconds.rounded(.up))
        if whole < 60 { return "\(whole)s" }
        if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
        return String(format: "%dh%02dm", whole / 3600, (whole % 3600) / 60)
    }

    /// `950`, `12.3k`, `4.56M`.
    static func count(_ value: Double) -> String {
        switch value {
        case ..<1_000: String(format: "%.0f", value)
        case ..<1_000_000: String(format: "%.1fk", value / 1_000)
        default: String(format: "%.2fM", value / 1_000_000)
        }
    }
}
