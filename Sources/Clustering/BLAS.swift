import CBLAS

/// The engine's only door to BLAS.
///
/// Codebook runs shards on threads of its own and needs each shard's arithmetic to be
/// the same whichever thread runs it, so OpenBLAS's own threading is switched off.
enum BLAS {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// Makes OpenBLAS run every call on the calling thread. Idempotent.
    static func configure() { _ = singleThreaded }

    /// C (m×n, row stride ldc) = alpha · A (m×k, row stride lda) · Bᵀ (B is n×k, row stride ldb) + beta · C.
    @inline(__always)
    static func gemmTransposedB(m: Int, n: Int, k: Int, alpha: Float,
                                a: UnsafePointer<Float>, lda: Int,
                                b: UnsafePointer<Float>, ldb: Int,
                                beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(m), blasint(n), blasint(k),
                    alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }
}
