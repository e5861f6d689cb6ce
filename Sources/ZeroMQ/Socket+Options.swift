import CZeroMQ

/// Typed setters for the socket options Codebook uses. Options that affect connections
/// (limits, keys) must be set before `bind` or `connect`.
extension Socket {
    /// How long closing the socket waits to deliver queued messages; `nil` waits forever.
    public func setLinger(_ linger: Duration?) throws {
        try setOption(ZMQ_LINGER, "ZMQ_LINGER", linger.zmqMilliseconds)
    }

    /// The largest message, in bytes, accepted from a peer; `nil` means no limit. A peer
    /// that sends a larger message is disconnected and the message is dropped.
    public func setMaxMessageSize(_ bytes: Int64?) throws {
        try setOption(ZMQ_MAXMSGSIZE, "ZMQ_MAXMSGSIZE", bytes ?? -1)
    }

    /// How many outgoing messages may queue per peer before sends block (0: no limit).
    public func setSendHighWaterMark(_ messages: Int32) throws {
        try setOption(ZMQ_SNDHWM, "ZMQ_SNDHWM", messages)
    }

    /// How many incoming messages may queue per peer before libzmq stops reading (0: no limit).
    public func setReceiveHighWaterMark(_ messages: Int32) throws {
        try setOption(ZMQ_RCVHWM, "ZMQ_RCVHWM", messages)
    }

    /// ROUTER only: a message to an unknown routing id fails with `EHOSTUNREACH` instead of
    /// being dropped silently.
    public func setRouterMandatory(_ enabled: Bool) throws {
        try setOption(ZMQ_ROUTER_MANDATORY, "ZMQ_ROUTER_MANDATORY", enabled)
    }

    /// How long a blocking `receive` waits before it returns `nil`; `nil` waits forever.
    public func setReceiveTimeout(_ timeout: Duration?) throws {
        try setOption(ZMQ_RCVTIMEO, "ZMQ_RCVTIMEO", timeout.zmqMilliseconds)
    }

    /// ZMTP heartbeats: a PING every `interval`; the connection is dropped (a `disconnected`
    /// event) when nothing comes from the peer within `timeout` of one. libzmq answers the
    /// peer's PINGs itself, however busy its application thread.
    public func setHeartbeat(interval: Duration, timeout: Duration) throws {
        try setOption(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", interval.zmqMilliseconds)
        try setOption(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", timeout.zmqMilliseconds)
    }

    // MARK: CurveZMQ

    /// Makes this socket the CURVE server: it needs `setCurveSecretKey` and admits any
    /// client that knows the matching public key.
    public func setCurveServer(_ enabled: Bool) throws {
        try CurveKeyPair.requireCurveSupport()
        try setOption(ZMQ_CURVE_SERVER, "ZMQ_CURVE_SERVER", enabled)
    }

    /// This socket's long-term public key (a CURVE client sets it with its secret key).
    public func setCurvePublicKey(_ key: CurveKey) throws {
        try CurveKeyPair.requireCurveSupport()
        try setOption(ZMQ_CURVE_PUBLICKEY, "ZMQ_CURVE_PUBLICKEY", bytes: key.bytes)
    }

    /// This socket's long-term secret key (both server and client).
    public func setCurveSecretKey(_ key: CurveKey) throws {
        try CurveKeyPair.requireCurveSupport()
        try setOption(ZMQ_CURVE_SECRETKEY, "ZMQ_CURVE_SECRETKEY", bytes: key.bytes)
    }

    /// CURVE client only: the public key of the server this socket connects to.
    public func setCurveServerKey(_ key: CurveKey) throws {
        try CurveKeyPair.requireCurveSupport()
        try setOption(ZMQ_CURVE_SERVERKEY, "ZMQ_CURVE_SERVERKEY", bytes: key.bytes)
    }

    /// The ZAP domain this socket's handshakes are authenticated in: the ZAP handler
    /// (`ZAPHandler`) sees it in every request, and so can tell this socket's peers from
    /// those of another socket in the same context.
    public func setZAPDomain(_ domain: String) throws {
        try setOption(ZMQ_ZAP_DOMAIN, "ZMQ_ZAP_DOMAIN", bytes: Array(domain.utf8))
    }

    /// How long a connection's security handshake may take before libzmq drops it;
    /// `nil` never gives up.
    public func setHandshakeInterval(_ interval: Duration?) throws {
        try setOption(ZMQ_HANDSHAKE_IVL, "ZMQ_HANDSHAKE_IVL", interval?.zmqMilliseconds ?? 0)
    }

    /// Makes this socket a CURVE client of the server whose public key is `serverKey`,
    /// authenticating itself with `keys`.
    public func setCurveClient(keys: CurveKeyPair, serverKey: CurveKey) throws {
        try setCurvePublicKey(keys.publicKey)
        try setCurveSecretKey(keys.secretKey)
        try setCurveServerKey(serverKey)
    }

    // MARK: Raw setters

    private func setOption<Value: FixedWidthInteger>(_ option: Int32, _ name: String,
                                                     _ value: Value) throws {
        var value = value
        try LibZMQ.check("zmq_setsockopt \(name)") {
            zmq_setsockopt(handle, option, &value, MemoryLayout<Value>.size)
        }
    }

    private func setOption(_ option: Int32, _ name: String, _ value: Bool) throws {
        try setOption(option, name, Int32(value ? 1 : 0))
    }

    private func setOption(_ option: Int32, _ name: String, bytes: [UInt8]) throws {
        _ = try bytes.withUnsafeBytes { buffer in
            try LibZMQ.check("zmq_setsockopt \(name)") {
                zmq_setsockopt(handle, option, buffer.baseAddress, buffer.count)
            }
        }
    }
}
