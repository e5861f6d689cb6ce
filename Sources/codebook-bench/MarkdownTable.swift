import Foundation

/// A markdown table printed when a section finishes.
struct MarkdownTable {
    let title: String
    let columns: [String]
    private(set) var rows: [[String]] = []
    var notes: [String] = []

    init(_ title: String, columns: [String]) {
        self.title = title
        self.columns = columns
    }

    mutating func add(_ cells: String...) { add(row: cells) }

    mutating func add(row cells: [String]) {
        precondition(cells.count == columns.count, "a row needs one cell per column")
        rows.append(cells)
    }

    mutating func note(_ text: String) { notes.append(text) }

    func render() -> String {
        var out = "### \(title)\n\n| " + columns.joined(separator: " | ") + " |\n|"
        out += columns.map { _ in "---" }.joined(separator: "|") + "|\n"
        for row in rows { out += "| " + row.joined(separator: " | ") + " |\n" }
        if !notes.isEmpty { out += "\n" + notes.map { "- \($0)" }.joined(separator: "\n") + "\n" }
        return out
    }

    func print() { Swift.print(render()) }
}

func format(_ value: Double, _ spec: String) -> String { String(format: spec, value) }

/// "1.234 s" / "56.7 ms".
func seconds(_ value: Double) -> String {
    value >= 1 ? format(value, "%.3f s") : format(value * 1000, "%.1f ms")
}

/// "1.07×".
func ratio(_ value: Double) -> String { format(value, "%.2f×") }

/// "yes (≤ 1.15)" or "NO (≤ 1.15)".
func verdict(_ met: Bool, _ text: String) -> String { (met ? "yes" : "**NO**") + " (\(text))" }
