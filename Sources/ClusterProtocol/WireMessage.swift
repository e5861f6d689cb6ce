import Foundation
import JSONDecoding

/// A decoded message: the header, a JSON metadata frame, and raw little-endian array frames.
///
/// Wire layout: [header (24 bytes)] [metadata (UTF-8 JSON object)] [array]*.
public struct WireMessage: Sendable, Equatable {
    public var header: WireHeader
    public var metadata: [UInt8]
    public var arrays: [[UInt8]]

    /// The most array frames of a message to the coordinator (a RESULT, a request): every
    /// such message has far fewer (at most 4), and the coordinator drops a longer one as it
    /// reads it, before keeping its frames.
    public static let maximumArraysToCoordinator = 64

    public init(header: WireHeader, metadata: some Encodable = Empty(), arrays: [[UInt8]] = []) {
        self.header = header
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.metadata = (try? encoder.encode(metadata)).map(Array.init) ?? Array("{}".utf8)
        self.arrays = arrays
    }

    /// The same message as `init(header:metadata:arrays:)`, its metadata written by hand.
    public init(header: WireHeader, metadata: some HandCodedMetadata, arrays: [[UInt8]] = []) {
        self.header = header
        var writer = MetadataWriter(capacity: 256)
        metadata.write(to: &writer)
        self.metadata = writer.bytes
        self.arrays = arrays
    }

    /// Decodes frames as received; throws a malformed `ClusterError` for anything malformed.
    public init(frames: [[UInt8]]) throws {
        guard frames.count >= 2 else {
            throw ClusterError.malformed("\(frames.count) frame(s); a message has a header and a metadata frame at least")
        }
        header = try WireHeader(bytes: frames[0])
        metadata = frames[1]
        arrays = Array(frames.dropFirst(2))
    }

    public var frames: [[UInt8]] { [header.bytes, metadata] + arrays }

    /// The metadata as `type`.
    public func decode<M: Decodable>(_ type: M.Type) throws -> M {
        try decodeWithFoundation(type)
    }

    /// The metadata as `type`, read by hand when it is in a form the hand-written reader takes.
    public func decode<M: HandCodedMetadata>(_ type: M.Type) throws -> M {
        try MetadataScanner.scan(metadata, M.init(scanning:)) ?? decodeWithFoundation(type)
    }

    private func decodeWithFoundation<M: Decodable>(_ type: M.Type) throws -> M {
        do {
            return try CodebookJSON.decode(type, from: metadata)
        } catch {
            throw ClusterError.malformed("\(header.type) metadata: \(error)")
        }
    }

    /// Array frame `index` as elements of `type`, with exactly `count` of them if given.
    public func array<E: FrameElement>(_ index: Int, as type: E.Type, count: Int? = nil) throws -> [E] {
        guard index < arrays.count else {
            throw ClusterError.malformed("\(header.type) has \(arrays.count) array frame(s), array \(index) is missing")
        }
        let values: [E]
        do {
            values = try Frame.decode(arrays[index], as: type)
        } catch {
            throw ClusterError.malformed("\(header.type) array \(index): \(error)")
        }
        if let count, values.count != count {
            throw ClusterError.malformed("\(header.type) array \(index) has \(values.count) values, expected \(count)")
        }
        return values
    }

    /// An empty metadata object.
    public struct Empty: Codable, Sendable { public init() {} }
}
