import Foundation

/// The values of a valid JSON text with their paths and where they are in it: what
/// `JSONFieldError` needs to quote a field's value and to find a number that does not fit.
struct JSONValues {
    enum Element: Equatable {
        case key(String)
        case index(Int)
    }

    struct Value {
        var path: [Element]
        /// Its bytes (a container's from its opening to its closing bracket).
        var range: Range<Int>
        var isNumber: Bool
    }

    let bytes: [UInt8]
    private(set) var values: [Value] = []

    /// The values of `text`; `nil` if it is not JSON.
    init?(_ text: Data) {
        guard (try? JSONSerialization.jsonObject(with: text, options: [.fragmentsAllowed])) != nil else { return nil }
        bytes = Array(text)
        scan()
    }

    /// A `JSONDecoder` coding path as elements (its array indices are keys "Index n").
    static func path(_ keys: [any CodingKey]) -> [Element] {
        keys.map { key in
            if let index = key.intValue, key.stringValue == "Index \(index)" { return .index(index) }
            return .key(key.stringValue)
        }
    }

    /// The text of the value at `path`, if there is one.
    func text(at path: [Element]) -> String? {
        values.last { $0.path == path }.map { String(decoding: bytes[$0.range], as: UTF8.self) }
    }

    /// The first number (in the text's order) that makes decoding `type` fail as Foundation
    /// fails on a number that does not fit its field, found by a binary search over how many
    /// numbers keep their value (the others set to 0); its path and text.
    func misfitNumber<T: Decodable>(decoding type: T.Type) -> ([Element], String)? {
        let numbers = values.filter(\.isNumber)
        func fails(keeping kept: Int) -> Bool {
            var text = [UInt8](), next = 0
            text.reserveCapacity(bytes.count)
            for number in numbers[kept...] {
                text += bytes[next ..< number.range.lowerBound]
                text.append(UInt8(ascii: "0"))
                next = number.range.upperBound
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
        return (number.path, String(decoding: bytes[number.range], as: UTF8.self))
    }

    /// Records every value of the (valid) text, in order.
    private mutating func scan() {
        // Open containers: the index of their value, whether an object, the current key or index.
        var open: [(value: Int, isObject: Bool, element: Element?)] = []
        var index = 0
        func skipSpace() { while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 } }
        func path() -> [Element] { open.compactMap(\.element) }
        /// The end of the string starting at `index`.
        func stringEnd(_ start: Int) -> Int {
            var end = start + 1
            while bytes[end] != UInt8(ascii: "\"") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
            return end + 1
        }
        while true {
            skipSpace()
            guard index < bytes.count else { return }
            switch bytes[index] {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                let isObject = bytes[index] == UInt8(ascii: "{")
                values.append(Value(path: path(), range: index ..< index + 1, isNumber: false))
                open.append((values.count - 1, isObject, isObject ? nil : .index(0)))
                index += 1
                skipSpace()
                if bytes[index] == UInt8(ascii: "]") { open[open.count - 1].element = nil }
                if isObject, bytes[index] == UInt8(ascii: "\"") {
                    readKey()
                }
                continue
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                let container = open.removeLast()
                values[container.value].range = values[container.value].range.lowerBound ..< index + 1
                index += 1
            case UInt8(ascii: ","):
                index += 1
                skipSpace()
                switch open.last?.element {
                case .index(let position)?: open[open.count - 1].element = .index(position + 1)
                default: readKey()
                }
                continue
            default:
                let start = index
                let isNumber = bytes[index] == UInt8(ascii: "-") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index])
                if bytes[index] == UInt8(ascii: "\"") {
                    index = stringEnd(index)
                } else {
                    while index < bytes.count, !",]} \t\r\n".utf8.contains(bytes[index]) { index += 1 }
                }
                values.append(Value(path: path(), range: start ..< index, isNumber: isNumber))
            }
        }

        /// Reads `"key" :` at `index`, making it the open object's current element.
        func readKey() {
            let end = stringEnd(index)
            let quoted = Data(bytes[index ..< end])
            let key = (try? JSONSerialization.jsonObject(with: quoted, options: [.fragmentsAllowed])) as? String
            open[open.count - 1].element = .key(key ?? String(decoding: bytes[index + 1 ..< end - 1], as: UTF8.self))
            index = end
            skipSpace()
            index += 1 // the colon
        }
    }
}
