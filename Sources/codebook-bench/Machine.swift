import CBLAS
import Foundation

/// What the numbers were measured on, and the process facts the memory section needs.
enum Machine {
    static func describe(threads: Int) -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" }
            ?? "unknown CPU"
        let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("flags") }.map { Set($0.split(separator: " ").map(String.init)) } ?? []
        let genericCore = ["Prescott", "Core2", "Nehalem", "Atom", "Katmai", "Coppermine", "Northwood"].contains(core)
        let warning = genericCore && flags.contains("avx2")
            ? "\n\n**Note:** OpenBLAS picked the \(core) kernels (no AVX) on a CPU with "
              + (flags.contains("avx512f") ? "AVX-512" : "AVX2")
              + "; sgemm and everything built on it runs several times slower than it could. "
              + "Setting OPENBLAS_CORETYPE (e.g. \(flags.contains("avx512f") ? "SkylakeX" : "Haswell")) selects the right kernels."
            : ""
        let memory = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
        return """
        ## codebook-bench

        Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(format(memory, "%.1f")) GiB; \
        OpenBLAS core: \(core) (\(openblas_get_num_procs()) procs); benchmark threads: \(threads)\(warning)
        """
    }

    /// Peak resident set of this process in bytes (ru_maxrss is in KiB on Linux).
    static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// Bytes available to unprivileged users on the file system holding `path`.
    static func freeBytes(at path: String) -> Int {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return 0 }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }
}
