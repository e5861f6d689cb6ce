import Foundation
import Glibc
import Synchronization

/// A TCP relay on 127.0.0.1 for tests: it accepts connections on a port of its own and
/// forwards each, both ways, to `127.0.0.1:target`; `cut()` closes the connections it
/// relays (a network blip: the peers see their connections drop and make new ones).
final class TCPRelay: Sendable {
    let port: Int
    private let listener: Int32
    /// The sockets of the relayed connections (both ends of each).
    private let open = Mutex<Set<Int32>>([])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    init(target: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        guard listener >= 0, bound == 0, named == 0, listen(listener, 16) == 0 else {
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in
            let listener = self.listener
            defer { finished.signal() }
            var descriptor = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            while !stopping.load(ordering: .relaxed) {
                guard poll(&descriptor, 1, 50) > 0 else { continue }
                let accepted = accept(listener, nil, nil)
                guard accepted >= 0 else { continue }
                let outgoing = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var targetAddress = Self.loopback(port: target)
                let connected = withUnsafePointer(to: &targetAddress) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(outgoing, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard connected == 0 else {
                    close(accepted)
                    close(outgoing)
                    continue
                }
                open.withLock { $0.formUnion([accepted, outgoing]) }
                Thread { [self] in pump(accepted, outgoing) }.start()
            }
        }
        thread.start()
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// Copies bytes between `a` and `b` until either closes (or is cut), then closes both.
    private func pump(_ a: Int32, _ b: Int32) {
        var descriptors = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        copying: while !stopping.load(ordering: .relaxed) {
            guard poll(&descriptors, 2, 50) >= 0 else { break }
            for (from, to) in [(0, b), (1, a)] where descriptors[from].revents != 0 {
                let count = read(descriptors[from].fd, &buffer, buffer.count)
                guard count > 0 else { break copying }
                var sent = 0
                while sent < count {
                    // MSG_NOSIGNAL: a side that `cut` shut down gives EPIPE, not a SIGPIPE
                    // that would end the test process.
                    let written = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, count - sent, Int32(MSG_NOSIGNAL)) }
                    guard written > 0 else { break copying }
                    sent += written
                }
            }
        }
        open.withLock { $0.subtract([a, b]) }
        close(a)
        close(b)
    }

    /// Drops every connection relayed now (new ones are relayed as before).
    func cut() {
        for descriptor in open.withLock({ $0 }) { shutdown(descriptor, Int32(SHUT_RDWR)) }
    }

    func stop() {
        guard !stopping.exchange(true, ordering: .relaxed) else { return }
        cut()
        finished.wait()
        close(listener)
    }
}
