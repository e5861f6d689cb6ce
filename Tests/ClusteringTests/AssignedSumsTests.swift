import CKernels
import Descriptors
import Testing

/// The k-means statistics kernel: bit-identical whichever instructions run it, and equal to
/// its documented float64 arithmetic.
@Suite struct AssignedSumsTests {
    @Test(arguments: [1, 7, 8, 37, 128])
    func everyCPUGivesTheDocumentedSums(dimension d: Int) {
        let m = 203, k = 5, stride = d + 3
        var generator = SeededGenerator(seed: UInt64(d))
        let rows = (0..<m * stride).map { _ in Float(generator.nextGaussian() * 300 + 40) }
        let assignments = (0..<m).map { _ in Int32(generator.next() % UInt64(k)) }

        func run(_ kernel: (UnsafePointer<Float>, Int, Int, Int, UnsafePointer<Int32>, UnsafeMutablePointer<Double>,
                            UnsafeMutablePointer<Double>, UnsafeMutablePointer<Int>) -> Void) -> ([Double], [Double], [Int]) {
            var sums = [Double](repeating: 0.5, count: k * d), norms = [Double](repeating: 0.25, count: k)
            var counts = [Int](repeating: 1, count: k)
            kernel(rows, stride, m, d, assignments, &sums, &norms, &counts)
            return (sums, norms, counts)
        }
        let dispatched = run { cb_accumulate_assigned($0, $1, $2, $3, $4, $5, $6, $7) }
        let portable = run { cb_accumulate_assigned_portable($0, $1, $2, $3, $4, $5, $6, $7) }

        // The documented order, written out independently.
        var sums = [Double](repeating: 0.5, count: k * d), norms = [Double](repeating: 0.25, count: k)
        var counts = [Int](repeating: 1, count: k)
        for i in 0..<m {
            let c = Int(assignments[i])
            var lanes = [Double](repeating: 0, count: 8)
            let whole = d - d % 8
            for j in 0..<d {
                let v = Double(rows[i * stride + j])
                sums[c * d + j] += v
                if j < whole { lanes[j % 8] += v * v }
            }
            var norm = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
            for j in whole..<d { let v = Double(rows[i * stride + j]); norm += v * v }
            norms[c] += norm
            counts[c] += 1
        }
        #expect(dispatched.0 == sums && dispatched.1 == norms && dispatched.2 == counts)
        #expect(portable.0 == sums && portable.1 == norms && portable.2 == counts)
    }
}
