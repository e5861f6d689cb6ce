import CBLAS
import Foundation

/// The engine's only door to BLAS.
///
/// Codebook runs shards on threads of its own and needs each shard's arithmetic to be
/// the same whichever thread runs it, so OpenBLAS's own threading is switched off.
public enum BLAS {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// Makes OpenBLAS run every call on the calling thread. Idempotent.
    public static func configure() { _ = singleThreaded }

    /// C (m×n, row stride ldc) = alpha · A (m×k, row stride lda) · Bᵀ (B is n×k, row stride ldb) + beta · C.
    @inline(__always)
    public static func gemmTransposedB(m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int,
                                b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// C (m×n, row stride ldc) = A (m×k, row stride lda) · op(B) + beta · C in float64, op(B)
    /// being Bᵀ (B n×k, row stride ldb) when `transposedB`, else B (k×n, row stride ldb).
    @inline(__always)
    static func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                     transposedB: Bool, beta: Double, c: UnsafeMutablePointer<Double>, ldc: Int) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, transposedB ? CblasTrans : CblasNoTrans, blasint(m), blasint(n), blasint(k),
                    1, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// The upper triangle of C (n×n, row-major) += Aᵀ·A, A being k×n (row-major, float64).
    @inline(__always)
    static func addGram(n: Int, k: Int, a: UnsafePointer<Double>, c: UnsafeMutablePointer<Double>) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(n), blasint(k), 1, a, blasint(n), 1, c, blasint(n))
    }
}

/// Which OpenBLAS kernels run, and a better choice where OpenBLAS's own is poor.
///
/// OpenBLAS picks its kernels once, when it is loaded. Builds that do not know a CPU fall
/// back to generic SSE3 kernels ("Prescott"): Debian's 0.3.21 does so on Sapphire Rapids,
/// where sgemm then runs 4–5× below the AVX-512 kernels. The kernels can only be chosen
/// through OPENBLAS_CORETYPE before the library loads, so the command-line tools re-execute
/// themselves once with it set (see `betterCoreType`); an OPENBLAS_CORETYPE set by the user
/// is always left alone.
public enum OpenBLASKernels {
    /// The kernels OpenBLAS runs ("Haswell", "SkylakeX", "Prescott", …).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The OPENBLAS_CORETYPE to ask for: "SkylakeX" on an AVX-512 CPU or "Haswell" on an
    /// AVX2 + FMA one, when OpenBLAS chose kernels without that instruction set and the user
    /// set no OPENBLAS_CORETYPE. `nil` when nothing should change.
    public static func betterCoreType(running: String = coreName, cpuFlags: Set<String> = cpuFlags(),
                                      environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil else { return nil }
        let avx512 = ["avx512f", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(cpuFlags.contains)
        let avx2 = ["avx2", "fma"].allSatisfy(cpuFlags.contains)
        let core = running.lowercased()
        let runsAVX512 = ["skylakex", "cooperlake", "sapphirerapids"].contains(core)
        let runsAVX2 = runsAVX512 || ["haswell", "zen"].contains(core)
        if avx512 && !runsAVX512 { return "SkylakeX" }
        if avx2 && !runsAVX2 { return "Haswell" }
        return nil
    }

    /// For a program's first statement: starts the process again with OPENBLAS_CORETYPE set
    /// when `betterCoreType()` has one. The new process has the variable set, so it never
    /// re-executes; if exec fails (no /proc), the program carries on with the kernels it has.
    public static func reexecuteWithBetterKernelsIfNeeded() {
        guard let coreType = betterCoreType() else { return }
        setenv("OPENBLAS_CORETYPE", coreType, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }

    /// The CPU's feature flags, from /proc/cpuinfo (empty elsewhere).
    public static func cpuFlags() -> Set<String> {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
}
