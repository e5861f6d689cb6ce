/// The first frame of every Codebook message: 24 bytes, little-endian.
///
///     offset  size  field
///     0       4     magic "CDBK"
///     4       2     protocol version (1)
///     6       2     message type (`MessageType`)
///     8       8     job id (0: none)
///     16      4     round: the pass of the job this message belongs to (0: none)
///     20      4     shard index (0xFFFFFFFF: none)
///
/// See Protocols/cluster.md for the frames that follow each type.
public struct WireHeader: Sendable, Equatable {
    public static let magic: [UInt8] = Array("CDBK".utf8)
    public static let version: UInt16 = 1
    public static let size = 24
    public static let noShard = UInt32.max

    public var type: MessageType
    public var job: UInt64
    public var round: UInt32
    public var shard: UInt32

    public init(_ type: MessageType, job: UInt64 = 0, round: UInt32 = 0, shard: UInt32 = WireHeader.noShard) {
        self.type = type
        self.job = job
        self.round = round
        self.shard = shard
    }

    public var bytes: [UInt8] {
        var out = Self.magic
        out.reserveCapacity(Self.size)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(Self.version)
        append(type.rawValue)
        append(job)
        append(round)
        append(shard)
        return out
    }

    public init(bytes: [UInt8]) throws {
        guard bytes.count == Self.size else {
            throw ClusterError.malformed("header frame has \(bytes.count) bytes, expected \(Self.size)")
        }
        guard Array(bytes[0..<4]) == Self.magic else { throw ClusterError.malformed("header does not start with \"CDBK\"") }
        func read<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        let version = read(4, UInt16.self)
        guard version == Self.version else {
            throw ClusterError(.unsupportedVersion, "unsupported protocol version \(version) (this build speaks \(Self.version))")
        }
        let rawType = read(6, UInt16.self)
        guard let type = MessageType(rawValue: rawType) else { throw ClusterError.malformed("unknown message type \(rawType)") }
        self.type = type
        job = read(8, UInt64.self)
        round = read(16, UInt32.self)
        shard = read(20, UInt32.self)
    }
}

/// Every message type of protocol version 1.
public enum MessageType: UInt16, Sendable, CaseIterable {
    // Worker → coordinator.
    case ready = 1
    case workerHeartbeat = 2
    case result = 3
    case failure = 4
    case goodbye = 5
    // Coordinator → worker.
    case welcome = 16
    case coordinatorHeartbeat = 17
    case task = 18
    case resync = 19
    case dismiss = 20
    // Client → coordinator (requests) and the replies.
    case submit = 32
    case progress = 33
    case fetchResult = 34
    case status = 35
    case get = 36
    case list = 37
    case describe = 38
    case catalog = 39
    case submitEncoding = 40
    case importModel = 41
    case cancel = 42
    case search = 43
    case submitExtraction = 44
    case transformSet = 45
    case accepted = 48
    case progressReply = 49
    case resultReply = 50
    case statusReply = 51
    case getReply = 52
    case listReply = 53
    case describeReply = 54
    case catalogReply = 55
    case searchReply = 56
    case errorReply = 63
}

extension MessageType {
    /// Whether a client request of this type may change the coordinator's state (start a
    /// job, store or replace a model…), so that only a `write` key may send it. Every type
    /// not known to read only counts as changing state.
    public var changesState: Bool {
        switch self {
        case .status, .progress, .fetchResult, .get, .list, .describe, .catalog, .search: false
        default: true
        }
    }
}
