import Foundation
import JSONDecoding

/// The format of every value Codebook writes to its store (Protocols/storage.md):
///
///     offset  size  field
///     0       4     magic "CBKS"
///     4       2     format version (1), little-endian
///     6       2     record type (`StoredValue.Kind`)
///     8       4     metadata length M, little-endian
///     12      4     float32 count F, little-endian
///     16      M     metadata: a UTF-8 JSON object
///     16+M    4·F   float32 values, little-endian
///
/// A value that is shorter or longer than its header says, has another magic or an unknown
/// version or type is rejected with a `StoreError` naming the problem.
public struct StoredValue: Sendable, Equatable {
    public enum Kind: UInt16, Sendable {
        case model = 1
        case set = 2
        case vector = 3
        case job = 4
    }

    public static let magic: [UInt8] = Array("CBKS".utf8)
    public static let version: UInt16 = 1
    static let headerSize = 16

    public var kind: Kind
    public var metadata: [UInt8]
    public var values: [Float]

    public init(kind: Kind, metadata: some Encodable, values: [Float] = []) throws {
        self.kind = kind
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.metadata = Array(try encoder.encode(metadata))
        self.values = values
    }

    /// The value's bytes: `prefix` followed by the values' little-endian float32 bytes.
    public var bytes: [UInt8] {
        var out = Self.prefix(kind: kind, metadata: metadata, floatCount: values.count, reserving: 4 * values.count)
        values.withUnsafeBytes { out += $0 }
        return out
    }

    /// What comes before the float32 bytes of a value of `floatCount` floats: the header and
    /// the metadata. A value is this prefix followed by its little-endian float32 bytes.
    public static func prefix(kind: Kind, metadata: [UInt8], floatCount: Int, reserving extra: Int = 0) -> [UInt8] {
        var out = magic
        out.reserveCapacity(headerSize + metadata.count + extra)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(version)
        append(kind.rawValue)
        append(UInt32(metadata.count))
        append(UInt32(floatCount))
        out += metadata
        return out
    }

    /// Where the metadata and the float32 bytes of a value are, checked like
    /// `init(bytes:expecting:key:)` but without decoding anything: for readers that pass the
    /// floats on as they are.
    public static func parts(of bytes: UnsafeRawBufferPointer, expecting kind: Kind, key: String) throws
        -> (metadata: Range<Int>, floatBytes: Range<Int>) {
        let (metadataLength, floatCount) = try checkedHeader(bytes, expecting: kind, key: key)
        let floatStart = headerSize + metadataLength
        return (headerSize ..< floatStart, floatStart ..< floatStart + 4 * floatCount)
    }

    /// Decodes `bytes`, expecting a record of `kind`. `key` names the value in errors.
    public init(bytes: [UInt8], expecting kind: Kind, key: String) throws {
        let (metadataLength, floatCount) = try bytes.withUnsafeBytes { try Self.checkedHeader($0, expecting: kind, key: key) }
        self.kind = kind
        metadata = Array(bytes[Self.headerSize ..< Self.headerSize + metadataLength])
        values = [Float](repeating: 0, count: floatCount)
        values.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[(Self.headerSize + metadataLength)...]))
            }
        }
    }

    /// Checks the header of `bytes` and returns its metadata length and float count.
    private static func checkedHeader(_ bytes: UnsafeRawBufferPointer, expecting kind: Kind, key: String) throws -> (Int, Int) {
        func corrupt(_ why: String) -> StoreError { StoreError(.corrupt, "\(key): \(why)") }
        guard bytes.count >= Self.headerSize else { throw corrupt("value of \(bytes.count) bytes is shorter than the 16-byte header") }
        guard bytes[0..<4].elementsEqual(Self.magic) else { throw corrupt("value does not start with \"CBKS\"; not written by Codebook") }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let version = read(4, UInt16.self)
        guard version == Self.version else {
            throw StoreError(.unsupportedVersion, "\(key): value format version \(version); this build reads version \(Self.version)")
        }
        let rawKind = read(6, UInt16.self)
        guard let found = Kind(rawValue: rawKind) else { throw corrupt("unknown record type \(rawKind)") }
        guard found == kind else { throw corrupt("holds a \(found) record where a \(kind) was expected") }
        let metadataLength = Int(read(8, UInt32.self)), floatCount = Int(read(12, UInt32.self))
        let expected = Self.headerSize + metadataLength + 4 * floatCount
        guard bytes.count == expected else {
            throw corrupt("value has \(bytes.count) bytes but its header says \(expected)")
        }
        return (metadataLength, floatCount)
    }

    /// The metadata as `type`.
    public func decode<M: Decodable>(_ type: M.Type, key: String) throws -> M {
        try Self.decodeMetadata(type, from: metadata, of: kind, key: key)
    }

    /// The metadata bytes of a value of `kind` as `type`; `key` names the value in errors.
    public static func decodeMetadata<M: Decodable>(_ type: M.Type, from metadata: some Sequence<UInt8>, of kind: Kind,
                                                    key: String) throws -> M {
        do {
            return try CodebookJSON.decode(type, from: metadata)
        } catch {
            throw StoreError(.corrupt, "\(key): unreadable \(kind) metadata: \(error)")
        }
    }
}

/// An error about the store's contents or use.
///
/// Codes can grow without breaking callers; `description` is the message a user sees.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        public static let notFound = Code(name: "not found")
        public static let exists = Code(name: "already exists")
        public static let corrupt = Code(name: "corrupt value")
        public static let unsupportedVersion = Code(name: "unsupported version")
        public static let mismatch = Code(name: "mismatch")
        public static let invalidName = Code(name: "invalid name")
        /// The store cannot be opened now (another process holds it, or an I/O error).
        public static let unavailable = Code(name: "unavailable")
    }

    public var code: Code
    public var message: String
    /// The store's directory, if known.
    public var path: String?
    /// The RocksDB error behind this one, if any (the message quotes what it said).
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, path: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.path = path
        self.underlying = underlying
    }

    public var description: String { "\(code): \(message)" }

    /// Equal when they say the same: code, message, path and underlying error's text.
    public static func == (a: Self, b: Self) -> Bool {
        a.code == b.code && a.message == b.message && a.path == b.path
            && a.underlying.map { "\($0)" } == b.underlying.map { "\($0)" }
    }
}
