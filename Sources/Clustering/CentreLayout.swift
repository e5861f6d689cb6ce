import CKernels
import Synchronization

/// The order in which the pruned pass packs the centres, which makes its groups (see
/// `PrunedAssignment`): group g is the centres at packed positions g·width ..< (g + 1)·width.
/// Groups of nearby centres (Yinyang k-means groups the initial centres by proximity, Ding
/// et al. 2015) have far tighter lower bounds than groups of consecutive indices, whose
/// centres lie anywhere. The order only decides what is skipped, never a result: the kernel
/// breaks ties by centre index, not by position.
final class CentreLayout: Sendable {
    /// Per packed position, its centre.
    let order: [Int32]
    /// Per centre, its group.
    let centreGroup: [Int32]
    /// The centres in `order`, −2·c packed by `cb_screen_pack`, and their norms.
    let panels: [Float]
    let panelNorms: [Float]

    /// `search`'s centres packed in `order` (a permutation of 0 ..< k), in groups of `width`.
    init(order: [Int32], search: NearestCentreSearch, width: Int) {
        let k = search.codebook.k, d = search.codebook.dimension
        self.order = order
        var centreGroup = [Int32](repeating: 0, count: k)
        var centres = [Float](repeating: 0, count: k * d)
        for (position, c) in order.map({ Int($0) }).enumerated() {
            centreGroup[c] = Int32(position / width)
            for j in 0..<d { centres[position * d + j] = search.codebook.centres[c * d + j] }
        }
        self.centreGroup = centreGroup
        var panels = [Float](repeating: 0, count: cb_screen_packed_length(k, d))
        var panelNorms = [Float](repeating: 0, count: cb_screen_norms_length(k))
        cb_screen_pack(centres, k, d, order.map { search.norms[Int($0)] }, &panels, &panelNorms)
        self.panels = panels
        self.panelNorms = panelNorms
    }

    /// Centres in groups of `width` nearby ones: the set is split in two at the median of its
    /// projections on its principal axis (a few power iterations), recursively, the first
    /// part always a whole number of groups (so only the last group may be partial). Ties
    /// and non-finite projections keep index order; deterministic.
    static func proximityOrder(of codebook: Codebook, width: Int) -> [Int32] {
        let k = codebook.k, d = codebook.dimension
        var order = (0..<k).map { Int32($0) }
        var projection = [Double](repeating: 0, count: k)
        var mean = [Double](repeating: 0, count: d), axis = mean, next = mean
        func split(_ range: Range<Int>) {
            let groups = (range.count + width - 1) / width
            guard groups > 1 else { return }
            codebook.centres.withUnsafeBufferPointer { centres in
                let members = order[range].map { Int($0) }
                for j in 0..<d { mean[j] = 0 }
                for c in members { for j in 0..<d { mean[j] += Double(centres[c * d + j]) } }
                for j in 0..<d { mean[j] /= Double(members.count) }
                // Start from the member farthest from the mean.
                var farthest = -1.0
                for c in members {
                    var squares = 0.0
                    for j in 0..<d { squares += (Double(centres[c * d + j]) - mean[j]) * (Double(centres[c * d + j]) - mean[j]) }
                    if squares > farthest {
                        farthest = squares
                        for j in 0..<d { axis[j] = Double(centres[c * d + j]) - mean[j] }
                    }
                }
                for _ in 0..<Self.powerIterations {
                    for j in 0..<d { next[j] = 0 }
                    for c in members {
                        var along = 0.0
                        for j in 0..<d { along += (Double(centres[c * d + j]) - mean[j]) * axis[j] }
                        for j in 0..<d { next[j] += (Double(centres[c * d + j]) - mean[j]) * along }
                    }
                    let length = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    guard length > 0, length.isFinite else { break }
                    for j in 0..<d { axis[j] = next[j] / length }
                }
                for c in members {
                    var along = 0.0
                    for j in 0..<d { along += Double(centres[c * d + j]) * axis[j] }
                    projection[c] = along.isFinite ? along : .infinity
                }
            }
            order[range].sort { (projection[Int($0)], $0) < (projection[Int($1)], $1) }
            let middle = range.lowerBound + groups / 2 * width
            split(range.lowerBound ..< middle)
            split(middle ..< range.upperBound)
        }
        split(0..<k)
        return order
    }

    static let powerIterations = 6
}

/// The centre layouts of one pass, shared by its shards: a shard whose bounds were made in
/// an earlier pass keeps the layout they were made with (its groups); a shard without bounds
/// gets this pass's centres grouped by proximity. Each layout is packed once per pass.
/// Thread-safe.
final class CentreLayouts: Sendable {
    private let state = Mutex<(fresh: CentreLayout?, kept: [[Int32]: CentreLayout])>((nil, [:]))

    /// The layout of `order`, or (nil) of this pass's centres grouped by proximity.
    func layout(order: [Int32]?, search: NearestCentreSearch) -> CentreLayout {
        let width = PrunedAssignment.groupPanels(k: search.codebook.k) * Int(CB_SCREEN_PANEL)
        return state.withLock { state in
            if let order {
                if let fresh = state.fresh, fresh.order == order { return fresh }
                if let kept = state.kept[order] { return kept }
                let layout = CentreLayout(order: order, search: search, width: width)
                state.kept[order] = layout
                return layout
            }
            if let fresh = state.fresh { return fresh }
            let layout = CentreLayout(order: CentreLayout.proximityOrder(of: search.codebook, width: width), search: search,
                                      width: width)
            state.fresh = layout
            return layout
        }
    }
}
