import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A CurveZMQ long-term key pair: the public key is given to peers, the secret key is not.
public struct CurveKeyPair: Sendable, Hashable {
    public let publicKey: CurveKey
    public let secretKey: CurveKey

    public init(publicKey: CurveKey, secretKey: CurveKey) {
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A new random key pair (`zmq_curve_keypair`). Throws `ENOTSUP` if libzmq was built
    /// without CURVE.
    public static func generate() throws -> CurveKeyPair {
        try requireCurveSupport()
        var publicText = [CChar](repeating: 0, count: 41)
        var secretText = [CChar](repeating: 0, count: 41)
        try LibZMQ.check("zmq_curve_keypair") { zmq_curve_keypair(&publicText, &secretText) }
        return CurveKeyPair(publicKey: try CurveKey(z85: String(nulTerminated: publicText)),
                            secretKey: try CurveKey(z85: String(nulTerminated: secretText)))
    }

    /// The pair whose secret key is `secretKey`, its public key derived (`zmq_curve_public`).
    public init(secretKey: CurveKey) throws {
        try Self.requireCurveSupport()
        var publicText = [CChar](repeating: 0, count: 41)
        try LibZMQ.check("zmq_curve_public") { zmq_curve_public(&publicText, secretKey.z85) }
        self.init(publicKey: try CurveKey(z85: String(nulTerminated: publicText)), secretKey: secretKey)
    }

    /// Throws `ENOTSUP` with a clear message unless libzmq has the CURVE mechanism.
    static func requireCurveSupport() throws {
        guard zmq_has("curve") != 0 else {
            throw ZeroMQError(code: ENOTSUP, operation: "zmq_has curve",
                              message: "this libzmq was built without CURVE support (libsodium)")
        }
    }
}
