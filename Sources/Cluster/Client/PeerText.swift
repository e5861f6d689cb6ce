import ClusterProtocol

/// Text a peer chose (a worker's name, its failure message, an error quoting what it sent),
/// made safe to log and to show: it can forge neither a log line nor terminal output.
public enum PeerText {
    /// Scalars a worker's name keeps.
    public static let nameLimit = 128
    /// Scalars a worker's failure message keeps.
    public static let messageLimit = 1024

    /// `text` with backslashes doubled and control, format and separator characters (C0,
    /// DEL, C1, bidirectional overrides, U+2028/9, …) written as `\u{1B}`, cut to `limit`
    /// Unicode scalars of the result (scalars, not characters: one character may carry
    /// any number of combining marks), with "…" appended when cut.
    public static func escaped(_ text: String, limit: Int = messageLimit) -> String {
        var result = String.UnicodeScalarView()
        var count = 0
        for scalar in text.unicodeScalars {
            let piece: String
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator:
                piece = "\\u{\(String(scalar.value, radix: 16, uppercase: true))}"
            default:
                piece = scalar == "\\" ? "\\\\" : String(scalar)
            }
            let length = piece.unicodeScalars.count
            guard count + length <= limit else {
                result.append("…")
                break
            }
            result.append(contentsOf: piece.unicodeScalars)
            count += length
        }
        return String(result)
    }
}
