/// A result that disagrees with its reference beyond tolerance: the run exits non-zero.
struct CheckFailure: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Relative agreement checks shared by the sections.
enum Check {
    /// |a − b| / |b|.
    static func relativeDifference(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), .leastNormalMagnitude) }

    /// Throws unless |value − reference| ≤ tolerance·|reference|.
    static func agree(_ what: String, _ value: Double, _ reference: Double, tolerance: Double) throws {
        let difference = relativeDifference(value, reference)
        guard difference <= tolerance, value.isFinite else {
            throw CheckFailure("\(what): \(value) vs \(reference), relative difference \(format(difference, "%.3e")) > \(tolerance)")
        }
    }

    /// max|a − b| / max|b| of two vectors.
    static func vectorDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var worst = 0.0, scale = 0.0
        for i in a.indices {
            worst = max(worst, abs(Double(a[i]) - Double(b[i])))
            scale = max(scale, abs(Double(b[i])))
        }
        return worst / max(scale, .leastNormalMagnitude)
    }
}
