/// Average precision as the INRIA Holidays evaluation package computes it
/// (`score_ap_from_ranks_1` of `eval_holidays.py`, also used for INSTRE and Copydays).
///
/// The precision–recall curve is integrated by trapezoids: the i-th true positive (i from 0),
/// found at 0-based rank r, adds a trapezoid of width 1/P (P relevant images in all) between
/// the precision before it, i/r (1 when r = 0), and the precision after it, (i+1)/(r+1).
/// Relevant images never retrieved add nothing. This is not the "non-interpolated" AP of
/// TREC or the Oxford Buildings package, which sums (i+1)/(r+1) alone.
public enum AveragePrecision {
    /// The AP of one search whose true positives are at the 0-based `ranks` (increasing),
    /// out of `relevantCount` relevant images (0 when there are none).
    public static func holidays(ranks: [Int], relevantCount: Int) -> Double {
        precondition(ranks.count <= relevantCount, "more true positives than relevant images")
        guard relevantCount > 0 else { return 0 }
        let step = 1 / Double(relevantCount)
        var ap = 0.0
        for (found, rank) in ranks.enumerated() {
            precondition(rank >= found, "ranks must be increasing and non-negative")
            let before = rank == 0 ? 1 : Double(found) / Double(rank)
            let after = Double(found + 1) / Double(rank + 1)
            ap += (before + after) * step / 2
        }
        return ap
    }

    /// The AP of `ranking` (best first) for `query`, with the query itself excluded as
    /// Holidays excludes it: the images after it move up one rank.
    public static func holidays<Key: Hashable>(ranking: [Key], query: Key, relevant: Set<Key>) -> Double {
        var ranks: [Int] = []
        var shift = 0
        for (rank, key) in ranking.enumerated() {
            if key == query {
                shift = -1
            } else if relevant.contains(key) {
                ranks.append(rank + shift)
            }
        }
        return holidays(ranks: ranks, relevantCount: relevant.subtracting([query]).count)
    }
}
