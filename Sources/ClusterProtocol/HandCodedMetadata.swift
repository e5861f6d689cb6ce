/// Metadata whose JSON this module writes and reads by hand, for the messages on the hot
/// path (a GET and its reply), where `JSONEncoder` and `JSONDecoder` cost more than the
/// rest of the request. The writer produces the text `JSONEncoder` writes with sorted keys;
/// the reader takes the common forms and leaves anything else (unknown or repeated keys,
/// `null`, numbers with a fraction or an exponent, `\u` escapes) to `JSONDecoder`, so every
/// JSON text is read as before. `WireMessage` picks these up by overload.
public protocol HandCodedMetadata: Codable {
    /// Appends the JSON object, keys sorted, exactly as `JSONEncoder` writes it.
    func write(to writer: inout MetadataWriter)
    /// Reads the JSON object; `nil` when it is in a form left to `JSONDecoder`.
    init?(scanning scanner: inout MetadataScanner)
}

/// Writes JSON text as `JSONEncoder` does: no spaces, `/` escaped as `\/`.
public struct MetadataWriter {
    /// The JSON text written so far.
    public private(set) var bytes: [UInt8] = []

    /// A writer with room for `capacity` bytes.
    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    /// Opens an object; its members follow as `key` and a value each.
    public mutating func beginObject() { bytes.append(UInt8(ascii: "{")) }
    /// Closes the object.
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")) }

    /// An array of `elements`, each written by `element`.
    public mutating func array<Elements: Sequence>(_ elements: Elements, _ element: (inout MetadataWriter, Elements.Element) -> Void) {
        bytes.append(UInt8(ascii: "["))
        for (index, value) in elements.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            element(&self, value)
        }
        bytes.append(UInt8(ascii: "]"))
    }

    /// Starts the member `name` of an object (a comma unless it is the first); `name` needs no escaping.
    public mutating func key(_ name: StaticString) {
        if bytes.last != UInt8(ascii: "{") { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// A string, escaped as `JSONEncoder` escapes it.
    public mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(contentsOf: [UInt8(ascii: "\\"), byte])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 15)]])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// An integer in decimal.
    public mutating func integer(_ value: Int) { bytes.append(contentsOf: String(value).utf8) }

    /// `true` or `false`.
    public mutating func boolean(_ value: Bool) { bytes.append(contentsOf: (value ? "true" : "false").utf8) }
}

/// Reads the forms of JSON `HandCodedMetadata` takes; every reader returns `nil` (or
/// `false`) at anything else, and the caller falls back to `JSONDecoder`.
public struct MetadataScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    /// `body` applied to all of `text`, or `nil` if it declined or left anything but whitespace.
    public static func scan<Value>(_ text: [UInt8], _ body: (inout MetadataScanner) -> Value?) -> Value? {
        text.withUnsafeBufferPointer { bytes in
            var scanner = MetadataScanner(bytes: bytes)
            guard let value = body(&scanner) else { return nil }
            scanner.skipWhitespace()
            return scanner.index == bytes.count ? value : nil
        }
    }

    /// Reads an object, calling `member` with each key to read its value; `member`
    /// returns `false` for a key it does not take. Repeated keys are declined.
    public mutating func object(_ member: (inout MetadataScanner, String) -> Bool) -> Bool {
        guard take(UInt8(ascii: "{")) else { return false }
        if take(UInt8(ascii: "}")) { return true }
        var seen: Set<String> = []
        repeat {
            guard let key = string(), seen.insert(key).inserted, take(UInt8(ascii: ":")), member(&self, key) else { return false }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}"))
    }

    /// Reads an object whose one member is `name`, its value read by `value`.
    public mutating func object<Value>(withOnly name: String, _ value: (inout MetadataScanner) -> Value?) -> Value? {
        var result: Value?
        guard object({ scanner, key in
            result = key == name ? value(&scanner) : nil
            return result != nil
        }) else { return nil }
        return result
    }

    /// Reads an array, each element read by `element`.
    public mutating func array<Element>(of element: (inout MetadataScanner) -> Element?) -> [Element]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var elements: [Element] = []
        if take(UInt8(ascii: "]")) { return elements }
        repeat {
            guard let value = element(&self) else { return nil }
            elements.append(value)
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? elements : nil
    }

    /// A string with at most the two-character escapes (`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`).
    public mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var unescaped: [UInt8]?
        var runStart = start
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                let run = UnsafeBufferPointer(rebasing: bytes[runStart..<index])
                index += 1
                guard var text = unescaped else { return String(validating: run, as: UTF8.self) }
                text.append(contentsOf: run)
                return String(validating: text, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard index + 1 < bytes.count else { return nil }
                let replacement: UInt8
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): replacement = bytes[index + 1]
                case UInt8(ascii: "b"): replacement = 0x08
                case UInt8(ascii: "f"): replacement = 0x0C
                case UInt8(ascii: "n"): replacement = 0x0A
                case UInt8(ascii: "r"): replacement = 0x0D
                case UInt8(ascii: "t"): replacement = 0x09
                default: return nil
                }
                unescaped = (unescaped ?? []) + UnsafeBufferPointer(rebasing: bytes[runStart..<index]) + [replacement]
                index += 2
                runStart = index
            case 0..<0x20:
                return nil
            default:
                index += 1
            }
        }
        return nil
    }

    /// An integer without fraction or exponent that fits an `Int`.
    public mutating func integer() -> Int? {
        skipWhitespace()
        let negative = index < bytes.count && bytes[index] == UInt8(ascii: "-")
        if negative { index += 1 }
        let start = index
        var magnitude = 0
        while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
            let (times10, overflow) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(bytes[index] - UInt8(ascii: "0")))
            guard !overflow, !overflow2 else { return nil }
            magnitude = sum
            index += 1
        }
        let digits = index - start
        guard digits > 0, digits == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        if index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E"): return nil
            default: break
            }
        }
        return negative ? -magnitude : magnitude
    }

    /// `true` or `false`.
    public mutating func boolean() -> Bool? {
        if literal("true") { return true }
        if literal("false") { return false }
        return nil
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        skipWhitespace()
        let word = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - index >= word.count, bytes[index..<index + word.count].elementsEqual(word) else { return false }
        index += word.count
        return true
    }

    /// Skips whitespace, then consumes `byte` if it comes next.
    private mutating func take(_ byte: UInt8) -> Bool {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }
}
