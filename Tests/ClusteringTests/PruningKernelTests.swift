import CKernels
@testable import Clustering
import Descriptors
import Testing

/// The pruned pass's C kernels (`cb_prune_filter`, `cb_prune_lower_bounds`): bit-identical
/// whichever instructions run them, and their bounds conservative.
@Suite struct PruningKernelTests {
    static let groups = Int(CB_PRUNE_GROUPS)

    /// Exact float64 distance, as a real-number stand-in for the bounds' checks.
    func distance(_ x: ArraySlice<Float>, _ c: ArraySlice<Float>) -> Double {
        zip(x, c).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }.squareRoot()
    }

    /// Rows with exact bounds for old centres, then moved centres: the rows the filter lets
    /// keep their centre must have it as their only float64 nearest centre, and every CPU
    /// must give the same bits.
    @Test(arguments: [7, 37, 128])
    func filterKeepsOnlyRowsWhoseCentreCannotChange(dimension d: Int) {
        let m = 300, k = 40, groups = Self.groups
        var generator = SeededGenerator(seed: UInt64(d) + 11)
        // Duplicated centres give exact ties, within a group (5, 21) and between groups (6, 9).
        var old = (0..<k * d).map { _ in Float((generator.nextGaussian() * 20 + 60).rounded()) }
        for j in 0..<d {
            old[5 * d + j] = old[21 * d + j]
            old[9 * d + j] = old[6 * d + j]
        }
        // Rows around the centres, some half-way between two of them.
        let rows = (0..<m * d).map { index in
            let i = index / d, j = index % d, c = i % k
            let near = i % 5 == 0 ? (old[c * d + j] + old[(c + 1) % k * d + j]) / 2 : old[c * d + j]
            return (near + Float(generator.nextGaussian() * 6)).rounded()
        }
        // Integer moves keep every float64 distance exact, so ties are exact ties.
        var new = old.enumerated().map { j, value in j / d % 3 == 0 ? value : value + Float((generator.nextGaussian() * 0.3).rounded()) }
        for j in 0..<d { new[9 * d + j] = new[6 * d + j] }
        let slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        func row(_ i: Int) -> ArraySlice<Float> { rows[i * d ..< (i + 1) * d] }
        func centre(_ values: [Float], _ c: Int) -> ArraySlice<Float> { values[c * d ..< (c + 1) * d] }

        var assignments = [Int32](), upper = [Float](), lower = [Float]()
        for i in 0..<m {
            let distances = (0..<k).map { distance(row(i), centre(old, $0)) }
            let a = distances.indices.min { distances[$0] < distances[$1] }!
            assignments.append(Int32(a))
            upper.append(PrunedAssignment.roundedUp(distances[a] * (1 + slack)))
            for g in 0..<groups {
                let nearest = stride(from: g, to: k, by: groups).filter { $0 != a }.map { distances[$0] }.min() ?? .infinity
                lower.append(Float(nearest * (1 - slack)).nextDown)
            }
        }
        var drift = (0..<k).map { distance(centre(new, $0), centre(old, $0)) * (1 + slack) }
        var groupDrift = [Double](repeating: 0, count: groups)
        for c in 0..<k { groupDrift[c % groups] = max(groupDrift[c % groups], drift[c]) }

        func run(_ kernel: (UnsafePointer<Float>, Int, Int, Int, UnsafePointer<Float>, UnsafePointer<Int32>,
                            UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafePointer<Double>,
                            UnsafePointer<Double>, Double, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int)
            -> (out: [Int32], undecided: [Int32], upper: [UInt32], lower: [UInt32]) {
            var out = [Int32](repeating: -1, count: m), undecided = [Int32](repeating: -1, count: m)
            var upper = upper, lower = lower
            let count = kernel(rows, d, m, d, new, assignments, &upper, &lower, drift, groupDrift, slack, &out, &undecided)
            return (out, Array(undecided[..<count]), upper.map(\.bitPattern), lower.map(\.bitPattern))
        }
        let dispatched = run { cb_prune_filter($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) }
        let portable = run { cb_prune_filter_portable($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) }
        #expect(dispatched.out == portable.out && dispatched.undecided == portable.undecided)
        #expect(dispatched.upper == portable.upper && dispatched.lower == portable.lower)

        let codebook = try! Codebook(k: k, dimension: d, centres: new)
        let kept = (0..<m).filter { !dispatched.undecided.contains(Int32($0)) }
        #expect(kept.count > m / 4 && dispatched.undecided.count > 0, "\(kept.count) rows kept: the test must see both outcomes")
        for i in kept {
            let a = Int(assignments[i])
            #expect(dispatched.out[i] == Int32(a))
            let distances = (0..<k).map { distance(row(i), centre(new, $0)) }
            #expect(distances.enumerated().allSatisfy { $0.offset == a || $0.element > distances[a] }, "row \(i)")
            #expect(referenceNearest(Array(row(i)), codebook).index == a)
            #expect(Double(Float(bitPattern: dispatched.upper[i])) >= distances[a])
        }
        for i in 0..<m {
            for g in 0..<groups {
                let bound = Float(bitPattern: dispatched.lower[i * groups + g])
                let others = stride(from: g, to: k, by: groups).filter { $0 != Int(assignments[i]) }
                #expect(bound >= 0 && others.allSatisfy { Double(bound) <= distance(row(i), centre(new, $0)) })
            }
        }

        // Drifts that are not finite give no bound: every row is undecided, on every CPU.
        drift[3] = .nan
        groupDrift = groupDrift.map { _ in .infinity }
        let unbounded = run { cb_prune_filter($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) }
        #expect(unbounded.undecided.count == m && unbounded.lower.allSatisfy { $0 == 0 })
        #expect(unbounded.lower == run { cb_prune_filter_portable($0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) }.lower)
    }

    /// Lower bounds from screened lanes, with lanes that are the excluded centre, infinite
    /// (no other centre) or NaN: the same bits on every CPU, and below the true distances
    /// when the lanes come from the fused screen.
    @Test(arguments: [9, 128])
    func lowerBoundsFromTheScreen(dimension d: Int) throws {
        let groups = Self.groups
        var generator = SeededGenerator(seed: UInt64(d) + 3)
        let x = (0..<d).map { _ in Float(generator.nextGaussian() * 30 + 50) }
        let search = NearestCentreSearch(codebook: try Codebook(k: 20, dimension: d, centres: (0..<20 * d).map { _ in
            Float(generator.nextGaussian() * 30 + 50)
        }), screen: .blas)
        let slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        for trial in 0..<50 {
            var lanes = CBScreenLanes()
            withUnsafeMutableBytes(of: &lanes) { state in
                let values = state.baseAddress!.assumingMemoryBound(to: Float.self)
                for g in 0..<2 * groups { values[g] = Float(generator.nextGaussian() * 3e5) }
                let index = (state.baseAddress! + MemoryLayout<CBScreenLanes>.offset(of: \.index)!).assumingMemoryBound(to: Int32.self)
                for g in 0..<groups { index[g] = Int32(generator.next() % 4) }
                values[trial % groups] = .infinity
                values[groups + (trial + 1) % groups] = .infinity
                values[(trial + 2) % groups] = .nan
            }
            var dispatched = [Float](repeating: -1, count: groups), portable = dispatched
            cb_prune_lower_bounds(&lanes, 2, x, d, search.boundScale, search.largestNorm, slack, &dispatched)
            cb_prune_lower_bounds_portable(&lanes, 2, x, d, search.boundScale, search.largestNorm, slack, &portable)
            #expect(dispatched.map(\.bitPattern) == portable.map(\.bitPattern))
            #expect(dispatched.allSatisfy { $0 >= 0 })
        }

        // Lanes from the fused screen bound the true distances to each group's other centres.
        guard NearestCentreSearch.Screen.preferred == .fused else { return }
        let fused = NearestCentreSearch(codebook: search.codebook, screen: .fused)
        let workspace = KernelWorkspace()
        var assigned: Int32 = -1
        try fused.assign(FloatRows(base: x, rows: 1, dimension: d, stride: d), firstRow: 0, source: "test",
                         workspace: workspace, assignments: &assigned)
        var bounds = [Float](repeating: -1, count: groups)
        fused.groupLowerBounds(slot: 0, row: x, excluding: Int(assigned), slack: slack, workspace: workspace, into: &bounds)
        for g in 0..<groups {
            let others = stride(from: g, to: 20, by: groups).filter { $0 != Int(assigned) }
            let nearest = others.map { distance(x[...], search.codebook.centres[$0 * d ..< ($0 + 1) * d]) }.min() ?? .infinity
            #expect(Double(bounds[g]) <= nearest && (others.isEmpty ? bounds[g] == .infinity : bounds[g] > 0), "group \(g)")
        }
    }
}
