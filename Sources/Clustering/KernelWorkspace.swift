/// Scratch memory for one thread's kernel calls: reused block after block so that a scan
/// allocates nothing per row. Not shared between threads.
public final class KernelWorkspace {
    var products: [Float] = []
    /// The fused screen's per-row standing between groups of centres.
    var screenState: [UInt8] = []
    /// The rows of a block the fused screen left undecided: their indices, a copy of them
    /// side by side, and what the sgemm screen makes of them.
    var undecided: [Int] = []
    var undecidedRows: [Float] = []
    var undecidedAssignments: [Int32] = []
    var undecidedDistances: [Double] = []
    var squares: [Float] = []
    /// A pruned pass's scratch (`cb_prune_assign`) and the rows it leaves to the search.
    var prunedScratch: [UInt8] = []
    var prunedFallback: [Int32] = []
    /// uint8/int32 rows converted to float32.
    public var conversion: [Float] = []
    /// The GMM screen's per-row best value, then per-row ‖x‖², of the current block.
    var rowSummaries: [Float] = []
    /// The GMM posteriors of the current block.
    let posteriors = TermLists()
    /// An encoder's float64 sums over one image, reused image after image.
    public var accumulators: [Double] = []
    /// The terms an encoder keeps of the posteriors (Fisher: q ≥ 1e−6).
    public let selectedTerms = TermLists()

    public init() {}

    func reserve(_ array: inout [Float], _ count: Int) {
        if array.count < count { array = [Float](repeating: 0, count: count) }
    }
}

/// The number of rows the kernels process per BLAS call: the K products of a block stay
/// within about 1 MiB (L2), and a block is never under 64 rows, which sgemm needs to run fast.
public func kernelBlockRows(k: Int) -> Int { max(64, min(1024, (1 << 18) / max(k, 1))) }

/// Unit roundoff of float32: the scale of the screening error bounds.
let float32Roundoff = Double(Float.ulpOfOne) / 2
