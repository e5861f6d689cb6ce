/// The header of a NumPy `.npy` file, versions 1.0, 2.0 and 3.0.
///
/// Layout: the magic `\x93NUMPY`, major and minor version bytes, the header length
/// (little-endian uint16 in 1.0, uint32 in 2.0 and 3.0), then a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (10, 128), }` padded with spaces and a
/// newline. The parser accepts keys in any order, any spacing and trailing commas.
struct NpyHeader: Equatable {
    static let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]
    /// Length of every header this package writes: a multiple of 64 (so data is aligned)
    /// with room for any 2-D shape, so a writer can patch the row count in place at the end.
    static let writtenLength = 128
    /// The longest header read (NumPy itself reads at most 10,000 bytes by default).
    static let maximumLength = 1 << 20
    /// The deepest nesting of dicts, tuples and lists read (a simple header nests 2 deep).
    static let maximumDepth = 32

    var elementType: ElementType
    var shape: [Int]
    /// Byte offset of the first value.
    var dataOffset: Int

    /// Parses the header at the start of the `count` bytes at `bytes`; `path` is for errors.
    init(bytes: UnsafeRawPointer?, count: Int, path: String) throws {
        func byte(_ i: Int) -> UInt8 { bytes!.load(fromByteOffset: i, as: UInt8.self) }
        guard count >= 6, (0..<6).allSatisfy({ byte($0) == Self.magic[$0] }) else {
            throw DescriptorError(.malformed, count == 0 ? "empty file, not an npy file"
                                  : "not an npy file (bad magic)", path: path, location: "byte 0")
        }
        guard count >= 10 else {
            throw DescriptorError(.truncated, "file of \(count) bytes ends inside the npy preamble",
                                  path: path, location: "byte \(count)")
        }
        let (major, minor) = (byte(6), byte(7))
        guard (1...3).contains(major), minor == 0 else {
            throw DescriptorError(.unsupportedFormat,
                                  "unsupported npy version \(major).\(minor) (supported: 1.0, 2.0, 3.0)",
                                  path: path, location: "byte 6")
        }
        let start = major == 1 ? 10 : 12
        guard count >= start else {
            throw DescriptorError(.truncated, "file of \(count) bytes ends inside the npy preamble",
                                  path: path, location: "byte \(count)")
        }
        let length = major == 1
            ? Int(UInt16(littleEndian: bytes!.loadUnaligned(fromByteOffset: 8, as: UInt16.self)))
            : Int(UInt32(littleEndian: bytes!.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
        guard start + length <= count else {
            throw DescriptorError(.truncated, "header of \(length) bytes runs past the end of the file (\(count) bytes)",
                                  path: path, location: "byte \(start)")
        }
        guard length <= Self.maximumLength else {
            throw DescriptorError(.unsupportedFormat, "header of \(length) bytes exceeds the \(Self.maximumLength) bytes this reader accepts",
                                  path: path, location: "byte 8")
        }
        var parser = Parser(bytes: Array(UnsafeRawBufferPointer(start: bytes! + start, count: length)))
        let fields: [(String, Literal)]
        do {
            fields = try parser.header()
        } catch {
            throw DescriptorError(.malformed, "cannot parse npy header: \(error.message)",
                                  path: path, location: "byte \(start + error.offset)")
        }
        func field(_ key: String) throws -> Literal {
            guard let value = fields.last(where: { $0.0 == key })?.1 else {
                throw DescriptorError(.malformed, "npy header has no '\(key)'", path: path,
                                      location: "byte \(start)")
            }
            return value
        }
        guard case .string(let descr) = try field("descr") else {
            throw DescriptorError(.unsupportedFormat, "unsupported dtype (not a simple type string)",
                                  path: path, location: "byte \(start)")
        }
        switch descr {
        case "<f4": elementType = .float32
        case "|u1", "<u1", ">u1", "=u1", "u1": elementType = .uint8
        case "<i4": elementType = .int32
        default:
            // Only a NumPy type code is quoted back, never arbitrary text from the file.
            let isTypeCode = descr.count <= 8
                && descr.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "<>|=".contains($0)) }
            throw DescriptorError(.unsupportedFormat,
                                  "unsupported dtype \(isTypeCode ? "'\(descr)'" : "(not a NumPy type code)") (supported: '<f4', '|u1', '<i4')",
                                  path: path, location: "byte \(start)")
        }
        switch try field("fortran_order") {
        case .bool(false): break
        case .bool(true):
            throw DescriptorError(.unsupportedFormat, "not C order (fortran_order is True)",
                                  path: path, location: "byte \(start)")
        default:
            throw DescriptorError(.malformed, "'fortran_order' is not True or False", path: path,
                                  location: "byte \(start)")
        }
        let badShape = DescriptorError(.malformed, "'shape' is not a tuple of non-negative integers",
                                       path: path, location: "byte \(start)")
        guard case .tuple(let items) = try field("shape") else { throw badShape }
        shape = try items.map { item in
            guard case .int(let n) = item, n >= 0 else { throw badShape }
            return n
        }
        dataOffset = start + length
    }

    /// The shape as Python writes it: `(10, 128)`, `(5,)`, `()`.
    static func describe(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    /// A version 1.0 header of exactly `writtenLength` bytes for float32 data of `shape`.
    static func encodeFloat32(shape: [Int]) -> [UInt8] {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(describe(shape)), }"
        let padding = writtenLength - 10 - dict.utf8.count - 1
        precondition(padding >= 0, "shape too long for an npy header")
        let length = UInt16(writtenLength - 10)
        return magic + [1, 0, UInt8(length & 0xFF), UInt8(length >> 8)] + Array(dict.utf8)
            + [UInt8](repeating: 0x20, count: padding) + [0x0A]
    }

    /// A Python literal of the kinds npy headers use.
    enum Literal: Equatable {
        case string(String), bool(Bool), none, int(Int), tuple([Literal])
        case dict([Entry])
    }

    struct Entry: Equatable {
        var key: String
        var value: Literal
    }

    struct ParseError: Error {
        var message: String
        var offset: Int
    }

    /// A recursive-descent parser for the Python literal subset in npy headers. Nesting
    /// deeper than `maximumDepth` is an error, so no header can exhaust the stack.
    struct Parser {
        let bytes: [UInt8]
        var position = 0
        private var depth = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        /// The top-level dict, as (key, value) pairs; only whitespace may follow it.
        mutating func header() throws(ParseError) -> [(String, Literal)] {
            guard case .dict(let entries) = try value() else { throw failure("expected a dict") }
            skipSpace()
            guard position == bytes.count else { throw failure("unexpected text after the dict") }
            return entries.map { ($0.key, $0.value) }
        }

        private func failure(_ message: String) -> ParseError {
            ParseError(message: message, offset: position)
        }

        private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

        private mutating func skipSpace() {
            while let c = current, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 || c == 0 {
                position += 1
            }
        }

        private mutating func value() throws(ParseError) -> Literal {
            skipSpace()
            guard let c = current else { throw failure("unexpected end of header") }
            switch c {
            case UInt8(ascii: "{"):
                position += 1
                var entries: [Entry] = []
                try sequence(closing: UInt8(ascii: "}")) { (parser: inout Parser) throws(ParseError) in
                    guard case .string(let key) = try parser.value() else {
                        throw parser.failure("dict key is not a string")
                    }
                    parser.skipSpace()
                    guard parser.current == UInt8(ascii: ":") else { throw parser.failure("expected ':'") }
                    parser.position += 1
                    entries.append(Entry(key: key, value: try parser.value()))
                }
                return .dict(entries)
            case UInt8(ascii: "("), UInt8(ascii: "["):
                position += 1
                var items: [Literal] = []
                try sequence(closing: c == UInt8(ascii: "(") ? UInt8(ascii: ")") : UInt8(ascii: "]")) {
                    (parser: inout Parser) throws(ParseError) in items.append(try parser.value())
                }
                return .tuple(items)
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                position += 1
                let begin = position
                while let d = current, d != c { position += d == UInt8(ascii: "\\") ? 2 : 1 }
                guard position < bytes.count else { throw failure("unterminated string") }
                position += 1
                return .string(String(decoding: bytes[begin..<position - 1], as: UTF8.self))
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let begin = position
                if c == UInt8(ascii: "-") { position += 1 }
                while let d = current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(d) { position += 1 }
                guard let number = Int(String(decoding: bytes[begin..<position], as: UTF8.self)) else {
                    throw ParseError(message: "bad integer", offset: begin)
                }
                if current == UInt8(ascii: "L") || current == UInt8(ascii: "l") { position += 1 }
                return .int(number)
            default:
                let begin = position
                while let d = current, (d | 0x20) >= UInt8(ascii: "a") && (d | 0x20) <= UInt8(ascii: "z") {
                    position += 1
                }
                switch String(decoding: bytes[begin..<position], as: UTF8.self) {
                case "True": return .bool(true)
                case "False": return .bool(false)
                case "None": return .none
                default:
                    throw ParseError(message: "unexpected text (not a Python literal)", offset: begin)
                }
            }
        }

        /// Parses comma-separated elements up to `closing`, allowing a trailing comma; the
        /// opening bracket is the byte before `position`.
        private mutating func sequence(closing: UInt8,
                                       _ element: (inout Parser) throws(ParseError) -> Void) throws(ParseError) {
            guard depth < NpyHeader.maximumDepth else {
                throw ParseError(message: "nested deeper than \(NpyHeader.maximumDepth) dicts, tuples or lists", offset: position - 1)
            }
            depth += 1
            defer { depth -= 1 }
            while true {
                skipSpace()
                if current == closing { position += 1; return }
                try element(&self)
                skipSpace()
                if current == UInt8(ascii: ",") {
                    position += 1
                } else if current == closing {
                    position += 1
                    return
                } else {
                    throw failure("expected ',' or '\(Unicode.Scalar(closing))'")
                }
            }
        }
    }
}
