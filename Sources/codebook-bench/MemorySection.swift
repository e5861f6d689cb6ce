import Clustering
import Descriptors
import Foundation

/// Section 4: peak resident memory of k-means on a corpus file larger than memory budgets
/// (> 4 GB), measured in a child process so the figure is that run's alone.
struct MemorySection {
    let sizes: BenchSizes
    let large: Bool

    static let target = 1 << 30
    /// Free space required before writing the large corpus.
    static let requiredFreeBytes = 12 << 30
    static let iterations = 2

    func run() async throws {
        guard large || sizes.quick else {
            print("### Memory\n\nskipped: the memory section writes a > 4 GB corpus; pass --large to run it.\n")
            return
        }
        let rows = sizes.largeRows
        let bytes = rows * (4 + 4 * sizes.dimension)
        let name = "corpus-\(rows)x\(sizes.dimension)-c\(sizes.corpusClusters)-s\(BenchSizes.seed).fvecs"
        let exists = FileManager.default.fileExists(atPath: sizes.path(name))
        let free = Machine.freeBytes(at: sizes.workDirectory)
        let needed = sizes.quick ? 3 * bytes : Self.requiredFreeBytes
        if !exists && free < needed {
            print("### Memory\n\nskipped: \(format(Double(free) / 1e9, "%.1f")) GB free in \(sizes.workDirectory), "
                  + "need \(format(Double(needed) / 1e9, "%.1f")) GB to write the \(format(Double(bytes) / 1e9, "%.1f")) GB corpus.\n")
            return
        }
        let path = try Workload(sizes: sizes).corpus(rows: rows, ext: "fvecs")
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? bytes

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
        process.arguments = ["memory-child", "--corpus", path, "--k", String(sizes.k), "--threads", String(sizes.threads),
                             "--iterations", String(Self.iterations)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard process.terminationStatus == 0,
              let result = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let peak = (result["peak_rss_bytes"] as? NSNumber)?.intValue, peak > 0,
              let objectives = result["objectives"] as? [Double],
              let time = (result["seconds"] as? NSNumber)?.doubleValue else {
            throw CheckFailure("memory child exited with status \(process.terminationStatus): \(line)")
        }
        var table = MarkdownTable("Memory: k-means (\(Self.iterations) iterations, K=\(sizes.k), \(sizes.threads) threads) "
                                  + "on a \(format(Double(size) / 1e9, "%.2f")) GB fvecs corpus (\(rows) rows)",
                                  columns: ["measurement", "value", "target"])
        table.add("peak resident memory (VmHWM of the child)", format(Double(peak) / Double(1 << 20), "%.0f MiB"),
                  verdict(peak < Self.target, "< 1024 MiB"))
        table.add("k-means wall time (child)", seconds(time), "")
        table.add("objective / row, iteration 0 → \(objectives.count - 1)",
                  objectives.map { format($0 / Double(rows), "%.4f") }.joined(separator: " → "), "")
        if size <= 4_000_000_000 { table.note("corpus is not larger than 4 GB at this size (smoke run)") }
        table.note("The child re-executes this binary (hidden `memory-child` subcommand); VmHWM counts mapped file pages "
                   + "that were resident, so it measures the engine's page release.")
        table.print()
        guard objectives.allSatisfy(\.isFinite), zip(objectives, objectives.dropFirst()).allSatisfy({ $1 <= $0 * (1 + 1e-12) }) else {
            throw CheckFailure("k-means objective increased or is not finite: \(objectives)")
        }
    }

    /// The child: k-means from K evenly spaced rows, then one JSON line on stdout.
    static func child(corpus path: String, k: Int, threads: Int, iterations: Int) async throws {
        let started = Stopwatch.now()
        let corpus = try DescriptorMatrix.open(path: path)
        var centres: [Float] = []
        for i in 0..<k { centres += try corpus.row(i * (corpus.rows / k)) }
        var parameters = KMeansParameters(k: k)
        parameters.iterations = iterations
        parameters.tolerance = 0
        parameters.initialization = .given(try Codebook(k: k, dimension: corpus.dimension, centres: centres))
        let result = try await KMeans.train(on: LocalBackend(corpus: corpus, threads: threads), parameters: parameters)
        let object: [String: Any] = [
            "peak_rss_bytes": Machine.peakResidentBytes() ?? -1,
            "seconds": Stopwatch.now() - started,
            "objectives": result.iterations.map(\.objective),
        ]
        print(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
    }
}
