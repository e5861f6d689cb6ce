import CZeroMQ

/// Typed setters for the socket options Codebook uses. Options that affect connections
/// (limits, identity, keys, heartbeats) must be set before `bind` or `connect`.
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

    /// The identity a ROUTER peer sees for this socket: 1 to 255 bytes, not starting with 0.
    public func setRoutingID(_ id: [UInt8]) throws {
        try setOption(ZMQ_ROUTING_ID, "ZMQ_ROUTING_ID", bytes: id)
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

    /// How long a blocking `send` waits before it returns `false`; `nil` waits forever.
    public func setSendTimeout(_ timeout: Duration?) throws {
        try setOption(ZMQ_SNDTIMEO, "ZMQ_SNDTIMEO", timeout.zmqMilliseconds)
    }

    /// Queue messages only to peers whose connection is complete, so nothing waits in the
    /// queue of a peer that is not there.
    public func setImmediate(_ enabled: Bool) throws {
        try setOption(ZMQ_IMMEDIATE, "ZMQ_IMMEDIATE", enabled)
    }

    /// How often to send a ZMTP heartbeat (PING) on every connection.
    public func setHeartbeatInterval(_ interval: Duration) throws {
        try setOption(ZMQ_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL", interval.zmqMilliseconds)
    }

    /// How long to wait for any traffic after a PING before the connection is dropped.
    public func setHeartbeatTimeout(_ timeout: Duration) throws {
        try setOption(ZMQ_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT", timeout.zmqMilliseconds)
    }

    /// How long the remote peer should wait for traffic from us before it drops the
    /// connection (sent in our PINGs; libzmq keeps tenths of a second, at most 6553.5 s).
    public func setHeartbeatTTL(_ ttl: Duration) throws {
        try setOption(ZMQ_HEARTBEAT_TTL, "ZMQ_HEARTBEAT_TTL", ttl.zmqMilliseconds)
    }

    /// How long to wait before reconnecting after a connection is lost.
    public func setReconnectInterval(_ interval: Duration) throws {
        try setOption(ZMQ_RECONNECT_IVL, "ZMQ_RECONNECT_IVL", interval.zmqMilliseconds)
    }

    /// The cap for exponential back-off between reconnection attempts; `nil` disables the
    /// back-off (every attempt waits `setReconnectInterval`).
    public func setReconnectIntervalMax(_ interval: Duration?) throws {
        try setOption(ZMQ_RECONNECT_IVL_MAX, "ZMQ_RECONNECT_IVL_MAX", interval?.zmqMilliseconds ?? 0)
    }

    /// SUB only: receive messages whose first frame starts with `prefix` (empty: all).
    public func subscribe(prefix: [UInt8]) throws {
        try setOption(ZMQ_SUBSCRIBE, "ZMQ_SUBSCRIBE", bytes: prefix)
    }

    /// SUB only: undoes one `subscribe(prefix:)` with the same prefix.
    public func unsubscribe(prefix: [UInt8]) throws {
        try setOption(ZMQ_UNSUBSCRIBE, "ZMQ_UNSUBSCRIBE", bytes: prefix)
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
