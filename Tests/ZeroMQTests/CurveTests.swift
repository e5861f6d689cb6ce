import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite struct CurveTests {
    /// A CURVE server on loopback and a client that believes the server's key is `serverKey`.
    private func connectClient(serverKeys: CurveKeyPair, serverKey: CurveKey,
                               context: ZeroMQContext) throws -> (server: Socket, client: Socket) {
        let server = try Socket(.router, context: context)
        try server.setCurveServer(true)
        try server.setCurveSecretKey(serverKeys.secretKey)
        let client = try Socket(.dealer, context: context)
        let clientKeys = try CurveKeyPair.generate()
        try client.setCurvePublicKey(clientKeys.publicKey)
        try client.setCurveSecretKey(clientKeys.secretKey)
        try client.setCurveServerKey(serverKey)
        try client.connect(try bindLoopback(server))
        return (server, client)
    }

    @Test func serverAcceptsAClientWithTheRightServerKey() throws {
        let context = try ZeroMQContext()
        let serverKeys = try CurveKeyPair.generate()
        let (server, client) = try connectClient(serverKeys: serverKeys, serverKey: serverKeys.publicKey,
                                                 context: context)
        try server.setReceiveTimeout(deliveryTimeout)
        try client.send(frames: [bytes("secret")])
        let message = try #require(try server.receive())
        #expect(message.last == bytes("secret"))
    }

    @Test func serverHearsNothingFromAClientWithAWrongServerKey() throws {
        let context = try ZeroMQContext()
        let serverKeys = try CurveKeyPair.generate()
        let impostor = try CurveKeyPair.generate()
        let (server, client) = try connectClient(serverKeys: serverKeys, serverKey: impostor.publicKey,
                                                 context: context)
        try server.setReceiveTimeout(silenceTimeout)
        try client.send(frames: [bytes("secret")])
        #expect(try server.receive() == nil)
    }

    @Test func keysConvertBetweenZ85AndBytes() throws {
        let pair = try CurveKeyPair.generate()
        #expect(pair.publicKey != pair.secretKey)
        #expect(pair.publicKey.z85.utf8.count == 40)
        #expect(try CurveKey(z85: pair.publicKey.z85) == pair.publicKey)
        #expect(try CurveKey(bytes: pair.secretKey.bytes) == pair.secretKey)
        let error = #expect(throws: ZeroMQError.self) { try CurveKey(bytes: [1, 2, 3]) }
        #expect(error?.code == EINVAL)
        #expect(throws: ZeroMQError.self) { try CurveKey(z85: String(repeating: "~", count: 40)) }
        #expect(throws: ZeroMQError.self) { try CurveKey(z85: "too short") }
    }
}
