import Foundation

/// A JSON text `JSONDecoder` has read (so valid JSON), scanned for what `JSONFieldError`
/// needs: the text of the value at a path, and the number that does not fit its field. The
/// scans keep only the open containers' path (and, in the search, the numbers' places),
/// never the values, so any text a decoder takes can be scanned.
struct JSONValues {
    enum Element: Equatable {
        case key(String)
        case index(Int)
    }

    let bytes: [UInt8]

    init(_ text: Data) { bytes = Array(text) }

    /// A `JSONDecoder` coding path as elements (its array indices are keys "Index n").
    static func path(_ keys: [any CodingKey]) -> [Element] {
        keys.map { key in
            if let index = key.intValue, key.stringValue == "Index \(index)" { return .index(index) }
            return .key(key.stringValue)
        }
    }

    /// Whether the text is JSON, whatever its values (numbers read as any number fits).
    var isJSON: Bool { (try? CodebookJSON.decoder().decode(AnyJSON.self, from: Data(bytes))) != nil }

    /// The text of the value at `path` (the last, if a key repeats); `nil` if there is none,
    /// or the text is longer than `maximumSearchedBytes` (the scan compares every value's
    /// path: 10 MB of numbers took seconds).
    func text(at path: [Element]) -> String? {
        guard bytes.count <= Self.maximumSearchedBytes else { return nil }
        var found: Range<Int>?
        scan { current, range, _ in
            if current == path { found = range }
            return true
        }
        return found.map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    /// The most bytes of text searched for a number that does not fit (each step of the
    /// search decodes the whole text again) or for the value to quote in an error.
    static let maximumSearchedBytes = 64 << 10

    /// The first number (in the text's order) that makes decoding `type` fail as Foundation
    /// fails on a number that does not fit its field, found by a binary search over how many
    /// numbers keep their value (the others set to 0): its path and text. `nil` if none is
    /// found, or the text is longer than `maximumSearchedBytes`.
    func misfitNumber<T: Decodable>(decoding type: T.Type) -> ([Element], String)? {
        guard bytes.count <= Self.maximumSearchedBytes else { return nil }
        var numbers: [Range<Int>] = []
        scan { _, range, isNumber in
            if isNumber { numbers.append(range) }
            return true
        }
        func fails(keeping kept: Int) -> Bool {
            var text = [UInt8](), next = 0
            text.reserveCapacity(bytes.count)
            for number in numbers[kept...] {
                text += bytes[next ..< number.lowerBound]
                text.append(UInt8(ascii: "0"))
                next = number.upperBound
            }
            text += bytes[next...]
            do {
                _ = try CodebookJSON.decoder().decode(type, from: Data(text))
                return false
            } catch DecodingError.dataCorrupted(let context) {
                return context.codingPath.isEmpty
            } catch {
                return false
            }
        }
        guard !numbers.isEmpty, !fails(keeping: 0) else { return nil }
        var (fits, misfits) = (0, numbers.count)
        while misfits - fits > 1 {
            let middle = (fits + misfits) / 2
            if fails(keeping: middle) { misfits = middle } else { fits = middle }
        }
        let number = numbers[misfits - 1]
        var path: [Element] = []
        scan { current, range, _ in
            guard range == number else { return true }
            path = current
            return false
        }
        return (path, String(decoding: bytes[number], as: UTF8.self))
    }

    /// Calls `visit` with every value's path, bytes and whether it is a number, in order (a
    /// container when it closes), until it returns false.
    private func scan(_ visit: ([Element], Range<Int>, Bool) -> Bool) {
        // Open containers: where each starts, and its current key or index (none while empty).
        var open: [(start: Int, element: Element?)] = []
        var path: [Element] = []
        var index = 0
        func skipSpace() { while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 } }
        /// The end of the string that starts at `start`.
        func stringEnd(_ start: Int) -> Int {
            var end = start + 1
            while bytes[end] != UInt8(ascii: "\"") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
            return end + 1
        }
        /// Makes `element` the innermost open container's current one.
        func enter(_ element: Element) {
            if open[open.count - 1].element != nil { path.removeLast() }
            open[open.count - 1].element = element
            path.append(element)
        }
        /// Reads `"key" :` at `index` as the open object's current member.
        func readKey() {
            let end = stringEnd(index)
            let quoted = Data(bytes[index ..< end])
            let key = (try? JSONDecoder().decode(String.self, from: quoted)) ?? String(decoding: bytes[index + 1 ..< end - 1], as: UTF8.self)
            enter(.key(key))
            index = end
            skipSpace()
            index += 1 // the colon
        }
        while true {
            skipSpace()
            guard index < bytes.count else { return }
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = bytes[index] == UInt8(ascii: "{")
                open.append((index, nil))
                index += 1
                skipSpace()
                if isObject, bytes[index] == UInt8(ascii: "\"") { readKey() }
                if !isObject, bytes[index] != UInt8(ascii: "]") { enter(.index(0)) }
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let container = open.removeLast()
                if container.element != nil { path.removeLast() }
                index += 1
                guard visit(path, container.start ..< index, false) else { return }
            case UInt8(ascii: ","):
                index += 1
                skipSpace()
                if case .index(let position)? = open.last?.element { enter(.index(position + 1)) } else { readKey() }
            default:
                let start = index
                let isNumber = bytes[index] == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
                if bytes[index] == UInt8(ascii: "\"") {
                    index = stringEnd(index)
                } else {
                    while index < bytes.count, !",]} \t\r\n".utf8.contains(bytes[index]) { index += 1 }
                }
                guard visit(path, start ..< index, isNumber) else { return }
            }
        }
    }
}

/// Any JSON value, read and dropped (numbers as `Double`, which any JSON number fits).
private struct AnyJSON: Decodable {
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(AnyJSON.self) }
        } else if let object = try? decoder.container(keyedBy: Key.self) {
            for key in object.allKeys { _ = try object.decode(AnyJSON.self, forKey: key) }
        } else {
            let value = try decoder.singleValueContainer()
            guard value.decodeNil() || (try? value.decode(Bool.self)) != nil || (try? value.decode(Double.self)) != nil
                    || (try? value.decode(String.self)) != nil else {
                throw DecodingError.dataCorruptedError(in: value, debugDescription: "not a JSON value")
            }
        }
    }
}
