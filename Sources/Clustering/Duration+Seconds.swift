extension Duration {
    /// In seconds, as a `Double` (for reports, metrics and JSON, which count in seconds).
    public var seconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
