import CKernels
@testable import Clustering
import Descriptors
import Testing

/// The pruned pass's C kernel (`cb_prune_assign`): bit-identical whichever instructions run
/// it, every assignment the strict float64 nearest centre, and its bounds conservative.
@Suite struct PruningKernelTests {
    /// Exact float64 distance, as a real-number stand-in for the bounds' checks.
    func distance(_ x: ArraySlice<Float>, _ c: ArraySlice<Float>) -> Double {
        zip(x, c).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }.squareRoot()
    }

    /// What one kernel call gives.
    struct Outcome: Equatable {
        var computed: Int
        var assignments: [Int32]
        var upper: [UInt32]
        var lower: [UInt32]
        var fallback: [Int32]
        var pairs: Int
    }

    /// Runs the kernel (`portable` or dispatched) over `rows` with `search`'s centres, packed
    /// as `layout` orders them (nil: in index order) in groups of `groupPanels` packed panels,
    /// from the given state; `drift` nil: no earlier bounds.
    func run(portable: Bool, search: NearestCentreSearch, layout: CentreLayout? = nil, rows: [Float], m: Int,
             assignments: [Int32], upper: [Float], lower: [Float], drift: [Double]?, groupDrift: [Double]?,
             groupPanels: Int) -> Outcome {
        let k = search.codebook.k, d = search.codebook.dimension
        let groups = (k + groupPanels * Int(CB_SCREEN_PANEL) - 1) / (groupPanels * Int(CB_SCREEN_PANEL))
        var assignments = assignments, upper = upper, lower = lower
        var fallback = [Int32](repeating: -1, count: m)
        var fallbacks = 0, pairs = 0
        let slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        let computed = search.codebook.centres.withUnsafeBufferPointer { centres in
            (layout?.panels ?? search.panels).withUnsafeBufferPointer { panels in
                (layout?.panelNorms ?? search.panelNorms).withUnsafeBufferPointer { norms in
                    (drift ?? []).withUnsafeBufferPointer { drifts in
                        (groupDrift ?? []).withUnsafeBufferPointer { groupDrifts in
                            (layout?.order ?? []).withUnsafeBufferPointer { order in
                                (layout?.centreGroup ?? []).withUnsafeBufferPointer { centreGroup in
                                    var parameters = CBPruneCentres(
                                        centres: centres.baseAddress!, packed: panels.baseAddress!, packed_norms: norms.baseAddress!,
                                        k: k, d: d, group_panels: groupPanels, groups: groups,
                                        bound_scale: search.boundScale, largest_norm: search.largestNorm, slack: slack,
                                        drift: drift == nil ? nil : drifts.baseAddress!,
                                        group_drift: groupDrift == nil ? nil : groupDrifts.baseAddress!,
                                        order: layout == nil ? nil : order.baseAddress!,
                                        centre_group: layout == nil ? nil : centreGroup.baseAddress!)
                                    var scratch = [UInt8](repeating: 0xA5, count: cb_prune_scratch_bytes(&parameters, m))
                                    let kernel = portable ? cb_prune_assign_portable : cb_prune_assign
                                    return kernel(&parameters, rows, d, m, &assignments, &upper, &lower, &scratch, &fallback,
                                                  &fallbacks, &pairs)
                                }
                            }
                        }
                    }
                }
            }
        }
        return Outcome(computed: computed, assignments: assignments, upper: upper.map(\.bitPattern),
                       lower: lower.map(\.bitPattern), fallback: Array(fallback[..<fallbacks]), pairs: pairs)
    }

    /// How the test packs the centres: in index order (no layout), reversed (so the lowest
    /// packed position of tied centres is the highest index), or grouped by proximity.
    enum Packing: CaseIterable { case indexOrder, reversed, proximity }

    /// Integer rows and centres (so float64 distances are exact and ties are exact ties),
    /// centres duplicated within a group and across groups; exact bounds for the old centres,
    /// then moved centres. Every row must get its float64 nearest centre (lowest index on
    /// ties, whatever the packed order), the bounds must stay below and above the true
    /// distances, every CPU must give the same bits, and the kernel must both skip and measure;
    /// with groups of one packed panel (4 groups, the last partial) and of two (2 groups, the
    /// last spanning a partial panel).
    @Test(arguments: [7, 37, 128], Packing.allCases)
    func assignmentsAreTheFloat64NearestAndBoundsAreConservative(dimension d: Int, packing: Packing) throws {
        for groupPanels in [1, 2] { try checkKernel(dimension: d, k: 100, packing: packing, groupPanels: groupPanels) }
    }

    /// As above with 19 groups, so that a row's measured groups fill whole vectors (16 bounds).
    @Test func manyGroupsToo() throws {
        try checkKernel(dimension: 37, k: 600, packing: .proximity, groupPanels: 1)
    }

    func checkKernel(dimension d: Int, k: Int, packing: Packing, groupPanels: Int) throws {
        let m = 300, width = groupPanels * Int(CB_SCREEN_PANEL)
        let groups = (k + width - 1) / width
        var generator = SeededGenerator(seed: UInt64(d) + 11)
        var old = (0..<k * d).map { _ in Float((generator.nextGaussian() * 20 + 60).rounded()) }
        for j in 0..<d {
            old[5 * d + j] = old[21 * d + j]  // same group
            old[70 * d + j] = old[6 * d + j]  // another group
        }
        let rows = (0..<m * d).map { index in
            let i = index / d, j = index % d, c = i % k
            let near = i % 5 == 0 ? (old[c * d + j] + old[(c + 1) % k * d + j]) / 2 : old[c * d + j]
            return (near + Float(generator.nextGaussian() * 6)).rounded()
        }
        var new = old.enumerated().map { j, value in j / d % 3 == 0 ? value : value + Float((generator.nextGaussian() * 0.3).rounded()) }
        for j in 0..<d { new[70 * d + j] = new[6 * d + j] }
        let slack = 2 * Double(d + 8) * Double.ulpOfOne / 2
        func row(_ i: Int) -> ArraySlice<Float> { rows[i * d ..< (i + 1) * d] }
        func centre(_ values: [Float], _ c: Int) -> ArraySlice<Float> { values[c * d ..< (c + 1) * d] }

        let codebook = try Codebook(k: k, dimension: d, centres: new)
        let search = NearestCentreSearch(codebook: codebook, screen: .blas)
        let layout: CentreLayout? = switch packing {
        case .indexOrder: nil
        case .reversed: CentreLayout(order: (0..<Int32(k)).reversed(), search: search, width: width)
        case .proximity: CentreLayout(order: CentreLayout.proximityOrder(of: codebook, width: width), search: search, width: width)
        }
        let order = layout?.order.map { Int($0) } ?? Array(0..<k)
        /// The centres of group g.
        func members(_ g: Int) -> [Int] { Array(order[g * width ..< min(k, (g + 1) * width)]) }

        var assignments = [Int32](), upper = [Float](), lower = [Float]()
        for i in 0..<m {
            let distances = (0..<k).map { distance(row(i), centre(old, $0)) }
            let a = distances.indices.min { distances[$0] < distances[$1] }!
            assignments.append(Int32(a))
            upper.append(PrunedAssignment.roundedUp(distances[a] * (1 + slack)))
            for g in 0..<groups {
                let nearest = members(g).filter { $0 != a }.map { distances[$0] }.min() ?? .infinity
                lower.append(Float(nearest * (1 - slack)).nextDown)
            }
        }
        var drift = (0..<k).map { distance(centre(new, $0), centre(old, $0)) * (1 + slack) }
        var groupDrift = [Double](repeating: 0, count: groups)
        for g in 0..<groups { groupDrift[g] = members(g).map { drift[$0] }.max()! }

        func check(_ outcome: Outcome, _ label: String) {
            #expect(outcome.fallback.isEmpty, "\(label)")
            for i in 0..<m {
                let a = Int(outcome.assignments[i])
                let distances = (0..<k).map { distance(row(i), centre(new, $0)) }
                #expect(a == referenceNearest(Array(row(i)), codebook).index, "\(label): row \(i)")
                #expect(Double(Float(bitPattern: outcome.upper[i])) >= distances[a], "\(label): row \(i)")
                for g in 0..<groups {
                    let bound = Double(Float(bitPattern: outcome.lower[i * groups + g]))
                    let others = members(g).filter { $0 != a }
                    #expect(bound >= 0 && others.allSatisfy { bound <= distances[$0] }, "\(label): row \(i) group \(g)")
                }
            }
        }
        // The dispatched kernel and the portable one, which must give the same bits.
        func both(_ drift: [Double]?, _ groupDrift: [Double]?) -> Outcome {
            let runs = [false, true].map {
                run(portable: $0, search: search, layout: layout, rows: rows, m: m, assignments: assignments, upper: upper,
                    lower: lower, drift: drift, groupDrift: groupDrift, groupPanels: groupPanels)
            }
            #expect(runs[0] == runs[1])
            return runs[0]
        }
        let pruned = both(drift, groupDrift)
        check(pruned, "pruned")
        #expect(pruned.computed > 0 && pruned.computed < m / 2, "\(pruned.computed) rows measured: the test must see both outcomes")
        #expect(pruned.pairs > pruned.computed && pruned.pairs < pruned.computed * k, "\(pruned.pairs) pairs measured")

        // Without bounds every distance is measured; the bounds it leaves are conservative.
        let first = both(nil, nil)
        #expect(first.computed == m && first.pairs == m * k)
        check(first, "no bounds")

        // Drifts that are not finite give no bound: every row and group is measured, on every CPU.
        drift[3] = .nan
        groupDrift = groupDrift.map { _ in .infinity }
        let unbounded = both(drift, groupDrift)
        #expect(unbounded.computed == m && unbounded.pairs == m * k)
        check(unbounded, "unbounded")
    }

    /// Four tight clusters of 32 centres along a line, their indices interleaved (centre c in
    /// cluster c % 4), and 5 more farther out: grouped by proximity, each whole group is one
    /// cluster and the order is a permutation; in index order every group would mix all four.
    @Test func theProximityOrderGroupsNearbyCentres() throws {
        let d = 6, k = 133, width = Int(CB_SCREEN_PANEL)
        var generator = SeededGenerator(seed: 9)
        let centres = (0..<k * d).map { index in
            let c = index / d, j = index % d
            return Float((j == 0 ? (c < 128 ? 100 * Double(c % 4) : 1000) : 0) + generator.nextGaussian())
        }
        let order = CentreLayout.proximityOrder(of: try Codebook(k: k, dimension: d, centres: centres), width: width)
        #expect(order.sorted() == Array(0..<Int32(k)))
        for g in 0..<4 {
            let clusters = Set(order[g * width ..< (g + 1) * width].map { $0 < 128 ? Int($0) % 4 : -1 })
            #expect(clusters.count == 1, "group \(g) mixes \(clusters)")
        }
    }

    /// Rows the screen cannot bound (a NaN, values whose square overflows the screen's range)
    /// are left to the caller, on every CPU; the others are assigned as usual.
    @Test func rowsOutsideTheScreensRangeAreLeftToTheCaller() throws {
        let d = 9, k = 40, m = 20
        var generator = SeededGenerator(seed: 5)
        let codebook = try Codebook(k: k, dimension: d, centres: (0..<k * d).map { _ in Float(generator.nextGaussian() * 10) })
        var rows = (0..<m * d).map { _ in Float(generator.nextGaussian() * 10) }
        rows[3 * d + 2] = .nan
        rows[7 * d] = 1e16
        let search = NearestCentreSearch(codebook: codebook, screen: .blas)
        let groups = PrunedAssignment.groups(k: k)
        let zeros = [Float](repeating: 0, count: m * groups)
        let runs = [false, true].map {
            run(portable: $0, search: search, rows: rows, m: m, assignments: [Int32](repeating: 0, count: m),
                upper: [Float](repeating: 0, count: m), lower: zeros, drift: nil, groupDrift: nil,
                groupPanels: PrunedAssignment.groupPanels(k: k))
        }
        #expect(runs[0] == runs[1])
        #expect(runs[0].fallback == [3, 7])
        for i in 0..<m where i != 3 && i != 7 {
            #expect(Int(runs[0].assignments[i]) == referenceNearest(Array(rows[i * d ..< (i + 1) * d]), codebook).index)
        }
    }
}
