import CZeroMQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The one place that calls into libzmq and interprets its `-1` / errno convention
/// (the shape of swift-nio's `syscall` helper).
enum LibZMQ {
    /// Runs `body` until it does not fail with `EINTR`.
    ///
    /// Returns the call's non-negative result, or `nil` when it would block (`EAGAIN`, also
    /// what a send or receive timeout reports). `EFAULT` means we passed a closed or bogus
    /// handle, a bug in this module, so it traps; every other errno is thrown.
    @inline(__always)
    static func call(_ operation: @autoclosure () -> String,
                     _ body: () -> Int32) throws(ZeroMQError) -> Int32? {
        while true {
            let result = body()
            if result != -1 { return result }
            let code = zmq_errno()
            switch code {
            case EINTR: continue
            case EAGAIN: return nil
            case EFAULT: preconditionFailure("\(operation()): libzmq was given an invalid handle")
            default: throw ZeroMQError(code: code, operation: operation())
            }
        }
    }

    /// Like `call`, for operations that never block: "would block" is an error here.
    @inline(__always)
    @discardableResult
    static func check(_ operation: @autoclosure () -> String,
                      _ body: () -> Int32) throws(ZeroMQError) -> Int32 {
        guard let result = try call(operation(), body) else {
            throw ZeroMQError(code: EAGAIN, operation: operation())
        }
        return result
    }
}
