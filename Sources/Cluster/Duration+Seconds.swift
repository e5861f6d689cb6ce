import Clustering

extension Duration {
    /// In seconds with at most one decimal, for logs: "0.5", "2", "32".
    var secondsText: String {
        let tenths = (seconds * 10).rounded() / 10
        return tenths == tenths.rounded() ? String(Int(tenths)) : String(tenths)
    }
}
