import CBLAS
import Clustering
import Foundation

/// What the numbers were measured on, and the process facts the memory section needs.
enum Machine {
    static func describe(threads: Int) -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "?" }
            ?? "unknown CPU"
        let core = OpenBLASKernels.coreName
        let better = OpenBLASKernels.betterCoreType()
        let warning = better.map {
            "\n\n**Note:** OpenBLAS runs its \(core) kernels on a CPU that can run \($0)'s; sgemm and everything built on it "
                + "runs several times slower than it could (the bench re-executes itself with OPENBLAS_CORETYPE=\($0) unless "
                + "OPENBLAS_CORETYPE is set)."
        } ?? ""
        let memory = Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30)
        return """
        ## codebook-bench

        Machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(cpu), \(format(memory, "%.1f")) GiB; \
        OpenBLAS core: \(core) (\(openblas_get_num_procs()) procs); benchmark threads: \(threads)\(warning)
        """
    }

    /// Peak resident set (VmHWM) of a process — "self" or a pid — in bytes. Not ru_maxrss:
    /// Linux carries that across execve, so a child started from a large parent would
    /// report the parent's peak.
    static func peakResidentBytes(of process: String = "self") -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(process)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return nil }
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 2, let kib = Int(fields[1]) else { return nil }
        return kib * 1024
    }

    /// Bytes available to unprivileged users on the file system holding `path`.
    static func freeBytes(at path: String) -> Int {
        var stats = statvfs()
        guard statvfs(path, &stats) == 0 else { return 0 }
        return Int(stats.f_bavail) * Int(stats.f_frsize)
    }
}

/// How much CPU other processes used while a section ran: timings on a shared machine are
/// only trustworthy when this is near 0.
struct ContentionMonitor {
    private let started = Stopwatch.now()
    private let busy = ContentionMonitor.machineBusySeconds()
    private let own = ContentionMonitor.ownSeconds()

    /// Busy CPU seconds of the whole machine (user, nice, system, irq, softirq, steal).
    static func machineBusySeconds() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/stat", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return .nan }
        let fields = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard fields.count >= 8 else { return .nan }
        let ticks = fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// CPU seconds of this process and its waited-for children (the Python baselines).
    static func ownSeconds() -> Double {
        var total = 0.0
        for who in [RUSAGE_SELF, RUSAGE_CHILDREN] {
            var usage = rusage()
            getrusage(who.rawValue, &usage)
            for time in [usage.ru_utime, usage.ru_stime] { total += Double(time.tv_sec) + Double(time.tv_usec) * 1e-6 }
        }
        return total
    }

    /// "other processes used 0.03 cores on average over 95 s".
    func summary() -> String {
        let wall = Stopwatch.now() - started
        let others = max(0, (Self.machineBusySeconds() - busy) - (Self.ownSeconds() - own)) / max(wall, 1e-9)
        var text = "Other processes used \(format(others, "%.2f")) cores on average over this section's \(format(wall, "%.0f")) s"
        if others > 0.2 { text += " — **the machine was shared; timings are unreliable**" }
        return text + "."
    }
}
