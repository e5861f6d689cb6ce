import Descriptors

/// The images to extract from, in order: each a key (unique) and a path.
public struct ImageSource: Sendable {
    public struct Entry: Codable, Sendable, Equatable {
        public let key: String
        public let path: String

        public init(key: String, path: String) {
            self.key = key
            self.path = path
        }
    }

    /// The file name extensions read from a directory (any case).
    public static let extensions: Set<String> = ["jpg", "jpeg", "png"]

    public let entries: [Entry]

    public init(entries: [Entry]) throws {
        var seen: [String: String] = [:]
        for entry in entries {
            if let other = seen[entry.key] {
                throw DescriptorError(.duplicateKey, "key '\(entry.key)' of \(entry.path) is also the key of \(other)")
            }
            seen[entry.key] = entry.path
        }
        self.entries = entries
    }

    /// The `.jpg`, `.jpeg` and `.png` files of `directory` (not its subdirectories; hidden
    /// names skipped); key = name without the extension; sorted by key in byte order, the
    /// order of the store's keys.
    /// Two names with the same key (`a.jpg`, `a.png`) are an error.
    public init(directory: String) throws {
        let names = try ImageCollection.visibleNames(in: directory) { name in
            guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
            return Self.extensions.contains(name[name.index(after: dot)...].lowercased())
        }
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        let entries = names.map { Entry(key: Self.key(ofName: $0), path: prefix + $0) }
        try self.init(entries: entries.sorted { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) })
    }

    /// A list file: one image per non-blank line, `PATH` or `KEY<TAB>PATH` (UTF-8). Without a
    /// key, the key is the file name without its extension. Relative paths are taken from
    /// the list's directory.
    public init(list: String) throws {
        let file = try MappedFile(path: list)
        let text = UnsafeRawBufferPointer(start: file.bytes, count: file.size)
        let base = list.lastIndex(of: "/").map { String(list[...$0]) } ?? ""
        var entries: [Entry] = []
        for (offset, rawLine) in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            func failure(_ message: String) -> DescriptorError {
                DescriptorError(.malformed, message, path: list, location: "line \(offset + 1)")
            }
            var line = rawLine[...]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            guard let text = String(validating: line, as: UTF8.self) else { throw failure("not valid UTF-8") }
            let fields = text.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard fields.count <= 2, fields.allSatisfy({ !$0.isEmpty }), !text.contains("\0") else {
                throw failure("expected PATH or KEY<TAB>PATH")
            }
            let path = fields.last!.hasPrefix("/") ? fields.last! : base + fields.last!
            entries.append(Entry(key: fields.count == 2 ? fields[0] : Self.key(ofName: fields[0]), path: path))
        }
        try self.init(entries: entries)
    }

    /// A file name without its directory and its last extension: the image's key.
    public static func key(ofName path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }
}

