import CKernels
import Descriptors
import Testing

/// The GMM's float64 kernels: bit-identical whichever instructions run them, equal to their
/// documented arithmetic, and unchanged by grouping the terms by component.
@Suite struct GaussianTermsTests {
    /// Dimensions around the AVX-512 kernels' blocks: 8 lanes per register, and the moments
    /// kept in registers 32 dimensions at a time with the last block masked (45: a partial
    /// second register; 100: a partial first register of the fourth block).
    @Test(arguments: [1, 7, 8, 37, 45, 100, 128])
    func everyCPUGivesTheDocumentedTerms(dimension d: Int) {
        let n = 97, k = 6, stride = d + 3
        var generator = SeededGenerator(seed: UInt64(d) + 11)
        let rows = (0..<n * stride).map { _ in Float(generator.nextGaussian() * 30 + 90) }
        let means = (0..<k * d).map { _ in generator.nextGaussian() * 30 + 90 }
        let precisions = (0..<k * d).map { _ in 1 / (1 + 900 * generator.nextUnit()) }
        let normalizers = (0..<k).map { _ in -generator.nextUnit() * 500 }
        // Each row: a random subset of the components, in increasing order.
        var starts = [0], components: [Int32] = []
        for _ in 0..<n {
            for c in 0..<k where generator.next() % 3 != 0 { components.append(Int32(c)) }
            starts.append(components.count)
        }
        let terms = components.count
        let weights = (0..<terms).map { _ in generator.nextUnit() }
        var scratch = [Int](repeating: 0, count: cb_gmm_group_scratch_length(terms, k))
        cb_gmm_group_terms(n, starts, components, k, &scratch)

        func run(_ densities: (UnsafeMutablePointer<Double>) -> Void,
                 _ accumulate: (UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>, UnsafeMutablePointer<Double>) -> Void)
            -> [[Double]] {
            var values = [Double](repeating: 0, count: terms)
            var mass = [Double](repeating: 0.5, count: k), first = [Double](repeating: 0.25, count: k * d), second = first
            densities(&values)
            accumulate(&mass, &first, &second)
            return [values, mass, first, second]
        }
        let dispatched = run({ cb_gmm_log_densities(rows, stride, n, d, starts, k, scratch, means, precisions, normalizers, $0) },
                             { cb_gmm_accumulate(rows, stride, n, d, starts, weights, k, scratch, $0, $1, $2) })
        let portable = run({ cb_gmm_log_densities_portable(rows, stride, n, d, starts, k, scratch, means, precisions, normalizers, $0) },
                           { cb_gmm_accumulate_portable(rows, stride, n, d, starts, weights, k, scratch, $0, $1, $2) })

        // The documented arithmetic, written out independently, terms in row order.
        var values = [Double](repeating: 0, count: terms)
        var mass = [Double](repeating: 0.5, count: k), first = [Double](repeating: 0.25, count: k * d), second = first
        for i in 0..<n {
            for t in starts[i]..<starts[i + 1] {
                let c = Int(components[t]), whole = d - d % 8
                var lanes = [Double](repeating: 0, count: 8)
                for j in 0..<whole {
                    let r = Double(rows[i * stride + j]) - means[c * d + j]
                    lanes[j % 8] = lanes[j % 8].addingProduct(r * precisions[c * d + j], r)
                }
                var sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
                for j in whole..<d {
                    let r = Double(rows[i * stride + j]) - means[c * d + j]
                    sum = sum.addingProduct(r * precisions[c * d + j], r)
                }
                values[t] = normalizers[c] - 0.5 * sum
                mass[c] += weights[t]
                for j in 0..<d {
                    let v = Double(rows[i * stride + j])
                    first[c * d + j] = first[c * d + j].addingProduct(weights[t], v)
                    second[c * d + j] = second[c * d + j].addingProduct(weights[t], v * v)
                }
            }
        }
        #expect(dispatched == [values, mass, first, second])
        #expect(portable == [values, mass, first, second])
    }

    /// The candidates of each row: every value not below best − cutoff − 2·bound (here the
    /// bound is 0 and the cutoff shifts the limit to a value of the row), NaN included, after
    /// the caller's starts[0]; the first row with no finite ‖x‖² is −1 − its index.
    @Test(arguments: [1, 15, 16, 17, 256, 1000])
    func candidatesAreEveryValueAtOrAboveTheLimit(k: Int) {
        let n = 3, ldv = k + 5, cutoff = 0.75
        var generator = SeededGenerator(seed: UInt64(k))
        var values = (0..<n * ldv).map { _ in Float(generator.nextGaussian()) }
        if k > 2 { values[ldv + k - 2] = .nan }
        var best = [Float](), limits = [Float]()
        for i in 0..<n {
            let row = values[i * ldv ..< i * ldv + k]
            best.append(row.filter { !$0.isNaN }.max()!)
            limits.append(Float(Double(best[i]) - cutoff))
        }
        let norms: [Float] = [25, 25, 25]
        var selected = [Int32](repeating: -1, count: 7 + n * k), starts = [7, 0, 0, 0]
        let end = cb_gmm_candidates(values, ldv, n, k, best, norms, 0, [1, 1, 1], cutoff, &selected, &starts)
        #expect(end == starts[n])
        for i in 0..<n {
            let expected = (0..<k).filter { !(values[i * ldv + $0] < limits[i]) }.map(Int32.init)
            #expect(Array(selected[starts[i]..<starts[i + 1]]) == expected, "row \(i)")
        }
        #expect(selected[0..<7].allSatisfy { $0 == -1 })
        for bad in [Float.infinity, .nan] {
            #expect(cb_gmm_candidates(values, ldv, n, k, best, [25, bad, 25], 0, [1, 1, 1], 30, &selected, &starts) == -2)
        }
    }
}
