import ClusterProtocol

extension Duration {
    /// In seconds, as a `Double` (for metrics and JSON, which count in seconds).
    var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }

    /// In seconds with at most one decimal, for logs: "0.5", "2", "32".
    var secondsText: String {
        let tenths = (seconds * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
    }
}
