import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A CurveZMQ key (public or secret): 32 bytes, written as 40 Z85 characters in files.
public struct CurveKey: Sendable, Hashable, CustomStringConvertible {
    /// The key's 32 bytes.
    public let bytes: [UInt8]

    /// A key from its 32 bytes; throws `EINVAL` for any other length.
    public init(bytes: [UInt8]) throws {
        guard bytes.count == 32 else {
            throw ZeroMQError(code: EINVAL, operation: "CurveKey(bytes:)",
                              message: "a CURVE key is 32 bytes, got \(bytes.count)")
        }
        self.bytes = bytes
    }

    /// A key from its 40-character Z85 text; throws `EINVAL` for a wrong length or alphabet.
    public init(z85: String) throws {
        guard z85.utf8.count == 40 else {
            throw ZeroMQError(code: EINVAL, operation: "CurveKey(z85:)",
                              message: "a Z85 CURVE key is 40 characters, got \(z85.utf8.count)")
        }
        var decoded = [UInt8](repeating: 0, count: 32)
        guard zmq_z85_decode(&decoded, z85) != nil else {
            throw ZeroMQError(code: EINVAL, operation: "CurveKey(z85:)",
                              message: "not a Z85 key: \(z85)")
        }
        bytes = decoded
    }

    /// The key as 40 Z85 characters.
    public var z85: String {
        var text = [CChar](repeating: 0, count: 41)
        bytes.withUnsafeBufferPointer { _ = zmq_z85_encode(&text, $0.baseAddress, 32) }
        return String(nulTerminated: text)
    }

    /// Only the first Z85 characters, so logging a secret key does not leak it.
    public var description: String { "CurveKey(\(z85.prefix(8))…)" }
}
