import Foundation

/// Runs `bench/baselines.py` and decodes the JSON object it prints.
struct PythonBaselines {
    let sizes: BenchSizes

    enum Outcome {
        case ran([String: Any])
        /// The script could not run at all (no Python, no numpy, the script missing).
        case unavailable(String)
    }

    func run(_ arguments: [String]) -> Outcome {
        guard FileManager.default.fileExists(atPath: sizes.baselines) else {
            return .unavailable("\(sizes.baselines) not found (pass --baselines)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [sizes.python, sizes.baselines] + arguments
        var environment = ProcessInfo.processInfo.environment
        // Thread counts are set inside the script (threadpoolctl, faiss.omp_set_num_threads);
        // these make sure no library starts more threads before that.
        for name in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] {
            environment[name] = String(sizes.threads)
        }
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch {
            return .unavailable("cannot start \(sizes.python): \(error)")
        }
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lastLine = String(decoding: stdout, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
        guard process.terminationStatus == 0,
              let object = try? JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any] else {
            let message = String(decoding: stderr, as: UTF8.self).split(separator: "\n").suffix(3).joined(separator: " / ")
            return .unavailable("baselines.py exited with status \(process.terminationStatus): \(message)")
        }
        return .ran(object)
    }
}

/// One library's part of the script's answer: its fields, or why it was skipped.
enum BaselineResult {
    case measured([String: Any])
    case skipped(String)

    init(_ outcome: PythonBaselines.Outcome, library: String) {
        switch outcome {
        case .unavailable(let reason): self = .skipped(reason)
        case .ran(let object):
            guard let fields = object[library] as? [String: Any] else { self = .skipped("no result for \(library)"); return }
            if let reason = fields["skipped"] as? String { self = .skipped(reason) } else { self = .measured(fields) }
        }
    }

    func number(_ key: String) -> Double? {
        guard case .measured(let fields) = self else { return nil }
        return (fields[key] as? NSNumber)?.doubleValue
    }

    func string(_ key: String) -> String? {
        guard case .measured(let fields) = self else { return nil }
        return fields[key] as? String
    }
}
